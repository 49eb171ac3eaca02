//! Credentials rotated end to end, for both provider flavours: the OAuth2 client secret
//! (CAMARA, client-credentials grant) and the Network-as-Code API key change at the provider
//! (the simulator re-reads its `--client-secret-file` / `--api-key-file`) and in the operator's
//! file (as a re-mounted Secret: written aside, then renamed into place, as the kubelet does),
//! without a restart of either. The old credential is refused from then on, no session is
//! lost (the one made before the rotation is still held, and the operator can still delete
//! it), a new session made after the rotation succeeds, and no credential reaches a log.
//!
//! Order of a rotation: the Secret first, then the provider, as with any credential that
//! cannot be valid twice at once. The operator learns of the change when the provider refuses
//! the old value: an OAuth token issued under the old secret is revoked (a 401, then a token
//! fetch with the secret read again from the file); a NaC key is refused with 403 (the key
//! file is read again and the call repeated once).

use std::path::{Path, PathBuf};

use kube::{
    ResourceExt,
    api::{DeleteParams, PostParams},
};
use qod_operator::api::QodSession;
use qod_test_support::{
    Cluster, eventually,
    net::free_port,
    operator::{Operator, OperatorSetup},
    session::{numbered_spec, ready, session_id},
    simulator::{Sim, SimProcess, sink_uid},
    test_dir,
};
use serde_json::{Value, json};

use crate::{
    OPERATOR, WAIT,
    secrets::{answers, assert_no_secret_logged, secret, wait_available},
};

const CLIENT_ID: &str = "chaos-client";

#[derive(Clone, Copy, PartialEq)]
enum Flavour {
    /// CAMARA with OAuth2 client credentials: the client secret rotates.
    CamaraOAuth,
    /// Network as Code: the RapidAPI key rotates.
    Nac,
}

/// Writes `contents` to `path` the way a re-mounted Secret changes: a new file renamed into
/// place, so a reader sees the old value or the new one, never a half-written file.
fn write_secret(path: &Path, contents: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, format!("{contents}\n")).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn secret_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    write_secret(&path, contents);
    path
}

/// The provider's answer to a request that carries only `credential`: the token endpoint for
/// a client secret, retrieve-sessions for a NaC key.
async fn status_with(sim: &Sim, flavour: Flavour, credential: &str) -> u16 {
    let request = match flavour {
        Flavour::CamaraOAuth => sim
            .http
            .post(format!("{}/oauth/token", sim.base))
            .basic_auth(CLIENT_ID, Some(credential))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials"),
        Flavour::Nac => sim
            .http
            .post(format!(
                "{}/quality-on-demand/v1/retrieve-sessions",
                sim.base
            ))
            .header("X-RapidAPI-Key", credential)
            .json(&json!({"device": {"phoneNumber": "+36700000000"}})),
    };
    request.send().await.unwrap().status().as_u16()
}

/// Whether the provider took the credential (NaC answers 404 for a device without sessions).
async fn accepts(sim: &Sim, flavour: Flavour, credential: &str) -> bool {
    !matches!(status_with(sim, flavour, credential).await, 401 | 403)
}

async fn create(api: &kube::Api<QodSession>, name: &str, index: usize) {
    api.create(
        &PostParams::default(),
        &QodSession::new(name, numbered_spec(index, "QOS_M", 1800)),
    )
    .await
    .unwrap();
}

/// The provider's live sessions whose sink names `resource`.
async fn held(sim: &Sim, resource: &QodSession) -> Vec<Value> {
    let uid = resource.uid().unwrap();
    sim.sessions(false)
        .await
        .into_iter()
        .filter(|s| sink_uid(s) == Some(uid.as_str()))
        .collect()
}

