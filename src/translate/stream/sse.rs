//! Server-sent events parser (the WHATWG event-stream rules the OpenAI stream follows): `data:` lines are
//! joined with `\n` into one event that a blank line dispatches; comments (`:`), `event:`, `id:` and
//! `retry:` lines are ignored; a leading byte-order mark is skipped.

use super::lines::{LineBuffer, Next};
use super::MAX_PENDING;

#[derive(Debug)]
pub(super) struct SseParser {
    lines: LineBuffer,
    data: Vec<u8>,
    has_data: bool,
    at_start: bool,
    /// `data` was handed out as an event and must be cleared before the next line.
    dispatched: bool,
}

impl SseParser {
    pub(super) fn new() -> Self {
        SseParser {
            lines: LineBuffer::new(true),
            data: Vec::new(),
            has_data: false,
            at_start: true,
            dispatched: false,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.lines.push(bytes);
    }

    /// The next complete event's data (`Next::Line`), `Pending`, or `TooLong`.
    pub(super) fn next_event(&mut self) -> Next<'_> {
        self.reset_if_dispatched();
        loop {
            match self.lines.next_line() {
                Next::Pending => return Next::Pending,
                Next::TooLong => return Next::TooLong,
                Next::Line(line) => {
                    if apply_line(&mut self.data, &mut self.has_data, &mut self.at_start, line) {
                        self.dispatched = true;
                        return Next::Line(&self.data);
                    }
                    if self.data.len() > MAX_PENDING {
                        return Next::TooLong;
                    }
                }
            }
        }
    }

    /// At the end of the stream: the event still being collected, if any. Servers that close the
    /// connection right after their last `data:` line (no blank line) still get it delivered.
    pub(super) fn finish(&mut self) -> Option<&[u8]> {
        self.reset_if_dispatched();
        if let Some(rest) = self.lines.take_rest() {
            if apply_line(
                &mut self.data,
                &mut self.has_data,
                &mut self.at_start,
                &rest,
            ) {
                self.dispatched = true;
                return Some(&self.data);
            }
        }
        if self.has_data {
            self.dispatched = true;
            return Some(&self.data);
        }
        None
    }

    fn reset_if_dispatched(&mut self) {
        if self.dispatched {
            self.data.clear();
            self.has_data = false;
            self.dispatched = false;
        }
    }
}

/// Applies one line to the event being collected; true when the line dispatches it.
fn apply_line(data: &mut Vec<u8>, has_data: &mut bool, at_start: &mut bool, line: &[u8]) -> bool {
    let line = if std::mem::take(at_start) {
        line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line)
    } else {
        line
    };
    if line.is_empty() {
        return *has_data;
    }
    if line[0] == b':' {
        return false;
    }
    let (field, value) = match line.iter().position(|&b| b == b':') {
        Some(i) => {
            let value = &line[i + 1..];
            (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &b""[..]),
    };
    if field == b"data" {
        if *has_data {
            data.push(b'\n');
        }
        data.extend_from_slice(value);
        *has_data = true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c);
            while let Next::Line(ev) = p.next_event() {
                out.push(String::from_utf8_lossy(ev).into_owned());
            }
        }
        if let Some(ev) = p.finish() {
            out.push(String::from_utf8_lossy(ev).into_owned());
        }
        out
    }

    #[test]
    fn fields_comments_and_multiline_data() {
        let stream = b"\xef\xbb\xbf: keep-alive\nevent: message\nid: 7\ndata: {\"a\":\ndata:1}\n\nretry: 10\n\ndata: [DONE]\n\n";
        assert_eq!(events(&[stream]), ["{\"a\":\n1}", "[DONE]"]);
    }

    #[test]
    fn crlf_and_unterminated_last_event() {
        assert_eq!(events(&[b"data: x\r\n\r", b"\ndata: y\r\n"]), ["x", "y"]);
        assert_eq!(events(&[b"data: z"]), ["z"]);
        assert_eq!(events(&[b"data\n\n"]), [""]);
        assert_eq!(events(&[b": only a comment\n\n\n"]), Vec::<String>::new());
    }
}
