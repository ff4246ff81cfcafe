//! Counting OpenAI-API streams whose client did not ask for usage. Such a stream carries no token
//! counts (Ollama, vLLM and OpenAI send them only with `stream_options.include_usage`), so the
//! router asks the upstream for them and takes the usage-only chunk (`"choices": []`, a `usage`
//! object) out of what the client gets: the client sees the stream it asked for, while the
//! epilogue reads the upstream's whole stream (the accounting finds the counts there, and a cached
//! answer keeps them). `stream_usage: false` turns this off (the stream then passes untouched, and is
//! counted only when the backend reports usage on its own, as llama-server's `timings` do).

use super::relay::Transform;

/// A stream passes through event by event; only the usage-only event is left out.
#[derive(Default)]
pub struct HideUsage {
    /// An event not complete yet.
    partial: Vec<u8>,
    /// How far `partial` is known to hold no event end.
    scanned: usize,
}

/// A usage chunk is a few hundred bytes: an event longer than this goes out as it is, unscanned
/// (so a stream that never ends an event costs no memory).
const MAX_EVENT: usize = 64 << 10;

impl Transform for HideUsage {
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.partial.extend_from_slice(input);
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(len) = event_len(&self.partial[start..], from) {
            from = 0;
            let event = &self.partial[start..start + len];
            if !is_usage_only(event) {
                out.extend_from_slice(event);
            }
            start += len;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_EVENT {
            out.append(&mut self.partial);
        }
        // A blank line may straddle this input and the next.
        self.scanned = self.partial.len().saturating_sub(3);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        // An unterminated last event goes out as it came, unless it is the usage chunk.
        if !is_usage_only(&self.partial) {
            out.append(&mut self.partial);
        }
    }
}

/// The length of the first complete event (through its blank line), if there is one; `b[..from]`
/// is known to hold no event end.
fn event_len(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from.min(b.len());
    while let Some(at) = memchr::memchr(b'\n', &b[i..]) {
        let nl = i + at;
        let next = &b[nl + 1..];
        if next.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if next.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// A `data:` event whose JSON has an empty `choices` and a `usage` object. Only events with a
/// `"usage"` key followed by an object are parsed.
fn is_usage_only(event: &[u8]) -> bool {
    let Some(at) = memchr::memmem::find(event, b"\"usage\"") else {
        return false;
    };
    let rest = event[at + 7..].trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b":") else {
        return false;
    };
    if rest.trim_ascii_start().first() != Some(&b'{') {
        return false;
    }
    // The event's one `data:` line (`event:`, `id:` and comment lines may come with it).
    let mut data_lines = event
        .split(|&b| b == b'\n')
        .filter_map(|l| l.trim_ascii().strip_prefix(b"data:"));
    let (Some(data), None) = (data_lines.next(), data_lines.next()) else {
        return false;
    };
    let data = data.trim_ascii();
    #[derive(serde::Deserialize)]
    struct Chunk {
        choices: Option<Vec<serde::de::IgnoredAny>>,
        usage: Option<serde::de::IgnoredAny>,
    }
    matches!(
        serde_json::from_slice::<Chunk>(data),
        Ok(Chunk { choices: Some(c), usage: Some(_) }) if c.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
        data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
        data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 3, \"completion_tokens\": 2}}\r\n\r\n\
        data: [DONE]\n\n";

    #[test]
    fn only_the_usage_event_is_held_back_however_split() {
        for size in [1, 2, 5, 17, STREAM.len()] {
            let mut t = HideUsage::default();
            let mut out = Vec::new();
            for chunk in STREAM.as_bytes().chunks(size) {
                t.feed(chunk, &mut out);
            }
            t.finish(&mut out);
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("prompt_tokens"), "{size}: {out}");
            assert!(out.ends_with("data: [DONE]\n\n"));
            assert_eq!(out.matches("data:").count(), 3);
        }
    }

    #[test]
    fn chunks_with_choices_or_text_pass() {
        let mut t = HideUsage::default();
        let mut out = Vec::new();
        let keep = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\": {}\"}}],\"usage\":{\"prompt_tokens\":1}}\n\ndata: {\"usage\": {}, \"choices\": [] , oops\n\n";
        t.feed(keep.as_bytes(), &mut out);
        t.feed(b"data: {\"partial", &mut out);
        t.finish(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{keep}data: {{\"partial")
        );
    }

    #[test]
    fn named_commented_and_unterminated_usage_events_are_left_out() {
        let usage = "{\"choices\":[],\"usage\":{\"prompt_tokens\":1}}";
        for stream in [
            format!("event: message\ndata: {usage}\n\n"),
            format!(": note\nid: 7\ndata: {usage}\n\n"),
            format!("data: {usage}"),
        ] {
            let mut t = HideUsage::default();
            let mut out = Vec::new();
            t.feed(stream.as_bytes(), &mut out);
            t.finish(&mut out);
            assert!(
                out.is_empty(),
                "{stream}: {}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}
