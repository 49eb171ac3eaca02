//! Helpers shared by the integration test binaries (`#[path = "../support/mod.rs"] mod support;`).
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod audit;
pub mod camara;
pub mod control_plane;
pub mod identity;
pub mod metrics;
pub mod prism;
pub mod providers;
pub mod proxy;
pub mod simulator_stats;
pub mod tools;
pub mod wait;

#[allow(unused_imports)]
pub use control_plane::ControlPlane;
pub use wait::eventually;
