//! Credentials: the provider's bearer token and the webhook's HMAC key rotated while the
//! operator runs (new file contents, as a re-mounted Secret), picked up without a restart; and
//! every log line of that run (operator at `RUST_LOG=debug`, simulator process too) free of
//! any credential, key or sink token.

use std::path::Path;

use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use qod_operator::{api::QodSession, sink_keys::SinkKeys};
use qod_test_support::{
    Cluster, eventually,
    net::free_port,
    operator::{Operator, OperatorSetup},
    session::{numbered_spec, qos_status, ready, session_id},
    simulator::{SimProcess, deliveries_answered},
    test_dir,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{OPERATOR, WAIT};

/// A secret that cannot appear in a log by accident.
pub fn secret(kind: &str) -> String {
    format!("{kind}-{}", Uuid::new_v4().simple())
}

/// The text without terminal colour codes (`ESC [ ... m`), which could split a value.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub async fn wait_available(api: &kube::Api<QodSession>, name: &str) -> QodSession {
    eventually(&format!("{name} AVAILABLE"), WAIT, || async {
        let resource = api.get(name).await.unwrap();
        (qos_status(&resource) == Some("AVAILABLE")).then_some(resource)
    })
    .await
}

/// How many answers of `code` the provider gave, all operations together.
pub fn answers(stats: &Value, code: &str) -> u64 {
    stats["apiRequests"]
        .as_object()
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter_map(|codes| codes[code].as_u64())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_credentials_are_picked_up_without_restart_and_no_secret_is_ever_logged() {
    let dir = test_dir("chaos/secrets");
    let cluster = Cluster::start("secrets").await;
    let api = &cluster.api;

    let (bearer_old, bearer_new) = (secret("bearer"), secret("bearer"));
    let (client_secret, api_key) = (secret("client-secret"), secret("api-key"));
    let (key_0, key_1, key_2) = (secret("hmac"), secret("hmac"), secret("hmac"));
    let file = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{contents}\n")).unwrap();
        path
    };
    let sim_bearer = file("sim-bearer-token", &bearer_old);
    let sim_client_secret = file("sim-client-secret", &client_secret);
    let sim_api_key = file("sim-api-key", &api_key);
    let operator_bearer = file("bearer-token", &bearer_old);
    let hmac_current = file("hmac-key", &key_1);
    let hmac_previous = file("hmac-previous-key", &key_0);

    let (_simulator, sim) = SimProcess::start(
        OPERATOR,
        &dir,
        free_port(),
        [
            "--require-auth".as_ref(),
            "--client-id".as_ref(),
            "chaos-client".as_ref(),
            "--bearer-token-file".as_ref(),
            sim_bearer.as_os_str(),
            "--client-secret-file".as_ref(),
            sim_client_secret.as_os_str(),
            "--api-key-file".as_ref(),
            sim_api_key.as_os_str(),
        ],
    )
    .await;
    // The simulator sees the client secret and the API key too, so its log is tested for them.
    let token = sim
        .http
        .post(format!("{}/oauth/token", sim.base))
        .basic_auth("chaos-client", Some(&client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let issued: Value = token.json().await.unwrap();
    let nac = sim
        .http
        .post(format!(
            "{}/quality-on-demand/v1/retrieve-sessions",
            sim.base
        ))
        .header("X-RapidAPI-Key", &api_key)
        .json(&json!({"device": {"phoneNumber": "+36700000000"}}))
        .send()
        .await
        .unwrap();
    assert_ne!(nac.status(), 401, "the API key is accepted");

    let mut setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    setup.hmac_key_file = hmac_current.clone();
    setup.rust_log = "debug".into();
    setup.extra_args = vec![
        "--bearer-token-file".into(),
        operator_bearer.display().to_string(),
        "--hmac-previous-key-file".into(),
        hmac_previous.display().to_string(),
        "--hmac-key-reload-interval".into(),
        "1s".into(),
    ];
    let mut operator = Operator::start_ready(&setup).await;
    let started_pid_probe = operator.probe_port;

    api.create(
        &PostParams::default(),
        &QodSession::new("first", numbered_spec(1, "QOS_M", 1800)),
    )
    .await
    .unwrap();
    let first = wait_available(api, "first").await;

    // The provider's credential rotated: the Secret gets the new token first, then the provider
    // stops accepting the old one. The operator's next call is refused once, re-reads the file
    // and goes on, without a restart.
    std::fs::write(&operator_bearer, format!("{bearer_new}\n")).unwrap();
    sim.put("/_sim/auth", &json!({"bearerToken": bearer_new}))
        .await;
    api.create(
        &PostParams::default(),
        &QodSession::new("second", numbered_spec(2, "QOS_M", 1800)),
    )
    .await
    .unwrap();
    let second = wait_available(api, "second").await;
    let stats = sim.stats().await;
    assert!(
        answers(&stats, "401") >= 1,
        "the old token was refused once: {stats}"
    );
    assert_eq!(ready(&second).unwrap().0, "True");
    assert_eq!(
        operator.probe_port, started_pid_probe,
        "the same process throughout"
    );

    // The HMAC key rotated: the new key becomes current, the old one previous. Sinks registered
    // with the old key keep working; new ones use the new key.
    std::fs::write(&hmac_previous, format!("{key_1}\n")).unwrap();
    std::fs::write(&hmac_current, format!("{key_2}\n")).unwrap();
    let first_uid = first.uid().unwrap();
    let new_token = SinkKeys::from_bytes(key_2.as_bytes(), None)
        .unwrap()
        .token_for(&first_uid);
    let webhook = format!(
        "http://127.0.0.1:{}/notifications/{first_uid}",
        setup.webhook_port
    );
    eventually("the webhook to accept the new key", WAIT, || async {
        // No Content-Type: past the token check this is a 415, before it a 401.
        let answer = sim
            .http
            .post(&webhook)
            .bearer_auth(new_token.expose_secret())
            .send()
            .await
            .unwrap();
        (answer.status() == 415).then_some(())
    })
    .await;
    api.create(
        &PostParams::default(),
        &QodSession::new("third", numbered_spec(3, "QOS_M", 1800)),
    )
    .await
    .unwrap();
    let third = wait_available(api, "third").await;
    // The network ends the first session: its notification carries the old key's token, and
    // only the webhook (resync is 5 min away) can bring NETWORK_TERMINATED into status.
    let first_session = session_id(&first).unwrap().to_owned();
    sim.terminate(&first_session).await;
    eventually("NETWORK_TERMINATED through the webhook", WAIT, || async {
        let status = api.get("first").await.unwrap().status?;
        (status.status_info.as_deref() == Some("NETWORK_TERMINATED")).then_some(())
    })
    .await;
    let third_uid = third.uid().unwrap();
    // The status shows before the webhook's answer reaches the simulator's record.
    let sessions = eventually("the third's delivery answered", WAIT, || async {
        let sessions = sim.sessions_of(&third_uid).await;
        (!sessions.is_empty() && sessions.iter().all(deliveries_answered)).then_some(sessions)
    })
    .await;
    let deliveries: Vec<Value> = sessions
        .iter()
        .flat_map(|s| s["deliveries"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        deliveries.iter().any(|d| d.to_string().contains("204")),
        "a notification with the new key's token was stored: {deliveries:#?}"
    );

    let uids: Vec<String> = [&first, &second, &third]
        .iter()
        .map(|r| r.uid().unwrap())
        .collect();
    for name in ["first", "second", "third"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually("every resource gone", WAIT, || async {
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(operator.terminate().await);
    drop(_simulator);

    // The scan. Every secret of the run, and every sink token under every key.
    let mut secrets = vec![
        ("provider bearer token (old)", bearer_old.clone()),
        ("provider bearer token (new)", bearer_new.clone()),
        ("client secret", client_secret.clone()),
        ("API key", api_key.clone()),
        (
            "issued access token",
            issued["access_token"].as_str().unwrap().to_owned(),
        ),
    ];
    for (which, key) in [
        ("HMAC key 0", &key_0),
        ("HMAC key 1", &key_1),
        ("HMAC key 2", &key_2),
    ] {
        secrets.push((which, key.clone()));
        let keys = SinkKeys::from_bytes(key.as_bytes(), None).unwrap();
        for uid in &uids {
            secrets.push(("sink token", keys.token_for(uid).expose_secret().to_owned()));
        }
    }
    assert_no_secret_logged(&dir, &secrets);
}

/// Every log of the run in `dir` (operator and simulator, written at debug level) is free of
/// every one of `secrets`.
pub fn assert_no_secret_logged(dir: &Path, secrets: &[(&str, String)]) {
    let mut scanned = 0;
    for log in ["operator.log", "simulator.log"] {
        let raw = std::fs::read_to_string(dir.join(log)).unwrap();
        let text = strip_ansi(&raw);
        assert!(text.contains("DEBUG"), "{log} was written at debug level");
        scanned += text.len();
        for (what, value) in secrets {
            assert!(
                !text.contains(value.as_str()),
                "{log} contains the {what}: line {:?}",
                text.lines().find(|l| l.contains(value.as_str()))
            );
        }
    }
    println!(
        "secrets: {} secrets absent from {scanned} bytes of logs ({})",
        secrets.len(),
        dir.display()
    );
}
