//! Response bodies the router sends: a whole buffer, a body produced frame by frame by a higher
//! layer (the proxy's relay of an upstream answer), or a channel fed by a task.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body made frame by frame above this layer. The connection polls it like any body and writes
/// its passed-through header lines into the answer's head.
pub trait Streamed {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>;
    fn is_end_stream(&self) -> bool;
    fn size_hint(&self) -> SizeHint;
    /// Header lines (`name: value\r\n` each) that go into the client's answer as they are; taken
    /// once, when the head is written (empty: none).
    fn take_header_lines(&mut self) -> Bytes;
}

pub enum RouterBody {
    Full(Option<Bytes>),
    Streamed(Box<dyn Streamed>),
    Channel(mpsc::Receiver<Bytes>),
}

impl RouterBody {
    /// Header lines that go into the client's answer as they are (empty: none).
    pub fn take_passthrough_header_lines(&mut self) -> Bytes {
        match self {
            RouterBody::Streamed(s) => s.take_header_lines(),
            _ => Bytes::new(),
        }
    }

    pub fn empty() -> Self {
        RouterBody::Full(None)
    }

    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        RouterBody::Full(if b.is_empty() { None } else { Some(b) })
    }
}

impl Body for RouterBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RouterBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RouterBody::Channel(rx) => Pin::new(rx)
                .poll_next(cx)
                .map(|o| o.map(|b| Ok(Frame::data(b)))),
            RouterBody::Streamed(s) => s.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RouterBody::Full(b) => b.is_none(),
            RouterBody::Streamed(s) => s.is_end_stream(),
            RouterBody::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RouterBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RouterBody::Streamed(s) => s.size_hint(),
            RouterBody::Channel(_) => SizeHint::default(),
        }
    }
}
