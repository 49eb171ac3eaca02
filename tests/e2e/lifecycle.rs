//! The README's path: apply the CRD and the examples with kubectl, run the operator, wait for
//! AVAILABLE, read `kubectl get qod` (and `-o wide`, and `kubectl explain`), delete, and find
//! nothing left at the provider or in the API.

use qod_test_support::{command::text, eventually};
use std::collections::BTreeMap;

use crate::world::{WAIT, World, assert_one_session_each, sink_uid};

/// The examples in deploy/examples/: name → spec.qosProfile, spec.duration.
const EXAMPLES: &[(&str, &str, u32)] = &[
    ("broadcast-van", "QOS_M", 3600),
    ("camera-uplink", "QOS_L", 600),
    ("phone-low-latency", "QOS_E", 3600),
];

/// The columns of `kubectl get qod`.
const COLUMNS: &[&str] = &["NAME", "PROFILE", "DEVICE", "QOS", "INFO", "EXPIRES", "AGE"];

/// The columns of `kubectl get qod -o wide`: the Ready condition, the requested duration, the
/// provider and the session id besides.
const WIDE_COLUMNS: &[&str] = &[
    "NAME", "PROFILE", "DEVICE", "QOS", "INFO", "READY", "REASON", "EXPIRES", "DURATION",
    "PROVIDER", "SESSION", "AGE",
];

/// The width `kubectl explain` wraps a DESCRIPTION to (`wrap 76` in kubectl's plaintext
/// template).
const EXPLAIN_WIDTH: usize = 76;

