//! The chart, the plain manifests and the examples against the in-memory Kubernetes API
//! (tests/kube-emulator), with helm 4 and kubectl 1.35.

use std::path::PathBuf;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        coordination::v1::Lease,
        core::v1::{Secret, Service},
        events::v1::Event,
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Client,
    api::{
        Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
        PatchParams, PostParams, WatchEvent, WatchParams,
    },
};
use kube_emulator::{Authorization, Emulator, Options, RunningEmulator};
use serde_json::json;

use crate::harness::*;

pub struct Cluster {
    pub emu: RunningEmulator,
    pub dir: PathBuf,
}

impl Cluster {
    pub async fn start(authorization: Authorization) -> Self {
        let emu = Emulator::start(Options {
            authorization,
            ..Options::default()
        })
        .await
        .unwrap();
        let dir = scratch("cluster");
        emu.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
        if authorization == Authorization::Rbac {
            // kubectl and helm reach the emulator's plain-HTTP port without their bearer token
            // (they arrive as system:anonymous), so anonymous gets admin rights here. The
            // operator's ServiceAccount token is sent by a kube client and held to RBAC.
            let admin = emu.client().await.unwrap();
            let role: ClusterRole = serde_json::from_value(json!({
                "metadata": {"name": "test-anonymous-admin"},
                "rules": [
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]}
                ]
            }))
            .unwrap();
            let binding: ClusterRoleBinding = serde_json::from_value(json!({
                "metadata": {"name": "test-anonymous-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "test-anonymous-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]
            }))
            .unwrap();
            let pp = PostParams::default();
            Api::<ClusterRole>::all(admin.clone())
                .create(&pp, &role)
                .await
                .unwrap();
            Api::<ClusterRoleBinding>::all(admin)
                .create(&pp, &binding)
                .await
                .unwrap();
        }
        Self { emu, dir }
    }

    pub async fn admin(&self) -> Client {
        self.emu.client().await.unwrap()
    }

    /// Runs a command off the runtime's thread, so the emulator keeps serving it.
    async fn output(&self, mut cmd: std::process::Command, what: &str) -> std::process::Output {
        cmd.env("KUBECONFIG", self.dir.join("kubeconfig"));
        let what = what.to_string();
        tokio::task::spawn_blocking(move || {
            cmd.output()
                .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
        })
        .await
        .unwrap()
    }

    async fn run(&self, cmd: std::process::Command, what: &str) -> String {
        let out = self.output(cmd, what).await;
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs helm as the cluster admin; fails the test on a non-zero exit.
    pub async fn helm(&self, args: &[&str]) -> String {
        let mut cmd = helm_command(&self.dir);
        cmd.args(args);
        self.run(cmd, &format!("helm {args:?}")).await
    }

    /// Runs kubectl as the cluster admin; fails the test on a non-zero exit.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let mut cmd = std::process::Command::new(kubectl());
        cmd.args(args);
        self.run(cmd, &format!("kubectl {args:?}")).await
    }

    /// kubectl's exit status and stderr, for commands that must fail.
    async fn kubectl_fails(&self, args: &[&str]) -> String {
        let mut cmd = std::process::Command::new(kubectl());
        cmd.args(args);
        let out = self.output(cmd, &format!("kubectl {args:?}")).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded:\n{}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// A client holding a token issued for the chart's ServiceAccount (TokenRequest).
    async fn operator_client(&self) -> Client {
        let token = self
            .kubectl(&["create", "token", FULLNAME, "-n", NAMESPACE])
            .await;
        self.emu.client_with_token(token.trim()).await.unwrap()
    }
}

pub fn chart_arg() -> String {
    chart().display().to_string()
}

pub fn qodsessions(client: Client, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("qod.dev", "v1alpha1", "QodSession"),
        "qodsessions",
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    }
}

async fn create_session(client: Client, namespace: &str, name: &str) {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "qod.dev/v1alpha1",
        "kind": "QodSession",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "device": {"phoneNumber": "+36721601234567"},
            "applicationServer": {"ipv4Address": "198.51.100.7"},
            "qosProfile": "QOS_L",
            "duration": 600
        }
    }))
    .unwrap();
    qodsessions(client, Some(namespace))
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

/// The HTTP status of a call: 200 for success, the Status code for an API error.
fn code<T>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("expected an API answer, got {other}"),
    }
}

fn event(namespace: &str, name: &str) -> Event {
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "qod.dev/qod-operator",
        "reportingInstance": "qod-operator-0",
        "action": "Create",
        "reason": "SessionCreated",
        "type": "Normal",
        "regarding": {"apiVersion": "qod.dev/v1alpha1", "kind": "QodSession", "namespace": namespace, "name": "s1"}
    }))
    .unwrap()
}

