//! A tiny round-robin TCP load balancer on loopback, as an operator would put in front of
//! several servers: each new connection goes to the next backend that accepts a connection
//! (a dead one is skipped), bytes copied both ways. It stops with the test, pass or fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

use super::background::Background;

/// The balancer; `url` is what clients are given.
pub struct Balancer {
    pub url: String,
    _runtime: Background,
}

impl Balancer {
    /// Spreads connections over `backends` (`host:port` each), in turn.
    pub fn start(backends: Vec<String>) -> Balancer {
        let runtime = Background::start("balancer");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the balancer");
        let addr = listener.local_addr().expect("balancer address");
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        runtime.spawn(async move {
            while let Ok((mut incoming, _)) = listener.accept().await {
                let (backends, next) = (backends.clone(), next.clone());
                tokio::spawn(async move {
                    let first = next.fetch_add(1, Ordering::Relaxed);
                    for turn in 0..backends.len() {
                        let backend = &backends[(first + turn) % backends.len()];
                        if let Ok(mut outgoing) = TcpStream::connect(backend).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut incoming, &mut outgoing).await;
                            return;
                        }
                    }
                });
            }
        });
        Balancer {
            url: format!("http://{addr}"),
            _runtime: runtime,
        }
    }
}
