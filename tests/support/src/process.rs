//! Processes a test starts (the operator, the simulator, a chart container's command): output
//! appended to a log file, so the log of every incarnation survives; killed when dropped, however
//! the test ends.

use std::{
    fs::OpenOptions,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use crate::eventually;

pub struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdin closed and stdout and stderr appended to `log`.
    pub fn start(mut cmd: Command, log: &Path) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("a second handle of the log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        Self {
            child,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running (it has not exited for any reason).
    pub fn running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("the process's state")
            .is_none()
    }

    /// Fails the test, with the log, when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("the process's state") {
            panic!(
                "{} exited with {status}:\n{}",
                self.log.display(),
                self.log()
            );
        }
    }

    /// Waits until `GET url` answers 2xx; fails the test at once, with the log, when the
    /// process exits first.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, url: &str, within: Duration) {
        eventually(url, within, || {
            self.assert_running();
            let ready = http.get(url).timeout(Duration::from_secs(2)).send();
            async move {
                ready
                    .await
                    .is_ok_and(|r| r.status().is_success())
                    .then_some(())
            }
        })
        .await;
    }

    /// SIGKILL: no chance to finish or release anything.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("the killed process reaped");
    }

    /// SIGTERM, then waits up to `within` for the exit; returns how the process exited.
    pub async fn terminate(&mut self, what: &str, within: Duration) -> ExitStatus {
        signal(self.pid(), "TERM");
        eventually(&format!("{what} to exit after SIGTERM"), within, || {
            let status = self.child.try_wait().expect("the process's state");
            async move { status }
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kill -<signal> <pid>`; fails the test unless the signal was sent.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `VmHWM`...).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
