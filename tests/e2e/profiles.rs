//! QoS profiles as users meet them: `kubectl get qosprofiles` shows what the provider's QoS
//! Profiles API lists, and follows it within one `--profile-refresh` when the provider adds,
//! deprecates or removes a profile; a QodSession is checked against its provider's profiles
//! before any create, and refused with a reason (and no call) when its profile cannot be used or
//! its duration is too short; a duration beyond the profile's maximum is created capped. A
//! provider without the API (CAMARA v0.11) gets no QosProfile and its sessions go on as before.

use qod_operator::simulator;
use qod_test_support::{
    eventually,
    simulator::{Sim, provider_calls},
};
use serde_json::{Value, json};

use crate::{
    providers::{
        READY_MESSAGE, READY_REASON, apply, creates_at, field, held_for, sessions_at, telco,
        wait_field,
    },
    world::{WAIT, World},
};

/// Short, so a change at the provider shows within a test's patience.
const REFRESH: &str = "2s";

/// The QosProfile resources the test's operator wrote, by profile name, for `provider`.
async fn qos_profiles(world: &World, provider: &str) -> Vec<Value> {
    let out = world
        .kubectl(&[
            "get",
            "qosprofiles",
            "-l",
            &format!("qod.dev/installation={}", world.namespace()),
            "-o",
            "json",
        ])
        .await;
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["spec"]["provider"] == provider)
        .cloned()
        .collect()
}

/// `kubectl get qosprofiles` of the test's installation with `extra` flags: the table and the
/// words of its header.
async fn profile_table(world: &World, extra: &[&str]) -> (String, Vec<String>) {
    let selector = format!("qod.dev/installation={}", world.namespace());
    let mut args = vec!["get", "qosprofiles", "-l", &selector];
    args.extend_from_slice(extra);
    let table = world.kubectl(&args).await;
    let header = table
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    (table, header)
}

async fn qos_profile(world: &World, name: &str) -> Option<Value> {
    qos_profiles(world, "default")
        .await
        .into_iter()
        .find(|item| item["spec"]["profile"] == name)
}

/// Waits until the default provider's QosProfile `name` satisfies `check`.
async fn wait_profile(
    world: &World,
    name: &str,
    what: &str,
    check: impl Fn(Option<&Value>) -> bool,
) {
    eventually(&format!("QosProfile {name}: {what}"), WAIT, || async {
        check(qos_profile(world, name).await.as_ref()).then_some(())
    })
    .await;
}

/// A change to the profiles of the simulator at `sim_url` through `/_sim/profiles`.
async fn sim_profiles(sim_url: &str, method: reqwest::Method, path: &str, body: Option<Value>) {
    let request =
        qod_test_support::http::client().request(method, format!("{sim_url}/_sim/profiles/{path}"));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap().error_for_status().unwrap();
}

