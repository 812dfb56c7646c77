//! Accepting connections under limits, so hostile clients cannot exhaust the server:
//!
//! - a connection must send a complete request head within the header-read timeout,
//!   and an idle keep-alive connection is closed after the same time (hyper's
//!   `header_read_timeout`, which runs whenever a connection waits for a head);
//! - at most `max_connections` are open. At the cap, a new connection evicts the
//!   oldest one that has not yet sent a single request (an idle or slow client), so a
//!   probe such as `/healthz` still gets through while the server is flooded with
//!   idle connections; when every open connection has served a request, the new one
//!   is closed at once;
//! - a failed `accept` (out of descriptors) backs off briefly instead of spinning.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the listener bounds its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time a connection has to send a request head (and the keep-alive idle time).
    pub header_read_timeout: Duration,
}

/// What the listener counts (shared with the metrics).
#[derive(Debug, Default, Clone)]
pub struct ConnectionStats {
    pub evicted: prometheus_client::metrics::counter::Counter,
    pub refused: prometheus_client::metrics::counter::Counter,
}

struct Open {
    /// Set once the connection has sent a complete request.
    served: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, Open>,
}

impl Table {
    /// Makes room for one more connection: `true` when there is room (possibly after
    /// evicting the oldest connection that never sent a request).
    fn make_room(&mut self, max: usize, stats: &ConnectionStats) -> bool {
        if self.open.len() < max {
            return true;
        }
        let idle = self
            .open
            .iter()
            .find(|(_, c)| !c.served.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match idle.and_then(|id| self.open.remove(&id)) {
            Some(evicted) => {
                evicted.task.abort();
                stats.evicted.inc();
                true
            }
            None => {
                stats.refused.inc();
                false
            }
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` turns true; then stops
/// accepting and lets open connections finish their requests (the caller bounds how
/// long it waits).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stats: ConnectionStats,
    mut shutdown: watch::Receiver<bool>,
) {
    let table = Arc::new(Mutex::new(Table::default()));
    let (closing_tx, closing) = watch::channel(false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was taken.
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let served = Arc::new(AtomicBool::new(false));
        // Spawned and listed under one lock: the connection's own removal (which
        // takes the lock) can only come after it is listed.
        let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
        if !t.make_room(limits.max_connections, &stats) {
            drop(stream);
            continue;
        }
        t.next += 1;
        let id = t.next;
        let task = tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            limits,
            served.clone(),
            closing.clone(),
            table.clone(),
            id,
        ));
        t.open.insert(
            id,
            Open {
                served,
                task: task.abort_handle(),
            },
        );
    }
    let _ = closing_tx.send(true);
    // Open connections finish their current request and close (graceful shutdown).
    loop {
        let left = table.lock().unwrap_or_else(|p| p.into_inner()).open.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The address a request came from, added to every request as an extension (the
/// console's login limit counts failures per address).
pub use leviathan_console::PeerAddr;

#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    served: Arc<AtomicBool>,
    mut closing: watch::Receiver<bool>,
    table: Arc<Mutex<Table>>,
    id: u64,
) {
    let tower = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        served.store(true, Ordering::Relaxed);
        req.extensions_mut().insert(PeerAddr(peer));
        hyper::service::Service::call(&tower, req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            _ = closing.wait_for(|c| *c), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    table
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .open
        .remove(&id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_oldest_idle_connection_goes_first() {
        let stats = ConnectionStats::default();
        let mut table = Table::default();
        let mut flags = Vec::new();
        for id in 0..3u64 {
            let served = Arc::new(AtomicBool::new(id == 0));
            flags.push(served.clone());
            let task = tokio::spawn(std::future::pending::<()>());
            table.open.insert(
                id,
                Open {
                    served,
                    task: task.abort_handle(),
                },
            );
        }
        assert!(table.make_room(3, &stats), "evicts one");
        assert!(!table.open.contains_key(&1), "the oldest never-served one");
        assert!(table.open.contains_key(&0), "a served connection stays");
        flags[2].store(true, Ordering::Relaxed);
        assert!(
            !table.make_room(2, &stats),
            "every open one has served: refuse"
        );
        assert_eq!(stats.evicted.get(), 1);
        assert_eq!(stats.refused.get(), 1);
    }
}
