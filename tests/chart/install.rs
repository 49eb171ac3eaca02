//! The chart, the plain manifests and the examples against a real API server
//! (tests/control-plane), with helm 4 and kubectl 1.35 as its admin and the chart's
//! ServiceAccount held to the chart's RBAC.

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        coordination::v1::Lease,
        core::v1::{Namespace, Secret, Service},
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
    runtime::wait::{await_condition, conditions},
};
use qod_operator::api::{ClusterQodProvider, QodProvider};
use qod_test_support::session::{manifest, valid_spec};
use serde_json::{Value, json};

use crate::{cluster::Cluster, harness::*};

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

pub async fn create_session(client: Client, namespace: &str, name: &str) {
    create_session_at(client, namespace, name, None).await;
}

/// A session that names a provider resource (`providerRef`), or the default one.
pub async fn create_session_at(
    client: Client,
    namespace: &str,
    name: &str,
    provider_ref: Option<Value>,
) {
    let mut object = manifest(name, valid_spec());
    object["metadata"]["namespace"] = json!(namespace);
    if let Some(provider_ref) = provider_ref {
        object["spec"]["providerRef"] = provider_ref;
    }
    let object: DynamicObject = serde_json::from_value(object).unwrap();
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

const CRD: &str = "qodsessions.qod.dev";

#[tokio::test]
async fn helm_install_with_the_simulator_creates_the_promised_objects_and_keeps_the_hmac_key() {
    // A control plane of its own: a fresh cluster, so the CRD found after the install is the
    // one helm took from crds/, and no other test's CRD applies race the upgrade step below.
    let cluster = Cluster::own("chart-install", &[]);
    let admin = cluster.admin().await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    assert!(
        crds.get_opt(CRD).await.unwrap().is_none(),
        "a fresh cluster"
    );
    let notes = cluster
        .helm_release("install", &["--set", "simulator.enabled=true"])
        .await;
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(
        notes.contains("kubectl get qod"),
        "NOTES tell what to do next:\n{notes}"
    );
    assert!(notes.contains("built-in QoD simulator"), "{notes}");

    let fullname = &cluster.fullname;
    let named = |suffix: &str| format!("{fullname}{suffix}");
    let namespace = &cluster.namespace;
    await_established(crds.clone()).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), namespace);
    for name in [named(""), named("-simulator")] {
        deployments.get(&name).await.unwrap();
    }
    let services: Api<Service> = Api::namespaced(admin.clone(), namespace);
    for name in [named("-webhook"), named("-metrics"), named("-simulator")] {
        services.get(&name).await.unwrap();
    }
    let listed = cluster
        .kubectl(&[
            "get",
            "serviceaccount,role,rolebinding,poddisruptionbudget,secret",
            "-n",
            namespace,
            "-o",
            "name",
        ])
        .await;
    for object in [
        format!("serviceaccount/{fullname}"),
        format!("role.rbac.authorization.k8s.io/{fullname}-leader-election"),
        format!("rolebinding.rbac.authorization.k8s.io/{fullname}-leader-election"),
        format!("poddisruptionbudget.policy/{fullname}"),
        format!("secret/{fullname}-hmac"),
    ] {
        assert!(
            listed.lines().any(|l| l == object),
            "{object} missing:\n{listed}"
        );
    }
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    let cluster_role_bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    cluster_roles.get(fullname).await.unwrap();
    cluster_role_bindings.get(fullname).await.unwrap();

    // The HMAC key survives upgrades (helm lookup), so tokens already given out stay valid.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), namespace);
    let hmac = named("-hmac");
    let key = |s: Secret| s.data.unwrap()["key"].0.clone();
    let before = key(secrets.get(&hmac).await.unwrap());
    assert_eq!(before.len(), 64);
    cluster
        .helm_release(
            "upgrade",
            &["--set", "simulator.enabled=true", "--set", "replicas=3"],
        )
        .await;
    let replicas = |d: Deployment| d.spec.unwrap().replicas;
    assert_eq!(replicas(deployments.get(fullname).await.unwrap()), Some(3));
    assert_eq!(
        key(secrets.get(&hmac).await.unwrap()),
        before,
        "upgrade changed the HMAC key"
    );

    // The documented CRD upgrade step is accepted on top of what helm installed.
    let crd_dir = chart().join("crds").display().to_string();
    let applied = cluster
        .kubectl(&["apply", "--server-side", "-f", &crd_dir])
        .await;
    assert!(applied.contains("serverside-applied"), "{applied}");

    // Uninstall removes the release's objects, cluster-scoped ones too, and keeps the CRD
    // (so QodSessions outlive it, as the README says) and the HMAC key their sessions'
    // notification tokens are signed with.
    cluster
        .helm(&["uninstall", &cluster.release, "-n", namespace])
        .await;
    assert_eq!(code(deployments.get(fullname).await), 404);
    assert_eq!(code(cluster_roles.get(fullname).await), 404);
    assert_eq!(code(cluster_role_bindings.get(fullname).await), 404);
    crds.get(CRD).await.unwrap();
    assert_eq!(
        key(secrets.get(&hmac).await.unwrap()),
        before,
        "uninstall kept the HMAC key"
    );

    // Installed again under the same name, the release adopts the kept key: notifications for
    // sessions made before are still accepted.
    cluster
        .helm_release("install", &["--set", "simulator.enabled=true"])
        .await;
    assert_eq!(
        key(secrets.get(&hmac).await.unwrap()),
        before,
        "a reinstall changed the HMAC key"
    );
    cluster
        .helm(&["uninstall", &cluster.release, "-n", namespace])
        .await;
}

