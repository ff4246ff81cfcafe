//! Incremental decoder of `Transfer-Encoding: chunked` bodies: data comes out as zero-copy slices
//! of the read buffer, however the input is split. Used for upstream answers and client requests.
//!
//! Every framing line (size, the end of a chunk's data, trailers) must end in CRLF: a bare LF is
//! an error. Peers that disagree on where a chunk line ends are how bodies get smuggled, and
//! common servers (Go, hyper) refuse bare LF there too.

use bytes::{Buf, Bytes, BytesMut};

/// Longest size or trailer line accepted (extensions included).
const MAX_LINE: usize = 8 * 1024;
/// Most trailer bytes accepted after the last chunk, all lines together.
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Expecting `<hex size>[;ext]\r\n`.
    #[default]
    Size,
    /// Inside a chunk: this many data bytes still to come.
    Data(u64),
    /// The `\r\n` after a chunk's data.
    DataEnd,
    /// After the last (zero) chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: State,
    /// A framing error met while reading ahead, reported after the data decoded before it.
    failed: Option<String>,
    /// Trailer bytes read so far.
    trailer_bytes: usize,
}

/// What the decoder could make of the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// The body ended (the terminating chunk and trailers were read).
    End,
    /// More input is needed.
    NeedMore,
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes the current chunk has announced and not yet delivered: a size line can say at
    /// once that a body will exceed a limit.
    pub fn announced(&self) -> u64 {
        match self.state {
            State::Data(left) => left,
            _ => 0,
        }
    }

    /// Consumes framing and returns the next data slice, the end, or a request for more input.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = left.min(buf.len() as u64) as usize;
                    let data = buf.split_to(n).freeze();
                    self.state = if left == n as u64 {
                        State::DataEnd
                    } else {
                        State::Data(left - n as u64)
                    };
                    // Read ahead through framing already buffered, so the end is known as early as
                    // possible; an error there waits until this data is delivered.
                    if let Err(e) = self.skip_framing(buf) {
                        self.failed = Some(e);
                    }
                    return Ok(Decoded::Data(data));
                }
                _ => {
                    if !self.step_framing(buf)? {
                        return Ok(Decoded::NeedMore);
                    }
                }
            }
        }
    }

    /// Consumes every framing line already buffered, stopping at data or at the end.
    fn skip_framing(&mut self, buf: &mut BytesMut) -> Result<(), String> {
        while !matches!(self.state, State::Data(_) | State::Done) {
            if !self.step_framing(buf)? {
                break;
            }
        }
        Ok(())
    }

    /// One framing step; false when it needs more input.
    fn step_framing(&mut self, buf: &mut BytesMut) -> Result<bool, String> {
        match self.state {
            State::Size => {
                let Some(taken) = find_line(buf)? else {
                    return Ok(false);
                };
                let size = parse_size(&buf[..taken])?;
                buf.advance(taken);
                self.state = if size == 0 {
                    State::Trailers
                } else {
                    State::Data(size)
                };
            }
            State::DataEnd => {
                if buf.len() < 2 {
                    if buf.first().is_some_and(|b| *b != b'\r') {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    return Ok(false);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF".into());
                }
                buf.advance(2);
                self.state = State::Size;
            }
            State::Trailers => {
                let Some(taken) = find_line(buf)? else {
                    return Ok(false);
                };
                if taken == 2 {
                    buf.advance(taken);
                    self.state = State::Done;
                    return Ok(true);
                }
                self.trailer_bytes += taken;
                if self.trailer_bytes > MAX_TRAILERS {
                    return Err(format!("trailers longer than {MAX_TRAILERS} bytes"));
                }
                if !is_field_line(&buf[..taken - 2]) {
                    return Err("a trailer line is not a header field".into());
                }
                buf.advance(taken);
            }
            State::Data(_) | State::Done => {}
        }
        Ok(true)
    }
}

/// `name: value`, with a non-empty name of token characters (RFC 9110 §5.1), as a trailer line
/// must be. (Trailers are dropped, never forwarded: this only refuses what no peer should send.)
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    colon > 0
        && line[..colon]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
}

/// Finds the first whole buffered line and the bytes it takes up, its CRLF included. Read in
/// place: a line costs no buffer split, once per chunk.
fn find_line(buf: &[u8]) -> Result<Option<usize>, String> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(pos) if pos > MAX_LINE => Err("chunk size line too long".into()),
        Some(pos) if pos > 0 && buf[pos - 1] == b'\r' => Ok(Some(pos + 1)),
        Some(_) => Err("chunked framing line ends in a bare LF".into()),
        None if buf.len() > MAX_LINE => Err("chunk size line too long".into()),
        None => Ok(None),
    }
}

