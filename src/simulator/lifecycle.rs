//! The scheduler: one background task that applies every session's due transition
//! (activation, expiry, end of a terminated session's retention) at its deadline.
//!
//! It sleeps until the earliest deadline in the store and is woken early whenever a handler
//! changes a session, so new or moved deadlines are picked up at once.

use std::sync::Arc;

use super::SimulatorState;

/// Runs until the simulator shuts down.
pub(super) async fn run(shared: Arc<SimulatorState>) {
    loop {
        let next = {
            let mut store = shared.store();
            store.advance(shared.clock.now(), &shared.clock);
            store.next_deadline()
        };
        let until_next = async {
            match next {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = shared.wake.notified() => {}
            () = until_next => {}
        }
    }
}
