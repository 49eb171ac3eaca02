//! The README's path: apply the CRD and the examples with kubectl, run the operator, wait for
//! AVAILABLE, read `kubectl get qod`, delete, and find nothing left at the provider or in the API.

use std::collections::BTreeMap;

use crate::{
    support::eventually,
    world::{WAIT, World, assert_one_session_each, sink_uid, text},
};

/// The examples in deploy/examples/: name → spec.qosProfile.
const EXAMPLES: &[(&str, &str)] = &[
    ("broadcast-van", "QOS_M"),
    ("camera-uplink", "QOS_L"),
    ("phone-low-latency", "QOS_E"),
];

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
    for (name, profile) in EXAMPLES {
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
