//! The shutdown signal, awaitable any number of times (a future can be awaited only once, and
//! `join` waits on it around every registration and in every work loop).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// Fires once the shutdown future given to [`StopSignal::new`] has completed.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Watches `shutdown` on a task of its own. Must be called inside a tokio runtime.
    pub fn new(shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let (fired, watcher) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = fired.send(true);
        });
        Self(watcher)
    }

    /// A future that completes when shutdown is requested (at once if it already was).
    pub fn requested(&self) -> Pin<Box<impl Future<Output = ()> + Send + 'static>> {
        let mut watcher = self.0.clone();
        // A closed channel means the watching task is gone with the runtime: stop as well.
        Box::pin(async move {
            let _ = watcher.wait_for(|&fired| fired).await;
        })
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_sees_the_one_signal() {
        let (trigger, pulled) = tokio::sync::oneshot::channel::<()>();
        let stop = StopSignal::new(async move {
            let _ = pulled.await;
        });
        assert!(!stop.is_requested());
        let first = tokio::spawn(stop.requested());
        trigger.send(()).unwrap();
        first.await.unwrap();
        assert!(stop.is_requested());
        // Later waiters complete at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), stop.requested())
            .await
            .expect("an already requested stop completes");
    }
}
