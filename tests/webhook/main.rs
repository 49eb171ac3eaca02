//! The notification webhook over HTTP against the real Kubernetes API (tests/control-plane):
//! every payload shape lands in status, in structured and binary mode, hostile requests change
//! nothing, the API being down is a 503, and notifications from the QoD simulator arrive end to
//! end. One test binary, so it links once.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod binary;
mod conflicts;
mod harness;
mod hostile;
mod operator;
mod payloads;
mod simulator;
