//! qod-operator: CAMARA Quality-on-Demand sessions as Kubernetes resources.
//!
//! The library holds every behaviour so tests can reach it; `main.rs` only wires the CLI. How
//! the modules fit together: docs/architecture.md, "Parts and data flow" and "Where things are".

pub mod api;
#[cfg(test)]
mod architecture_citations;
pub mod cache;
pub mod config;
pub mod controller;
pub mod finalizers;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod probes;
pub mod profiles;
pub mod providers;
pub mod qod;
pub mod services;
mod sweep;
// The QoD provider simulator (feature `simulator`, on by default), for `qod-operator simulator`,
// `run --simulator` and the tests; the operator's own modules never use it.
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod sink_keys;
pub mod telemetry;
pub mod tls;
pub mod webhook;
