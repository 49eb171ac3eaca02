//! QoS profiles from the providers' CAMARA QoS Profiles APIs: what each provider last listed
//! ([`catalog`]), which the controller checks a new session against; the QosProfile
//! resources that show it ([`objects`]); and the leader's task that keeps both in step
//! ([`sync`]). Providers without the API (Network as Code, CAMARA before v1) have no profiles
//! here and their sessions are not checked.

pub mod catalog;
pub mod objects;
pub mod sync;

pub use catalog::{Known, NotAvailable, ProfileCatalog, Verdict};
pub use sync::ProfileSync;
