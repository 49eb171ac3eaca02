//! The crypto behind every TLS connection the process opens (the Kubernetes API, QoD providers
//! and their token endpoints, the simulator's notifications): rustls with *ring*.
//!
//! Why ring and not aws-lc-rs, reqwest's and rustls' default: nearly all of the binary's code
//! is resident in every pod, and aws-lc-rs brought 2 MB of it (1.2 MiB less RSS without it);
//! it also seeds its random generator from CPU jitter on the first handshake, a fifth of the
//! operator's CPU before it was ready with 10,000 QodSessions (BENCHMARKS.md, "Seventh look").
//! kube takes ring from its cargo feature; reqwest, without its aws-lc-rs default, takes the
//! process's provider, installed here.

use std::sync::Once;

/// Makes ring the process's rustls crypto provider. Call before building an HTTP client;
/// later calls do nothing. A provider the embedding program installed first is kept.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err carries the provider another part of the program installed first: keep that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_ring_so_an_http_client_builds() {
        install_crypto_provider();
        install_crypto_provider();
        let installed = rustls::crypto::CryptoProvider::get_default();
        assert!(installed.is_some_and(|provider| {
            provider.cipher_suites == rustls::crypto::ring::default_provider().cipher_suites
        }));
        assert!(reqwest::Client::builder().build().is_ok());
    }
}
