//! The QoD provider side, end to end over HTTP: the client, the simulator, and both checked
//! against the official CAMARA OpenAPI files with Prism; credentials from Kubernetes Secrets on
//! a real API server (tests/control-plane). One test binary, so it links once.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client_prism;
mod client_simulator;
mod notification_examples;
mod profiles_prism;
mod profiles_simulator;
mod registry;
mod secret_credentials;
mod simulator_api;
mod simulator_prism;