/// Waits, as `--install-crd` does, until the CRD is Established.
async fn await_established(crds: Api<CustomResourceDefinition>) {
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        await_condition(crds, CRD, conditions::is_crd_established()),
    )
    .await
    .expect("the CRD established within 30 s")
    .expect("watching the CRD");
}

#[tokio::test]
async fn the_service_account_may_do_what_the_operator_does_and_nothing_more() {
    let cluster = Cluster::shared("chart-rbac").await;
    cluster
        .helm_release("install", &["--set", "simulator.enabled=true"])
        .await;
    let (fullname, namespace) = (cluster.fullname.as_str(), cluster.namespace.as_str());
    // Sessions live outside the release namespace, as users' do.
    let apps = cluster.namespace("chart-apps").await;
    create_session(cluster.admin().await, &apps, "s1").await;
    let sa = cluster.service_account().await;

    // Controller: list and watch every namespace, add and remove its finalizer. (Selected
    // down to this test's namespace: the shared control plane holds other tests' sessions.
    // The request is still cluster-wide, and authorized as such.)
    let all = qodsessions(sa.clone(), None);
    let here = format!("metadata.namespace={apps}");
    assert_eq!(
        all.list(&ListParams::default().fields(&here))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let mut watch = Box::pin(
        all.watch(&WatchParams::default().fields(&here).timeout(5), "0")
            .await
            .unwrap(),
    );
    match futures::StreamExt::next(&mut watch).await {
        Some(Ok(WatchEvent::Added(o))) => assert_eq!(o.metadata.name.as_deref(), Some("s1")),
        other => panic!("expected the session from the watch, got {other:?}"),
    }
    let sessions = qodsessions(sa.clone(), Some(&apps));
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
    let events: Api<Event> = Api::namespaced(sa.clone(), &apps);
    events
        .create(&PostParams::default(), &event(&apps, "s1.1"))
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
    let leases: Api<Lease> = Api::namespaced(sa.clone(), namespace);
    assert_eq!(
        code(leases.get(fullname).await),
        404,
        "may look, finds none yet"
    );
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": fullname}, "spec": {}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let hold =
        Patch::Strategic(json!({"spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}}));
    leases
        .patch(fullname, &PatchParams::default(), &hold)
        .await
        .unwrap();
    let apply = Patch::Apply(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "pod-a"}}),
    );
    leases
        .patch(fullname, &PatchParams::apply("pod-a"), &apply)
        .await
        .unwrap();

    // Provider registry: list and watch both provider kinds (cluster-wide) and namespaces'
    // metadata, get a provider's Secret by name (in any namespace, the release namespace
    // included); later the controller patches providers' finalizers and status.
    let admin = cluster.admin().await;
    let cluster_provider = format!("{apps}-telco");
    let spec = json!({"networkAsCode": {"url": "https://nac.example",
                                        "apiKeySecretRef": {"name": "nac", "key": "api-key"}}});
    let provider = |kind: &str, name: &str| {
        json!({"apiVersion": "qod.dev/v1alpha1", "kind": kind,
               "metadata": {"name": name}, "spec": spec})
    };
    let as_test = PatchParams::apply("qod-operator-tests");
    Api::<QodProvider>::namespaced(admin.clone(), &apps)
        .patch(
            "nac",
            &as_test,
            &Patch::Apply(provider("QodProvider", "nac")),
        )
        .await
        .unwrap();
    Api::<ClusterQodProvider>::all(admin.clone())
        .patch(
            &cluster_provider,
            &as_test,
            &Patch::Apply(provider("ClusterQodProvider", &cluster_provider)),
        )
        .await
        .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &apps)
        .patch(
            "nac",
            &as_test,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                                 "metadata": {"name": "nac"}, "stringData": {"api-key": "k"}})),
        )
        .await
        .unwrap();
    let qod_providers = Api::<QodProvider>::all(sa.clone());
    qod_providers
        .list(&ListParams::default().fields(&here))
        .await
        .unwrap();
    // A watch refused by RBAC fails at once; an accepted one is open.
    drop(
        qod_providers
            .watch(&WatchParams::default().fields(&here).timeout(1), "0")
            .await
            .unwrap(),
    );
    let cluster_providers = Api::<ClusterQodProvider>::all(sa.clone());
    cluster_providers
        .list(&ListParams::default())
        .await
        .unwrap();
    drop(
        cluster_providers
            .watch(&WatchParams::default().timeout(1), "0")
            .await
            .unwrap(),
    );
    let namespaces = Api::<Namespace>::all(sa.clone());
    namespaces
        .list_metadata(&ListParams::default())
        .await
        .unwrap();
    drop(
        namespaces
            .watch_metadata(&WatchParams::default().timeout(1), "0")
            .await
            .unwrap(),
    );
    Api::<Secret>::namespaced(sa.clone(), &apps)
        .get("nac")
        .await
        .unwrap();
    let provider_finalizer =
        Patch::Merge(json!({"metadata": {"finalizers": ["qod.dev/provider"]}}));
    let namespaced_providers = Api::<QodProvider>::namespaced(sa.clone(), &apps);
    namespaced_providers
        .patch("nac", &PatchParams::default(), &provider_finalizer)
        .await
        .unwrap();
    let ready = |kind: &str| {
        Patch::Apply(json!({"apiVersion": "qod.dev/v1alpha1", "kind": kind,
                            "status": {"sessions": 0}}))
    };
    let as_operator = PatchParams::apply("qod-operator").force();
    namespaced_providers
        .patch_status("nac", &as_operator, &ready("QodProvider"))
        .await
        .unwrap();
    cluster_providers
        .patch(
            &cluster_provider,
            &PatchParams::default(),
            &provider_finalizer,
        )
        .await
        .unwrap();
    cluster_providers
        .patch_status(
            &cluster_provider,
            &as_operator,
            &ready("ClusterQodProvider"),
        )
        .await
        .unwrap();
    // Not theirs to make, delete, or replace; no Namespace beyond its metadata list and watch.
    assert_eq!(
        code(
            namespaced_providers
                .delete("nac", &DeleteParams::default())
                .await
        ),
        403,
        "provider delete"
    );
    assert_eq!(
        code(
            cluster_providers
                .delete(&cluster_provider, &DeleteParams::default())
                .await
        ),
        403,
        "cluster provider delete"
    );
    assert_eq!(code(namespaces.get(&apps).await), 403, "namespace get");
    // The finalizers go, so the shared control plane can delete them.
    let no_finalizer = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    Api::<QodProvider>::namespaced(admin.clone(), &apps)
        .patch("nac", &PatchParams::default(), &no_finalizer)
        .await
        .unwrap();
    let admin_cluster_providers = Api::<ClusterQodProvider>::all(admin);
    admin_cluster_providers
        .patch(&cluster_provider, &PatchParams::default(), &no_finalizer)
        .await
        .unwrap();
    admin_cluster_providers
        .delete(&cluster_provider, &DeleteParams::default())
        .await
        .unwrap();

    // Nothing more: no update, create or delete of sessions, no list or watch of Secrets, no
    // other Leases or namespaces for Leases, no CRDs, no core Events.
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
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), namespace);
    // By name only: ClusterQodProviders' Secrets live in the release namespace.
    assert_eq!(
        code(secrets.get(&format!("{fullname}-hmac")).await),
        200,
        "secret get"
    );
    assert_eq!(
        code(secrets.list(&ListParams::default()).await),
        403,
        "secret list"
    );
    assert_eq!(
        code(
            secrets
                .watch(&WatchParams::default().timeout(1), "0")
                .await
                .map(drop)
        ),
        403,
        "secret watch"
    );
    assert_eq!(code(leases.get("someone-else").await), 403, "other lease");
    assert_eq!(
        code(leases.list(&ListParams::default()).await),
        403,
        "lease list"
    );
    assert_eq!(
        code(leases.delete(fullname, &DeleteParams::default()).await),
        403,
        "lease delete"
    );
    let lease_elsewhere: Api<Lease> = Api::namespaced(sa.clone(), &apps);
    assert_eq!(
        code(lease_elsewhere.create(&PostParams::default(), &lease).await),
        403,
        "lease elsewhere"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(sa.clone());
    assert_eq!(code(crds.get(CRD).await), 403, "crd without installCRD");
    let core_events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(sa.clone(), &apps);
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
    let cluster = Cluster::shared("chart-scoped").await;
    let apps = cluster.namespace("chart-apps").await;
    let elsewhere = cluster.namespace("chart-other").await;
    let watch = format!("watchNamespace={apps}");
    let mut args = vec!["--set", &watch, "--set", "installCRD=true"];
    args.extend_from_slice(MINIMAL);
    cluster.helm_release("install", &args).await;
    let admin = cluster.admin().await;
    create_session(admin.clone(), &apps, "mine").await;
    create_session(admin.clone(), &elsewhere, "theirs").await;
    let sa = cluster.service_account().await;

    let sessions = qodsessions(sa.clone(), Some(&apps));
    assert_eq!(
        sessions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let finalizer = Patch::Merge(json!({"metadata": {"finalizers": ["qod.dev/session"]}}));
    sessions
        .patch("mine", &PatchParams::default(), &finalizer)
        .await
        .unwrap();
    let events: Api<Event> = Api::namespaced(sa.clone(), &apps);
    events
        .create(&PostParams::default(), &event(&apps, "mine.1"))
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
    let theirs = qodsessions(sa.clone(), Some(&elsewhere));
    assert_eq!(code(theirs.get("theirs").await), 403, "another namespace");
    let other_events: Api<Event> = Api::namespaced(sa.clone(), &elsewhere);
    assert_eq!(
        code(
            other_events
                .create(&PostParams::default(), &event(&elsewhere, "x.1"))
                .await
        ),
        403,
        "events in another namespace"
    );
    // Secrets by name: in the watched namespace (QodProviders') and the release namespace
    // (ClusterQodProviders'), nowhere else. Not found, not forbidden, is what "may get" looks like.
    for (secret_namespace, expected) in [
        (apps.as_str(), 404),
        (cluster.namespace.as_str(), 404),
        (elsewhere.as_str(), 403),
    ] {
        assert_eq!(
            code(
                Api::<Secret>::namespaced(sa.clone(), secret_namespace)
                    .get("no-such-secret")
                    .await
            ),
            expected,
            "secret get in {secret_namespace}"
        );
    }

    // installCRD: server-side apply of its own CRD (what --install-crd sends), then its watch
    // until Established, a list/watch with a metadata.name field selector that the API server
    // matches against resourceNames; nothing else.
    let crds: Api<CustomResourceDefinition> = Api::all(sa.clone());
    let crd: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/crds/qodsessions.qod.dev.yaml")).unwrap(),
    )
    .unwrap();
    crds.patch(
        CRD,
        &PatchParams::apply("qod-operator").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    await_established(crds.clone()).await;
    assert_eq!(code(crds.get(CRD).await), 403, "get is not used");
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
        code(crds.delete(CRD, &DeleteParams::default()).await),
        403,
        "delete CRD"
    );
}

