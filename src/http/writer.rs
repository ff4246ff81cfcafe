//! Writing a socket with the runtime's own send operation, either waiting for the send or not: a
//! streamed answer hands each batch to the socket and goes straight back to waiting for upstream
//! data. The send then completes without waking the task (its completion has nothing to do), and
//! its buffer comes back for the next batch. That is one task wake-up per relayed chunk, not two.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll, Waker};

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::tcp::TcpOwnedWriteHalf;

use super::future_slot::FutureSlot;

/// A spare buffer above this size is dropped rather than kept for the connection's next batch.
const KEEP_SPARE: usize = 256 * 1024;

/// A send's future: it owns the socket half and the buffer until it completes.
type SendSlot =
    FutureSlot<(TcpOwnedWriteHalf, Vec<u8>), (TcpOwnedWriteHalf, io::Result<()>, Vec<u8>)>;

/// The write side of a connection: idle, or with one send in flight that owns its buffer.
pub struct Writer {
    half: Option<TcpOwnedWriteHalf>,
    /// Made on the first send that does not wait (only streamed answers need one).
    sends: Option<SendSlot>,
    /// The buffer of the last send, emptied, for the next batch.
    spare: Vec<u8>,
}

impl Writer {
    pub fn new(half: TcpOwnedWriteHalf) -> Self {
        Writer {
            half: Some(half),
            sends: None,
            spare: Vec::new(),
        }
    }

    /// Writes all of `data` and waits for it, after any send in flight; hands the buffer back.
    pub async fn write_all(&mut self, data: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if let Err(e) = self.settle().await {
            return (Err(e), data);
        }
        match self.half.as_mut() {
            Some(half) => half.write_all(data).await,
            None => (Err(io::ErrorKind::NotConnected.into()), data),
        }
    }

    /// Hands `data` to the socket without waiting for the send, and gives back an empty buffer for
    /// the next batch. A send still in flight is waited for first (that is the backpressure of a
    /// slow client). `Ok(true)` when that wait yielded to the runtime.
    pub async fn send(&mut self, data: &mut Vec<u8>) -> io::Result<bool> {
        // Without a send in flight this is ready at the first poll.
        let mut polls = 0;
        poll_fn(|cx| {
            polls += 1;
            self.poll_settle(cx)
        })
        .await?;
        let Some(half) = self.half.take() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let batch = std::mem::replace(data, std::mem::take(&mut self.spare));
        let sends = self.sends.get_or_insert_with(|| {
            FutureSlot::new(
                |(mut half, batch): (TcpOwnedWriteHalf, Vec<u8>)| async move {
                    let (result, batch) = half.write_all(batch).await;
                    (half, result.map(drop), batch)
                },
            )
        });
        sends.start((half, batch));
        // The first poll submits the send. Its completion needs no action from the task, so it
        // wakes nothing; the next `send`, `write_all` or `settle` polls it with the task's waker.
        if let Poll::Ready(done) = sends.poll(&mut Context::from_waker(Waker::noop())) {
            self.finish(done)?;
        }
        Ok(polls > 1)
    }

    /// Waits for the send in flight, if any.
    async fn settle(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_settle(cx)).await
    }

    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.sends.as_mut() {
            Some(sends) if sends.is_busy() => match sends.poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(done) => Poll::Ready(self.finish(done)),
            },
            _ => Poll::Ready(Ok(())),
        }
    }

    fn finish(&mut self, done: (TcpOwnedWriteHalf, io::Result<()>, Vec<u8>)) -> io::Result<()> {
        let (half, result, mut batch) = done;
        self.half = Some(half);
        if batch.capacity() <= KEEP_SPARE {
            batch.clear();
            self.spare = batch;
        }
        result
    }

    /// Ends our side of the connection once everything handed over is sent.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.settle().await?;
        match self.half.as_mut() {
            Some(half) => half.shutdown().await,
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}
