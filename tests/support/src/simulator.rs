//! The QoD simulator for tests: in this process ([`Sim::start`]) or as its own process
//! ([`SimProcess`]), and [`Sim`], its test-control API (`/_sim/...`) wherever it runs, with
//! readers of its `/_sim/stats`.

use std::{ffi::OsStr, path::Path, process::Command, time::Duration};

use qod_operator::simulator::{self, RunningSimulator};
use serde_json::Value;

use crate::{eventually, process::Process};

/// How long the simulator may take to answer its health check.
const WAIT: Duration = Duration::from_secs(30);

/// The simulator's test-control API, wherever the simulator runs.
#[derive(Clone)]
pub struct Sim {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub http: reqwest::Client,
}

impl Sim {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: crate::http::client(),
        }
    }

    /// The control API of an in-process simulator.
    pub fn of(running: &RunningSimulator) -> Self {
        Self::new(running.base_url())
    }

    /// An in-process simulator with `config`, and its control API.
    pub async fn start(config: simulator::SimulatorConfig) -> (RunningSimulator, Sim) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let running = simulator::spawn(listener, config)
            .await
            .expect("the simulator starts");
        let sim = Sim::of(&running);
        (running, sim)
    }

    /// The base URL the operator's `--provider-url` takes.
    pub fn provider_url(&self) -> String {
        format!("{}/quality-on-demand/v1", self.base)
    }

    /// Sends a control request; fails the test unless it answers 2xx.
    async fn call(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the simulator's control API answers 2xx")
    }

    pub async fn get(&self, path: &str) -> Value {
        let answer = self.call(self.http.get(format!("{}{path}", self.base)));
        answer.await.json().await.expect("a JSON answer")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Value {
        let answer = self.call(self.http.put(format!("{}{path}", self.base)).json(body));
        answer.await.json().await.expect("a JSON answer")
    }

    pub async fn post(&self, path: &str) {
        self.call(self.http.post(format!("{}{path}", self.base)))
            .await;
    }

    /// The network ends the session `id` (`POST /_sim/sessions/{id}/terminate`).
    pub async fn terminate(&self, id: &str) {
        self.post(&format!("/_sim/sessions/{id}/terminate")).await;
    }

    /// Waits until the simulator answers its health check.
    pub async fn wait_up(&self) {
        eventually("the simulator to answer", WAIT, || async {
            let answer = self.http.get(format!("{}/healthz", self.base)).send().await;
            answer.is_ok_and(|a| a.status().is_success()).then_some(())
        })
        .await;
    }

    /// `PUT /_sim/faults`.
    pub async fn faults(&self, faults: Value) {
        self.put("/_sim/faults", &faults).await;
    }

    /// Live sessions (and the removed ones with `removed`).
    pub async fn sessions(&self, removed: bool) -> Vec<Value> {
        let path = if removed {
            "/_sim/sessions?removed=true"
        } else {
            "/_sim/sessions"
        };
        serde_json::from_value(self.get(path).await).expect("a list of sessions")
    }

    /// The live session `id`; fails the test when there is none.
    pub async fn session(&self, id: &str) -> Value {
        self.sessions(false)
            .await
            .into_iter()
            .find(|s| s["sessionId"] == id)
            .unwrap_or_else(|| panic!("no session {id} at the simulator"))
    }

    /// The live sessions whose sink names the resource `uid`.
    pub async fn sessions_of(&self, uid: &str) -> Vec<Value> {
        sessions_of(&self.sessions(false).await, uid)
    }

    /// The counters (`GET /_sim/stats`).
    pub async fn stats(&self) -> Value {
        self.get("/_sim/stats").await
    }

    /// Every API request counted so far, all operations and statuses.
    pub async fn api_calls(&self) -> u64 {
        total_calls(&self.stats().await)
    }
}

/// An in-process simulator that answers AVAILABLE 200 ms after a create, and its control API.
pub async fn in_process_simulator() -> (RunningSimulator, Sim) {
    Sim::start(simulator::SimulatorConfig {
        available_after: Duration::from_millis(200),
        ..simulator::SimulatorConfig::default()
    })
    .await
}

/// `qod-operator simulator` as its own process: its log is its own (`simulator.log`, appended
/// to by every incarnation), and it can be SIGKILLed and started again on the same port, as a
/// provider that goes down.
pub struct SimProcess(Process);

impl SimProcess {
    /// Starts `binary simulator` on 127.0.0.1:`port`, answering AVAILABLE 200 ms after a create
    /// and logging at debug level, with `args` added; waits until it answers.
    pub async fn start<I, S>(
        binary: impl AsRef<Path>,
        dir: &Path,
        port: u16,
        args: I,
    ) -> (Self, Sim)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(binary.as_ref());
        cmd.arg("simulator")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--available-after", "200ms"])
            .args(args)
            .env("RUST_LOG", "debug");
        let process = Self(Process::start(cmd, &dir.join("simulator.log")));
        let sim = Sim::new(format!("http://127.0.0.1:{port}"));
        sim.wait_up().await;
        (process, sim)
    }

    /// SIGKILL: the port is closed at once (connections refused), and the sessions it held are
    /// gone with it.
    pub fn kill(&mut self) {
        self.0.kill();
    }
}

/// Calls the provider answered for `operation` (`create`, `get`, `delete`, `extend`,
/// `retrieve_sessions`), whatever the status.
pub fn provider_calls(stats: &Value, operation: &str) -> u64 {
    stats["apiRequests"][operation]
        .as_object()
        .map_or(0, |by_status| {
            by_status.values().filter_map(Value::as_u64).sum()
        })
}

/// The sum of `apiRequests` in a stats snapshot.
pub fn total_calls(stats: &Value) -> u64 {
    stats["apiRequests"]
        .as_object()
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter_map(Value::as_object)
        .flat_map(|codes| codes.values())
        .filter_map(Value::as_u64)
        .sum()
}

/// The API requests made between two stats snapshots, by operation and status (those with
/// none left out), to tell what a count of calls was made of.
pub fn calls_between(before: &Value, after: &Value) -> Value {
    let mut made = serde_json::Map::new();
    for (operation, codes) in after["apiRequests"].as_object().into_iter().flatten() {
        for (code, count) in codes.as_object().into_iter().flatten() {
            let earlier = before["apiRequests"][operation][code].as_u64().unwrap_or(0);
            let new = count.as_u64().unwrap_or(0).saturating_sub(earlier);
            if new > 0 {
                made.insert(format!("{operation} {code}"), new.into());
            }
        }
    }
    Value::Object(made)
}

/// The resource uid a provider session's sink names (`.../notifications/<uid>`).
pub fn sink_uid(session: &Value) -> Option<&str> {
    let (_, uid) = session["sink"].as_str()?.rsplit_once("/notifications/")?;
    Some(uid)
}

/// Whether the simulator has the sink's answer (or its final failure) for every delivery of
/// `session`: the sink and the status a webhook wrote show an event before that.
pub fn deliveries_answered(session: &Value) -> bool {
    session["deliveries"]
        .as_array()
        .is_some_and(|deliveries| deliveries.iter().all(|d| d["outcome"] != "pending"))
}

/// The sessions of `sessions` whose sink names the resource `uid`.
pub fn sessions_of(sessions: &[Value], uid: &str) -> Vec<Value> {
    sessions
        .iter()
        .filter(|s| s["sink"].as_str().is_some_and(|sink| sink.ends_with(uid)))
        .cloned()
        .collect()
}
