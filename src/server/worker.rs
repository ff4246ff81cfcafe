//! One worker thread: accepts on its own listener and serves HTTP/1.1 connections (`connection.rs`), until
//! told to stop; then it stops accepting and lets in-flight requests finish within the grace period.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_util::FutureExt;

use super::idle::IdleRegistry;
use crate::state::Shared;

pub fn run(
    id: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: oneshot::Receiver<()>,
) {
    let driver = shared.config.io_driver;
    if let Some(cpus) = shared.config.cpu_plan().worker_cpus {
        if let Err(e) = crate::rt::run_on(&cpus) {
            tracing::warn!(worker = id, error = %e, "cannot keep the worker off the embedding core");
        }
    }
    crate::metrics::set_worker(id);
    crate::rt::block_on(driver, async move {
        let listener = match monoio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(worker = id, error = %e, "cannot adopt listener");
                return;
            }
        };
        monoio::spawn(crate::http::client::sweep_idle_connections());
        accept_loop(&listener, &shared, stop).await;
        drop(listener);
        drain(&shared).await;
    });
}

async fn accept_loop(
    listener: &monoio::net::TcpListener,
    shared: &Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let cfg = &shared.config;
    let cap = cfg
        .limits
        .max_connections
        .div_ceil(cfg.worker_count().max(1));
    let open = Rc::new(Cell::new(0usize));
    let idle = Rc::new(IdleRegistry::default());
    loop {
        if open.get() >= cap {
            // At the cap, idle connections make room (those that never sent a request first);
            // when none is idle, further clients wait in the kernel's backlog rather than take
            // file descriptors the upstream side needs.
            let mut warned = false;
            while open.get() >= cap {
                let closed = idle.evict((cap / 64).max(1));
                if closed == 0 && !warned {
                    tracing::warn!(
                        open = open.get(),
                        cap,
                        "connection limit reached and no connection is idle: not accepting for now"
                    );
                    warned = true;
                }
                let pause = Duration::from_millis(if closed > 0 { 1 } else { 10 });
                monoio::select! {
                    _ = &mut stop => return,
                    _ = monoio::time::sleep(pause) => {}
                }
            }
        }
        monoio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let counted = OpenConnection::new(&open);
                    monoio::spawn(serve_contained(stream, shared.current(), counted, idle.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Serves a connection so that a panic anywhere in it ends that connection only: the socket
/// closes, and its request's slot, queue place and upstream connection are released as its state
/// is dropped. (The connection catches panics of handlers and bodies itself and answers; this
/// catches the rest.) A panic that escaped would end the worker's runtime, and with it every
/// connection of the worker, while its listener kept accepting.
async fn serve_contained(
    stream: monoio::net::TcpStream,
    shared: Arc<Shared>,
    _counted: OpenConnection,
    idle: Rc<IdleRegistry>,
) {
    let served = AssertUnwindSafe(super::connection::serve(stream, shared, &idle)).catch_unwind();
    if served.await.is_err() {
        tracing::error!("a connection panicked: closed it and released what it held");
    }
}

/// One of the worker's open client connections, counted until dropped.
struct OpenConnection(Rc<Cell<usize>>);

impl OpenConnection {
    fn new(open: &Rc<Cell<usize>>) -> Self {
        open.set(open.get() + 1);
        OpenConnection(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Waits until no request is in flight, or the grace period is over.
async fn drain(shared: &Arc<Shared>) {
    let deadline = Instant::now() + shared.current().config.shutdown_grace;
    while shared.active_requests.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
}
