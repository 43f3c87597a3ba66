//! SIGINT and SIGTERM: a signal cancels the run in progress, and the process exits after a grace
//! period if copies are still in flight then.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

/// The signal that interrupted the replication, once one has arrived.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicI32>);

impl Interrupt {
    /// The number of the signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        Some(self.0.load(Ordering::SeqCst)).filter(|&number| number != 0)
    }
}

/// Waits on `runtime` for a signal. The first one calls `cancel`: no new copies start, copies in
/// flight finish (within `grace`), and blocks left incomplete fail without their meta.json.
/// Past `grace`, the process exits as a shell reports a signal: 128 + its number.
pub fn install(runtime: &Runtime, grace: Duration, cancel: impl FnOnce() + Send + 'static) -> Interrupt {
    let interrupt = Interrupt::default();
    let received = interrupt.0.clone();
    runtime.spawn(async move {
        let number = shutdown_signal().await;
        received.store(number, Ordering::SeqCst);
        cancel();
        tracing::warn!(signal = number, grace_period = ?grace, "signal received: starting no new copies and stopping after the copies in flight");
        tokio::time::sleep(grace).await;
        tracing::error!("the grace period is over; exiting with copies still in flight (their blocks have no meta.json)");
        std::process::exit(128 + number);
    });
    interrupt
}

/// Waits for SIGINT or SIGTERM and returns its number.
async fn shutdown_signal() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => 2,
                _ = term.recv() => 15,
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            2
        }
    }
}
