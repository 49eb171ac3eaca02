//! Running the tools the tests drive (kubectl, helm, buildah) and reading what they said.

use std::process::{Command, Output};

/// Bytes a tool printed, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` to its end; fails the test when it cannot start.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// [`output`] off the async runtime's threads: a tool may take minutes.
pub async fn output_off_runtime(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || output(&mut cmd))
        .await
        .expect("the blocking task ran")
}

/// The stdout of `out`; fails the test, naming `what` and showing both outputs, unless the
/// tool succeeded.
pub fn succeeded(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}
