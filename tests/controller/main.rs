//! The controller through its real loop: the real Kubernetes API (tests/control-plane), the QoD
//! simulator as the provider, and our CAMARA client between them. Each test checks what the
//! provider holds (the simulator's `/_sim/sessions`) as well as what the resource says.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache;
mod conflicts;
mod events;
mod harness;
mod lifecycle;
mod schema;
mod trouble;
