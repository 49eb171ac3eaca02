//! Counting requests where they land: kube-apiserver's audit log. A control plane started with
//! [`apiserver_flags`] writes one JSON line per request (level Metadata, at completion), and
//! [`AuditLog::read`] parses it into [`AuditEvent`]s that tests filter by who asked, what and
//! how it ended. The operator's own counters would miss what its HTTP client retried.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Deserialize;

/// One request only, at its end (`ResponseComplete`, or `Panic`): no `RequestReceived` or
/// `ResponseStarted` copies to de-duplicate. A watch shows up when it ends.
const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
";

/// kube-apiserver flags that write the audit log to `dir/audit.log` (the policy goes next to
/// it), and the log's path.
pub fn apiserver_flags(dir: &Path) -> (Vec<String>, PathBuf) {
    std::fs::create_dir_all(dir).expect("audit folder");
    let policy = dir.join("audit-policy.yaml");
    std::fs::write(&policy, POLICY).expect("audit policy");
    let log = dir.join("audit.log");
    let flags = vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", log.display()),
        "--audit-log-format=json".into(),
        // Written before the answer leaves, so a test that saw an answer finds its event.
        "--audit-log-mode=blocking".into(),
    ];
    (flags, log)
}

/// The fields of an `audit.k8s.io/v1` Event that tests count by.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub user: User,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    pub request_received_timestamp: Timestamp,
    pub stage_timestamp: Timestamp,
}

#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub username: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ObjectRef {
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub subresource: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: Option<u16>,
}

impl AuditEvent {
    /// The HTTP status answered (200 when the server recorded none, as it does for success).
    pub fn code(&self) -> u16 {
        self.response_status
            .as_ref()
            .and_then(|s| s.code)
            .unwrap_or(200)
    }

    pub fn resource(&self) -> Option<&str> {
        self.object_ref.as_ref()?.resource.as_deref()
    }

    pub fn subresource(&self) -> Option<&str> {
        self.object_ref.as_ref()?.subresource.as_deref()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object_ref.as_ref()?.namespace.as_deref()
    }

    pub fn name(&self) -> Option<&str> {
        self.object_ref.as_ref()?.name.as_deref()
    }

    /// A write: what costs etcd a revision when it succeeds.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// The parsed events of one audit log, in the order written.
#[derive(Clone, Debug, Default)]
pub struct AuditLog {
    pub events: Vec<AuditEvent>,
}

impl AuditLog {
    /// Every complete line of the log (a last one without its newline may still be being
    /// written).
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading the audit log {}: {e}", path.display()));
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        let events = complete
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("an audit event: {e}: {line}"))
            })
            .collect();
        Self { events }
    }

    /// The events that `keep` accepts.
    pub fn filter(&self, keep: impl Fn(&AuditEvent) -> bool) -> Self {
        Self {
            events: self.events.iter().filter(|e| keep(e)).cloned().collect(),
        }
    }

    /// Requests of one user (`admin`, `system:serviceaccount:NS:NAME`...).
    pub fn by_user(&self, username: &str) -> Self {
        self.filter(|e| e.user.username == username)
    }

    /// Requests on one resource (plural, e.g. `qodsessions`), any subresource.
    pub fn on_resource(&self, resource: &str) -> Self {
        self.filter(|e| e.resource() == Some(resource))
    }

    pub fn with_verb(&self, verb: &str) -> Self {
        self.filter(|e| e.verb == verb)
    }

    pub fn with_code(&self, code: u16) -> Self {
        self.filter(|e| e.code() == code)
    }

    /// Requests received at or after `since`.
    pub fn since(&self, since: Timestamp) -> Self {
        self.filter(|e| e.request_received_timestamp >= since)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Requests received in each whole second (by the server's clock), busiest first is not
    /// implied: in time order, from the first request's second to the last's.
    pub fn per_second(&self) -> Vec<usize> {
        let seconds: Vec<i64> = self
            .events
            .iter()
            .map(|e| e.request_received_timestamp.as_second())
            .collect();
        let (Some(first), Some(last)) = (seconds.iter().min(), seconds.iter().max()) else {
            return Vec::new();
        };
        let mut counts = vec![0; usize::try_from(last - first).unwrap() + 1];
        for second in &seconds {
            counts[usize::try_from(second - first).unwrap()] += 1;
        }
        counts
    }

    /// The most requests received in any one second.
    pub fn peak_per_second(&self) -> usize {
        self.per_second().into_iter().max().unwrap_or(0)
    }
}
