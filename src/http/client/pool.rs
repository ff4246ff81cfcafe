//! Upstream connections and the per-worker keep-alive pools they return to.
//! A connection goes back to its pool only after its response body was read to the end with nothing
//! left over; any other ending closes it, which cancels the request upstream at once.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::io::AsyncWriteRentExt;

use crate::http::io::Stream;
use crate::http::lazy_timer::LazyTimer;

/// Idle connections kept per endpoint per worker.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;
/// Bytes asked of a TLS stream per read.
const TLS_READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// Idle connections by pool index (the endpoint's index; discovery uses its own thread's pools).
    static POOLS: RefCell<Vec<Vec<Conn>>> = const { RefCell::new(Vec::new()) };
}

/// One upstream connection and the bytes read from it but not consumed yet.
pub struct Conn {
    io: Stream,
    pub(super) buf: BytesMut,
    pub(super) pool: usize,
    /// It already carried a request: a failure before any answer byte may just mean the peer closed it.
    pub(super) reused: bool,
}

impl Conn {
    pub(super) fn new(io: Stream, pool: usize) -> Self {
        Conn {
            io,
            buf: BytesMut::new(),
            pool,
            reused: false,
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
        POOLS.with(|p| {
            let mut pools = p.borrow_mut();
            if pools.len() <= self.pool {
                pools.resize_with(self.pool + 1, Vec::new);
            }
            let idle = &mut pools[self.pool];
            if idle.len() < MAX_IDLE_PER_ENDPOINT {
                idle.push(self);
            }
        });
    }
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

/// The most recently used idle connection of `pool` (the one most likely still open).
pub(super) fn take_idle(pool: usize) -> Option<Conn> {
    POOLS.with(|p| p.borrow_mut().get_mut(pool)?.pop())
}
