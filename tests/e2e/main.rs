//! End to end, as users do it: `kubectl` against the in-memory Kubernetes API
//! (tests/kube-emulator, in this process), the QoD simulator, and `qod-operator run` as its own
//! process (the release build, as users run it: `cargo build --release` on first use).
//!
//! - [`lifecycle`]: `kubectl apply -f deploy/crds/ -f deploy/examples/`, `kubectl wait` for
//!   AVAILABLE, `kubectl get qod` columns, `kubectl delete` leaves nothing behind.
//! - [`invalid`]: every manifest of tests/fixtures/invalid/ is refused naming the field.
//! - [`restart`]: SIGKILL and SIGTERM between a provider create and its status write converge
//!   without a duplicate or an orphaned session.
//!
//! `helm install` of the chart with the operator process standing in for its Deployment (as the
//! chart's ServiceAccount, under RBAC) is tests/chart/operator.rs; it is not repeated here.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

// Shared with tests/operator, which uses more of it.
#[allow(dead_code)]
#[path = "../operator/process.rs"]
mod process;

mod invalid;
mod lifecycle;
mod restart;
mod world;
