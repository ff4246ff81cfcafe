//! Ollama chat messages → OpenAI chat messages: images become `image_url` parts next to the text (the
//! reference lost the text), assistant tool calls get string arguments and ids, tool results get the
//! `tool_call_id` OpenAI requires, and assistant `thinking` is dropped (OpenAI takes no reasoning input).

use serde_json::{json, Map, Value};

use super::images;
use super::json::opt_str;
use super::tools::args_to_string;
use super::TranslateError;

/// Converts the `messages` array of an Ollama chat request.
pub(crate) fn convert(messages: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let items = match messages {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(TranslateError::bad("`messages` must be an array")),
    };
    let mut links = Links::default();
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let m = m
            .as_object()
            .ok_or_else(|| TranslateError::bad(format!("`messages[{i}]` must be an object")))?;
        out.push(message(m, i, &mut links)?);
    }
    Ok(out)
}

/// One user (or system) turn: the text and images of an Ollama generate request or chat message.
pub(crate) fn user_content(
    text: &str,
    images_field: Option<&Value>,
    what: &str,
) -> Result<Value, TranslateError> {
    let images = image_list(images_field, what)?;
    if images.is_empty() {
        return Ok(Value::String(text.to_string()));
    }
    let mut parts = Vec::with_capacity(images.len() + 1);
    if !text.is_empty() {
        parts.push(json!({ "type": "text", "text": text }));
    }
    for b64 in images {
        parts.push(json!({ "type": "image_url", "image_url": { "url": images::data_url(b64) } }));
    }
    Ok(Value::Array(parts))
}

fn image_list<'a>(v: Option<&'a Value>, what: &str) -> Result<Vec<&'a str>, TranslateError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().filter(|s| !s.trim().is_empty()))
            .collect::<Option<Vec<&str>>>()
            .ok_or_else(|| {
                TranslateError::bad(format!("`{what}` must be a list of base64 strings"))
            }),
        Some(_) => Err(TranslateError::bad(format!(
            "`{what}` must be a list of base64 strings"
        ))),
    }
}

/// Tool calls of the latest assistant turn not yet answered, to give tool results without an id the
/// id of their call: by `tool_name`, else in order (Ollama clients answer calls in order).
#[derive(Default)]
struct Links {
    pending: Vec<(String, String)>,
    next_id: usize,
}

impl Links {
    fn new_id(&mut self) -> String {
        let id = format!("call_{}", self.next_id);
        self.next_id += 1;
        id
    }

    fn answer(&mut self, id: Option<&str>, name: Option<&str>) -> Option<String> {
        let pos = match (id, name) {
            (Some(id), _) => self.pending.iter().position(|(i, _)| i == id),
            (None, Some(name)) => self
                .pending
                .iter()
                .position(|(_, n)| n == name)
                .or_else(|| (!self.pending.is_empty()).then_some(0)),
            (None, None) => (!self.pending.is_empty()).then_some(0),
        };
        let linked = pos.map(|p| self.pending.remove(p).0);
        id.map(str::to_string).or(linked)
    }
}

fn message(m: &Map<String, Value>, i: usize, links: &mut Links) -> Result<Value, TranslateError> {
    let role = opt_str(m, "role", &format!("messages[{i}].role"))?
        .ok_or_else(|| TranslateError::bad(format!("`messages[{i}].role` is required")))?;
    let content = opt_str(m, "content", &format!("messages[{i}].content"))?;
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    match role {
        "assistant" => {
            let calls = tool_calls(m.get("tool_calls"), i, links)?;
            let text = content.unwrap_or("");
            let value = if text.is_empty() && !calls.is_empty() && m.get("images").is_none() {
                // OpenAI's own form of a pure tool-call turn.
                Value::Null
            } else {
                user_content(text, m.get("images"), &format!("messages[{i}].images"))?
            };
            out.insert("content".into(), value);
            if !calls.is_empty() {
                out.insert("tool_calls".into(), Value::Array(calls));
            }
        }
        "tool" => {
            let id = opt_str(m, "tool_call_id", &format!("messages[{i}].tool_call_id"))?;
            let name = opt_str(m, "tool_name", &format!("messages[{i}].tool_name"))?.or(opt_str(
                m,
                "name",
                &format!("messages[{i}].name"),
            )?);
            out.insert("content".into(), json!(content.unwrap_or("")));
            if let Some(id) = links.answer(id, name) {
                out.insert("tool_call_id".into(), json!(id));
            }
            if let Some(name) = name {
                out.insert("name".into(), json!(name));
            }
        }
        _ => {
            let value = user_content(
                content.unwrap_or(""),
                m.get("images"),
                &format!("messages[{i}].images"),
            )?;
            out.insert("content".into(), value);
        }
    }
    Ok(Value::Object(out))
}

fn tool_calls(
    v: Option<&Value>,
    i: usize,
    links: &mut Links,
) -> Result<Vec<Value>, TranslateError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(TranslateError::bad(format!(
                "`messages[{i}].tool_calls` must be an array"
            )))
        }
    };
    links.pending.clear();
    let mut out = Vec::with_capacity(items.len());
    for (j, call) in items.iter().enumerate() {
        let what = format!("messages[{i}].tool_calls[{j}]");
        let function = call
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| TranslateError::bad(format!("`{what}.function` must be an object")))?;
        let name = opt_str(function, "name", &format!("{what}.function.name"))?
            .ok_or_else(|| TranslateError::bad(format!("`{what}.function.name` is required")))?;
        let id = match call
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(id) => id.to_string(),
            None => links.new_id(),
        };
        links.pending.push((id.clone(), name.to_string()));
        out.push(json!({
            "id": id,
            "type": "function",
            "function": { "name": name, "arguments": args_to_string(function.get("arguments")) }
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_find_their_calls() {
        let msgs = json!([
            {"role": "user", "content": "weather in Tokyo and Paris, and the time"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
                {"id": "given", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {}}}
            ]},
            {"role": "tool", "tool_name": "get_time", "content": "noon"},
            {"role": "tool", "tool_name": "get_weather", "content": "rain"},
            {"role": "tool", "content": "sun"}
        ]);
        let out = convert(Some(&msgs)).unwrap();
        assert_eq!(out[1]["content"], Value::Null);
        let ids: Vec<&str> = out[1]["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["call_0", "given", "call_1"]);
        assert_eq!(out[2]["tool_call_id"], "call_1");
        assert_eq!(out[3]["tool_call_id"], "call_0");
        assert_eq!(out[4]["tool_call_id"], "given");
        assert!(out[4].get("name").is_none());
    }

    #[test]
    fn rejects_malformed_messages() {
        assert!(convert(Some(&json!({}))).is_err());
        assert!(convert(Some(&json!([1]))).is_err());
        assert!(convert(Some(&json!([{"content": "no role"}]))).is_err());
        assert!(convert(Some(&json!([{"role": "user", "content": 5}]))).is_err());
        assert!(convert(Some(
            &json!([{"role": "user", "content": "x", "images": "abc"}])
        ))
        .is_err());
        assert!(convert(Some(
            &json!([{"role": "user", "content": "x", "images": [1]}])
        ))
        .is_err());
        let bad_call =
            json!([{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]);
        assert!(convert(Some(&bad_call)).is_err());
        assert_eq!(convert(None).unwrap(), Vec::<Value>::new());
    }
}
