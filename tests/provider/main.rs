//! The QoD provider side, end to end over HTTP: the client, the simulator, and both checked
//! against the official CAMARA OpenAPI files with Prism. One test binary, so it links once.

#[path = "../support/mod.rs"]
mod support;

mod notification_examples;
mod simulator_api;
