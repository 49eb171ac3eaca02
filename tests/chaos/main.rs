//! Reliability under faults: the operator as a process (`qod-operator run`), SIGKILLed and
//! restarted while the QoD simulator injects errors, rate limits, timeouts, lost answers and
//! bad notifications, and the control plane itself is SIGKILLed and restarted; a provider
//! outage (503s, a dead process, a hang); credentials rotated at run time (bearer token, OAuth2
//! client secret, Network-as-Code API key, HMAC key); and a scan of every log line of a full
//! run for secrets. Against a real Kubernetes API (tests/control-plane), one
//! namespace per test. One test binary, so it links once.
//!
//! `apiserver` makes the API server the fault, on a control plane of its own with an audit
//! log that counts the operator's requests: APF answering 429 (the operator waits out
//! `Retry-After`, loses no notification, converges), and a watch expired by etcd compaction
//! while a proxy cuts the operator off (410 Gone: it relists, misses no change, and makes no
//! burst of provider calls).
//!
//! The chaos run is sized for CI (`QOD_CHAOS_SESSIONS`, default 150; `QOD_CHAOS_SECONDS`,
//! default 50); `QOD_CHAOS_SESSIONS=500 QOD_CHAOS_SECONDS=600` is the long mode, and
//! `QOD_CHAOS_SEED` replays a run's random choices.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

mod adoption;
mod apiserver;
mod outage;
mod provider_down;
mod replace;
mod rotation;
mod run;
mod secrets;

/// The operator these tests run: this package's debug build, as cargo built it for them.
const OPERATOR: &str = env!("CARGO_BIN_EXE_qod-operator");

/// How long a step may take before the test fails (never waited out when things work).
const WAIT: Duration = Duration::from_secs(30);
