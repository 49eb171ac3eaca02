//! helm with a home of its own, scratch folders, and `helm template` output as JSON values.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

pub use qod_test_support::{
    command::{output, text},
    repo_root,
};
use qod_test_support::{test_dir, tools};
use serde_json::Value;

pub const RELEASE: &str = "qod";
pub const NAMESPACE: &str = "qod-system";
/// `<release>-<chart>`, as the chart names its objects for [`RELEASE`].
pub const FULLNAME: &str = "qod-qod-operator";

/// The least a real-provider install needs.
pub const MINIMAL: &[&str] = &[
    "--set",
    "provider.url=https://qod.example.com/quality-on-demand/v1",
    "--set",
    "webhook.publicUrl=https://qod-webhook.example.com",
];

pub fn chart() -> PathBuf {
    repo_root().join("charts/qod-operator")
}

pub fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/chart/values")
        .join(name)
        .display()
        .to_string()
}

pub fn chart_arg() -> String {
    chart().display().to_string()
}

/// A fresh, empty folder of its own, whichever test asks.
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    test_dir(&format!(
        "chart-{}-{name}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A helm command with its cache, config and data in `dir`, so tests never touch `$HOME`.
pub fn helm_command(dir: &Path) -> Command {
    helm_command_of(tools::helm(), dir)
}

/// [`helm_command`] with another helm binary (Helm 3).
pub fn helm_command_of(binary: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env("HOME", dir)
        .env("HELM_CACHE_HOME", dir.join("helm-cache"))
        .env("HELM_CONFIG_HOME", dir.join("helm-config"))
        .env("HELM_DATA_HOME", dir.join("helm-data"))
        .env_remove("KUBECONFIG");
    cmd
}

/// `helm template qod charts/qod-operator -n qod-system <args>`: the YAML, or helm's error.
pub fn template_raw(release: &str, namespace: &str, args: &[&str]) -> Result<String, String> {
    let dir = scratch("template");
    let out = output(
        helm_command(&dir)
            .args(["template", release])
            .arg(chart())
            .args(["--namespace", namespace])
            .args(args),
    );
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// Renders the chart (release `qod`, namespace `qod-system`) and parses every object.
pub fn render(args: &[&str]) -> Rendered {
    let yaml = template_raw(RELEASE, NAMESPACE, args)
        .unwrap_or_else(|e| panic!("helm template {args:?} failed:\n{e}"));
    Rendered::parse(&yaml)
}

/// Renders with values that must be refused; returns helm's error message.
pub fn refused(args: &[&str]) -> String {
    match template_raw(RELEASE, NAMESPACE, args) {
        Ok(_) => panic!("helm template {args:?} succeeded; expected it to be refused"),
        Err(e) => e,
    }
}

/// The objects of a `helm template` run.
pub struct Rendered {
    pub objects: Vec<Value>,
}

impl Rendered {
    pub fn parse(yaml: &str) -> Self {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
            .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"));
        Self {
            objects: docs.into_iter().filter(|d| !d.is_null()).collect(),
        }
    }

    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name}; rendered: {:?}", self.names()))
    }

    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// `Kind/name` of every object, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .objects
            .iter()
            .map(|o| format!("{}/{}", str(o, "/kind"), str(o, "/metadata/name")))
            .collect();
        names.sort();
        names
    }

    /// The operator Deployment's only container.
    pub fn operator(&self) -> &Value {
        container(self.get("Deployment", FULLNAME))
    }

    /// The operator's command-line arguments.
    pub fn args(&self) -> Vec<String> {
        strings(&self.operator()["args"])
    }
}

pub fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container per pod");
    &containers[0]
}

/// The string at a JSON pointer; fails the test naming the pointer when absent.
pub fn str<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v:#}"))
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// An RBAC rule as (apiGroups, resources, resourceNames, verbs), for exact comparisons.
pub type Rule = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

pub fn rules(role: &Value) -> Vec<Rule> {
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let list = |key: &str| {
                if r[key].is_null() {
                    Vec::new()
                } else {
                    strings(&r[key])
                }
            };
            (
                list("apiGroups"),
                list("resources"),
                list("resourceNames"),
                list("verbs"),
            )
        })
        .collect()
}

pub fn rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Rule {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    (own(groups), own(resources), own(names), own(verbs))
}
