//! The `qod-operator` command line: parses arguments, sets up logging and hands over to the
//! library. Every flag can also be given as an environment variable `QOD_<FLAG_IN_CAPS>`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use qod_operator::{
    config::{ControllerArgs, ProviderArgs},
    leader::LeaderArgs,
    operator::{self, RunArgs},
    telemetry::{self, LogFormat},
    webhook::args::WebhookArgs,
};
use tokio_util::sync::CancellationToken;

/// Kubernetes operator for CAMARA Quality-on-Demand (QoD) sessions.
#[derive(Parser)]
#[command(name = "qod-operator", version, about, long_about = None)]
struct Cli {
    /// Shape of log lines; the level comes from RUST_LOG (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "QOD_LOG_FORMAT")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: the QodSession controller, the notification webhook, and /healthz,
    /// /readyz and /metrics.
    Run(Box<RunCommand>),
    /// Serve an in-memory QoD provider (CAMARA QoD v1, v0.11 and v0.10 paths, Nokia Network as
    /// Code behaviour, an OAuth2 token endpoint and test control under /_sim/).
    #[cfg(feature = "simulator")]
    Simulator(Box<simulator_command::SimulatorArgs>),
    /// Print the CustomResourceDefinitions (QodSession, QodProvider, ClusterQodProvider,
    /// QosProfile) as one multi-document YAML stream, or write one file each (what deploy/crds/
    /// holds).
    Crd {
        /// Write `<name>.yaml` per CRD into this folder instead of printing them.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunCommand {
    #[command(flatten)]
    provider: ProviderArgs,
    #[command(flatten)]
    controller: ControllerArgs,
    #[command(flatten)]
    webhook: WebhookArgs,
    #[command(flatten)]
    leader: LeaderArgs,
}

// jemalloc instead of glibc's malloc: the cache's many small, long-lived allocations fragment
// glibc's arenas; with 10,000 sessions the operator's peak RSS drops from 78.5 to 63.7 MiB
// (BENCHMARKS.md, "Fifth look"). mimalloc measured no better than glibc.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    qod_operator::tls::install_crypto_provider();
    if let Err(error) = telemetry::init(cli.log_format) {
        eprintln!("qod-operator: {}", telemetry::error_chain(&error));
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(args) => run_operator(*args).await,
        #[cfg(feature = "simulator")]
        Command::Simulator(args) => simulator_command::run(*args).await,
        Command::Crd { out_dir } => print_crds(out_dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %telemetry::error_chain(error.as_ref()), "qod-operator failed");
            ExitCode::FAILURE
        }
    }
}

async fn run_operator(args: RunCommand) -> Result<(), Box<dyn std::error::Error>> {
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        on_signal.cancel();
    });
    let args = RunArgs {
        provider: args.provider,
        controller: args.controller,
        webhook: args.webhook,
        leader: args.leader,
    };
    Ok(operator::run(args, shutdown).await?)
}

fn print_crds(out_dir: Option<&std::path::Path>) -> Result<(), Box<dyn std::error::Error>> {
    use qod_operator::api;
    let Some(dir) = out_dir else {
        print!("{}", api::crds_yaml()?);
        return Ok(());
    };
    for crd in api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, api::crd_yaml(&crd)?)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `qod-operator simulator`, in builds with the `simulator` feature (the default).
#[cfg(feature = "simulator")]
mod simulator_command {
    use std::{net::SocketAddr, path::PathBuf, time::Duration};

    use clap::Args;
    use qod_operator::{
        qod::event::NotificationFormat,
        simulator::{self, ClientCredentials, RetryPolicy},
    };

    #[derive(Args)]
    pub struct SimulatorArgs {
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:9091", env = "QOD_LISTEN")]
        listen: SocketAddr,

        /// How long a new session stays REQUESTED before it becomes AVAILABLE (humantime, e.g.
        /// 500ms, 2s); 0 answers AVAILABLE in the 201 already.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, env = "QOD_AVAILABLE_AFTER")]
        available_after: Duration,

