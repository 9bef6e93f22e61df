//! The runtime of a test's small loopback server (a proxy, a balancer): one worker thread,
//! stopped with the test, pass or fail, without waiting for connections still open.

use std::future::Future;

pub struct Background(Option<tokio::runtime::Runtime>);

impl Background {
    /// A runtime for the server called `what` (named in the panic if it cannot start).
    pub fn start(what: &str) -> Background {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the {what}'s runtime: {e}"));
        Background(Some(runtime))
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("a running background runtime")
    }

    /// Runs `future` to its end on this runtime (e.g. binding the listener).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    /// Runs `future` in the background until the runtime stops.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.runtime().spawn(future);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
