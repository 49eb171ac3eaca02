//! End to end, as users do it: `kubectl` against a real Kubernetes API (kube-apiserver and etcd,
//! tests/control-plane; one per test binary with a namespace per test, or a fresh cluster of
//! the test's own), the QoD simulator, and `qod-operator run` as its own process (the release
//! build, as users run it: `cargo build --release` on first use).
//!
//! - [`lifecycle`]: on a fresh cluster, `kubectl apply -f deploy/crds/ -f deploy/examples/`,
//!   `kubectl wait` for AVAILABLE, `kubectl get qod` columns, the operator's Events in
//!   `kubectl describe qod`, `kubectl delete` leaves nothing behind.
//! - [`intents`]: 300 sessions applied, 100 replaced, 100 extended, all deleted: exactly one
//!   provider call per intent and no reconcile error, counted by the provider and the operator.
//! - [`providers`]: two more simulators as a QodProvider and a ClusterQodProvider with
//!   credentials in Secrets: sessions land where their resource says; missing provider, missing
//!   Secret and quota refuse with no call; deletion of a provider waits for its sessions.
//! - [`profiles`]: the simulator's QoS profiles as QosProfile resources, kept in step as the
//!   provider adds, deprecates and removes them; sessions checked against them before any
//!   create (unknown, inactive, deprecated, too short: refused with no call; too long: capped);
//!   each provider's sessions checked against its own profiles; a provider without the API
//!   untouched.
//! - [`policies`]: a session made elsewhere imported when it matches the spec and refused with
//!   no provider write when not; Observe through expiry and network termination with no create,
//!   extend or delete; deletionPolicy Orphan leaves exactly one session; qod.dev/paused makes no
//!   call until removed.
//! - [`services`]: a session whose application server is a Service follows its external
//!   address (load balancer IPv4/IPv6, hostname through DNS, externalIPs), waits with no call
//!   while it has none, and is deleted while the Service is gone.
//! - [`invalid`]: every manifest of tests/fixtures/invalid/ is refused naming the field.
//! - [`restart`]: SIGKILL and SIGTERM between a provider create and its status write converge
//!   without a duplicate or an orphaned session; so does kube-apiserver SIGKILLed and restarted
//!   mid-create, which the same operator process rides out.
//!
//! `helm install` of the chart with the operator process standing in for its Deployment (as the
//! chart's ServiceAccount, under RBAC) is tests/chart/operator.rs; it is not repeated here.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod intents;
mod invalid;
mod lifecycle;
mod policies;
mod profiles;
mod providers;
mod restart;
mod services;
mod world;