fn session(name: &str, phone: &str, profile: &str, duration: u32) -> String {
    format!(
        "apiVersion: qod.dev/v1alpha1
kind: QodSession
metadata: {{name: {name}}}
spec:
  device: {{phoneNumber: \"{phone}\"}}
  applicationServer: {{ipv4Address: 198.51.100.7}}
  qosProfile: {profile}
  duration: {duration}
"
    )
}

/// The reasons of the Warning Events about `object`.
async fn warnings(world: &World, object: &str) -> Vec<String> {
    let out = world
        .kubectl(&[
            "get",
            "events.events.k8s.io",
            "--field-selector",
            &format!("regarding.name={object},type=Warning"),
            "-o",
            "jsonpath={range .items[*]}{.reason}{\"\\t\"}{.note}{\"\\n\"}{end}",
        ])
        .await;
    out.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn qos_profiles_follow_the_provider_within_one_refresh() {
    let world = World::start("profiles-listed").await;
    world.install_crd().await;
    let _operator = world.operator_with("op-profiles-listed", &["--profile-refresh", REFRESH]);

    // Everything the simulator offers, with its figures in units people read.
    wait_profile(&world, "QOS_E", "listed", |p| p.is_some()).await;
    let listed = qos_profiles(&world, "default").await;
    let offered: Vec<Value> = qod_test_support::http::client()
        .get(format!("{}/_sim/profiles", world.sim_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), offered.len(), "{listed:#?}");
    let qos_e = qos_profile(&world, "QOS_E").await.unwrap();
    assert_eq!(
        qos_e["metadata"]["name"],
        format!("qos-e.default.{}", world.namespace())
    );
    let spec = &qos_e["spec"];
    assert_eq!(spec["status"], "ACTIVE");
    assert_eq!(spec["maxDownstreamRate"], "10 Mbps");
    assert_eq!(spec["maxUpstreamRate"], "5 Mbps");
    assert_eq!(spec["packetDelayBudget"], "10ms");
    assert_eq!(spec["maxDurationSeconds"], 3600);
    assert_eq!(
        qos_profile(&world, "QOS_LEGACY").await.unwrap()["spec"]["status"],
        "DEPRECATED"
    );

    // The columns of `kubectl get qosprofiles`.
    let (table, header) = profile_table(&world, &[]).await;
    assert_eq!(
        header,
        [
            "NAME",
            "PROVIDER",
            "PROFILE",
            "STATUS",
            "MAX-DOWN",
            "MAX-UP",
            "LATENCY",
            "MIN-DURATION",
            "MAX-DURATION",
            "AGE"
        ]
    );
    let row = table
        .lines()
        .find(|line| line.contains(" QOS_E "))
        .unwrap_or_else(|| panic!("no QOS_E row:\n{table}"));
    assert!(row.contains("10 Mbps") && row.contains("3600"), "{row}");
    // `-o wide` adds jitter and priority after the latency.
    let (wide, header) = profile_table(&world, &["-o", "wide"]).await;
    assert_eq!(
        header,
        [
            "NAME",
            "PROVIDER",
            "PROFILE",
            "STATUS",
            "MAX-DOWN",
            "MAX-UP",
            "LATENCY",
            "JITTER",
            "PRIORITY",
            "MIN-DURATION",
            "MAX-DURATION",
            "AGE"
        ]
    );
    // kubectl aligns each cell under its column's name.
    let row = wide
        .lines()
        .find(|line| line.contains(" QOS_E "))
        .unwrap_or_else(|| panic!("no QOS_E row:\n{wide}"));
    let cell = |column: &str| {
        let start = wide.lines().next().unwrap().find(column).unwrap();
        row.get(start..)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default()
    };
    assert_eq!((cell("JITTER"), cell("PRIORITY")), ("5ms", "10"), "{wide}");

    // `kubectl explain` documents the fields.
    let explained = world
        .kubectl(&["explain", "qosprofile.spec.packetDelayBudget"])
        .await;
    assert!(explained.contains("latency"), "{explained}");

    // The provider adds one, deprecates one and removes one: each shows within a refresh.
    sim_profiles(
        world.sim_url(),
        reqwest::Method::PUT,
        "QOS_NEW",
        Some(
            json!({"status": "ACTIVE", "maxDownstreamRate": {"value": 2, "unit": "Gbps"},
                    "maxDuration": {"value": 2, "unit": "Hours"}}),
        ),
    )
    .await;
    sim_profiles(
        world.sim_url(),
        reqwest::Method::PUT,
        "QOS_M/status",
        Some(json!({"status": "DEPRECATED"})),
    )
    .await;
    sim_profiles(world.sim_url(), reqwest::Method::DELETE, "QOS_S", None).await;
    wait_profile(&world, "QOS_NEW", "added", |p| {
        p.is_some_and(|p| {
            p["spec"]["maxDownstreamRate"] == "2 Gbps" && p["spec"]["maxDurationSeconds"] == 7200
        })
    })
    .await;
    wait_profile(&world, "QOS_M", "deprecated", |p| {
        p.is_some_and(|p| p["spec"]["status"] == "DEPRECATED")
    })
    .await;
    wait_profile(&world, "QOS_S", "removed", |p| p.is_none()).await;

    // Listing every refresh writes nothing when nothing changed.
    let version =
        qos_profile(&world, "QOS_E").await.unwrap()["metadata"]["resourceVersion"].clone();
    let listings = provider_calls(&world.provider_stats().await, "retrieve_qos_profiles");
    eventually("two more listings", WAIT, || async {
        (provider_calls(&world.provider_stats().await, "retrieve_qos_profiles") >= listings + 2)
            .then_some(())
    })
    .await;
    assert_eq!(
        qos_profile(&world, "QOS_E").await.unwrap()["metadata"]["resourceVersion"],
        version
    );
    world.stop().await;
}

#[tokio::test]
async fn sessions_are_checked_against_their_providers_profiles_before_any_create() {
    let world = World::start("profiles-checked").await;
    world.install_crd().await;
    // Sessions shorter than two minutes are refused by this one.
    sim_profiles(
        world.sim_url(),
        reqwest::Method::PUT,
        "QOS_LONG",
        Some(json!({"status": "ACTIVE", "minDuration": {"value": 2, "unit": "Minutes"}})),
    )
    .await;
    let _operator = world.operator_with("op-profiles-checked", &["--profile-refresh", REFRESH]);
    wait_profile(&world, "QOS_LONG", "listed", |p| p.is_some()).await;

    apply(
        &world,
        "sessions",
        &[
            session("unknown", "+36721601250001", "QOS_FUTURE", 600),
            session("inactive", "+36721601250002", "QOS_MAINTENANCE", 600),
            session("deprecated", "+36721601250003", "QOS_LEGACY", 600),
            session("too-short", "+36721601250004", "QOS_LONG", 60),
            session("too-long", "+36721601250005", "QOS_E", 7200),
            session("running", "+36721601250006", "QOS_M", 600),
        ]
        .join("---\n"),
    )
    .await;
    for (name, reason) in [
        ("unknown", "ProfileNotAvailable"),
        ("inactive", "ProfileNotAvailable"),
        ("deprecated", "ProfileDeprecated"),
        ("too-short", "Rejected"),
    ] {
        wait_field(&world, &format!("qod/{name}"), READY_REASON, reason).await;
    }
    let too_short = field(&world, "qod/too-short", READY_MESSAGE).await;
    assert!(
        too_short.contains("60 s") && too_short.contains("120 s"),
        "names both numbers: {too_short}"
    );
    let inactive = field(&world, "qod/inactive", READY_MESSAGE).await;
    assert!(inactive.contains("INACTIVE"), "{inactive}");
    assert!(
        warnings(&world, "deprecated")
            .await
            .iter()
            .any(|w| w.starts_with("ProfileDeprecated")),
        "a Warning Event says so"
    );

    // Longer than QOS_E allows: created for its maximum, and status says why.
    for name in ["too-long", "running"] {
        wait_field(
            &world,
            &format!("qod/{name}"),
            ".status.qosStatus",
            "AVAILABLE",
        )
        .await;
    }
    let capped = held_for(&world, "too-long").await;
    assert_eq!(capped.len(), 1, "{capped:#?}");
    assert_eq!(capped[0]["duration"], 3600, "{capped:#?}");
    assert_eq!(
        field(&world, "qod/too-long", ".status.extensionCapped").await,
        "true"
    );
    let why = field(&world, "qod/too-long", ".status.extensionCappedReason").await;
    assert!(why.contains("7200 s") && why.contains("3600 s"), "{why}");
    assert_eq!(
        field(&world, "qod/too-long", ".status.profile.name").await,
        "QOS_E"
    );
    assert_eq!(
        field(&world, "qod/too-long", ".status.profile.maxDownstreamRate").await,
        "10 Mbps"
    );

    // Only the two usable sessions reached the provider.
    assert_eq!(creates_at_world(&world).await, 2);
    for name in ["unknown", "inactive", "deprecated", "too-short"] {
        assert!(held_for(&world, name).await.is_empty(), "{name}");
    }

    // The provider deprecates the running session's profile: it keeps running, and hears so.
    sim_profiles(
        world.sim_url(),
        reqwest::Method::PUT,
        "QOS_M/status",
        Some(json!({"status": "DEPRECATED"})),
    )
    .await;
    eventually(
        "a ProfileDeprecated Warning on the running session",
        WAIT,
        || async {
            warnings(&world, "running")
                .await
                .iter()
                .any(|w| w.starts_with("ProfileDeprecated"))
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        field(&world, "qod/running", ".status.qosStatus").await,
        "AVAILABLE"
    );
    assert_eq!(held_for(&world, "running").await.len(), 1);

    // The unknown profile appears at the provider: the waiting session is created.
    sim_profiles(
        world.sim_url(),
        reqwest::Method::PUT,
        "QOS_FUTURE",
        Some(json!({"status": "ACTIVE"})),
    )
    .await;
    wait_field(&world, "qod/unknown", ".status.qosStatus", "AVAILABLE").await;
    assert_eq!(creates_at_world(&world).await, 3);
    world.stop().await;
}

async fn creates_at_world(world: &World) -> u64 {
    provider_calls(&world.provider_stats().await, "create")
}

#[tokio::test]
async fn each_provider_checks_its_own_profiles_and_one_without_the_api_is_untouched() {
    let world = World::start("profiles-per-provider").await;
    world.install_crd().await;
    // CAMARA QoD v0.11 predates the QoS Profiles API; the v1 provider offers a profile of its
    // own, which the default provider does not.
    let old = telco(simulator::SimulatorConfig::default()).await;
    let own = telco(simulator::SimulatorConfig::default()).await;
    sim_profiles(
        own.base_url(),
        reqwest::Method::PUT,
        "QOS_OWN",
        Some(json!({"status": "ACTIVE"})),
    )
    .await;
    apply(
        &world,
        "providers",
        &format!(
            "apiVersion: qod.dev/v1alpha1
kind: QodProvider
metadata: {{name: old}}
spec:
  camara: {{url: {old}/quality-on-demand/v0.11, version: v0.11}}
---
apiVersion: qod.dev/v1alpha1
kind: QodProvider
metadata: {{name: own}}
spec:
  camara: {{url: {own}/quality-on-demand/v1}}
---
{at_old}  providerRef: {{kind: QodProvider, name: old}}
---
{at_own}  providerRef: {{kind: QodProvider, name: own}}
---
{own_at_default}",
            old = old.base_url(),
            own = own.base_url(),
            at_old = session("at-old", "+36721601250101", "QOS_M", 600),
            at_own = session("at-own", "+36721601250102", "QOS_OWN", 600),
            own_at_default = session("own-at-default", "+36721601250103", "QOS_OWN", 600),
        ),
    )
    .await;
    let _operator =
        world.operator_with("op-profiles-per-provider", &["--profile-refresh", REFRESH]);
    for name in ["at-old", "at-own"] {
        wait_field(
            &world,
            &format!("qod/{name}"),
            ".status.qosStatus",
            "AVAILABLE",
        )
        .await;
    }
    wait_field(
        &world,
        "qod/own-at-default",
        READY_REASON,
        "ProfileNotAvailable",
    )
    .await;
    assert_eq!(
        creates_at_world(&world).await,
        0,
        "nothing made at the default provider"
    );
    assert_eq!(creates_at(&own).await, 1);
    assert_eq!(
        field(&world, "qod/at-own", ".status.profile.name").await,
        "QOS_OWN"
    );
    let own_provider = format!("QodProvider/{}/own", world.namespace());
    eventually("the own provider's QosProfiles", WAIT, || async {
        qos_profiles(&world, &own_provider)
            .await
            .iter()
            .any(|p| p["spec"]["profile"] == "QOS_OWN")
            .then_some(())
    })
    .await;
    assert!(
        qos_profiles(&world, "default")
            .await
            .iter()
            .all(|p| p["spec"]["profile"] != "QOS_OWN")
    );

    // The provider without the API: no QosProfile, never asked, its session as before.
    let old_provider = format!("QodProvider/{}/old", world.namespace());
    assert!(qos_profiles(&world, &old_provider).await.is_empty());
    let stats = Sim::of(&old).stats().await;
    assert_eq!(provider_calls(&stats, "retrieve_qos_profiles"), 0);
    assert_eq!(creates_at(&old).await, 1);
    assert_eq!(sessions_at(&old).await.len(), 1);
    assert_eq!(field(&world, "qod/at-old", ".status.profile").await, "");
    old.shutdown().await;
    own.shutdown().await;
    world.stop().await;
}
