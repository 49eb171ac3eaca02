//! `qod-operator run` as separate processes against a real Kubernetes API (tests/control-plane,
//! one namespace per test) and the simulator: leader election, failover and shutdown, as a
//! platform team would see them.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod failover;

/// The operator these tests run: this package's debug build, as cargo built it for them.
const OPERATOR: &str = env!("CARGO_BIN_EXE_qod-operator");
