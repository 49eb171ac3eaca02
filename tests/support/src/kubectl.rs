//! kubectl 1.35 ([`tools::kubectl`]) against a kubeconfig, run from the repository's root (so
//! manifests are named as in the docs: `deploy/crds/`) and off the async runtime's threads.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::{
    command::{self, text},
    paths::repo_root,
    tools,
};

pub struct Kubectl {
    kubeconfig: PathBuf,
    /// kubectl's cache folder goes here instead of the user's home when set.
    home: Option<PathBuf>,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: kubeconfig.to_owned(),
            home: None,
        }
    }

    /// With `HOME` (and so kubectl's cache) in `home`.
    pub fn home(mut self, home: &Path) -> Self {
        self.home = Some(home.to_owned());
        self
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tools::kubectl());
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .current_dir(repo_root());
        if let Some(home) = &self.home {
            cmd.env("HOME", home);
        }
        cmd
    }

    /// What kubectl did, success or not.
    pub async fn output(&self, args: &[&str]) -> Output {
        command::output_off_runtime(self.command(args)).await
    }

    /// Runs kubectl; fails the test (with kubectl's output) unless it succeeds. Returns stdout.
    pub async fn run(&self, args: &[&str]) -> String {
        let out = self.output(args).await;
        command::succeeded(&format!("kubectl {}", args.join(" ")), &out)
    }

    /// kubectl's stderr, for commands that must fail; fails the test when one succeeds.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args).await;
        assert!(
            !out.status.success(),
            "kubectl {} succeeded:\n{}",
            args.join(" "),
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// Waits (`kubectl wait`, 30 s) until the API server serves each CRD of `crds`
    /// (`crd/<plural>.<group>`).
    pub async fn wait_established(&self, crds: &[&str]) {
        let mut args = vec!["wait", "--for=condition=established"];
        args.extend_from_slice(crds);
        args.push("--timeout=30s");
        self.run(&args).await;
    }
}