/// The size on a whole size line (`line` ends in its only LF, after a CR). httparse skips
/// extensions and stops past 16 hex digits, so a size never wraps; it also reads a line with no
/// digits as 0, hence the check of the first byte.
fn parse_size(line: &[u8]) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid chunk size line {:?}",
            String::from_utf8_lossy(line)
        )
    };
    if !line.first().is_some_and(u8::is_ascii_hexdigit) {
        return Err(invalid());
    }
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((used, size))) if used == line.len() => Ok(size),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and collects data and whether the end was seen.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), String> {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match dec.decode(&mut buf)? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::End => return Ok((out, true)),
                    Decoded::NeedMore => break,
                }
            }
        }
        Ok((out, dec.is_done()))
    }

    const BODY: &[u8] =
        b"5\r\nhello\r\n1;ext=1\r\n \r\nC\r\nworld, again\r\n0\r\nx-trailer: 1\r\n\r\n";

    #[test]
    fn decodes_whatever_the_split() {
        for step in 1..=BODY.len() {
            let (data, done) = decode_in_steps(BODY, step).unwrap();
            assert_eq!(data, b"hello world, again", "step {step}");
            assert!(done, "step {step}");
        }
    }

    #[test]
    fn end_is_known_with_the_last_data() {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\n"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"abc"))
        );
        assert!(dec.is_done(), "the terminator was already buffered");
        assert!(buf.is_empty());
    }

    #[test]
    fn leaves_the_next_response_in_the_buffer() {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"0\r\n\r\nHTTP/1.1 200 OK\r\n"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn trailers_are_header_fields_within_a_limit() {
        assert!(decode_in_steps(b"0\r\nGET /api/usage HTTP/1.1\r\n\r\n", 5).is_err());
        assert!(decode_in_steps(b"0\r\n: x\r\n\r\n", 5).is_err());
        assert!(decode_in_steps(b"0\r\nx y: 1\r\n\r\n", 5).is_err());
        let mut many = b"0\r\n".to_vec();
        while many.len() <= MAX_TRAILERS {
            many.extend_from_slice(b"x-pad: 0123456789abcdef0123456789abcdef\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert!(decode_in_steps(&many, 4096).is_err());
        let (_, done) = decode_in_steps(b"0\r\nx-a: 1\r\nx-b:\r\n\r\n", 3).unwrap();
        assert!(done);
    }

    #[test]
    fn rejects_bad_framing() {
        assert!(decode_in_steps(b"zz\r\nabc", 3).is_err());
        assert!(decode_in_steps(b"3\r\nabcXY", 2).is_err());
        assert!(decode_in_steps(b"\r\n", 1).is_err());
        assert!(decode_in_steps(b"fffffffffffffffff\r\n", 4).is_err());
        assert!(decode_in_steps(&[b'1'; MAX_LINE + 2], 1024).is_err());
        let mut long = vec![b'1'; MAX_LINE + 2];
        long.extend_from_slice(b"\r\n");
        assert!(
            decode_in_steps(&long, long.len()).is_err(),
            "a whole line is held to the limit too"
        );
    }

    #[test]
    fn rejects_bare_lf_lines_everywhere() {
        for body in [
            &b"2\nhi\r\n0\r\n\r\n"[..],
            b"2\r\nhi\n0\r\n\r\n",
            b"2;a\nhi\r\n0\r\n\r\n",
            b"2\r\nhi\r\n0\n\r\n",
            b"2\r\nhi\r\n0\r\nx: 1\n\r\n",
            b"2\r\nhi\r\n0\r\n\n",
        ] {
            for step in [1, body.len()] {
                assert!(
                    decode_in_steps(body, step).is_err(),
                    "{:?} step {step}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn chunk_sizes_are_hex_digits_within_u64() {
        assert!(decode_in_steps(b";ext\r\n", 6).is_err(), "no digits");
        assert!(decode_in_steps(b" 1\r\nx\r\n0\r\n\r\n", 3).is_err());
        assert!(decode_in_steps(b"+1\r\nx\r\n0\r\n\r\n", 3).is_err());
        assert!(
            decode_in_steps(b"10000000000000000\r\n", 19).is_err(),
            "more than u64"
        );
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"ffffffffffffffff \t;a=\"b c\"\r\nxy"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"xy"))
        );
        assert_eq!(dec.state, State::Data(u64::MAX - 2));
    }

    #[test]
    fn data_decoded_before_a_framing_error_is_delivered_first() {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"3\r\nabc\r\nzz\r\n"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"abc"))
        );
        assert!(dec.decode(&mut buf).is_err());
        assert!(dec.decode(&mut buf).is_err(), "the error stays");
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"3\r\nabcXY"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"abc"))
        );
        assert!(dec.decode(&mut buf).is_err());
    }
}
