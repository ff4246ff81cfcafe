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

/// The read side of a connection: either idle, or with one read in flight that owns the buffer.
pub struct Reader {
    half: Option<TcpOwnedReadHalf>,
    read: ReadSlot,
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
        }
    }

    /// A read is in flight: `buf` is with it until it completes.
    pub fn is_busy(&self) -> bool {
        self.read.is_busy()
    }

    /// Appends what the socket has to `buf`; `Ok(0)` is the end of the stream. While this returns
    /// `Pending`, the read stays in flight (and `buf` is empty) until it is polled to completion.
    pub fn poll_fill(
        &mut self,
        buf: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if !self.read.is_busy() {
            let Some(half) = self.half.take() else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            let mut owned = std::mem::take(buf);
            if owned.capacity() - owned.len() < READ_CHUNK / 4 {
                owned.reserve(READ_CHUNK);
            }
            let len = owned.len();
            // SAFETY: `len` is the initialised length, so the slice starts inside the buffer.
            let spare: SliceMut<BytesMut> = unsafe { owned.slice_mut_unchecked(len..) };
            self.read.start((half, spare));
        }
        match self.read.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((half, result, owned)) => {
                self.half = Some(half);
                *buf = owned;
                Poll::Ready(result)
            }
        }
    }

    pub async fn fill(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(buf, cx)).await
    }
}
