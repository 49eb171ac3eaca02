//! Property tests (proptest, in the normal suite): notification parsing never panics on any
//! bytes or any JSON, and the webhook's router, against a real Kubernetes API, answers
//! every request with a documented status code (204, 400, 401, 404, 408, 409, 413, 415, 503)
//! and never anything else: no panic, no 500, no hang.

use std::time::Duration;

use axum::{body::Body, http::Request};
use kube::{
    ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use qod_operator::{
    api::{CONTROLLER_MANAGER, QodSession},
    metrics::Metrics,
    qod::event::{self, parse_batch, parse_event},
    sink_keys::SinkKeys,
    webhook::{self, Webhook},
};
use qod_test_support::{Cluster, eventually, session::numbered_spec};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tower::ServiceExt;

const SESSION: &str = "7b8e4d10-2c3a-4f1e-9d6b-5a4c3b2a1f00";
const DOCUMENTED: [u16; 9] = [204, 400, 401, 404, 408, 409, 413, 415, 503];

/// Any JSON value, a few levels deep, with the CloudEvent vocabulary among the keys and strings
/// so the parser gets past its first checks often.
fn json_value() -> impl Strategy<Value = Value> {
    let words = prop_oneof![
        Just("id".to_owned()),
        Just("type".to_owned()),
        Just("data".to_owned()),
        Just("event".to_owned()),
        Just("eventDetail".to_owned()),
        Just("sessionId".to_owned()),
        Just("qosStatus".to_owned()),
        Just("statusInfo".to_owned()),
        Just("time".to_owned()),
        Just("specversion".to_owned()),
        Just(event::TYPE_V1.to_owned()),
        Just("AVAILABLE".to_owned()),
        Just("UNAVAILABLE".to_owned()),
        Just(SESSION.to_owned()),
        ".{0,24}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        words.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(words.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid v1 event with one field (top level or in `data`) replaced by anything.
fn mutated_event() -> impl Strategy<Value = Value> {
    let fields = prop_oneof![
        Just("/id"),
        Just("/type"),
        Just("/time"),
        Just("/specversion"),
        Just("/source"),
        Just("/data"),
        Just("/data/sessionId"),
        Just("/data/qosStatus"),
        Just("/data/statusInfo"),
    ];
    (fields, json_value(), any::<bool>()).prop_map(|(field, value, remove)| {
        let mut event = valid_event("e-fuzz");
        let (parent, key) = field.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            Some(&mut event)
        } else {
            event.pointer_mut(parent)
        };
        if let Some(Value::Object(map)) = target {
            if remove {
                map.remove(key);
            } else {
                map.insert(key.to_owned(), value);
            }
        }
        event
    })
}

fn valid_event(id: &str) -> Value {
    json!({
        "id": id,
        "source": format!("https://provider.example/quality-on-demand/v1/sessions/{SESSION}"),
        "type": event::TYPE_V1,
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "time": jiff::Timestamp::now().to_string(),
        "data": {"sessionId": SESSION, "qosStatus": "AVAILABLE"},
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        mutated_event().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(mutated_event(), 0..4)
            .prop_map(|v| Value::Array(v).to_string().into_bytes()),
        (1usize..5000).prop_map(|depth| "[".repeat(depth).into_bytes()),
        (1usize..3000).prop_map(|depth| format!(
            "{}1{}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        )
        .into_bytes()),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 2000, failure_persistence: None, ..Config::default() })]

    #[test]
    fn parsing_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_event(&bytes);
        let _ = parse_batch(&bytes);
    }

    #[test]
    fn parsing_any_json_never_panics(value in json_value(), mutated in mutated_event()) {
        for text in [value.to_string(), mutated.to_string(), Value::Array(vec![value, mutated]).to_string()] {
            let _ = parse_event(text.as_bytes());
            let _ = parse_batch(text.as_bytes());
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow(depth in 1usize..200_000) {
        let arrays = "[".repeat(depth) + &"]".repeat(depth);
        prop_assert!(parse_event(arrays.as_bytes()).is_err());
        let _ = parse_batch(arrays.as_bytes());
        let objects = "{\"data\":".repeat(depth) + "{}" + &"}".repeat(depth);
        let _ = parse_event(objects.as_bytes());
    }
}

/// One fuzzed request.
#[derive(Debug, Clone)]
struct Fuzzed {
    path: usize,
    content_type: Option<String>,
    auth: usize,
    declared_length: Option<u64>,
    body: Vec<u8>,
}

fn request() -> impl Strategy<Value = Fuzzed> {
    let content_type = prop_oneof![
        1 => Just(None),
        4 => Just(Some("application/cloudevents+json".to_owned())),
        2 => Just(Some("application/cloudevents-batch+json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(Some("application/json; charset=latin1".to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ];
    // Weighted towards the resource's own sink and token, so most requests reach the parser.
    let path =
        prop_oneof![6 => Just(0usize), 1 => Just(1), 1 => Just(2), 1 => Just(3), 1 => Just(4)];
    let auth = prop_oneof![1 => Just(0usize), 6 => Just(1), 1 => Just(3), 1 => Just(4)];
    (
        path,
        content_type,
        auth,
        prop::option::weighted(0.1, any::<u64>()),
        body(),
    )
        .prop_map(|(path, content_type, auth, declared_length, body)| Fuzzed {
            path,
            content_type,
            auth,
            declared_length,
            body,
        })
}

#[test]
fn the_webhook_router_answers_every_fuzzed_request_with_a_documented_status() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (hook, keys, uid) = runtime.block_on(async {
        let Cluster {
            client,
            api,
            namespace,
            ..
        } = Cluster::start("fuzz").await;
        let created = api
            .create(&PostParams::default(), &QodSession::new("target", numbered_spec(1, "QOS_M", 600)))
            .await
            .unwrap();
        api.patch_status(
            "target",
            &PatchParams {
                field_manager: Some(CONTROLLER_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"status": {"sessionId": SESSION, "qosStatus": "REQUESTED", "observedGeneration": 1}})),
        )
        .await
        .unwrap();
        let keys = SinkKeys::from_bytes(b"fuzz-key".to_vec(), None).unwrap();
        let mut config = webhook::WebhookConfig::new(keys.clone());
        config.limits.max_body_bytes = 16 * 1024;
        config.limits.request_timeout = Duration::from_secs(2);
        let cache = qod_operator::cache::SessionCache::start(client.clone(), Some(&namespace));
        let hook = Webhook::new(client, cache, config, std::sync::Arc::new(Metrics::new()));
        let index = hook.cache();
        let uid = created.uid().unwrap();
        eventually("the index to know the resource", Duration::from_secs(10), || async {
            index.by_session(SESSION).is_some().then_some(())
        })
        .await;
        (hook, keys, uid)
    });
    let token = keys.token_for(&uid).expose_secret().to_owned();
    let router = hook.router();
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let mut runner = TestRunner::new(Config {
        cases: 800,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&request(), |fuzzed| {
            let path = match fuzzed.path {
                0 => format!("/notifications/{uid}"),
                1 => "/notifications".to_owned(),
                2 => "/notifications/00000000-0000-0000-0000-000000000000".to_owned(),
                3 => "/notifications/%2e%2e/%00".to_owned(),
                _ => "/elsewhere".to_owned(),
            };
            let mut builder = Request::post(&path);
            if let Some(content_type) = &fuzzed.content_type
                && let Ok(value) = axum::http::HeaderValue::from_str(content_type)
            {
                builder = builder.header("content-type", value);
            }
            match fuzzed.auth {
                0 => {}
                1 | 2 => builder = builder.header("authorization", format!("Bearer {token}")),
                3 => builder = builder.header("authorization", "Bearer 00"),
                _ => builder = builder.header("authorization", "Basic Zm9vOmJhcg=="),
            }
            if let Some(length) = fuzzed.declared_length {
                builder = builder.header("content-length", length.to_string());
            }
            let request = builder.body(Body::from(fuzzed.body.clone())).unwrap();
            let status = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(request))
                    .await
                    .expect("an answer within 10 s")
                    .unwrap()
                    .status()
                    .as_u16()
            });
            *seen.borrow_mut().entry(status).or_default() += 1;
            prop_assert!(
                DOCUMENTED.contains(&status),
                "{status} is not documented for {fuzzed:?}"
            );
            Ok(())
        })
        .unwrap();
    let seen = seen.into_inner();
    println!("fuzzed webhook answers by status: {seen:?}");
    assert!(
        seen.len() >= 5,
        "the fuzzing reached many answers: {seen:?}"
    );
}
