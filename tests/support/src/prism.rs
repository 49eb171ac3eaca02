//! Prism serving (mock) or guarding (proxy) an official CAMARA OpenAPI file, behind a small
//! recording front. Prism validates every request against the spec and every response; it
//! reports violations in the `sl-violations` header (or, with `--errors`, answers with its own
//! `prism/errors` problem). The front records the ones that judge the code under test: as a mock,
//! the requests only (the answers are Prism's own inventions); as a proxy, both directions.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Body, extract::State, http::Request, response::Response};

use crate::{net::free_port, paths::tmp_dir, tools};

pub struct Prism {
    child: Child,
    front: SocketAddr,
    violations: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
    front_task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Front {
    prism: String,
    http: reqwest::Client,
    violations: Arc<Mutex<Vec<String>>>,
    judged: Judged,
}

/// Which side of the exchange is under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Judged {
    Requests,
    RequestsAndResponses,
}

impl Prism {
    /// `prism mock <spec>`: answers from the spec's examples; judges the requests it gets.
    pub async fn mock(spec: &Path) -> Self {
        Self::start(&["mock".as_ref(), spec.as_os_str()], Judged::Requests).await
    }

    /// `prism proxy --errors <spec> <upstream>`: forwards to `upstream`, judging both ways.
    pub async fn proxy(spec: &Path, upstream: &str) -> Self {
        Self::start(
            &[
                "proxy".as_ref(),
                spec.as_os_str(),
                upstream.as_ref(),
                "--errors".as_ref(),
            ],
            Judged::RequestsAndResponses,
        )
        .await
    }

    async fn start(args: &[&std::ffi::OsStr], judged: Judged) -> Self {
        let port = free_port();
        let log = tmp_dir().join(format!("prism-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("create prism log");
        let child = Command::new(tools::prism())
            .args(args)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .expect("start prism");
        let mut prism = Self::with_front(child, port, log, judged).await;
        prism.wait_ready(port).await;
        prism
    }

    async fn with_front(child: Child, port: u16, log: PathBuf, judged: Judged) -> Self {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let front = Front {
            prism: format!("http://127.0.0.1:{port}"),
            http: crate::http::client(),
            violations: violations.clone(),
            judged,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind front");
        let addr = listener.local_addr().expect("front address");
        let app = axum::Router::new().fallback(forward).with_state(front);
        let front_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            child,
            front: addr,
            violations,
            log,
            front_task,
        }
    }

    async fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prism exited ({status}):\n{}", self.log_text());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prism not listening after 90 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The base URL to point a client at (the recording front).
    pub fn url(&self) -> String {
        format!("http://{}", self.front)
    }

    /// Every violation Prism reported so far, as `METHOD path: details`.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("violations lock").clone()
    }

    /// Fails the test with every violation and Prism's log when there was any.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "Prism found {} violation(s):\n{}\n--- prism log ---\n{}",
            violations.len(),
            violations.join("\n"),
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        self.front_task.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn forward(State(front): State<Front>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let what = format!("{} {}", parts.method, parts.uri);
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("read request body");
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = front
        .http
        .request(parts.method, format!("{}{path}", front.prism))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.expect("prism answered");
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.expect("prism body");
    if let Some(found) = headers.get("sl-violations") {
        let found: Vec<serde_json::Value> =
            serde_json::from_slice(found.as_bytes()).expect("sl-violations is a JSON array");
        for violation in found {
            let side = violation.pointer("/location/0").and_then(|v| v.as_str());
            if side == Some("request") || front.judged == Judged::RequestsAndResponses {
                record(&front, &what, &violation.to_string());
            }
        }
    }
    if headers
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"application/problem+json"))
        && String::from_utf8_lossy(&bytes).contains("stoplight.io/prism/errors")
    {
        record(&front, &what, &String::from_utf8_lossy(&bytes));
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(bytes)).expect("response")
}

fn record(front: &Front, what: &str, details: &str) {
    front
        .violations
        .lock()
        .expect("violations lock")
        .push(format!("{what}: {details}"));
}
