//! `qod-operator run` as separate processes against a real Kubernetes API (tests/control-plane,
//! one namespace per test) and the simulator: leader election, failover and shutdown, as a
//! platform team would see them.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod failover;
// Shared with tests/e2e, which uses other helpers of it.
#[allow(dead_code)]
mod process;
