//! The body of an upstream response, read straight from its connection in the reader's own task.
//! It owns the connection: the end of the body returns it to the pool, dropping the body closes it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::pool::Conn;
use crate::http::body::BoxError;
use crate::http::chunked::{ChunkedDecoder, Decoded};
use crate::http::framing::Framing;

enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

pub struct UpstreamBody {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
    /// The answer's header lines as received (see `head::Head::lines`).
    header_lines: Bytes,
    has_length: bool,
    /// Every buffered byte was looked at and more are needed: decode nothing until a read adds some.
    starved: bool,
}

impl UpstreamBody {
    pub(super) fn new(conn: Conn, framing: Framing, keep_alive: bool, header_lines: Bytes) -> Self {
        let has_length = matches!(framing, Framing::Empty | Framing::Length(_));
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::new()),
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = UpstreamBody {
            conn: Some(conn),
            state,
            keep_alive,
            header_lines,
            has_length,
            starved: false,
        };
        if matches!(body.state, State::Done) {
            body.finish();
        }
        body
    }

    /// The upstream's header lines, for writing through to the client. Taken, not borrowed: they are
    /// a slice of the connection's read buffer, which they would otherwise pin for the whole body.
    pub fn take_header_lines(&mut self) -> Bytes {
        std::mem::take(&mut self.header_lines)
    }

    /// The upstream said how long the body is (or that there is none): it is not a stream.
    pub fn has_length(&self) -> bool {
        self.has_length
    }

    /// The body ended: the connection carries the next request when the framing allows it.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                conn.recycle();
            }
        }
    }

    fn next_data(&mut self) -> Result<Option<Bytes>, String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let data = match &mut self.state {
            State::Length(left) => {
                if conn.buf.is_empty() {
                    return Ok(None);
                }
                let n = (*left).min(conn.buf.len() as u64) as usize;
                *left -= n as u64;
                let data = conn.buf.split_to(n).freeze();
                if *left == 0 {
                    self.finish();
                }
                data
            }
            State::Chunked(dec) => match dec.decode(&mut conn.buf)? {
                Decoded::Data(data) => {
                    if dec.is_done() {
                        self.finish();
                    }
                    data
                }
                Decoded::End => {
                    self.finish();
                    return Ok(None);
                }
                Decoded::NeedMore => return Ok(None),
            },
            State::UntilClose => {
                if conn.buf.is_empty() {
                    return Ok(None);
                }
                conn.buf.split().freeze()
            }
            State::Done => return Ok(None),
        };
        Ok(Some(data))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if !this.starved {
                match this.next_data() {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) => this.starved = true,
                    Err(e) => {
                        this.conn = None;
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) if n > 0 => this.starved = false,
                Poll::Ready(Ok(_)) => {
                    let ended = matches!(this.state, State::UntilClose);
                    this.conn = None;
                    this.state = State::Done;
                    if ended {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(
                        Err("connection closed before the body ended".into()),
                    ));
                }
                Poll::Ready(Err(e)) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Length(n) => SizeHint::with_exact(*n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
