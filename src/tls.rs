//! The crypto behind every TLS connection the process opens (the Kubernetes API, QoD providers
//! and their token endpoints, the simulator's notifications): rustls with *ring*, as the
//! process's default provider, which kube's and reqwest's TLS both use.
//!
//! Why ring and not aws-lc-rs, reqwest's and rustls' default: nearly all of the binary's code
//! is resident in every pod, and aws-lc-rs brought 2 MB of it (1.4 MiB more RSS); it also seeds
//! its random generator from CPU jitter on the first handshake, a fifth of the operator's CPU
//! before it was ready with 10,000 QodSessions (BENCHMARKS.md, "Seventh look"). What ring lacks:
//! ECDSA P-521 signatures (a server whose certificate chain uses P-521 fails the handshake) and
//! the post-quantum X25519MLKEM768 key exchange (X25519 and the NIST curves are offered).

use std::sync::Once;

/// Makes ring the process's rustls crypto provider. Call before building any TLS client
/// ([`http_client_builder`] does); later calls do nothing. A provider the embedding program
/// installed first is kept.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err carries the provider another part of the program installed first: keep that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The one way to start an HTTP client: reqwest without its aws-lc-rs default panics when
/// built before a provider is installed (clippy.toml forbids reqwest's own constructors).
#[allow(clippy::disallowed_methods)]
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_client_builds_with_ring_as_the_provider() {
        assert!(http_client_builder().build().is_ok());
        let installed = rustls::crypto::CryptoProvider::get_default();
        assert!(installed.is_some_and(|provider| {
            provider.cipher_suites == rustls::crypto::ring::default_provider().cipher_suites
        }));
    }
}
