//! `kube-emulator --listen 127.0.0.1:PORT --kubeconfig PATH`: serves the in-memory API until
//! stopped (Ctrl-C or SIGTERM) and writes a kubeconfig that kube and kubectl accept.

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// In-memory Kubernetes API server for tests.
#[derive(Debug, Parser)]
#[command(name = "kube-emulator", version)]
struct Cli {
    /// Address to listen on (only loopback addresses are sensible).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the admin kubeconfig.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Evaluate RBAC for non-admin tokens instead of allowing everything.
    #[arg(long)]
    rbac: bool,
    /// Number of change events kept for watches.
    #[arg(long, default_value_t = 10_000)]
    history_limit: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let opts = kube_emulator::Options {
        listen: cli.listen,
        history_limit: cli.history_limit,
        authorization: if cli.rbac {
            kube_emulator::Authorization::Rbac
        } else {
            kube_emulator::Authorization::AlwaysAllow
        },
        ..Default::default()
    };
    let emu = kube_emulator::Emulator::start(opts).await?;
    if let Some(path) = &cli.kubeconfig {
        emu.write_kubeconfig(path)
            .with_context(|| format!("failed to write kubeconfig to {}", path.display()))?;
    }
    println!("kube-emulator listening on {}", emu.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("failed to install the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    emu.shutdown().await;
    Ok(())
}
