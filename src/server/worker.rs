//! One worker thread: accepts on its own listener and serves HTTP/1.1 connections (`connection.rs`), until
//! told to stop; then it stops accepting and lets in-flight requests finish within the grace period.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;

use crate::state::Shared;

pub fn run(
    id: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: oneshot::Receiver<()>,
) {
    let driver = shared.config.io_driver;
    crate::server::runtime::block_on(driver, async move {
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
    loop {
        monoio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    monoio::spawn(serve_contained(stream, shared.clone()));
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
async fn serve_contained(stream: monoio::net::TcpStream, shared: Arc<Shared>) {
    let served = AssertUnwindSafe(super::connection::serve(stream, shared)).catch_unwind();
    if served.await.is_err() {
        tracing::error!("a connection panicked: closed it and released what it held");
    }
}

/// Waits until no request is in flight, or the grace period is over.
async fn drain(shared: &Shared) {
    let deadline = Instant::now() + shared.config.shutdown_grace;
    while shared.active_requests.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
}
