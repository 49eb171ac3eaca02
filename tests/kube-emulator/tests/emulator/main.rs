//! Integration tests for kube-emulator: a real `kube::Client` (and raw HTTP where kube hides
//! the wire, and kubectl where installed) against an emulator on 127.0.0.1:0. Each semantic
//! rule of the issue has its own test, grouped by concern.

// Test helpers outside `#[test]` functions panic on purpose: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod binary;
mod controller;
mod crud;
mod delete;
mod discovery;
mod errors;
mod kubectl;
mod list;
mod patch;
mod rbac;
mod status;
mod support;
mod validation;
mod watch;
