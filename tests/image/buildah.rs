//! buildah on the repository's own storage (`<target>/container/`, where tests/image/build keeps
//! it): the image, built once per test binary, and working containers made from it. Everything
//! runs with chroot isolation, which needs no daemon and no user namespace.

use std::{
    io::Write,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::Duration,
};

use qod_test_support::{
    command, eventually,
    paths::{repo_root, tmp_dir},
    process::signal,
};
use serde_json::Value;

/// The image built by tests/image/build.
pub struct Image {
    /// `localhost/qod-operator:<version>`.
    pub name: String,
    store: PathBuf,
}

/// The target folder this test binary was built in (its tmp folder is `<target>/tmp`).
fn target_dir() -> PathBuf {
    tmp_dir()
        .parent()
        .expect("the target's tmp folder has a parent")
        .to_path_buf()
}

/// The image, built on first use (minutes when the `image` profile is cold), or `None` with a
/// SKIPPED note on stderr where buildah is absent. Blocks: call it off the async runtime.
pub fn image(test: &str) -> Option<&'static Image> {
    let found = Command::new("buildah")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        // Straight to stderr, not through the test harness's capture: seen in a passing run too.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: buildah not found (run tests/install-buildah.sh, as .ci/run does: \
             Debian's buildah)"
        );
        return None;
    }
    static IMAGE: OnceLock<Image> = OnceLock::new();
    Some(IMAGE.get_or_init(build))
}

fn build() -> Image {
    let script = repo_root().join("tests/image/build");
    let target = target_dir();
    let out = command::output(
        Command::new(&script)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(repo_root()),
    );
    let name = command::succeeded(&script.display().to_string(), &out)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(
        name.starts_with("localhost/qod-operator:"),
        "the script names the image: {name:?}"
    );
    Image {
        name,
        store: target.join("container"),
    }
}

impl Image {
    /// `buildah` with this storage; `args` follow the global flags.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.arg("--root")
            .arg(self.store.join("storage"))
            .arg("--runroot")
            .arg(self.store.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn output(&self, args: &[&str]) -> Output {
        command::output(&mut self.command(args))
    }

    /// Runs buildah; fails the test with its output unless it succeeds. Returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        command::succeeded(&format!("buildah {}", args.join(" ")), &self.output(args))
    }

    /// `buildah inspect --type image`: `OCIv1` (the configuration) and `Manifest` (a JSON string).
    pub fn inspect(&self) -> Value {
        serde_json::from_str(&self.ok(&["inspect", "--type", "image", &self.name])).unwrap()
    }

    /// A working container of this image named `name` (one left by an earlier run is removed
    /// first); removed when dropped.
    pub fn container(&'static self, name: &str) -> Container {
        let _ = self.output(&["rm", name]);
        self.ok(&["from", "--name", name, &self.name]);
        Container {
            image: self,
            name: name.to_owned(),
        }
    }
}

pub struct Container {
    image: &'static Image,
    pub name: String,
}

impl Container {
    /// The container's root filesystem on this machine (vfs: a plain folder).
    pub fn mount(&self) -> PathBuf {
        PathBuf::from(self.image.ok(&["mount", &self.name]).trim())
    }

    /// `buildah run` of `command` inside the container, as the image's user; waits for it.
    pub fn run(&self, command: &[&str]) -> Output {
        let mut args = vec!["run", "--isolation", "chroot", &self.name, "--"];
        args.extend_from_slice(command);
        self.image.output(&args)
    }

    /// `buildah run <run_flags> <container> -- <command>` in the background, stdout and stderr
    /// into `log`, in a process group of its own (buildah, its chroot helpers and the command).
    pub fn spawn(&self, run_flags: &[String], command: &[String], log: &Path) -> Running {
        let log = std::fs::File::create(log).unwrap();
        let mut args = vec!["run".to_owned(), "--isolation".into(), "chroot".into()];
        args.extend_from_slice(run_flags);
        args.push(self.name.clone());
        args.push("--".into());
        args.extend_from_slice(command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = self
            .image
            .command(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run buildah run: {e}"));
        Running { child }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.image.output(&["rm", &self.name]);
    }
}

/// A command running in a container through `buildah run`.
pub struct Running {
    child: Child,
}

impl Running {
    /// SIGTERM to the command's process `pid` (as a container runtime sends it to a container's
    /// process; SIGTERM to buildah would SIGKILL the command), then waits for buildah to exit;
    /// returns whether it exited successfully (buildah exits with the command's status).
    pub async fn terminate(&mut self, pid: u32) -> bool {
        signal(pid, "TERM");
        eventually(
            "buildah run to exit after SIGTERM",
            Duration::from_secs(30),
            || {
                let status = self.child.try_wait().unwrap();
                async move { status }
            },
        )
        .await
        .success()
    }
}

impl Drop for Running {
    /// SIGKILL to the whole group: buildah alone would leave the command running.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
