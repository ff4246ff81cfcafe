//! What a semantic match compares: the question (the last user turn, or a completion's prompt)
//! and the conversation before it, read from the request body on the embedding core.
//!
//! Only plain text conversations qualify. A request whose last turn is not the user's (a tool
//! result in an agent loop), that carries images, tool calls or tool results, a system message
//! after the first, or any message field but `role` and `content` (a `name` says who asks; a
//! `Content` or `Images` spelled otherwise is read by Ollama's case-blind decoder), is answered by
//! the exact cache alone: meaning-alike is not the same answer there. So is a question longer than
//! the model reads (256 word pieces, `MAX_QUESTION_BYTES` as a safe bound): two long prompts that
//! share their first page would otherwise look the same. The history text is the reference's BM25 summary (seed §5.4): the history's 50 most
//! salient words, repeated by weight, so that its embedding says what the conversation is about.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::cache::key::Family;

/// The texts of one request a semantic match compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The last user turn (or the prompt).
    pub question: String,
    /// The BM25 summary of the turns before it, when there are any with text.
    pub history: Option<String>,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(borrow, default)]
    prompt: Option<&'a RawValue>,
    #[serde(borrow, default)]
    images: Option<&'a RawValue>,
}

/// A message's fields, as sent: any but `role` and `content` disqualifies it.
type Message<'a> = std::collections::BTreeMap<String, &'a RawValue>;

/// A question this long may run past the 256 word pieces the model reads (they average about
/// four bytes of English; code and other scripts take more pieces per byte).
pub const MAX_QUESTION_BYTES: usize = 1000;
/// The history read for a summary, at most: a longer conversation is matched exactly only.
pub const MAX_HISTORY_BYTES: usize = 32 << 10;

/// The question and history of `body`, or `None` when the request does not qualify.
pub fn read(family: Family, body: &[u8]) -> Option<Query> {
    let body: Body = serde_json::from_slice(body).ok()?;
    if present(body.images) {
        return None;
    }
    match family {
        Family::OllamaGenerate | Family::OpenAiCompletions => {
            let prompt: String = serde_json::from_str(body.prompt?.get()).ok()?;
            question(prompt).map(|question| Query {
                question,
                history: None,
            })
        }
        Family::OllamaChat | Family::OpenAiChat => conversation(body.messages?),
    }
}

fn conversation(messages: Vec<Message>) -> Option<Query> {
    let mut turns = Vec::with_capacity(messages.len());
    let mut history_bytes = 0;
    let mut question_text = None;
    for (i, m) in messages.iter().enumerate() {
        if m.keys().any(|k| k != "role" && k != "content") {
            return None;
        }
        let role: String = serde_json::from_str(m.get("role")?.get()).ok()?;
        let last = i + 1 == messages.len();
        match role.as_str() {
            "system" | "developer" if i == 0 && !last => continue,
            "user" => {}
            "assistant" if !last => {}
            _ => return None,
        }
        let text = text_of(m.get("content").copied())?;
        if last {
            question_text = Some(text);
        } else if !text.trim().is_empty() {
            history_bytes += text.len();
            if history_bytes > MAX_HISTORY_BYTES {
                return None;
            }
            turns.push(text);
        }
    }
    let question = question(question_text?)?;
    let history = (!turns.is_empty()).then(|| bm25_summary(&turns));
    Some(Query { question, history })
}

fn question(text: String) -> Option<String> {
    (!text.trim().is_empty() && text.len() <= MAX_QUESTION_BYTES).then_some(text)
}

fn present(v: Option<&RawValue>) -> bool {
    v.is_some_and(|v| !matches!(v.get().trim(), "null" | "[]" | "\"\""))
}

/// A message's text: a string, or a list of parts that are all text (any other part, an image
/// or audio, disqualifies the request).
fn text_of(content: Option<&RawValue>) -> Option<String> {
    let Some(content) = content else {
        return Some(String::new());
    };
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content {
        Text(String),
        Parts(Vec<Part>),
        Null(()),
    }
    #[derive(Deserialize)]
    struct Part {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        text: String,
    }
    match serde_json::from_str(content.get()).ok()? {
        Content::Text(t) => Some(t),
        Content::Null(()) => Some(String::new()),
        Content::Parts(parts) => {
            let mut out = String::new();
            for p in parts {
                if p.kind != "text" {
                    return None;
                }
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&p.text);
            }
            Some(out)
        }
    }
}

