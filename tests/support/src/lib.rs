//! What qod-operator's integration tests (tests/*/main.rs) and qod-bench share: a real
//! Kubernetes control plane and a test's namespace on it, the operator and the QoD simulator as
//! processes or in this one, the external tools (kubectl, helm, Prism) and waiting for a
//! condition with a deadline. Each suite keeps only what is its own.

pub mod audit;
pub mod camara;
pub mod cluster;
pub mod command;
pub mod control_plane;
pub mod http;
pub mod identity;
pub mod kubeconfig;
pub mod kubectl;
pub mod metrics;
pub mod net;
pub mod operator;
pub mod paths;
pub mod prism;
pub mod process;
pub mod providers;
pub mod proxy;
pub mod session;
pub mod simulator;
pub mod test_log;
pub mod tools;
pub mod wait;

pub use cluster::Cluster;
pub use control_plane::ControlPlane;
pub use paths::{repo_root, test_dir};
pub use wait::eventually;
