//! Reading a socket with io_uring's own receive operation: the read is submitted with the rest of
//! the worker's I/O in one batch and completes when data is there, without a readiness round trip.
//! The buffer travels with the operation while it is in flight and comes back with its result.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::AsyncReadRent;
use monoio::net::tcp::TcpOwnedReadHalf;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

type InFlight = Pin<Box<dyn Future<Output = (TcpOwnedReadHalf, io::Result<usize>, BytesMut)>>>;

/// The read side of a connection: either idle, or with one read in flight that owns the buffer.
pub struct Reader {
    half: Option<TcpOwnedReadHalf>,
    in_flight: Option<InFlight>,
}

impl Reader {
    pub fn new(half: TcpOwnedReadHalf) -> Self {
        Reader {
            half: Some(half),
            in_flight: None,
        }
    }

    /// A read is in flight: `buf` is with it until it completes.
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Appends what the socket has to `buf`; `Ok(0)` is the end of the stream. While this returns
    /// `Pending`, the read stays in flight (and `buf` is empty) until it is polled to completion.
    pub fn poll_fill(
        &mut self,
        buf: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.in_flight.is_none() {
            let Some(mut half) = self.half.take() else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            let mut owned = std::mem::take(buf);
            if owned.capacity() - owned.len() < READ_CHUNK / 4 {
                owned.reserve(READ_CHUNK);
            }
            let len = owned.len();
            // SAFETY: `len` is the initialised length, so the slice starts inside the buffer.
            let spare: SliceMut<BytesMut> = unsafe { owned.slice_mut_unchecked(len..) };
            self.in_flight = Some(Box::pin(async move {
                let (result, spare) = half.read(spare).await;
                (half, result, spare.into_inner())
            }));
        }
        let fut = self.in_flight.as_mut().expect("armed above");
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((half, result, owned)) => {
                self.in_flight = None;
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