#[tokio::test]
async fn helm_install_with_the_simulator_creates_the_promised_objects_and_keeps_the_hmac_key() {
    let cluster = Cluster::start(Authorization::AlwaysAllow).await;
    let chart = chart_arg();
    let notes = cluster
        .helm(&[
            "install",
            RELEASE,
            &chart,
            "-n",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "simulator.enabled=true",
        ])
        .await;
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(
        notes.contains("kubectl get qod"),
        "NOTES tell what to do next:\n{notes}"
    );
    assert!(notes.contains("built-in QoD simulator"), "{notes}");

    let admin = cluster.admin().await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    crds.get("qodsessions.qod.dev").await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    for name in [FULLNAME, "qod-qod-operator-simulator"] {
        deployments.get(name).await.unwrap();
    }
    let services: Api<Service> = Api::namespaced(admin.clone(), NAMESPACE);
    for name in [
        "qod-qod-operator-webhook",
        "qod-qod-operator-metrics",
        "qod-qod-operator-simulator",
    ] {
        services.get(name).await.unwrap();
    }
    let listed = cluster
        .kubectl(&[
            "get",
            "serviceaccount,role,rolebinding,poddisruptionbudget,secret",
            "-n",
            NAMESPACE,
            "-o",
            "name",
        ])
        .await;
    for object in [
        "serviceaccount/qod-qod-operator",
        "role.rbac.authorization.k8s.io/qod-qod-operator-leader-election",
        "rolebinding.rbac.authorization.k8s.io/qod-qod-operator-leader-election",
        "poddisruptionbudget.policy/qod-qod-operator",
        "secret/qod-qod-operator-hmac",
    ] {
        assert!(
            listed.lines().any(|l| l == object),
            "{object} missing:\n{listed}"
        );
    }
    let cluster_scoped = cluster
        .kubectl(&["get", "clusterrole,clusterrolebinding", "-o", "name"])
        .await;
    assert!(
        cluster_scoped.contains("clusterrole.rbac.authorization.k8s.io/qod-qod-operator\n"),
        "{cluster_scoped}"
    );
    assert!(
        cluster_scoped.contains("clusterrolebinding.rbac.authorization.k8s.io/qod-qod-operator\n"),
        "{cluster_scoped}"
    );

    // The HMAC key survives upgrades (helm lookup), so tokens already given out stay valid.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);
    let key = |s: Secret| s.data.unwrap()["key"].0.clone();
    let before = key(secrets.get("qod-qod-operator-hmac").await.unwrap());
    assert_eq!(before.len(), 64);
    cluster
        .helm(&[
            "upgrade",
            RELEASE,
            &chart,
            "-n",
            NAMESPACE,
            "--set",
            "simulator.enabled=true",
            "--set",
            "replicas=3",
        ])
        .await;
    assert_eq!(
        deployments
            .get(FULLNAME)
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(3)
    );
    assert_eq!(
        key(secrets.get("qod-qod-operator-hmac").await.unwrap()),
        before,
        "upgrade changed the HMAC key"
    );

    // The documented CRD upgrade step is accepted on top of what helm installed.
    let crd_dir = crate::harness::chart().join("crds").display().to_string();
    let applied = cluster
        .kubectl(&["apply", "--server-side", "-f", &crd_dir])
        .await;
    assert!(applied.contains("serverside-applied"), "{applied}");

    cluster.helm(&["uninstall", RELEASE, "-n", NAMESPACE]).await;
    assert_eq!(code(deployments.get(FULLNAME).await), 404);
}

