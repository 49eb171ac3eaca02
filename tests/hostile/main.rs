//! Hostile input: fuzzed notifications against the parser and the webhook's router, the
//! webhook of a running operator under abuse (slow clients, oversized and deeply nested
//! bodies, floods), manifests with hostile values against the CRD schema, the controller
//! behind a validating Prism proxy, and a provider's error text longer than an Event allows.
//! Against a real Kubernetes API (tests/control-plane), one namespace per test. One test
//! binary, so it links once.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod fuzz;
mod prism;
mod provider_text;
mod schema;

/// The operator these tests run: this package's debug build, as cargo built it for them.
const OPERATOR: &str = env!("CARGO_BIN_EXE_qod-operator");
