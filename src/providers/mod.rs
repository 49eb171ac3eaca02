//! Several QoD providers per cluster (QodProvider, ClusterQodProvider): from a provider
//! resource to a client ([`build`]), one client per provider object kept in step with the
//! cluster ([`registry`], fed by [`watch`]), and which one serves a session
//! ([`ProviderRegistry::resolve`]). The provider given by flags stays the default.

pub mod build;
pub mod keeper;
pub mod key;
pub mod registry;
pub mod selector;
pub mod usage;
pub mod watch;

pub use build::{BuildClient, BuildError, ClientFactory, ClientSettings, SecretScope};
pub use key::{DEFAULT_LABEL, ProviderKey, label_of};
pub use registry::{ProviderRegistry, Refusal, Resolved, Source};
