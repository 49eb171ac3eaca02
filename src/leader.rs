//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager): only the holder runs
//! the controller; every replica serves the webhook. Losing the lease stops the controller at
//! once; releasing it on shutdown lets another replica take over without waiting for expiry.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Flags of leader election.
#[derive(Clone, Debug, clap::Args)]
pub struct LeaderArgs {
    /// Elect one leader among replicas through a Lease; only the leader reconciles. Turn off
    /// with --leader-election=false when exactly one replica runs.
    #[arg(long, env = "QOD_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the Lease.
    #[arg(long, env = "QOD_LEASE_NAME", default_value = "qod-operator")]
    pub lease_name: String,

    /// Namespace of the Lease (the pod's namespace, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// Seconds a leader holds the Lease without renewing it; a new leader takes over within
    /// this time after the old one dies.
    #[arg(long, env = "QOD_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
}

/// Why the election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot set up the Lease {namespace}/{name}")]
    Lease {
        name: String,
        namespace: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("lost the Lease: another replica leads now; restarting clean")]
    Lost,
}

/// What happened to a term as leader.
#[derive(Debug, PartialEq, Eq)]
pub enum Term {
    /// Shutdown came first (as a candidate or as the leader).
    Shutdown,
    /// The lease was lost while leading.
    Lost,
}

/// Waits until this replica holds the Lease, then runs `lead` with a token that is cancelled
/// when the lease is lost or shutdown comes. `on_change` hears every change of leadership.
pub async fn lead<F, Fut>(
    client: Client,
    args: &LeaderArgs,
    identity: String,
    shutdown: CancellationToken,
    on_change: impl Fn(bool),
    lead: F,
) -> Result<Term, LeaderError>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(args.lease_duration_seconds.max(2))
        // Renew a third of the duration before it expires.
        .with_grace((args.lease_duration_seconds / 3).max(1))
        .build()
        .await
        .map_err(|source| LeaderError::Lease {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            source,
        })?;
    let (mut leading, watcher) = manager.watch().await;
    info!(identity, lease = args.lease_name, "waiting for leadership");

    let term = async {
        if !wait_for(&mut leading, true, &shutdown).await {
            return Term::Shutdown;
        }
        info!(identity, "became the leader");
        on_change(true);
        let stop = shutdown.child_token();
        let work = lead(stop.clone());
        tokio::pin!(work);
        // Any end of leadership that shutdown did not cause (the lease taken, the watcher
        // failed) counts as lost.
        let (finished, lost) = tokio::select! {
            () = &mut work => (true, false),
            _ = wait_for(&mut leading, false, &shutdown) => (false, !shutdown.is_cancelled()),
        };
        stop.cancel();
        if lost {
            warn!(identity, "lost the lease; stopping the controller");
        }
        if !finished {
            // Let the controller finish its current pass before the lease goes.
            work.await;
        }
        on_change(false);
        if lost { Term::Lost } else { Term::Shutdown }
    }
    .await;

    // Dropping the receiver makes the watcher release the lease; wait so it really is released.
    drop(leading);
    match watcher.await {
        Ok(Ok(_)) => info!(identity, "released the lease"),
        Ok(Err(error)) => warn!(identity, error = %error, "could not release the lease"),
        Err(error) => warn!(identity, error = %error, "lease watcher failed"),
    }
    Ok(term)
}

/// Waits until the leadership flag equals `wanted`; false when shutdown comes first or the
/// watcher stopped.
async fn wait_for(
    leading: &mut watch::Receiver<bool>,
    wanted: bool,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        result = leading.wait_for(|now| *now == wanted) => result.is_ok(),
        () = shutdown.cancelled() => false,
    }
}