#[tokio::test]
async fn apply_wait_get_delete_with_kubectl() {
    // A fresh cluster of its own: the user's first command meets no CRD yet.
    let world = World::start_own("lifecycle").await;

    // One command, as a user types it. On a fresh cluster kubectl maps every object before it
    // creates the CRD in the same run, so the examples fail the first time ("ensure CRDs are
    // installed first"); the second run, once the CRD is served, applies them.
    let apply = ["apply", "-f", "deploy/crds/", "-f", "deploy/examples/"];
    let first = world.kubectl_output(&apply).await;
    assert!(!first.status.success(), "no QodSession type before the CRD");
    let stderr = text(&first.stderr);
    assert!(
        stderr.lines().all(
            |l| l.contains("deploy/examples/") || l.trim() == "ensure CRDs are installed first"
        ),
        "kubectl apply failed for something else than the examples:\n{stderr}"
    );
    assert!(
        text(&first.stdout).contains("qodsessions.qod.dev created"),
        "the CRD was applied: {}",
        text(&first.stdout)
    );
    world.wait_crd_established().await;
    world.kubectl(&apply).await;

    // `kubectl explain` prints each description as a paragraph kubectl wrapped itself.
    for field in [
        "qodsession.spec.duration",
        "qodsession.status.sessionFingerprint",
        "clusterqodprovider.spec.camara.qosProfilesUrl",
    ] {
        assert_explained_as_one_paragraph(&world, field).await;
    }

    // The operator is ready once it has listed QodSessions, so it starts after the CRD.
    let mut operator = world.leading_operator("op-lifecycle").await;

    world
        .kubectl(&[
            "wait",
            "qod",
            "--all",
            "--for=jsonpath={.status.qosStatus}=AVAILABLE",
            "--timeout=60s",
        ])
        .await;
    // The README's other form: the Ready condition, True while the network provides the QoS.
    world
        .kubectl(&[
            "wait",
            "qod",
            "--all",
            "--for=condition=Ready",
            "--timeout=60s",
        ])
        .await;

    // The printer columns, with the values the provider and the operator wrote.
    // expiresAt comes from the provider's answer to the read the operator makes once the
    // notification has said AVAILABLE, so it may trail AVAILABLE by a moment.
    let (table, rows) = eventually("every EXPIRES column filled", WAIT, || async {
        let table = world.kubectl(&["get", "qod"]).await;
        let rows = parse_table(&table);
        let filled = rows
            .values()
            .all(|r| !r["EXPIRES"].is_empty() && r["EXPIRES"] != "<none>");
        filled.then_some((table, rows))
    })
    .await;
    assert_eq!(rows.len(), EXAMPLES.len(), "{table}");
    assert_eq!(header(&table), COLUMNS, "{table}");
    for (name, profile, _) in EXAMPLES {
        let row = rows
            .get(*name)
            .unwrap_or_else(|| panic!("no row {name} in\n{table}"));
        assert_eq!(row["PROFILE"], *profile, "{table}");
        assert_eq!(row["QOS"], "AVAILABLE", "{table}");
        assert!(
            row["DEVICE"] != "<none>" && !row["DEVICE"].is_empty(),
            "the device column is filled:\n{table}"
        );
        assert!(
            row["INFO"].is_empty(),
            "no statusInfo while AVAILABLE:\n{table}"
        );
        let expires: jiff::Timestamp = row["EXPIRES"]
            .parse()
            .unwrap_or_else(|e| panic!("EXPIRES is not a timestamp ({e}):\n{table}"));
        assert!(
            expires > jiff::Timestamp::now(),
            "the session expires in the future:\n{table}"
        );
    }
    assert!(rows.values().all(|r| r.contains_key("AGE")), "{table}");

    // One session per resource at the provider, each the one its status names.
    let resources = world.resources().await;
    let at_provider = world.provider_sessions().await;
    assert_one_session_each(&resources, &at_provider);
    for session in &at_provider {
        assert!(resources.iter().any(|r| r.uid == sink_uid(session)));
    }

    // `-o wide` adds the second-rank columns. Ready follows AVAILABLE in the same status
    // write, but the operator's own read may land between them.
    let (wide, rows) = eventually("READY True in every -o wide row", WAIT, || async {
        let table = world.kubectl(&["get", "qod", "-o", "wide"]).await;
        let rows = parse_table(&table);
        rows.values()
            .all(|r| r["READY"] == "True")
            .then_some((table, rows))
    })
    .await;
    assert_eq!(header(&wide), WIDE_COLUMNS, "{wide}");
    for (name, profile, duration) in EXAMPLES {
        let row = rows
            .get(*name)
            .unwrap_or_else(|| panic!("no row {name} in\n{wide}"));
        let resource = resources.iter().find(|r| r.name == *name).unwrap();
        assert_eq!(row["PROFILE"], *profile, "{wide}");
        assert_eq!(row["REASON"], "SessionAvailable", "{wide}");
        assert_eq!(row["DURATION"], duration.to_string(), "{wide}");
        assert!(
            row["PROVIDER"].is_empty(),
            "the examples use the default provider:\n{wide}"
        );
        assert!(!resource.session_id.is_empty(), "{resource:?}");
        assert_eq!(row["SESSION"], resource.session_id, "{wide}");
    }

    // `kubectl describe` reads Events through core/v1; the operator writes events.k8s.io/v1
    // ones, which a real API server serves through both.
    for resource in &resources {
        let session_id = resource.session_id.as_str();
        let (description, events) = eventually(
            &format!(
                "the Created event in kubectl describe qod {}",
                resource.name
            ),
            WAIT,
            || async {
                let description = world.kubectl(&["describe", "qod", &resource.name]).await;
                let events = events_section(&description)?;
                events
                    .contains(&format!("created session {session_id}"))
                    .then(|| (description.clone(), events))
            },
        )
        .await;
        let created = events
            .lines()
            .find(|l| l.contains("Created"))
            .unwrap_or_else(|| panic!("no Created row in\n{description}"));
        let cells: Vec<&str> = created.split_whitespace().collect();
        assert_eq!(cells.first(), Some(&"Normal"), "{created}");
        assert!(
            created.contains("qod-operator"),
            "From names the operator: {created}"
        );
        assert!(
            !events.contains("Warning"),
            "no warning in a clean lifecycle:\n{description}"
        );
    }

    // kubectl delete waits for the finalizer: when it returns, the sessions have ended.
    world.kubectl(&["delete", "-f", "deploy/examples/"]).await;
    let left = world.provider_sessions().await;
    assert!(left.is_empty(), "sessions left at the provider: {left:#?}");
    let listed = world.kubectl_output(&["get", "qod"]).await;
    assert!(
        text(&listed.stdout).trim().is_empty()
            && text(&listed.stderr).contains("No resources found"),
        "resources left behind:\n{}",
        text(&listed.stdout)
    );

    assert!(operator.terminate().await, "a clean exit on SIGTERM");
    world.stop().await;
}

