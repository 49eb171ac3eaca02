//! The Helm chart (charts/qod-operator), the plain manifests (deploy/), the examples
//! (deploy/examples/) and what keeps them in step. helm and kubectl come from
//! `tests/kube-emulator/install-kubectl.sh` (run on first use); the cluster is the in-memory
//! API server of tests/kube-emulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod files;
mod harness;
mod helm3;
mod install;
mod operator;
mod render;
mod values;

#[path = "../support/mod.rs"]
mod support;