#[tokio::test]
async fn plain_manifests_and_examples_are_accepted_by_kubectl() {
    // The shared control plane: the plain manifests' names (namespace qod-system, release
    // qod-operator) are used by no other test in it; the examples go to a namespace of their own.
    let cluster = Cluster::shared("chart-plain").await;
    let deploy = |path: &str| repo_root().join("deploy").join(path).display().to_string();
    let crd = cluster
        .kubectl(&["apply", "--server-side", "-f", &deploy("crds")])
        .await;
    assert!(crd.contains("serverside-applied"), "{crd}");
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            &format!("crd/{CRD}"),
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
        "clusterrole.rbac.authorization.k8s.io/qod-operator created",
    ] {
        assert!(applied.contains(object), "{object} missing:\n{applied}");
    }

    let namespace = &cluster.namespace;
    let examples = cluster
        .kubectl(&["apply", "-n", namespace, "-f", &deploy("examples")])
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
        .kubectl(&["get", "qod", "-n", namespace, "-o", "name"])
        .await;
    assert_eq!(names.lines().count(), 3, "{names}");
    let providers = cluster
        .kubectl(&[
            "apply",
            "-n",
            namespace,
            "-f",
            &deploy("examples/providers"),
        ])
        .await;
    let mut created: Vec<&str> = providers.lines().collect();
    created.sort_unstable();
    assert_eq!(
        created,
        [
            "clusterqodprovider.qod.dev/telco-a created",
            "qodprovider.qod.dev/nac created",
            "qodsession.qod.dev/camera-uplink-nac created",
        ]
    );

    let policies = cluster
        .kubectl(&["apply", "-n", namespace, "-f", &deploy("examples/policies")])
        .await;
    let mut created: Vec<&str> = policies.lines().collect();
    created.sort_unstable();
    assert_eq!(
        created,
        [
            "qodsession.qod.dev/imported-uplink created",
            "qodsession.qod.dev/observed-uplink created",
        ]
    );

    // Acceptance means something: the same CRD refuses a broken session, naming the field.
    let bad = cluster.dir.join("bad.yaml");
    let example = std::fs::read_to_string(deploy("examples/phone-number.yaml")).unwrap();
    std::fs::write(&bad, example.replace("+36721601234567", "36721601234567")).unwrap();
    let error = cluster
        .kubectl_fails(&["apply", "-n", namespace, "-f", &bad.display().to_string()])
        .await;
    assert!(error.contains("spec.device.phoneNumber"), "{error}");
}

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD: the kind, any content, so the
/// API server serves it and helm can map it.
const SERVICE_MONITOR_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
  "spec": {
    "group": "monitoring.coreos.com",
    "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor", "listKind": "ServiceMonitorList"},
    "scope": "Namespaced",
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
  }
}"#;

