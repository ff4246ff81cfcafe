//! Reading a socket with io_uring's own receive operation: the read is submitted with the rest of
//! the worker's I/O in one batch and completes when data is there, without a readiness round trip.
//! The buffer travels with the operation while it is in flight and comes back with its result.

use std::io;
use std::task::{Context, Poll};

use bytes::BytesMut;
use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::AsyncReadRent;
use monoio::net::tcp::TcpOwnedReadHalf;

use super::future_slot::FutureSlot;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// A read's future: it owns the socket half and the buffer until it completes.
type ReadSlot = FutureSlot<
    (TcpOwnedReadHalf, SliceMut<BytesMut>),
    (TcpOwnedReadHalf, io::Result<usize>, BytesMut),
>;

/// The read side of a connection: either idle, or with one read in flight. A read either borrows
/// the caller's buffer and appends to it in place (`poll_fill`: the caller's buffer is empty until
/// it completes), or reads into a buffer of its own whose bytes are appended to the caller's when
/// it completes (`poll_fill_keeping`: the caller's bytes stay readable meanwhile).
pub struct Reader {
    half: Option<TcpOwnedReadHalf>,
    read: ReadSlot,
    /// The read in flight reads into `spare`, not into the caller's buffer.
    keeping: bool,
    /// The buffer of keeping reads, kept between them.
    spare: BytesMut,
}

impl Reader {
    pub fn new(half: TcpOwnedReadHalf) -> Self {
        Reader {
            half: Some(half),
            read: FutureSlot::new(
                |(mut half, spare): (TcpOwnedReadHalf, SliceMut<BytesMut>)| async move {
                    let (result, spare) = half.read(spare).await;
                    (half, result, spare.into_inner())
                },
            ),
            keeping: false,
            spare: BytesMut::new(),
        }
    }

    /// A read in flight has the caller's buffer: it is empty until the read completes.
    pub fn has_buf(&self) -> bool {
        self.read.is_busy() && !self.keeping
    }

    /// Appends what the socket has to `buf`; `Ok(0)` is the end of the stream. While this returns
    /// `Pending`, the read stays in flight (and `buf` is empty) until it is polled to completion.
    pub fn poll_fill(
        &mut self,
        buf: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if !self.read.is_busy() {
            if self.half.is_none() {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            }
            self.start(std::mem::take(buf), false);
        }
        self.complete(buf, cx)
    }

    /// Like `poll_fill`, but `buf` keeps its bytes while the read is in flight; what the read
    /// brings is copied after them. For watching a socket while its buffered bytes are in use.
    pub fn poll_fill_keeping(
        &mut self,
        buf: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if !self.read.is_busy() {
            if self.half.is_none() {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            }
            if buf.is_empty() {
                self.start(std::mem::take(buf), false);
            } else {
                let spare = std::mem::take(&mut self.spare);
                self.start(spare, true);
            }
        }
        self.complete(buf, cx)
    }

    /// Starts a read into `owned`; the callers have checked that the socket half is here.
    fn start(&mut self, mut owned: BytesMut, keeping: bool) {
        let Some(half) = self.half.take() else {
            return;
        };
        if owned.capacity() - owned.len() < READ_CHUNK / 4 {
            owned.reserve(READ_CHUNK);
        }
        let len = owned.len();
        // SAFETY: `len` is the initialised length, so the slice starts inside the buffer.
        let spare: SliceMut<BytesMut> = unsafe { owned.slice_mut_unchecked(len..) };
        self.keeping = keeping;
        self.read.start((half, spare));
    }

    fn complete(&mut self, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.read.is_busy() {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        }
        match self.read.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((half, result, mut owned)) => {
                self.half = Some(half);
                if self.keeping {
                    buf.extend_from_slice(&owned);
                    owned.clear();
                    self.spare = owned;
                } else {
                    *buf = owned;
                }
                Poll::Ready(result)
            }
        }
    }

    pub async fn fill(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(buf, cx)).await
    }
}