#[tokio::test]
async fn the_service_account_may_do_what_the_operator_does_and_nothing_more() {
    let cluster = Cluster::start(Authorization::Rbac).await;
    let chart = chart_arg();
    cluster
        .helm(&[
            "install",
            RELEASE,
            &chart,
            "-n",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "simulator.enabled=true",
        ])
        .await;
    let admin = cluster.admin().await;
    create_session(admin.clone(), "default", "s1").await;
    let sa = cluster.operator_client().await;

    // Controller: list and watch every namespace, add and remove its finalizer.
    let all = qodsessions(sa.clone(), None);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let mut watch = Box::pin(
        all.watch(&WatchParams::default().timeout(5), "0")
            .await
            .unwrap(),
    );
    match futures::StreamExt::next(&mut watch).await {
        Some(Ok(WatchEvent::Added(o))) => assert_eq!(o.metadata.name.as_deref(), Some("s1")),
        other => panic!("expected the session from the watch, got {other:?}"),
    }
    let sessions = qodsessions(sa.clone(), Some("default"));
    sessions.get("s1").await.unwrap();
    let finalizer = Patch::Merge(json!({"metadata": {"finalizers": ["qod.dev/session"]}}));
    sessions
        .patch("s1", &PatchParams::default(), &finalizer)
        .await
        .unwrap();
    // Controller and webhook: status by merge patch and by server-side apply.
    let status = Patch::Merge(json!({"status": {"qosStatus": "REQUESTED"}}));
    sessions
        .patch_status("s1", &PatchParams::default(), &status)
        .await
        .unwrap();
    let apply = Patch::Apply(
        json!({"apiVersion": "qod.dev/v1alpha1", "kind": "QodSession", "status": {"qosStatus": "AVAILABLE"}}),
    );
    sessions
        .patch_status(
            "s1",
            &PatchParams::apply("qod-operator-webhook").force(),
            &apply,
        )
        .await
        .unwrap();
    // Event recorder: create, then patch into a series.
    let events: Api<Event> = Api::namespaced(sa.clone(), "default");
    events
        .create(&PostParams::default(), &event("default", "s1.1"))
        .await
        .unwrap();
    let series = Patch::Merge(
        json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}}),
    );
    events
        .patch("s1.1", &PatchParams::default(), &series)
        .await
        .unwrap();
    // Leader election (kube-lease-manager): get, create, patch its Lease in the release namespace.
    let leases: Api<Lease> = Api::namespaced(sa.clone(), NAMESPACE);
    assert_eq!(
        code(leases.get(FULLNAME).await),
        404,
        "may look, finds none yet"
    );
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": FULLNAME}, "spec": {}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let hold =
        Patch::Strategic(json!({"spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}}));
    leases
        .patch(FULLNAME, &PatchParams::default(), &hold)
        .await
        .unwrap();
    let apply = Patch::Apply(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "pod-a"}}),
    );
    leases
        .patch(FULLNAME, &PatchParams::apply("pod-a"), &apply)
        .await
        .unwrap();

    // Nothing more: no update, create or delete of sessions, no Secrets, no other Leases or
    // namespaces for Leases, no CRDs, no core Events.
    let mut object = sessions.get("s1").await.unwrap();
    object.metadata.managed_fields = None;
    assert_eq!(
        code(
            sessions
                .replace("s1", &PostParams::default(), &object)
                .await
        ),
        403,
        "update"
    );
    assert_eq!(
        code(
            sessions
                .replace_status("s1", &PostParams::default(), &object)
                .await
        ),
        403,
        "update status"
    );
    assert_eq!(
        code(sessions.delete("s1", &DeleteParams::default()).await),
        403,
        "delete"
    );
    let mut other = object.clone();
    other.metadata = kube::api::ObjectMeta {
        name: Some("s2".into()),
        ..Default::default()
    };
    assert_eq!(
        code(sessions.create(&PostParams::default(), &other).await),
        403,
        "create"
    );
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), NAMESPACE);
    assert_eq!(
        code(secrets.get("qod-qod-operator-hmac").await),
        403,
        "secret get"
    );
    assert_eq!(
        code(secrets.list(&ListParams::default()).await),
        403,
        "secret list"
    );
    assert_eq!(code(leases.get("someone-else").await), 403, "other lease");
    assert_eq!(
        code(leases.list(&ListParams::default()).await),
        403,
        "lease list"
    );
    assert_eq!(
        code(leases.delete(FULLNAME, &DeleteParams::default()).await),
        403,
        "lease delete"
    );
    let lease_elsewhere: Api<Lease> = Api::namespaced(sa.clone(), "default");
    assert_eq!(
        code(lease_elsewhere.create(&PostParams::default(), &lease).await),
        403,
        "lease elsewhere"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(sa.clone());
    assert_eq!(
        code(crds.get("qodsessions.qod.dev").await),
        403,
        "crd without installCRD"
    );
    let core_events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(sa.clone(), "default");
    assert_eq!(
        code(core_events.list(&ListParams::default()).await),
        403,
        "core events"
    );
    assert_eq!(
        code(events.list(&ListParams::default()).await),
        403,
        "events.k8s.io list"
    );
}

