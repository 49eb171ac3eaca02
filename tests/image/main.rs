//! The container image (the Dockerfile's `prepared` stage, built by tests/image/build with
//! buildah: no daemon, no pulled base image), checked as a registry and a cluster would see it.
//!
//! - [`contents`]: at most 25 MB; exactly the operator, the shared libraries `ldd` lists for it,
//!   the dynamic loader, the CA bundle and /etc/{passwd,group,nsswitch.conf}; nothing in it
//!   owned by or writable for its user, so it runs on a read-only root filesystem; USER
//!   65532:65532, the operator as entrypoint, `run` as command; `qod-operator --version` run
//!   inside it as that user.
//! - [`lifecycle`]: `qod-operator run` from the image (`buildah run`, host network, kubeconfig
//!   and HMAC key on a read-only volume) against the real control plane (tests/control-plane)
//!   and the QoD simulator: a QodSession applied with kubectl, AVAILABLE, deleted, nothing left at
//!   the simulator; the process runs as 65532 inside the image's root and stops on SIGTERM.
//!
//! Where buildah is absent (tests/install-buildah.sh installs it, as .ci/run does) every test
//! passes after printing `SKIPPED <test>: buildah not found ...` on stderr.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod buildah;
mod contents;
mod lifecycle;
