//! `qod-bench`: benchmarks of qod-operator that print figures (BENCHMARKS.md has the commands and
//! the results). The operator runs as its own release process (`qod-operator run`, found next to
//! this binary), so its CPU time and memory are its own; so does the real Kubernetes control plane
//! (tests/control-plane: kube-apiserver and etcd). The QoD simulator and the load generators run
//! in this process.
//!
//! Scenarios: `reconcile` (sessions applied at once until AVAILABLE, then deleted), `webhook`
//! (notifications over concurrent connections, each ending in a status write),
//! `webhook-vs-limit` (the same against a minimal client's status writes), `webhook-vs-fastapi`
//! (the same against the FastAPI receiver of tests/bench/anchors), `reconcile-vs-floor`
//! (the operator's time to AVAILABLE against a minimal client's creates and status writes),
//! `startup` (process start to `/readyz`, against a new client listing the same sessions),
//! `memory` (idle, then with sessions). Not run in CI.

mod anchor;
mod cpu;
mod limit;
mod operator;
mod scenarios;
mod world;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of qod-operator (see BENCHMARKS.md)")]
struct Cli {
    /// The operator binary; default: `qod-operator` next to this binary (build it with
    /// `cargo build --release -p qod-operator`).
    #[arg(long, global = true)]
    operator: Option<std::path::PathBuf>,
    /// Extra arguments for `qod-operator run` (e.g. `--concurrency=64`).
    #[arg(long = "operator-arg", global = true, allow_hyphen_values = true)]
    operator_args: Vec<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N QodSessions created at once: seconds until all are AVAILABLE, then until all are
    /// deleted at the provider; the operator's CPU time and peak RSS.
    Reconcile {
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
    },
    /// The operator against the floor the API server sets: time until N QodSessions are
    /// AVAILABLE against a minimal client creating N and writing one status to each; the
    /// operator's API writes per session, counted by the API server.
    ReconcileVsFloor {
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
    },
    /// Notifications over concurrent connections, each ending in a status write.
    Webhook {
        #[arg(long, default_value_t = 50_000)]
        notifications: usize,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// QodSessions the notifications are spread over.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
    },
    /// The webhook against the floor the API server sets: the same status writes by a minimal
    /// client (one watch, server-side apply with resourceVersion), one after the other.
    WebhookVsLimit {
        #[arg(long, default_value_t = 20_000)]
        notifications: usize,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
    },
    /// The webhook against the FastAPI anchor (tests/bench/anchors): the same notifications to
    /// a FastAPI receiver that parses and checks the token only, then to the webhook, which
    /// also writes each to the API server.
    WebhookVsFastapi {
        #[arg(long, default_value_t = 20_000)]
        notifications: usize,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// The venv tests/bench/anchors/install.sh made; default: `fastapi-anchor` in the
        /// target folder this binary is in.
        #[arg(long)]
        venv: Option<std::path::PathBuf>,
    },
    /// Process start to `/readyz` OK, several runs, each followed by a new client listing the
    /// same QodSessions (the floor); prints `startup/list ratio`.
    Startup {
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// QodSessions in the API, listed before `/readyz` answers.
        #[arg(long, default_value_t = 10)]
        sessions: usize,
    },
    /// Peak RSS idle, then with each number of sessions (AVAILABLE).
    Memory {
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        sessions: Vec<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let binary = match cli.operator {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow::anyhow!("this binary has no folder"))?
            .join("qod-operator"),
    };
    anyhow::ensure!(
        binary.is_file(),
        "{} not found: run `cargo build --release -p qod-operator` first (or pass --operator)",
        binary.display()
    );
    let setup = world::Setup {
        binary,
        extra_args: cli.operator_args,
    };
    println!(
        "machine: {} cores ({}), operator {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        world::cpu_model(),
        setup.binary.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.scenario {
            Scenario::Reconcile { sessions } => scenarios::reconcile(&setup, sessions).await,
            Scenario::Webhook {
                notifications,
                connections,
                sessions,
            } => scenarios::webhook(&setup, notifications, connections, sessions).await,
            Scenario::ReconcileVsFloor { sessions } => {
                scenarios::reconcile_vs_floor(&setup, sessions).await
            }
            Scenario::WebhookVsLimit {
                notifications,
                connections,
                sessions,
            } => scenarios::webhook_vs_limit(&setup, notifications, connections, sessions).await,
            Scenario::WebhookVsFastapi {
                notifications,
                connections,
                sessions,
                venv,
            } => {
                let venv = match venv {
                    Some(venv) => venv,
                    None => anchor::default_venv()?,
                };
                scenarios::webhook_vs_fastapi(&setup, &venv, notifications, connections, sessions)
                    .await
            }
            Scenario::Startup { runs, sessions } => {
                scenarios::startup(&setup, runs, sessions).await
            }
            Scenario::Memory { sessions } => scenarios::memory(&setup, &sessions).await,
        }
    })
}
