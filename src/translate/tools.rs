//! Tool-call arguments between the APIs (Ollama: a JSON object; OpenAI: a JSON string) and the
//! accumulator that joins OpenAI's streamed argument fragments into whole Ollama calls.

use serde_json::{Map, Value};

use super::wire_ollama::{OllamaFunction, OllamaToolCall};

/// Ollama arguments (object) → the OpenAI string. A string is kept as is (some clients send one); a
/// missing or null value becomes `{}`.
pub(crate) fn args_to_string(args: Option<&Value>) -> String {
    match args {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// OpenAI arguments (string) → the Ollama object, for responses. An empty string is `{}` (tools without
/// parameters). Text that is not a JSON object is kept under `_raw` rather than dropped (the reference
/// turned it into `{}`, hiding the model's malformed output) and rather than left a string (Ollama
/// clients decode `arguments` as a map and would fail on the whole response).
pub(crate) fn args_to_object(args: &str) -> Value {
    let trimmed = args.trim();
    if trimmed.is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(Value::Null) => Value::Object(Map::new()),
        _ => {
            let mut map = Map::new();
            map.insert("_raw".to_string(), Value::String(args.to_string()));
            Value::Object(map)
        }
    }
}

/// A streamed call being assembled.
#[derive(Debug)]
struct Partial {
    index: u64,
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Joins OpenAI tool-call deltas by `index`: id and name from the first fragment that has them,
/// argument fragments concatenated in arrival order.
#[derive(Debug, Default)]
pub(crate) struct ToolAccumulator {
    calls: Vec<Partial>,
}

impl ToolAccumulator {
    /// Adds one delta. A delta without `index` continues the call with the same id, else the latest call
    /// (servers that omit the index send calls one after another).
    pub(crate) fn push(
        &mut self,
        index: Option<u64>,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&Value>,
    ) {
        let id = id.filter(|s| !s.is_empty());
        let pos = match index {
            Some(i) => self.calls.iter().position(|c| c.index == i),
            None => match id {
                Some(id) => self.calls.iter().position(|c| c.id.as_deref() == Some(id)),
                None => self.calls.len().checked_sub(1),
            },
        };
        let pos = pos.unwrap_or_else(|| {
            let index = index.unwrap_or_else(|| {
                self.calls
                    .iter()
                    .map(|c| c.index.saturating_add(1))
                    .max()
                    .unwrap_or(0)
            });
            self.calls.push(Partial {
                index,
                id: None,
                name: String::new(),
                arguments: String::new(),
            });
            self.calls.len() - 1
        });
        let call = &mut self.calls[pos];
        if call.id.is_none() {
            call.id = id.map(str::to_string);
        }
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            if call.name.is_empty() {
                call.name = name.to_string();
            }
        }
        match arguments {
            Some(Value::String(s)) => call.arguments.push_str(s),
            // Some servers send the arguments as an object in one piece.
            Some(v @ (Value::Object(_) | Value::Array(_))) => {
                call.arguments.push_str(&v.to_string())
            }
            _ => {}
        }
    }

    /// Bytes of arguments held, so a caller can bound what an upstream makes it buffer.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.calls
            .iter()
            .map(|c| c.arguments.len() + c.name.len())
            .sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The whole calls, ordered by index, as Ollama sends them; the accumulator is left empty.
    pub(crate) fn take(&mut self) -> Vec<OllamaToolCall> {
        let mut calls = std::mem::take(&mut self.calls);
        calls.sort_by_key(|c| c.index);
        calls
            .into_iter()
            .map(|c| OllamaToolCall {
                id: c.id,
                function: OllamaFunction {
                    index: c.index,
                    name: c.name,
                    arguments: args_to_object(&c.arguments),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_both_ways() {
        assert_eq!(
            args_to_string(Some(&json!({"city": "Tokyo"}))),
            r#"{"city":"Tokyo"}"#
        );
        assert_eq!(args_to_string(Some(&json!("{\"a\":1}"))), r#"{"a":1}"#);
        assert_eq!(args_to_string(None), "{}");
        assert_eq!(
            args_to_object(r#"{"city":"Tokyo"}"#),
            json!({"city": "Tokyo"})
        );
        assert_eq!(args_to_object("  "), json!({}));
        assert_eq!(args_to_object("null"), json!({}));
        assert_eq!(
            args_to_object(r#"{"city":"Tok"#),
            json!({"_raw": r#"{"city":"Tok"#})
        );
        assert_eq!(args_to_object("[1]"), json!({"_raw": "[1]"}));
    }

    #[test]
    fn joins_fragments_by_index() {
        let mut acc = ToolAccumulator::default();
        acc.push(Some(1), Some("call_b"), Some("b"), Some(&json!("")));
        acc.push(Some(0), Some("call_a"), Some("a"), Some(&json!("{\"x\":")));
        acc.push(Some(0), None, None, Some(&json!("1}")));
        acc.push(Some(1), None, None, Some(&json!("{}")));
        let calls = serde_json::to_value(acc.take()).unwrap();
        assert_eq!(
            calls,
            json!([
                {"id": "call_a", "function": {"index": 0, "name": "a", "arguments": {"x": 1}}},
                {"id": "call_b", "function": {"index": 1, "name": "b", "arguments": {}}}
            ])
        );
        assert!(acc.is_empty());
    }

    #[test]
    fn joins_fragments_without_index() {
        let mut acc = ToolAccumulator::default();
        acc.push(None, Some("c1"), Some("f"), Some(&json!("{\"a\"")));
        acc.push(None, None, None, Some(&json!(":2}")));
        acc.push(None, Some("c2"), Some("g"), Some(&json!({"b": 3})));
        let calls = serde_json::to_value(acc.take()).unwrap();
        assert_eq!(
            calls,
            json!([
                {"id": "c1", "function": {"index": 0, "name": "f", "arguments": {"a": 2}}},
                {"id": "c2", "function": {"index": 1, "name": "g", "arguments": {"b": 3}}}
            ])
        );
    }
}