/// The reference's BM25-weighted history text: documents are the turns, terms their lowercased
/// whitespace-separated words longer than two characters; idf = ln((N+1)/(df+1)) + 1, BM25 with
/// k1 = 1.5, b = 0.75, summed over documents; the 50 best terms, each repeated
/// max(1, round(3 · score / best)) times, best first (ties by first appearance).
pub fn bm25_summary(turns: &[String]) -> String {
    const K1: f64 = 1.5;
    const B: f64 = 0.75;
    const TOP: usize = 50;
    let docs: Vec<Vec<String>> = turns
        .iter()
        .map(|t| {
            t.split_whitespace()
                .map(str::to_lowercase)
                .filter(|w| w.chars().count() > 2)
                .collect()
        })
        .collect();
    let n = docs.len() as f64;
    let avg_len = (docs.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0)).max(1.0);
    // Terms in order of first appearance, so that ties come out the same on every run.
    let mut order: Vec<&str> = Vec::new();
    let mut df: HashMap<&str, f64> = HashMap::new();
    for doc in &docs {
        let mut seen = std::collections::HashSet::new();
        for w in doc {
            if seen.insert(w.as_str()) {
                let e = df.entry(w.as_str()).or_insert_with(|| {
                    order.push(w.as_str());
                    0.0
                });
                *e += 1.0;
            }
        }
    }
    let mut score: HashMap<&str, f64> = HashMap::new();
    for doc in &docs {
        let len = doc.len() as f64;
        let mut tf: HashMap<&str, f64> = HashMap::new();
        for w in doc {
            *tf.entry(w.as_str()).or_default() += 1.0;
        }
        for (term, f) in tf {
            let idf = ((n + 1.0) / (df[term] + 1.0)).ln() + 1.0;
            let s = idf * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * len / avg_len));
            *score.entry(term).or_default() += s;
        }
    }
    let mut ranked: Vec<(usize, &str, f64)> = order
        .iter()
        .enumerate()
        .map(|(i, t)| (i, *t, score[t]))
        .collect();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    ranked.truncate(TOP);
    let best = ranked.first().map_or(1.0, |r| r.2).max(f64::MIN_POSITIVE);
    let mut out = String::new();
    for (_, term, s) in ranked {
        let times = ((3.0 * s / best).round() as usize).max(1);
        for _ in 0..times {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(term);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Option<Query> {
        read(Family::OpenAiChat, body.as_bytes())
    }

    #[test]
    fn the_question_is_the_last_user_turn_and_the_history_what_came_before() {
        let q = chat(r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"Tell me about the Danube river"},{"role":"assistant","content":"The Danube flows through ten countries"},{"role":"user","content":"and how long is it?"}]}"#).unwrap();
        assert_eq!(q.question, "and how long is it?");
        let h = q.history.unwrap();
        assert!(h.contains("danube"), "{h}");
        assert!(
            !h.contains("brief"),
            "the system prompt is the scope's, not the history's: {h}"
        );
        let alone = chat(r#"{"messages":[{"role":"user","content":[{"type":"text","text":"What is"},{"type":"text","text":"Python?"}]}]}"#).unwrap();
        assert_eq!(
            alone,
            Query {
                question: "What is Python?".into(),
                history: None
            }
        );
        let prompt = read(
            Family::OllamaGenerate,
            br#"{"prompt":"Why is the sky blue?"}"#,
        )
        .unwrap();
        assert_eq!(prompt.question, "Why is the sky blue?");
    }

    #[test]
    fn agent_turns_images_and_odd_shapes_do_not_qualify() {
        for body in [
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"","tool_calls":[{"id":"1"}]},{"role":"tool","content":"42"}]}"#,
            r#"{"messages":[{"role":"user","content":"what is this?","images":["aGk="]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"what"},{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":"a"},{"role":"system","content":"now be rude"},{"role":"user","content":"b"}]}"#,
            r#"{"messages":[{"role":"user","content":"   "}]}"#,
            r#"{"messages":[{"role":"assistant","content":"hello"}]}"#,
            r#"{"messages":[]}"#,
            r#"{"messages":"nope"}"#,
            r#"{"messages":[{"role":"user","content":"What is my name?","name":"alice"}]}"#,
            r#"{"messages":[{"role":"user","Content":"x","content":"What is my name?"}]}"#,
            r#"{"messages":[{"role":"user","content":"what is this?","Images":["aGk="]}]}"#,
            r#"[1,2]"#,
        ] {
            assert_eq!(chat(body), None, "{body}");
        }
        assert_eq!(
            read(Family::OpenAiCompletions, br#"{"prompt":["a","b"]}"#),
            None
        );
        assert_eq!(
            read(
                Family::OllamaGenerate,
                br#"{"prompt":"x","images":["aGk="]}"#
            ),
            None
        );
    }

    #[test]
    fn the_summary_weights_rare_words_and_drops_short_ones() {
        let turns = vec![
            "kafka consumer is behind kafka producer".to_string(),
            "the consumer group rebalances".to_string(),
        ];
        let s = bm25_summary(&turns);
        let words: Vec<&str> = s.split(' ').collect();
        assert!(
            words[..6].contains(&"kafka"),
            "the repeated rare word ranks at the top: {s}"
        );
        assert!(words.iter().filter(|w| **w == "kafka").count() == 3, "{s}");
        assert!(!words.contains(&"is"), "two letters are dropped: {s}");
        assert!(bm25_summary(&["a an of".into()]).is_empty());
    }
}
