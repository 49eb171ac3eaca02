//! Helpers shared by the integration test binaries (`#[path = "../support/mod.rs"] mod support;`).
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod camara;
pub mod prism;
pub mod tools;
pub mod wait;

pub use wait::eventually;
