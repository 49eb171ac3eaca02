//! Management policies as Crossplane and ACK users know them, through kubectl: a session made by
//! someone else is imported when it matches the spec (and refused, with no provider write, when
//! it does not); Observe shows a session's provider-side changes without changing it;
//! deletionPolicy Orphan leaves the session at the provider; qod.dev/paused stops every call
//! and removing it resumes. Calls are counted at the simulator.

use qod_test_support::{
    eventually, repo_root,
    simulator::{Sim, provider_calls},
};
use serde_json::{Value, json};

use crate::{
    providers::{READY_MESSAGE, READY_REASON, apply, field, wait_field},
    world::{WAIT, World},
};

const PAUSED: &str = r#".status.conditions[?(@.type=="Paused")].status"#;
/// The session id in the examples of deploy/examples/policies/.
const EXAMPLE_ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const EXAMPLE_OBSERVED_ID: &str = "9b2e6c1a-0d4f-4e8a-8c3b-5f7a1d2e3c4b";

/// A session made at the provider by another client (no sink of ours); returns its id.
async fn made_elsewhere(world: &World, phone: &str, profile: &str, duration: u32) -> String {
    let answer: Value = qod_test_support::http::client()
        .post(format!("{}/quality-on-demand/v1/sessions", world.sim_url()))
        .json(&json!({
            "device": {"phoneNumber": phone},
            "applicationServer": {"ipv4Address": "198.51.100.7"},
            "qosProfile": profile,
            "duration": duration,
        }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["sessionId"].as_str().unwrap().to_owned()
}

/// Provider calls that change something: creates, extensions, deletes.
async fn writes(world: &World) -> [u64; 3] {
    let stats = world.provider_stats().await;
    ["create", "extend", "delete"].map(|operation| provider_calls(&stats, operation))
}

/// A QodSession manifest; `annotations` and `extra` are YAML lines (indented by the caller).
fn session(name: &str, annotations: &str, phone: &str, profile: &str, extra: &str) -> String {
    format!(
        "apiVersion: qod.dev/v1alpha1
kind: QodSession
metadata:
  name: {name}
  annotations: {{{annotations}}}
spec:
  device: {{phoneNumber: \"{phone}\"}}
  applicationServer: {{ipv4Address: 198.51.100.7}}
  qosProfile: {profile}
  duration: 600
{extra}
"
    )
}

/// The `reason<TAB>note` of every Event about `object` of `type_`.
async fn events(world: &World, object: &str, type_: &str) -> Vec<String> {
    let out = world
        .kubectl(&[
            "get",
            "events.events.k8s.io",
            "--field-selector",
            &format!("regarding.name={object},type={type_}"),
            "-o",
            "jsonpath={range .items[*]}{.reason}{\"\\t\"}{.note}{\"\\n\"}{end}",
        ])
        .await;
    out.lines().map(str::to_owned).collect()
}

async fn session_ids(world: &World) -> Vec<String> {
    world
        .provider_sessions()
        .await
        .iter()
        .filter_map(|s| s["sessionId"].as_str().map(str::to_owned))
        .collect()
}

/// The example file with the placeholder session id replaced by `id`, applied.
async fn apply_example(world: &World, file: &str, placeholder: &str, id: &str) {
    let example =
        std::fs::read_to_string(repo_root().join("deploy/examples/policies").join(file)).unwrap();
    assert!(example.contains(placeholder), "{file} names {placeholder}");
    apply(world, file, &example.replace(placeholder, id)).await;
}

#[tokio::test]
async fn a_matching_session_is_imported_and_a_mismatching_one_is_left_alone() {
    let world = World::start("policies-import").await;
    world.install_crd().await;
    let _operator = world.operator("op-policies-import");
    let theirs = made_elsewhere(&world, "+36721601230001", "QOS_L", 600).await;
    let other = made_elsewhere(&world, "+36721601230003", "QOS_L", 600).await;
    assert_eq!(writes(&world).await, [2, 0, 0]);

    // deploy/examples/policies/import-session.yaml, naming the session made elsewhere.
    apply_example(&world, "import-session.yaml", EXAMPLE_ID, &theirs).await;
    let qod = "qod/imported-uplink";
    wait_field(&world, qod, ".status.sessionId", &theirs).await;
    wait_field(&world, qod, ".status.import.outcome", "Imported").await;
    wait_field(&world, qod, READY_REASON, "SessionAvailable").await;
    assert_eq!(
        field(&world, qod, ".status.requestedDuration").await,
        "600",
        "the session's own duration"
    );
    assert_eq!(
        field(&world, qod, ".metadata.finalizers[0]").await,
        "qod.dev/session"
    );

    // Another device's session, and a profile that is not the session's: refused, by field.
    let mismatch = session(
        "mismatch",
        &format!("qod.dev/session-id: \"{other}\""),
        "+36721601230004",
        "QOS_E",
        "",
    );
    apply(&world, "mismatch", &mismatch).await;
    wait_field(&world, "qod/mismatch", READY_REASON, "ImportMismatch").await;
    let message = field(&world, "qod/mismatch", READY_MESSAGE).await;
    assert!(
        message.contains("device") && message.contains("qosProfile"),
        "{message}"
    );
    assert!(!message.contains("applicationServer"), "{message}");
    assert_eq!(field(&world, "qod/mismatch", ".status.sessionId").await, "");
    // A session the provider does not know: refused too, no create instead.
    let missing = session(
        "missing",
        "qod.dev/session-id: 00000000-0000-4000-8000-000000000000",
        "+36721601230005",
        "QOS_L",
        "",
    );
    apply(&world, "missing", &missing).await;
    wait_field(&world, "qod/missing", READY_REASON, "ImportNotFound").await;

    // A user fixing the spec is checked again: the profile alone still differs in the device.
    world
        .kubectl(&[
            "patch",
            "qod/mismatch",
            "--type=merge",
            "-p",
            r#"{"spec":{"qosProfile":"QOS_L"}}"#,
        ])
        .await;
    eventually("the mismatch checked again", WAIT, || async {
        let message = field(&world, "qod/mismatch", READY_MESSAGE).await;
        (!message.contains("qosProfile") && message.contains("device")).then_some(())
    })
    .await;
    assert_eq!(writes(&world).await, [2, 0, 0], "no provider write at all");
    assert!(
        events(&world, "mismatch", "Warning")
            .await
            .iter()
            .any(|e| e.starts_with("ImportMismatch")),
    );

    // The refused resources go without touching the sessions; the imported one is orphaned
    // as its deletionPolicy says, with an Event naming it.
    world
        .kubectl(&[
            "delete",
            "qod/mismatch",
            "qod/missing",
            "qod/imported-uplink",
        ])
        .await;
    let ids = session_ids(&world).await;
    assert!(ids.contains(&theirs) && ids.contains(&other), "{ids:?}");
    assert_eq!(writes(&world).await, [2, 0, 0]);
    let orphaned = events(&world, "imported-uplink", "Normal").await;
    assert!(
        orphaned
            .iter()
            .any(|e| e.starts_with("Orphaned") && e.contains(&theirs)),
        "{orphaned:?}"
    );
    world.stop().await;
}

#[tokio::test]
async fn an_imported_session_is_managed_and_deleted_with_its_resource() {
    let world = World::start("policies-manage").await;
    world.install_crd().await;
    let _operator = world.operator("op-policies-manage");
    let theirs = made_elsewhere(&world, "+36721601230011", "QOS_L", 600).await;
    let manifest = session(
        "taken-over",
        &format!("qod.dev/session-id: \"{theirs}\""),
        "+36721601230011",
        "QOS_L",
        "",
    );
    apply(&world, "taken-over", &manifest).await;
    wait_field(&world, "qod/taken-over", ".status.sessionId", &theirs).await;
    // A longer duration extends it, as for a session of its own.
    world
        .kubectl(&[
            "patch",
            "qod/taken-over",
            "--type=merge",
            "-p",
            r#"{"spec":{"duration":900}}"#,
        ])
        .await;
    wait_field(&world, "qod/taken-over", ".status.requestedDuration", "900").await;
    world.kubectl(&["delete", "qod/taken-over"]).await;
    assert!(session_ids(&world).await.is_empty());
    assert_eq!(
        writes(&world).await,
        [1, 1, 1],
        "ours: one extend, one delete"
    );
    world.stop().await;
}

#[tokio::test]
async fn observe_follows_the_provider_and_changes_nothing() {
    let world = World::start("policies-observe").await;
    world.install_crd().await;
    let operator = world.operator_with("op-policies-observe", &["--resync-interval", "1s"]);
    eventually("the operator to lead", WAIT, || async {
        (operator.ready().await && operator.leads().await == Some(true)).then_some(())
    })
    .await;
    // Short, but long enough to be read before it ends (the provider forgets it then).
    let short = made_elsewhere(&world, "+36721601230002", "QOS_L", 8).await;
    let long = made_elsewhere(&world, "+36721601230021", "QOS_L", 600).await;
    let before = writes(&world).await;

    // The example, on the short session: shown AVAILABLE, then expired at the provider.
    apply_example(&world, "observe-session.yaml", EXAMPLE_OBSERVED_ID, &short).await;
    let observed = "qod/observed-uplink";
    wait_field(&world, observed, ".status.sessionId", &short).await;
    wait_field(&world, observed, ".status.qosStatus", "AVAILABLE").await;

    // Without the annotation there is nothing to observe.
    let bare = session(
        "nothing-named",
        "",
        "+36721601230022",
        "QOS_L",
        "  managementPolicy: Observe",
    );
    apply(&world, "nothing-named", &bare).await;
    wait_field(
        &world,
        "qod/nothing-named",
        READY_REASON,
        "SessionIdRequired",
    )
    .await;
    wait_field(&world, observed, ".status.statusInfo", "DURATION_EXPIRED").await;
    assert_eq!(
        field(&world, observed, ".status.qosStatus").await,
        "UNAVAILABLE"
    );
    assert_eq!(
        field(&world, observed, ".metadata.finalizers").await,
        "",
        "nothing to clean up, so no finalizer"
    );

    // The long one, with a spec asking for more time (never asked of the provider) and
    // autoExtend: the network ends it, and the status says so from a read.
    let terminated = session(
        "terminated",
        &format!("qod.dev/session-id: \"{long}\""),
        "+36721601230021",
        "QOS_L",
        "  managementPolicy: Observe\n  autoExtend: true",
    )
    .replace("duration: 600", "duration: 3600");
    apply(&world, "terminated", &terminated).await;
    wait_field(&world, "qod/terminated", ".status.qosStatus", "AVAILABLE").await;
    Sim::new(world.sim_url()).terminate(&long).await;
    wait_field(
        &world,
        "qod/terminated",
        ".status.statusInfo",
        "NETWORK_TERMINATED",
    )
    .await;
    wait_field(&world, "qod/terminated", READY_REASON, "NetworkTerminated").await;

    // Deleting observed resources leaves the provider alone.
    world
        .kubectl(&["delete", "qod/terminated", observed, "qod/nothing-named"])
        .await;
    assert!(session_ids(&world).await.contains(&long));
    assert_eq!(writes(&world).await, before, "no create, extend or delete");
    world.stop().await;
}

#[tokio::test]
async fn orphan_leaves_exactly_one_session_behind() {
    let world = World::start("policies-orphan").await;
    world.install_crd().await;
    let _operator = world.operator("op-policies-orphan");
    let manifest = session(
        "left-behind",
        "",
        "+36721601230031",
        "QOS_L",
        "  deletionPolicy: Orphan",
    );
    apply(&world, "left-behind", &manifest).await;
    wait_field(&world, "qod/left-behind", ".status.qosStatus", "AVAILABLE").await;
    let id = field(&world, "qod/left-behind", ".status.sessionId").await;
    world.kubectl(&["delete", "qod/left-behind"]).await;
    assert_eq!(session_ids(&world).await, std::slice::from_ref(&id));
    assert_eq!(writes(&world).await, [1, 0, 0]);
    let events = events(&world, "left-behind", "Normal").await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Orphaned") && e.contains(&id)),
        "{events:?}"
    );
    world.stop().await;
}

#[tokio::test]
async fn paused_makes_no_call_and_resumes_where_it_was() {
    let world = World::start("policies-paused").await;
    world.install_crd().await;
    let _operator = world.operator("op-policies-paused");
    let paused = session(
        "paused",
        "qod.dev/paused: \"true\"",
        "+36721601230041",
        "QOS_L",
        "",
    );
    apply(&world, "paused", &paused).await;
    wait_field(&world, "qod/paused", PAUSED, "True").await;
    // A resource applied after it is created in the meantime: the paused one would have been.
    let marker = |name: &str, phone: &str| session(name, "", phone, "QOS_L", "");
    apply(&world, "marker-1", &marker("marker-1", "+36721601230042")).await;
    wait_field(&world, "qod/marker-1", ".status.qosStatus", "AVAILABLE").await;
    assert_eq!(writes(&world).await, [1, 0, 0], "the marker's create only");
    assert_eq!(field(&world, "qod/paused", ".status.sessionId").await, "");

    // Resumed: created, and the Paused condition is gone.
    world
        .kubectl(&["annotate", "qod/paused", "qod.dev/paused-"])
        .await;
    wait_field(&world, "qod/paused", ".status.qosStatus", "AVAILABLE").await;
    wait_field(&world, "qod/paused", PAUSED, "").await;
    let id = field(&world, "qod/paused", ".status.sessionId").await;
    assert_eq!(writes(&world).await, [2, 0, 0]);

    // Paused again: a new profile (a replacement) and a deletion both wait.
    world
        .kubectl(&["annotate", "qod/paused", "qod.dev/paused=true"])
        .await;
    wait_field(&world, "qod/paused", PAUSED, "True").await;
    world
        .kubectl(&[
            "patch",
            "qod/paused",
            "--type=merge",
            "-p",
            r#"{"spec":{"qosProfile":"QOS_M"}}"#,
        ])
        .await;
    world
        .kubectl(&["delete", "qod/paused", "--wait=false"])
        .await;
    apply(&world, "marker-2", &marker("marker-2", "+36721601230043")).await;
    wait_field(&world, "qod/marker-2", ".status.qosStatus", "AVAILABLE").await;
    assert_eq!(
        writes(&world).await,
        [3, 0, 0],
        "the second marker's create only"
    );
    assert!(session_ids(&world).await.contains(&id));
    assert_ne!(
        field(&world, "qod/paused", ".metadata.deletionTimestamp").await,
        "",
        "the deletion waits"
    );

    // Resumed: the deletion goes on where it was (the session deleted, no replacement).
    world
        .kubectl(&["annotate", "qod/paused", "qod.dev/paused-"])
        .await;
    eventually("the paused resource deleted", WAIT, || async {
        let out = world
            .kubectl_output(&["get", "qod/paused", "-o", "name"])
            .await;
        (!out.status.success()).then_some(())
    })
    .await;
    assert!(!session_ids(&world).await.contains(&id));
    assert_eq!(writes(&world).await, [3, 0, 1]);
    world.stop().await;
}
