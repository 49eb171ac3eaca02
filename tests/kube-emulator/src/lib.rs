//! An in-memory Kubernetes API server for tests (dev only, never shipped).
//!
//! It speaks the real HTTP API well enough for `kube::Client`, kube-runtime controllers and
//! kubectl 1.35, and keeps the semantics an operator relies on: one global resourceVersion,
//! watches with bookmarks and `410 Gone`, optimistic concurrency, generation, the status
//! subresource, finalizers, every patch type including server-side apply, CRD registration with
//! schema validation (pruning, defaults, CEL) and `Status` errors. See README.md for what is
//! and is not faithful.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let emu = kube_emulator::Emulator::start(kube_emulator::Options::default()).await?;
//! let client = emu.client().await?;
//! # let _ = client;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod discovery;
pub mod error;
pub mod fields;
pub mod http;
pub mod listkeys;
pub mod meta;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod validation;
pub mod watch;

pub use auth::UserInfo;
pub use server::{Authorization, Emulator, Options, RunningEmulator, StartError};
