//! The logs of the code under test, shown with a failing test's output on request.

/// With `QOD_TEST_LOG` set (a RUST_LOG filter, such as `debug`), the tracing output of the
/// operator's code running in the test binary goes to the test's captured output.
pub fn init() {
    if let Ok(filter) = std::env::var("QOD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}
