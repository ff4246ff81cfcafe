//! Token counts read off an answer as it passes: the relay hands every chunk the client gets to a
//! `Tap`, which keeps only the last few KiB. When the answer ends, the counts are found in that
//! tail: every API puts them last (Ollama's final line or object, OpenAI's `usage` chunk or
//! object, llama-server's `timings`). Nothing is parsed per chunk.

use crate::translate::usage;
use crate::translate::wire_ollama::Metrics;

/// How much of the answer's end is kept. Every format's counts sit in its last record, and a last
/// record's count fields are within its final few hundred bytes.
const WINDOW: usize = 4096;

/// No answer has a trillion tokens: a larger count is a backend's bug (or a hostile one), and is
/// not counted (it would overflow the database's 64-bit sums).
const MAX_COUNT: u64 = 1 << 40;

/// Prompt and completion tokens of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
}

/// The tail of an answer's bytes.
#[derive(Default)]
pub struct Tap {
    tail: Vec<u8>,
}

impl Tap {
    /// The next bytes the client is sent.
    #[inline]
    pub fn observe(&mut self, bytes: &[u8]) {
        if bytes.len() >= WINDOW {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - WINDOW..]);
            return;
        }
        if self.tail.len() + bytes.len() > 2 * WINDOW {
            let keep = WINDOW - bytes.len();
            let from = self.tail.len() - keep;
            self.tail.copy_within(from.., 0);
            self.tail.truncate(keep);
        }
        self.tail.extend_from_slice(bytes);
    }

    /// The counts the answer reported, if it reported any.
    pub fn tokens(&self) -> Option<Tokens> {
        find_tokens(&self.tail)
    }
}

/// The count fields every API uses, quoted, by where `Fields` keeps them (the last two: OpenAI's
/// Responses API's `usage`).
const KEYS: [&[u8]; 9] = [
    b"\"prompt_eval_count\"",
    b"\"eval_count\"",
    b"\"prompt_tokens\"",
    b"\"completion_tokens\"",
    b"\"prompt_n\"",
    b"\"predicted_n\"",
    b"\"cache_n\"",
    b"\"input_tokens\"",
    b"\"output_tokens\"",
];

/// How much of a record's end is searched first.
const NEAR: usize = 256;

/// The last value of each of `KEYS` in a tail.
#[derive(Default)]
struct Fields([Option<u64>; 9]);

impl Fields {
    /// The counts of the tail's last record (from the last line that begins with `{` or
    /// `data: {`; a whole answer, pretty-printed or not, is one record): every API reports all of
    /// an answer's counts in one record, its last. Each field is its last `"name":` that is a key
    /// (its opening quote not escaped, as it would be in text) followed by an integer. Ollama's
    /// fields found, the others are not looked for. The searchers (SIMD, forward) are built once.
    fn scan(tail: &[u8]) -> Fields {
        let record = &tail[last_record(tail)..];
        // Answers end with their counts: the record's last bytes first.
        let near = Fields::scan_in(&record[record.len().saturating_sub(NEAR)..]);
        if near.has_a_pair() {
            return near;
        }
        Fields::scan_in(record)
    }

    /// Ollama's two counts, or `usage`'s two.
    fn has_a_pair(&self) -> bool {
        let f = &self.0;
        (f[0].is_some() && f[1].is_some())
            || (f[2].is_some() && f[3].is_some())
            || (f[7].is_some() && f[8].is_some())
    }

