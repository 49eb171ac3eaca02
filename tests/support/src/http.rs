//! HTTP clients for tests and the bench, built as the operator builds its own
//! (`qod_operator::tls`: the process's TLS provider is installed first).

/// A client with reqwest's defaults.
pub fn client() -> reqwest::Client {
    builder().build().expect("an HTTP client")
}

/// A client builder, for timeouts and other options.
pub fn builder() -> reqwest::ClientBuilder {
    qod_operator::tls::http_client_builder()
}
