//! Splits a byte stream into lines across arbitrary read boundaries. Lines are handed out as bytes, so a
//! multi-byte UTF-8 character split between reads is whole again by the time its line is complete.

use super::MAX_PENDING;

/// What the buffer has next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next<'a> {
    /// A complete line, without its terminator.
    Line(&'a [u8]),
    /// No complete line yet.
    Pending,
    /// A line longer than [`MAX_PENDING`].
    TooLong,
}

#[derive(Debug)]
pub(super) struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the current (incomplete) line in `buf`.
    start: usize,
    /// Where to continue looking for a terminator.
    scan: usize,
    /// SSE ends lines at `\r\n`, `\n` or a lone `\r`; NDJSON only at `\n` (a trailing `\r` is dropped).
    cr_ends_line: bool,
    /// The last line ended with `\r`; a `\n` right after it is part of the same terminator.
    skip_lf: bool,
}

impl LineBuffer {
    pub(super) fn new(cr_ends_line: bool) -> Self {
        LineBuffer {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            cr_ends_line,
            skip_lf: false,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            // Drop lines already handed out, so the buffer holds at most one partial line plus new input.
            self.buf.drain(..self.start);
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    pub(super) fn next_line(&mut self) -> Next<'_> {
        if self.skip_lf && self.scan < self.buf.len() {
            self.skip_lf = false;
            if self.buf[self.scan] == b'\n' {
                self.scan += 1;
                self.start = self.scan;
            }
        }
        let Some(offset) = find_terminator(&self.buf[self.scan..], self.cr_ends_line) else {
            self.scan = self.buf.len();
            return if self.buf.len() - self.start > MAX_PENDING {
                Next::TooLong
            } else {
                Next::Pending
            };
        };
        let end = self.scan + offset;
        let line_start = self.start;
        self.skip_lf = self.buf[end] == b'\r';
        self.scan = end + 1;
        self.start = self.scan;
        if end - line_start > MAX_PENDING {
            return Next::TooLong;
        }
        let mut line = &self.buf[line_start..end];
        if !self.cr_ends_line {
            line = line.strip_suffix(b"\r").unwrap_or(line);
        }
        Next::Line(line)
    }

    /// The unterminated last line at the end of the stream, if any; the buffer is emptied.
    pub(super) fn take_rest(&mut self) -> Option<Vec<u8>> {
        let mut rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        self.scan = 0;
        if self.skip_lf && rest.first() == Some(&b'\n') {
            rest.remove(0);
        }
        self.skip_lf = false;
        if !self.cr_ends_line && rest.last() == Some(&b'\r') {
            rest.pop();
        }
        (!rest.is_empty()).then_some(rest)
    }
}

/// Index of the first line terminator (`\n`, and `\r` when `cr_ends_line`). Every byte of a stream
/// passes through here, so whole blocks are tested at once (the compiler turns the fold into SIMD
/// compares) before the byte-wise search in the block that has one.
fn find_terminator(bytes: &[u8], cr_ends_line: bool) -> Option<usize> {
    const BLOCK: usize = 16;
    let ends = |b: u8| (b == b'\n') | (cr_ends_line & (b == b'\r'));
    let clear_blocks = bytes
        .chunks_exact(BLOCK)
        .take_while(|block| !block.iter().fold(false, |hit, &b| hit | ends(b)))
        .count();
    let from = clear_blocks * BLOCK;
    bytes[from..]
        .iter()
        .position(|&b| ends(b))
        .map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(cr: bool, chunks: &[&[u8]]) -> (Vec<String>, Option<String>) {
        let mut lb = LineBuffer::new(cr);
        let mut lines = Vec::new();
        for c in chunks {
            lb.push(c);
            while let Next::Line(l) = lb.next_line() {
                lines.push(String::from_utf8_lossy(l).into_owned());
            }
        }
        (
            lines,
            lb.take_rest()
                .map(|r| String::from_utf8_lossy(&r).into_owned()),
        )
    }

    #[test]
    fn sse_terminators_across_reads() {
        let (lines, rest) = split(true, &[b"a\r", b"\nb\rc\n\r", b"\n", b"d"]);
        assert_eq!(lines, ["a", "b", "c", ""]);
        assert_eq!(rest.as_deref(), Some("d"));
        let (lines, rest) = split(true, &[b"a\r", b"\r", b"\n"]);
        assert_eq!(lines, ["a", ""]);
        assert_eq!(rest, None);
    }

    #[test]
    fn ndjson_keeps_lone_cr_and_strips_crlf() {
        let (lines, rest) = split(false, &[b"{\"a\":\r1}\r", b"\n{}", b"\r"]);
        assert_eq!(lines, ["{\"a\":\r1}"]);
        assert_eq!(rest.as_deref(), Some("{}"));
    }

    #[test]
    fn terminators_in_every_position() {
        for len in 0..40 {
            let mut bytes = vec![b'x'; len];
            assert_eq!(find_terminator(&bytes, true), None);
            for at in 0..len {
                bytes[at] = b'\r';
                assert_eq!(find_terminator(&bytes, true), Some(at));
                assert_eq!(find_terminator(&bytes, false), None);
                bytes[at] = b'\n';
                assert_eq!(find_terminator(&bytes, false), Some(at));
                bytes[at] = b'x';
            }
        }
    }

    #[test]
    fn utf8_split_between_reads_is_whole() {
        let text = "héllo 日本\n".as_bytes();
        let (lines, _) = split(false, &[&text[..2], &text[2..9], &text[9..]]);
        assert_eq!(lines, ["héllo 日本"]);
    }
}