    fn scan_in(record: &[u8]) -> Fields {
        static FINDERS: std::sync::OnceLock<[memchr::memmem::Finder<'static>; 9]> =
            std::sync::OnceLock::new();
        let finders = FINDERS.get_or_init(|| KEYS.map(memchr::memmem::Finder::new));
        let mut f = Fields::default();
        for (i, finder) in finders.iter().enumerate() {
            if i == 2 && (f.0[0].is_some() || f.0[1].is_some()) {
                break;
            }
            for at in finder.find_iter(record) {
                if at > 0 && record[at - 1] == b'\\' {
                    continue;
                }
                let rest = skip_space(&record[at + KEYS[i].len()..]);
                if let Some(n) = rest.strip_prefix(b":").and_then(|r| number(skip_space(r))) {
                    f.0[i] = Some(n);
                }
            }
        }
        f
    }
}

/// Where the tail's last record that can hold counts begins: just after the last newline followed by
/// `{` or `data: {` (SSE's closing `data: [DONE]` is not one), else the tail's start.
fn last_record(tail: &[u8]) -> usize {
    for nl in memchr::memrchr_iter(b'\n', tail) {
        let next = &tail[nl + 1..];
        if next.starts_with(b"{") || next.starts_with(b"data: {") || next.starts_with(b"data:{") {
            return nl + 1;
        }
    }
    0
}

/// The counts in the end of an answer, in any of the APIs' forms; the last value of a field wins
/// (servers that send running usage update it on every chunk).
pub fn find_tokens(tail: &[u8]) -> Option<Tokens> {
    let [ollama_prompt, ollama_completion, prompt, completion, prompt_n, predicted_n, cache_n, input, output] =
        Fields::scan(tail).0;
    if ollama_prompt.is_some() || ollama_completion.is_some() {
        return Some(Tokens {
            prompt: ollama_prompt.unwrap_or(0),
            completion: ollama_completion.unwrap_or(0),
        });
    }
    let (prompt, completion) = match prompt.is_some() || completion.is_some() {
        true => (prompt, completion),
        false => (input, output),
    };
    let from_usage = (prompt.is_some() || completion.is_some())
        .then(|| (prompt.unwrap_or(0), completion.unwrap_or(0)));
    let from_timings = (prompt_n.is_some() || predicted_n.is_some()).then(|| Metrics {
        prompt_tokens: prompt_n.unwrap_or(0).saturating_add(cache_n.unwrap_or(0)),
        completion_tokens: predicted_n.unwrap_or(0),
        ..Metrics::default()
    });
    if from_usage.is_none() && from_timings.is_none() {
        return None;
    }
    let m = usage::metrics(from_usage, from_timings);
    Some(Tokens {
        prompt: m.prompt_tokens,
        completion: m.completion_tokens,
    })
}

fn skip_space(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    &b[n..]
}

fn number(b: &[u8]) -> Option<u64> {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 13 {
        return None;
    }
    // A float or exponent is not a count.
    if matches!(b.get(digits), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let n: u64 = std::str::from_utf8(&b[..digits]).ok()?.parse().ok()?;
    (n <= MAX_COUNT).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Option<(u64, u64)> {
        find_tokens(s.as_bytes()).map(|t| (t.prompt, t.completion))
    }

    #[test]
    fn responses_api_usage() {
        let completed = "event: response.output_text.delta\ndata: {\"delta\":\"hi\"}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":4,\"total_tokens\":7}}}\n\n";
        assert_eq!(tokens(completed), Some((3, 4)));
        assert_eq!(
            tokens("{\"object\":\"response\",\"usage\":{\"input_tokens\":11,\"output_tokens\":2}}"),
            Some((11, 2))
        );
    }

    #[test]
    fn every_api_form() {
        // Ollama's final line (generate keeps its context before the counts).
        assert_eq!(
            tokens(
                "{\"response\":\"a\",\"done\":false}\n{\"done\":true,\"context\":[1,2],\"prompt_eval_count\":12,\"prompt_eval_duration\":5,\"eval_count\":34}\n"
            ),
            Some((12, 34))
        );
        // Ollama embed: a prompt count only.
        assert_eq!(
            tokens("{\"embeddings\":[[0.1]],\"prompt_eval_count\":7}"),
            Some((7, 0))
        );
        // OpenAI stream with a usage chunk.
        assert_eq!(
            tokens("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9,\"total_tokens\":14,\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\ndata: [DONE]\n\n"),
            Some((5, 9))
        );
        // Running usage: the last one counts.
        assert_eq!(
            tokens("data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\ndata: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n"),
            Some((5, 3))
        );
        // llama-server: timings (prompt = prompt_n + cache_n) when usage has no completion yet.
        assert_eq!(
            tokens("data: {\"timings\":{\"cache_n\":2,\"prompt_n\":4,\"predicted_n\":8}}\n\n"),
            Some((6, 8))
        );
        assert_eq!(
            tokens("{\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":8},\"timings\":{\"prompt_n\":1,\"predicted_n\":8}}"),
            Some((6, 8))
        );
        // Embeddings usage without completion tokens.
        assert_eq!(
            tokens("{\"data\":[],\"usage\":{\"prompt_tokens\":3,\"total_tokens\":3}}"),
            Some((3, 0))
        );
    }

    #[test]
    fn text_and_junk_are_not_counts() {
        assert_eq!(
            tokens("{\"response\":\"say \\\"eval_count\\\": 99\",\"done\":false}\n"),
            None
        );
        assert_eq!(tokens("{\"eval_count\":null}"), None);
        assert_eq!(tokens("{\"eval_count\":1.5}"), None);
        assert_eq!(tokens("{\"eval_count\":-3}"), None);
        assert_eq!(tokens("{\"eval_count\":99999999999999999999999}"), None);
        assert_eq!(tokens("{\"eval_count\":9223372036854775807}"), None);
        assert_eq!(tokens("{\"eval_count\":1099511627777}"), None);
        assert_eq!(tokens("{\"eval_count\":1099511627776}"), Some((0, 1 << 40)));
        assert_eq!(tokens(""), None);
        assert_eq!(tokens("\"eval_count\""), None);
    }

    #[test]
    fn only_the_last_record_counts() {
        // Running usage on every chunk: the last record's.
        assert_eq!(
            tokens("data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\ndata: {\"x\":1,\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":5}}\n\ndata: [DONE]\n\n"),
            Some((5, 3))
        );
        // An earlier record's field is not mixed into the last one's.
        assert_eq!(
            tokens("data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\ndata: {\"usage\":{\"completion_tokens\":3}}\n\n"),
            Some((0, 3))
        );
        // A pretty-printed whole answer is one record.
        assert_eq!(
            tokens("{\n  \"usage\": {\n    \"prompt_tokens\": 7,\n    \"completion_tokens\": 2\n  }\n}\n"),
            Some((7, 2))
        );
        // A key whose opening quote is escaped is text.
        assert_eq!(tokens("{\"content\":\"x\\\"eval_count\\\": 4\"}"), None);
    }

    #[test]
    fn the_tail_survives_any_split() {
        let mut body = Vec::new();
        for i in 0..500 {
            body.extend_from_slice(
                format!("{{\"response\":\"token {i}\",\"done\":false}}\n").as_bytes(),
            );
        }
        body.extend_from_slice(b"{\"done\":true,\"prompt_eval_count\":3,\"eval_count\":500}\n");
        for size in [1, 7, 100, 4095, 4096, 5000, body.len()] {
            let mut tap = Tap::default();
            for chunk in body.chunks(size) {
                tap.observe(chunk);
            }
            assert!(tap.tail.len() <= 2 * WINDOW);
            assert_eq!(
                tap.tokens(),
                Some(Tokens {
                    prompt: 3,
                    completion: 500
                }),
                "chunks of {size}"
            );
        }
    }
}