        /// Notification format for every session: v1, v0.11, v0.10 or nac (Nokia's hybrid).
        /// Without it each session gets its path's format: v1 on /quality-on-demand/v1, v0.11 on
        /// /quality-on-demand/v0.11, v0.10 on /qod/v0 (nac for Network-as-Code clients there).
        #[arg(long, value_parser = simulator::parse_notification_format, env = "QOD_NOTIFICATION_FORMAT")]
        notification_format: Option<NotificationFormat>,

        /// Lifetime of access tokens issued by POST /oauth/token (humantime).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, env = "QOD_TOKEN_TTL")]
        token_ttl: Duration,

        /// Refuse API calls without credentials (401). Without it, calls with no Authorization
        /// header are accepted; a bearer token, when sent, is always checked.
        #[arg(long, env = "QOD_REQUIRE_AUTH")]
        require_auth: bool,

        /// File holding a static bearer token that API calls may use besides issued tokens.
        #[arg(long, env = "QOD_BEARER_TOKEN_FILE")]
        bearer_token_file: Option<PathBuf>,

        /// Client id the token endpoint accepts (needs --client-secret-file). Without it, any
        /// client gets a token.
        #[arg(long, requires = "client_secret_file", env = "QOD_CLIENT_ID")]
        client_id: Option<String>,

        /// File holding the client secret for --client-id; re-read while running (a rotated Secret
        /// takes effect without a restart, and the old secret is refused from then on).
        #[arg(long, requires = "client_id", env = "QOD_CLIENT_SECRET_FILE")]
        client_secret_file: Option<PathBuf>,

        /// File holding the X-RapidAPI-Key that Network-as-Code calls must carry; re-read while
        /// running, like --client-secret-file. Without it any key is accepted.
        #[arg(long, env = "QOD_API_KEY_FILE")]
        api_key_file: Option<PathBuf>,

        /// How long a NETWORK_TERMINATED session is kept before it is removed (humantime).
        #[arg(long, default_value = "360s", value_parser = humantime::parse_duration, env = "QOD_TERMINATED_RETENTION")]
        terminated_retention: Duration,

        /// Attempts per notification (the first included) when the sink fails or answers non-2xx.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100), env = "QOD_NOTIFICATION_ATTEMPTS")]
        notification_attempts: u32,

        /// Wait before the first notification retry; doubled after each failure, at most 10s.
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration, env = "QOD_NOTIFICATION_BACKOFF")]
        notification_backoff: Duration,

        /// The simulator's URL as clients reach it, used as the CloudEvent source (default
        /// http://<listen address>).
        #[arg(long, env = "QOD_PUBLIC_URL")]
        public_url: Option<String>,
    }

    impl SimulatorArgs {
        fn into_config(self) -> Result<simulator::SimulatorConfig, simulator::Error> {
            let read = |what, path: &Option<PathBuf>| {
                path.as_deref()
                    .map(|path| simulator::read_secret_file(what, path))
                    .transpose()
            };
            let client_credentials = match (&self.client_id, &self.client_secret_file) {
                (Some(client_id), Some(path)) => Some(ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: simulator::read_secret_file("client secret", path)?,
                }),
                _ => None,
            };
            Ok(simulator::SimulatorConfig {
                available_after: self.available_after,
                notification_format: self.notification_format,
                token_ttl: self.token_ttl,
                require_auth: self.require_auth,
                bearer_token: read("bearer token", &self.bearer_token_file)?,
                client_credentials,
                api_key: read("API key", &self.api_key_file)?,
                // Re-read while running, so rotating the mounted Secret needs no restart.
                client_secret_file: self.client_secret_file,
                api_key_file: self.api_key_file,
                terminated_retention: self.terminated_retention,
                notification_retry: RetryPolicy {
                    attempts: self.notification_attempts,
                    initial_backoff: self.notification_backoff,
                    ..RetryPolicy::default()
                },
                public_url: self.public_url,
            })
        }
    }

    pub async fn run(args: SimulatorArgs) -> Result<(), Box<dyn std::error::Error>> {
        let listen = args.listen;
        let config = args.into_config()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let mut running = simulator::spawn(listener, config).await?;
        tokio::select! {
            result = running.wait() => {
                result?;
                return Ok(());
            }
            () = super::shutdown_signal() => {}
        }
        tracing::info!("shutting down");
        running.shutdown().await;
        Ok(())
    }
}
