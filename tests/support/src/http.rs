//! HTTP clients for tests and the bench. reqwest takes its TLS crypto provider from the process
//! (src/tls.rs), so every client is built after that is set.

/// A client with reqwest's defaults.
pub fn client() -> reqwest::Client {
    builder().build().expect("an HTTP client")
}

/// A client builder, for timeouts and other options.
pub fn builder() -> reqwest::ClientBuilder {
    qod_operator::tls::install_crypto_provider();
    reqwest::Client::builder()
}
