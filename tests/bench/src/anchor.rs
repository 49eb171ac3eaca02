//! The FastAPI anchor of issue 15 (tests/bench/anchors/fastapi_receiver.py): a notification
//! receiver that parses the CloudEvent and checks the bearer token, run by uvicorn from the venv
//! that tests/bench/anchors/install.sh makes, as its own process on 127.0.0.1.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

/// The receiver's source folder (uvicorn's `--app-dir`).
const APP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/anchors");

pub struct FastApiReceiver {
    child: Child,
    /// Where notifications go: `{url}/notifications/{uid}`, as for the operator's webhook.
    pub url: String,
}

/// The venv install.sh makes: `fastapi-anchor` in the cargo target folder this binary is in.
pub fn default_venv() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("this binary is not in a cargo target folder")?;
    Ok(target.join("fastapi-anchor"))
}

impl FastApiReceiver {
    /// Checks that `venv` has Python with FastAPI and uvicorn, before any world is started.
    pub fn check(venv: &Path) -> anyhow::Result<PathBuf> {
        let python = venv.join("bin/python");
        let installed = Command::new(&python)
            .args(["-c", "import fastapi, uvicorn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        anyhow::ensure!(
            installed,
            "no FastAPI anchor in {}: make it with `CARGO_TARGET_DIR=<this target folder> \
             tests/bench/anchors/install.sh` (a venv with the pinned fastapi and uvicorn from \
             PyPI), or pass --venv",
            venv.display()
        );
        Ok(python)
    }

    /// Starts uvicorn (one worker, no access log: the operator logs at warn) with the world's
    /// HMAC key and waits until it answers.
    pub async fn start(
        python: &Path,
        key_file: &Path,
        http: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let port = qod_test_support::net::free_port();
        let child = Command::new(python)
            .args([
                "-m",
                "uvicorn",
                "fastapi_receiver:app",
                "--app-dir",
                APP_DIR,
            ])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--log-level", "warning", "--no-access-log"])
            .env("QOD_ANCHOR_KEY_FILE", key_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", python.display()))?;
        let mut receiver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        // Any answer means it listens (a GET is refused with 405).
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{}/notifications/up", receiver.url))
            .send()
            .await
            .is_err()
        {
            if let Some(status) = receiver.child.try_wait()? {
                anyhow::bail!("the FastAPI receiver exited with {status} before it listened");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the FastAPI receiver did not listen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(receiver)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FastApiReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
