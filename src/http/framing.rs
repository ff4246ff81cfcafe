//! Body framing, the one notion both sides of the codec share.

/// How a message body is delimited on the wire (RFC 9112 §6.3): for requests read, answers
/// read from upstreams, and answers written to clients alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: none announced (a request), HEAD, 1xx, 204, 304, or `content-length: 0`.
    Empty,
    Length(u64),
    Chunked,
    /// Everything until the connection closes (answers only; the connection cannot be reused).
    UntilClose,
}
