//! Async tasks owned by a timely operator.
//!
//! Operators never block a worker on I/O: they spawn futures on the shared tokio runtime and
//! collect the results through a channel. The channel is polled with a `Waker` that activates the
//! operator through timely's `SyncActivator`, so the worker schedules the operator exactly when a
//! result is ready, and otherwise parks.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::FutureExt;
use timely::scheduling::SyncActivator;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// A `Waker` that schedules a timely operator.
struct ActivatorWaker(SyncActivator);

impl Wake for ActivatorWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // An error means the worker is gone, so there is nobody left to wake.
        let _ = self.0.activate();
    }
}

/// The futures an operator has in flight and their finished results.
pub(super) struct OperatorTasks<T> {
    runtime: Handle,
    sender: mpsc::UnboundedSender<T>,
    receiver: mpsc::UnboundedReceiver<T>,
    waker: Waker,
    in_flight: usize,
}

impl<T: Send + 'static> OperatorTasks<T> {
    pub(super) fn new(runtime: Handle, activator: SyncActivator) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let waker = Waker::from(Arc::new(ActivatorWaker(activator)));
        OperatorTasks { runtime, sender, receiver, waker, in_flight: 0 }
    }

    /// Spawns `future`. A panic inside it becomes the result `on_panic(message)`, so that the
    /// operator still learns the task ended and can release the capability it holds for it.
    pub(super) fn spawn<F, P>(&mut self, future: F, on_panic: P)
    where
        F: Future<Output = T> + Send + 'static,
        P: FnOnce(String) -> T + Send + 'static,
    {
        let sender = self.sender.clone();
        self.in_flight += 1;
        self.runtime.spawn(async move {
            let result = match AssertUnwindSafe(future).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(%message, "a replication task panicked");
                    on_panic(message)
                }
            };
            // The receiver is gone only when the dataflow was dropped; the result is moot then.
            let _ = sender.send(result);
        });
    }

    /// Takes every finished result. Polling registers the activating waker, so the operator is
    /// scheduled again when the next result arrives.
    pub(super) fn drain(&mut self) -> Vec<T> {
        let mut cx = Context::from_waker(&self.waker);
        let mut done = Vec::new();
        while let Poll::Ready(Some(result)) = self.receiver.poll_recv(&mut cx) {
            self.in_flight -= 1;
            done.push(result);
        }
        done
    }

    /// Futures spawned whose results have not been drained yet.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }
}
