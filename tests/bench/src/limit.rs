//! The floor the API server sets: a minimal client with no operator logic that does only what
//! any correct operator must, holding one watch on QodSessions and writing status by
//! server-side apply with a resourceVersion precondition (the newest version it knows, from
//! the watch or from its own last write; after a conflict it reads the resource and tries
//! again). The operator's figures are divided by this client's, measured in the same run.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, reflector, watcher},
};
use qod_operator::api::QodSession;
use serde_json::{Value, json};

const MANAGER: &str = "qod-bench-limit";

pub struct MinimalClient {
    api: Api<QodSession>,
    namespace: String,
    store: reflector::Store<QodSession>,
    watch: tokio::task::JoinHandle<()>,
    /// The resourceVersion each of our writes returned, by name.
    written: Mutex<HashMap<String, String>>,
    /// Writes refused for an older resourceVersion, then read and tried again.
    pub conflicts: AtomicUsize,
}

impl MinimalClient {
    /// Starts the watch and waits for its first list.
    pub async fn start(api: Api<QodSession>, namespace: &str) -> anyhow::Result<Arc<Self>> {
        let (store, writer) = reflector::store();
        let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
            .applied_objects()
            .boxed();
        let watch = tokio::spawn(stream.for_each(|_| async {}));
        store
            .wait_until_ready()
            .await
            .context("the minimal client's watch never listed")?;
        Ok(Arc::new(Self {
            api,
            namespace: namespace.to_owned(),
            store,
            watch,
            written: Mutex::new(HashMap::new()),
            conflicts: AtomicUsize::new(0),
        }))
    }

    /// The newest resourceVersion we know of `name`: `known` (such as the create's answer),
    /// the watch's copy or our own last write.
    fn newest_version(&self, name: &str, known: Option<String>) -> Option<String> {
        let watched = self
            .store
            .get(&reflector::ObjectRef::new(name).within(&self.namespace))
            .and_then(|s| s.resource_version());
        let written = self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        let number = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<u64>().ok());
        [known, written, watched]
            .into_iter()
            .max_by_key(number)
            .flatten()
    }

    /// Applies `status` to `name`'s status with the newest resourceVersion known as the
    /// precondition; on a conflict reads the resource and tries again.
    pub async fn write_status(
        &self,
        name: &str,
        known: Option<String>,
        status: &Value,
    ) -> anyhow::Result<()> {
        let mut version = self.newest_version(name, known);
        for _ in 0..8 {
            let body = json!({
                "apiVersion": "qod.dev/v1alpha1",
                "kind": "QodSession",
                "metadata": {"name": name, "resourceVersion": version},
                "status": status,
            });
            match self
                .api
                .patch_status(
                    name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(body),
                )
                .await
            {
                Ok(stored) => {
                    if let Some(written) = stored.resource_version() {
                        self.written
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(name.to_owned(), written);
                    }
                    return Ok(());
                }
                Err(kube::Error::Api(refused)) if refused.code == 409 => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    version = self.api.get(name).await?.resource_version();
                }
                Err(error) => return Err(error.into()),
            }
        }
        anyhow::bail!("{name}: eight conflicts in a row")
    }
}

impl Drop for MinimalClient {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// What a notification's status write carries: a new event each time, so every write changes
/// the resource.
pub fn notified_status() -> Value {
    json!({
        "qosStatus": "AVAILABLE",
        "lastNotification": {
            "id": uuid::Uuid::new_v4().to_string(),
            "source": "http://bench/limit",
            "time": jiff::Timestamp::now().to_string(),
        },
    })
}

/// Latencies of a load run, sorted, with its wall time and failures.
pub struct Load {
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub failed: usize,
}

impl Load {
    pub fn new(elapsed: Duration, mut latencies: Vec<Duration>, failed: usize) -> Self {
        latencies.sort();
        Self {
            elapsed,
            latencies,
            failed,
        }
    }

    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile (0..1) in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1].as_secs_f64() * 1000.0
    }

    pub fn summary(&self) -> String {
        format!(
            "{} in {:.2} s: {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} failed",
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.ms(0.50),
            self.ms(0.99),
            self.ms(1.0),
            self.failed
        )
    }
}

/// `writes` status writes over `writers` concurrent writers, each writing its own resources of
/// `names` in turn (as a provider notifies one session at a time).
pub async fn write_statuses(
    client: &Arc<MinimalClient>,
    names: &[String],
    writers: usize,
    writes: usize,
) -> anyhow::Result<Load> {
    let mut dealt: Vec<Vec<String>> = vec![Vec::new(); writers];
    for (i, name) in names.iter().enumerate() {
        dealt[i % writers].push(name.clone());
    }
    let per_writer = writes / writers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mine in dealt {
        let client = Arc::clone(client);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            let mut failed = 0;
            for n in 0..per_writer {
                let sent = Instant::now();
                match client
                    .write_status(&mine[n % mine.len()], None, &notified_status())
                    .await
                {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(_) => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for task in tasks {
        let (mine, bad) = task.await?;
        latencies.extend(mine);
        failed += bad;
    }
    Ok(Load::new(start.elapsed(), latencies, failed))
}

/// Requests the API server has counted (all clients), from its `/metrics`
/// (`apiserver_request_total`), by (resource, verb, code).
#[derive(Clone, Debug, Default)]
pub struct ApiRequests(BTreeMap<(String, String, String), f64>);

impl ApiRequests {
    pub async fn read(client: &kube::Client) -> anyhow::Result<Self> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let text = client.request_text(request).await?;
        let mut counted = BTreeMap::new();
        for line in text.lines() {
            let Some(series) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = series.rsplit_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix("=\""))
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut resource = label("resource");
            let subresource = label("subresource");
            if !subresource.is_empty() {
                resource = format!("{resource}/{subresource}");
            }
            *counted
                .entry((resource, label("verb"), label("code")))
                .or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
        }
        Ok(Self(counted))
    }

    /// What was counted after `before`.
    pub fn since(&self, before: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(key, n)| (key.clone(), n - before.0.get(key).copied().unwrap_or(0.0)))
                .filter(|(_, n)| *n > 0.0)
                .collect(),
        )
    }

    /// Requests that wrote a QodSession or its status (POST, PUT, PATCH, APPLY, DELETE).
    pub fn session_writes(&self) -> f64 {
        self.sum(|resource, verb, _| {
            resource.starts_with("qodsessions")
                && matches!(verb, "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE")
        })
    }

    /// Of those, the ones refused for an older resourceVersion (409).
    pub fn session_conflicts(&self) -> f64 {
        self.sum(|resource, verb, code| {
            resource.starts_with("qodsessions")
                && matches!(verb, "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE")
                && code == "409"
        })
    }

    fn sum(&self, mut which: impl FnMut(&str, &str, &str) -> bool) -> f64 {
        self.0
            .iter()
            .filter(|((resource, verb, code), _)| which(resource, verb, code))
            .map(|(_, n)| n)
            // Not `sum()`: an empty sum of floats is -0.
            .fold(0.0, |total, n| total + n)
    }

    /// One line per resource and verb, largest first.
    pub fn breakdown(&self) -> String {
        let mut by: BTreeMap<(String, String), f64> = BTreeMap::new();
        for ((resource, verb, _), n) in &self.0 {
            *by.entry((resource.clone(), verb.clone())).or_default() += n;
        }
        let mut rows: Vec<_> = by.into_iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        rows.iter()
            .map(|((resource, verb), n)| format!("{verb} {resource} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
