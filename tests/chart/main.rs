//! The Helm chart (charts/qod-operator), the plain manifests (deploy/), the examples
//! (deploy/examples/) and what keeps them in step; the chart's NetworkPolicy, alerts and
//! dashboard. helm and kubectl come from `qod_test_support::tools` (installed on first use), promtool
//! from tests/install-promtool.sh; the cluster is a real control plane (tests/control-plane):
//! the binary's shared one, a release and namespace per test, or one of a test's own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cluster;
mod files;
mod harness;
mod helm3;
mod install;
mod monitoring;
mod network;
mod operator;
mod render;
mod values;