/// The header of a `kubectl get` table, column by column.
fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

/// `kubectl explain <kind>.<path>` shows the field's description (as the CRDs the operator
/// generates carry it) as one paragraph: the same words, and every line break one of kubectl's
/// own, where the next word would not have fit. A break inside a sentence that came from a
/// wrapped doc comment ends a line early.
async fn assert_explained_as_one_paragraph(world: &World, field: &str) {
    let (kind, path) = field.split_once('.').unwrap();
    let crd = qod_operator::api::crds()
        .into_iter()
        .find(|crd| crd.spec.names.singular.as_deref() == Some(kind))
        .unwrap_or_else(|| panic!("no CRD of {kind}"));
    let mut schema =
        &serde_json::to_value(&crd).unwrap()["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for name in path.split('.') {
        schema = &schema["properties"][name];
    }
    let description = schema["description"]
        .as_str()
        .unwrap_or_else(|| panic!("{field} has a description"))
        .to_owned();

    // The API server publishes a new CRD's OpenAPI a moment after it is established.
    let explained = eventually(&format!("kubectl explain {field}"), WAIT, || async {
        let out = world.kubectl_output(&["explain", field]).await;
        out.status.success().then(|| text(&out.stdout))
    })
    .await;
    let lines: Vec<&str> = explained
        .lines()
        .skip_while(|l| l.trim() != "DESCRIPTION:")
        .skip(1)
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        lines.len() > 1,
        "{field}: a description long enough to wrap:\n{explained}"
    );
    assert_eq!(
        lines.join(" ").split_whitespace().collect::<Vec<_>>(),
        description.split_whitespace().collect::<Vec<_>>(),
        "{field}: kubectl explain shows the description:\n{explained}"
    );
    for pair in lines.windows(2) {
        let next_word = pair[1].split_whitespace().next().unwrap_or_default();
        assert!(
            pair[0].chars().count() + 1 + next_word.chars().count() > EXPLAIN_WIDTH,
            "{field}: a line break inside a sentence, after {:?}:\n{explained}",
            pair[0]
        );
    }
}

/// The `Events:` section of `kubectl describe` (its table, header included); `None` while it
/// says `<none>`.
fn events_section(description: &str) -> Option<String> {
    let (_, rest) = description.split_once("\nEvents:")?;
    (!rest.trim_start().starts_with("<none>")).then(|| rest.to_owned())
}

/// `kubectl get` output as name → column → cell (columns split on runs of two spaces or more,
/// by the header's offsets, so empty-looking cells are still found).
fn parse_table(table: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut lines = table.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no header in {table:?}"));
    let mut starts = Vec::new();
    let mut previous = ' ';
    for (i, c) in header.char_indices() {
        if c != ' ' && previous == ' ' {
            starts.push(i);
        }
        previous = c;
    }
    let names: Vec<String> = starts
        .iter()
        .map(|&s| header[s..].split_whitespace().next().unwrap().to_owned())
        .collect();
    lines
        .map(|line| {
            let cells: BTreeMap<String, String> = starts
                .iter()
                .enumerate()
                .map(|(i, &start)| {
                    let end = starts
                        .get(i + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    let cell = line.get(start.min(line.len())..end).unwrap_or_default();
                    (names[i].clone(), cell.trim().to_owned())
                })
                .collect();
            (cells["NAME"].clone(), cells)
        })
        .collect()
}