#[tokio::test]
async fn every_optional_feature_is_accepted_by_the_api_server() {
    // render.rs checks what nondefault.yaml renders; here the API server validates each object
    // (Ingress with TLS, ServiceMonitor, the chart's Secret, the Role in watchNamespace, ...),
    // and helm fails on any it refuses. The release and its namespaces are this test's alone.
    let cluster = Cluster::shared("chart-options").await;
    cluster
        .apply_crd(
            "servicemonitors.json",
            SERVICE_MONITOR_CRD,
            "servicemonitors.monitoring.coreos.com",
        )
        .await;
    let apps = cluster.namespace("chart-apps").await;
    let watch = format!("watchNamespace={apps}");
    let notes = cluster
        .helm_release(
            "install",
            &["-f", &fixture("nondefault.yaml"), "--set", &watch],
        )
        .await;
    assert!(notes.contains("STATUS: deployed"), "{notes}");

    let fullname = &cluster.fullname;
    let listed = cluster
        .kubectl(&[
            "get",
            "deployment,ingress,servicemonitor,secret",
            "-n",
            &cluster.namespace,
            "-o",
            "name",
        ])
        .await;
    for object in [
        format!("deployment.apps/{fullname}"),
        format!("ingress.networking.k8s.io/{fullname}-webhook"),
        format!("servicemonitor.monitoring.coreos.com/{fullname}"),
        format!("secret/{fullname}-provider"),
    ] {
        assert!(
            listed.lines().any(|l| l == object),
            "{object} missing:\n{listed}"
        );
    }
    let scoped = cluster
        .kubectl(&["get", "role,rolebinding", "-n", &apps, "-o", "name"])
        .await;
    assert!(
        scoped.contains(&format!("role.rbac.authorization.k8s.io/{fullname}\n")),
        "{scoped}"
    );
}