async fn rotate(test: &str, flavour: Flavour) {
    let dir = test_dir(&format!("chaos/{test}"));
    let cluster = Cluster::start(test).await;
    let api = &cluster.api;
    let kind = match flavour {
        Flavour::CamaraOAuth => "client-secret",
        Flavour::Nac => "api-key",
    };
    let (old, new) = (secret(kind), secret(kind));
    let provider_file = secret_file(&dir, &format!("sim-{kind}"), &old);
    let operator_file = secret_file(&dir, kind, &old);

    let port = free_port();
    let provider_args: Vec<&std::ffi::OsStr> = match flavour {
        Flavour::CamaraOAuth => vec![
            "--require-auth".as_ref(),
            "--client-id".as_ref(),
            CLIENT_ID.as_ref(),
            "--client-secret-file".as_ref(),
            provider_file.as_os_str(),
        ],
        Flavour::Nac => vec!["--api-key-file".as_ref(), provider_file.as_os_str()],
    };
    let (_provider, sim) = SimProcess::start(OPERATOR, &dir, port, provider_args).await;
    assert!(accepts(&sim, flavour, &old).await);

    let operator_file_arg = operator_file.display().to_string();
    let (provider_url, extra_args) = match flavour {
        Flavour::CamaraOAuth => (
            sim.provider_url(),
            vec![
                "--token-url".to_owned(),
                format!("{}/oauth/token", sim.base),
                "--client-id".to_owned(),
                CLIENT_ID.to_owned(),
                "--client-secret-file".to_owned(),
                operator_file_arg,
            ],
        ),
        // NaC's URL is the host; the client appends the QoD path.
        Flavour::Nac => (
            sim.base.clone(),
            vec![
                "--provider".to_owned(),
                "nac".to_owned(),
                "--api-key-file".to_owned(),
                operator_file_arg,
            ],
        ),
    };
    let mut setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, provider_url);
    setup.rust_log = "debug".into();
    setup.extra_args = extra_args;
    let mut operator = Operator::start_ready(&setup).await;

    create(api, "before", 1).await;
    let before = wait_available(api, "before").await;
    let before_session = session_id(&before).unwrap().to_owned();

    // The rotation: the Secret, then the provider.
    write_secret(&operator_file, &new);
    write_secret(&provider_file, &new);
    if flavour == Flavour::CamaraOAuth {
        // Tokens issued under the old secret are revoked with it.
        sim.post("/_sim/tokens/revoke").await;
    }
    assert!(
        !accepts(&sim, flavour, &old).await,
        "the old credential is refused after the rotation"
    );
    assert!(accepts(&sim, flavour, &new).await);
    let stats = sim.stats().await;
    let rejected = stats["tokenRequestsRejected"].clone();
    let refused_before = answers(&stats, "401") + answers(&stats, "403");

    create(api, "after", 2).await;
    let after = wait_available(api, "after").await;
    assert_eq!(ready(&after).unwrap().0, "True");
    let stats = sim.stats().await;
    // The operator's old credential was refused once per call in flight with it (two
    // resources), then the new one used.
    let refusals = answers(&stats, "401") + answers(&stats, "403") - refused_before;
    assert!(
        (1..=2).contains(&refusals),
        "the operator's old credential was refused {refusals} times: {stats}"
    );
    if flavour == Flavour::CamaraOAuth {
        assert_eq!(
            stats["tokenRequestsRejected"], rejected,
            "the operator never asked for a token with the old secret after the rotation"
        );
    }

    // No session lost: the one from before the rotation is still held, and the operator still
    // manages it with the new credential.
    let before = api.get("before").await.unwrap();
    assert_eq!(session_id(&before), Some(before_session.as_str()));
    assert_eq!(ready(&before).unwrap().0, "True");
    assert_eq!(held(&sim, &before).await.len(), 1);
    assert_eq!(held(&sim, &after).await.len(), 1);
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    eventually("before deleted at the provider", WAIT, || async {
        let live = sim.sessions(false).await;
        (!live
            .iter()
            .any(|s| s["sessionId"] == before_session.as_str()))
        .then_some(())
    })
    .await;
    api.delete("after", &DeleteParams::default()).await.unwrap();
    eventually("every resource gone", WAIT, || async {
        let gone = api.get_opt("before").await.unwrap().is_none()
            && api.get_opt("after").await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    assert_eq!(sim.stats().await["liveSessions"], 0);
    println!(
        "rotation ({kind}): {refusals} refusal(s) of the old credential, final stats {}",
        sim.stats().await
    );
    assert!(operator.terminate().await);
    drop(_provider);
    assert_no_secret_logged(
        &dir,
        &[
            ("old credential", old.clone()),
            ("new credential", new.clone()),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_oauth_client_secret_is_used_without_restart_and_the_old_one_is_refused() {
    rotate("rotate-client-secret", Flavour::CamaraOAuth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_nac_api_key_is_used_without_restart_and_the_old_one_is_refused() {
    rotate("rotate-api-key", Flavour::Nac).await;
}
