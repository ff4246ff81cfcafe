//! Upstream connections and the per-worker keep-alive pools they return to.
//! A connection goes back to its pool only after its response body was read to the end with nothing
//! left over; any other ending closes it, which cancels the request upstream at once.
//! Backends end idle connections on their own (llama.cpp and vLLM after 5 s): a connection idle for
//! a while is checked before it is reused, and one unused for long is closed.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::http::clock::coarse_ms;

use bytes::{BufMut, BytesMut};
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::io::AsyncWriteRentExt;

use crate::http::io::Stream;
use crate::http::lazy_timer::LazyTimer;

/// Idle connections kept per endpoint per worker.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;
/// Bytes asked of a TLS stream per read.
const TLS_READ_CHUNK: usize = 16 * 1024;
/// A connection idle longer than this (ms) is checked (one non-blocking peek) before it carries a
/// request: the backend may have ended it meanwhile. Under load connections come back within
/// milliseconds and skip the check.
const CHECK_AFTER_MS: u64 = 250;
/// A connection unused this long (ms) is closed, so that sockets a backend has ended do not linger
/// half-closed (CLOSE-WAIT) in a pool holding more connections than the traffic now needs.
const MAX_IDLE_MS: u64 = 60_000;
/// How often a worker also looks through all its pools for such connections.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

thread_local! {
    /// Idle connections by pool index (the endpoint's index; discovery uses its own thread's pools),
    /// the most recently used at the back.
    static POOLS: RefCell<Vec<Vec<Conn>>> = const { RefCell::new(Vec::new()) };
}

/// One upstream connection and the bytes read from it but not consumed yet.
pub struct Conn {
    io: Stream,
    pub(super) buf: BytesMut,
    pub(super) pool: usize,
    /// It already carried a request: a failure before any answer byte may just mean the peer closed it.
    pub(super) reused: bool,
    /// When it last went back to its pool (`coarse_ms`).
    idle_since: u64,
}