#[tokio::test]
async fn watch_namespace_confines_the_service_account_and_install_crd_adds_only_its_crd() {
    let cluster = Cluster::start(Authorization::Rbac).await;
    cluster.kubectl(&["create", "namespace", "apps"]).await;
    let mut args = vec!["install", RELEASE];
    let chart = chart_arg();
    args.push(&chart);
    args.extend([
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--set",
        "watchNamespace=apps",
        "--set",
        "installCRD=true",
    ]);
    args.extend_from_slice(MINIMAL);
    cluster.helm(&args).await;
    let admin = cluster.admin().await;
    create_session(admin.clone(), "apps", "mine").await;
    create_session(admin.clone(), "default", "theirs").await;
    let sa = cluster.operator_client().await;

    let apps = qodsessions(sa.clone(), Some("apps"));
    assert_eq!(
        apps.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let finalizer = Patch::Merge(json!({"metadata": {"finalizers": ["qod.dev/session"]}}));
    apps.patch("mine", &PatchParams::default(), &finalizer)
        .await
        .unwrap();
    let events: Api<Event> = Api::namespaced(sa.clone(), "apps");
    events
        .create(&PostParams::default(), &event("apps", "mine.1"))
        .await
        .unwrap();

    assert_eq!(
        code(
            qodsessions(sa.clone(), None)
                .list(&ListParams::default())
                .await
        ),
        403,
        "all namespaces"
    );
    let default = qodsessions(sa.clone(), Some("default"));
    assert_eq!(code(default.get("theirs").await), 403, "another namespace");
    let other_events: Api<Event> = Api::namespaced(sa.clone(), "default");
    assert_eq!(
        code(
            other_events
                .create(&PostParams::default(), &event("default", "x.1"))
                .await
        ),
        403
    );

    // installCRD: server-side apply of its own CRD (what --install-crd sends), nothing else.
    // (Its watch until Established is a list/watch with a metadata.name field selector, which
    // a real API server matches against resourceNames; the emulator does not, so it is not
    // exercised here.)
    let crds: Api<CustomResourceDefinition> = Api::all(sa.clone());
    let crd: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("deploy/crds/qodsessions.qod.dev.yaml")).unwrap(),
    )
    .unwrap();
    crds.patch(
        "qodsessions.qod.dev",
        &PatchParams::apply("qod-operator").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    assert_eq!(
        code(crds.get("qodsessions.qod.dev").await),
        403,
        "get is not used"
    );
    assert_eq!(
        code(
            crds.patch(
                "widgets.example.dev",
                &PatchParams::apply("qod-operator"),
                &Patch::Apply(&crd)
            )
            .await
        ),
        403,
        "another CRD"
    );
    assert_eq!(
        code(crds.list(&ListParams::default()).await),
        403,
        "list CRDs"
    );
    assert_eq!(
        code(
            crds.delete("qodsessions.qod.dev", &DeleteParams::default())
                .await
        ),
        403,
        "delete CRD"
    );
}

#[tokio::test]
async fn plain_manifests_and_examples_are_accepted_by_kubectl() {
    let cluster = Cluster::start(Authorization::AlwaysAllow).await;
    let deploy = |path: &str| repo().join("deploy").join(path).display().to_string();
    let crd = cluster
        .kubectl(&["apply", "--server-side", "-f", &deploy("crds")])
        .await;
    assert!(crd.contains("serverside-applied"), "{crd}");
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=established",
            "--timeout=10s",
            "crd/qodsessions.qod.dev",
        ])
        .await;

    let applied = cluster
        .kubectl(&[
            "apply",
            "-f",
            &deploy("namespace.yaml"),
            "-f",
            &deploy("qod-operator.yaml"),
        ])
        .await;
    for object in [
        "namespace/qod-system created",
        "deployment.apps/qod-operator created",
        "service/qod-operator-webhook created",
    ] {
        assert!(applied.contains(object), "{object} missing:\n{applied}");
    }

    let examples = cluster
        .kubectl(&["apply", "-n", "default", "-f", &deploy("examples")])
        .await;
    let mut created: Vec<&str> = examples.lines().collect();
    created.sort_unstable();
    assert_eq!(
        created,
        [
            "qodsession.qod.dev/broadcast-van created",
            "qodsession.qod.dev/camera-uplink created",
            "qodsession.qod.dev/phone-low-latency created",
        ]
    );
    let names = cluster
        .kubectl(&["get", "qod", "-n", "default", "-o", "name"])
        .await;
    assert_eq!(names.lines().count(), 3, "{names}");

    // Acceptance means something: the same CRD refuses a broken session, naming the field.
    let bad = cluster.dir.join("bad.yaml");
    let example = std::fs::read_to_string(deploy("examples/phone-number.yaml")).unwrap();
    std::fs::write(&bad, example.replace("+36721601234567", "36721601234567")).unwrap();
    let error = cluster
        .kubectl_fails(&["apply", "-n", "default", "-f", &bad.display().to_string()])
        .await;
    assert!(error.contains("spec.device.phoneNumber"), "{error}");
}