impl Conn {
    pub(super) fn new(io: Stream, pool: usize) -> Self {
        Conn {
            io,
            buf: BytesMut::new(),
            pool,
            reused: false,
            idle_since: 0,
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` is the end of the stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Stream::Plain { reader, .. } => reader.poll_fill(&mut self.buf, cx),
            Stream::Tls(tls) => {
                if self.buf.capacity() - self.buf.len() < TLS_READ_CHUNK / 4 {
                    self.buf.reserve(TLS_READ_CHUNK);
                }
                let mut rb = ReadBuf::uninit(self.buf.spare_capacity_mut());
                match Pin::new(tls.as_mut()).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        // SAFETY: `n` bytes of the spare capacity were just initialised by the read.
                        unsafe { self.buf.advance_mut(n) };
                        Poll::Ready(Ok(n))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    /// Like `poll_fill`, but `None` once `deadline` has passed.
    pub(super) async fn fill_by(&mut self, deadline: &mut LazyTimer) -> Option<io::Result<usize>> {
        poll_fn(|cx| match self.poll_fill(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending if deadline.poll_expired(cx) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    }

    /// Writes all of `data` and hands the buffer back for reuse; `None` once `deadline` has passed.
    pub(super) async fn write_all_by<B>(
        &mut self,
        data: B,
        deadline: &mut LazyTimer,
    ) -> Option<(io::Result<()>, B)>
    where
        B: monoio::buf::IoBuf + AsRef<[u8]>,
    {
        let mut write = pin!(write_all(&mut self.io, data));
        poll_fn(|cx| match write.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending if deadline.poll_expired(cx) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    }

    /// The response ended cleanly: keep the connection for the next request, unless bytes are left over.
    pub(super) fn recycle(mut self) {
        if !self.buf.is_empty() {
            return;
        }
        self.reused = true;
        let now = coarse_ms();
        self.idle_since = now;
        POOLS.with(|p| {
            let mut pools = p.borrow_mut();
            if pools.len() <= self.pool {
                pools.resize_with(self.pool + 1, Vec::new);
            }
            let idle = &mut pools[self.pool];
            if idle.len() < MAX_IDLE_PER_ENDPOINT {
                idle.push(self);
            }
            if idle.first().is_some_and(|old| expired(old, now)) {
                drop_expired(idle, now);
            }
        });
    }
}

fn expired(conn: &Conn, now: u64) -> bool {
    now.saturating_sub(conn.idle_since) > MAX_IDLE_MS
}

/// Closes the connections of `idle` unused for MAX_IDLE_MS. They are in the order they came back,
/// oldest first, so the expired ones go in one move, not with a shift per connection.
fn drop_expired(idle: &mut Vec<Conn>, now: u64) {
    let n = idle.partition_point(|c| expired(c, now));
    idle.drain(..n);
}

/// Closes, every SWEEP_EVERY, the connections of this thread's pools unused for MAX_IDLE_MS: a pool
/// that gets no traffic at all never reaches the check made when a connection comes back.
pub async fn sweep_idle_connections() {
    loop {
        monoio::time::sleep(SWEEP_EVERY).await;
        sweep(coarse_ms());
    }
}

fn sweep(now: u64) {
    POOLS.with(|p| {
        for idle in p.borrow_mut().iter_mut() {
            drop_expired(idle, now);
        }
    });
}

/// Writes all of `data` on `stream`; hands the buffer back.
async fn write_all<B>(stream: &mut Stream, data: B) -> (io::Result<()>, B)
where
    B: monoio::buf::IoBuf + AsRef<[u8]>,
{
    match stream {
        Stream::Plain { writer, .. } => {
            let (r, data) = writer.write_all(data).await;
            (r.map(|_| ()), data)
        }
        Stream::Tls(tls) => {
            let mut rest = data.as_ref();
            while !rest.is_empty() {
                match poll_fn(|cx| Pin::new(tls.as_mut()).poll_write(cx, rest)).await {
                    Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), data),
                    Ok(n) => rest = &rest[n..],
                    Err(e) => return (Err(e), data),
                }
            }
            let r = poll_fn(|cx| Pin::new(tls.as_mut()).poll_flush(cx)).await;
            (r, data)
        }
    }
}

/// The most recently used idle connection of `pool` that is still open. Connections found closed
/// are dropped (which closes our side).
pub(super) fn take_idle(pool: usize) -> Option<Conn> {
    POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        let idle = pools.get_mut(pool)?;
        let now = coarse_ms();
        while let Some(conn) = idle.pop() {
            if now.saturating_sub(conn.idle_since) < CHECK_AFTER_MS || conn.io.still_open() {
                return Some(conn);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::clock::coarse_ms;

    /// A pooled connection to `listener`, and the backend's side of it.
    async fn connected(
        listener: &std::net::TcpListener,
        pool: usize,
    ) -> (Conn, std::net::TcpStream) {
        let port = listener.local_addr().unwrap().port();
        let io = crate::http::io::connect("127.0.0.1", port, false)
            .await
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        (Conn::new(io, pool), peer)
    }

    fn idle_count(pool: usize) -> usize {
        POOLS.with(|p| p.borrow().get(pool).map_or(0, Vec::len))
    }

    fn age_all(pool: usize, by_ms: u64) {
        POOLS.with(|p| {
            for conn in p.borrow_mut()[pool].iter_mut() {
                conn.idle_since -= by_ms;
            }
        });
    }

    /// Runs `test` on a runtime, with a listening socket standing for the backend.
    fn with_backend<F: Future<Output = ()>>(test: impl FnOnce(std::net::TcpListener) -> F) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        crate::rt::block_on(crate::config::IoDriver::Auto, test(listener));
    }

    #[test]
    fn a_connection_the_peer_ended_is_skipped_once_it_was_idle_a_while() {
        with_backend(|listener| async move {
            let (ended, ended_peer) = connected(&listener, 0).await;
            let (open, _open_peer) = connected(&listener, 0).await;
            open.recycle();
            ended.recycle(); // the most recent: taken first
            ended_peer.shutdown(std::net::Shutdown::Write).unwrap();
            std::thread::sleep(Duration::from_millis(20));

            // Just returned: no check, the most recent comes back even though its peer ended it.
            let first = take_idle(0).unwrap();
            assert!(!first.io.still_open(), "the peek sees the peer's end");
            first.recycle();

            // Idle past CHECK_AFTER: the ended one is dropped and the open one is taken.
            age_all(0, CHECK_AFTER_MS);
            let taken = take_idle(0).unwrap();
            assert!(taken.io.still_open());
            assert_eq!(idle_count(0), 0);
            drop(taken);
            assert!(take_idle(0).is_none());
        });
    }

    #[test]
    fn idle_connections_are_closed_after_max_idle() {
        with_backend(|listener| async move {
            let (a, _pa) = connected(&listener, 1).await;
            let (b, _pb) = connected(&listener, 1).await;
            let (c, _pc) = connected(&listener, 1).await;
            let (d, _pd) = connected(&listener, 1).await;
            a.recycle();
            b.recycle();
            age_all(1, MAX_IDLE_MS + 1_000);
            c.recycle();
            age_all(1, MAX_IDLE_MS / 2);
            // a and b are past MAX_IDLE, c is half way: the next return drops a and b only.
            d.recycle();
            assert_eq!(idle_count(1), 2);

            // The worker's sweep closes them too, in every pool, without any return.
            let (e, _pe) = connected(&listener, 2).await;
            e.recycle();
            age_all(1, MAX_IDLE_MS / 2 + 1_000); // c past MAX_IDLE, d half way
            age_all(2, MAX_IDLE_MS + 1_000);
            sweep(coarse_ms());
            assert_eq!(
                (idle_count(1), idle_count(2)),
                (1, 0),
                "c and e were past MAX_IDLE"
            );
            assert!(POOLS.with(|p| p.borrow()[1]
                .iter()
                .all(|c| c.idle_since + MAX_IDLE_MS > coarse_ms())));
        });
    }
}
