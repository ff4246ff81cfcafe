//! OpenAI chat messages → Ollama chat messages: content parts become text plus base64 `images`, string
//! tool-call arguments become objects, tool results keep their id and gain the `tool_name` Ollama uses,
//! and assistant reasoning becomes `thinking`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::images;
use super::json::opt_str;
use super::TranslateError;

/// Converts the `messages` array of an OpenAI chat request.
pub(crate) fn convert(messages: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let items = match messages {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Err(TranslateError::bad("`messages` is required")),
        Some(_) => return Err(TranslateError::bad("`messages` must be an array")),
    };
    // Tool call id → function name, so tool results can name their tool as Ollama expects.
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let m = m
            .as_object()
            .ok_or_else(|| TranslateError::bad(format!("`messages[{i}]` must be an object")))?;
        out.push(message(m, i, &mut names)?);
    }
    Ok(out)
}

fn message(
    m: &Map<String, Value>,
    i: usize,
    names: &mut HashMap<String, String>,
) -> Result<Value, TranslateError> {
    let role = opt_str(m, "role", &format!("messages[{i}].role"))?
        .ok_or_else(|| TranslateError::bad(format!("`messages[{i}].role` is required")))?;
    let role = match role {
        // Ollama has no developer role; it is the newer name of system.
        "developer" => "system",
        // The legacy function-result role.
        "function" => "tool",
        other => other,
    };
    let (text, images) = content(m.get("content"), i)?;
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    out.insert("content".into(), json!(text));
    if !images.is_empty() {
        out.insert("images".into(), json!(images));
    }
    if role == "assistant" {
        let thinking = opt_str(m, "reasoning", &format!("messages[{i}].reasoning"))?.or(opt_str(
            m,
            "reasoning_content",
            &format!("messages[{i}].reasoning_content"),
        )?);
        if let Some(t) = thinking.filter(|t| !t.is_empty()) {
            out.insert("thinking".into(), json!(t));
        }
        let calls = tool_calls(m.get("tool_calls"), i, names)?;
        if !calls.is_empty() {
            out.insert("tool_calls".into(), Value::Array(calls));
        }
    }
    if role == "tool" {
        let id = opt_str(m, "tool_call_id", &format!("messages[{i}].tool_call_id"))?;
        let name = opt_str(m, "name", &format!("messages[{i}].name"))?
            .map(str::to_string)
            .or_else(|| id.and_then(|id| names.get(id).cloned()));
        if let Some(id) = id {
            out.insert("tool_call_id".into(), json!(id));
        }
        if let Some(name) = name {
            out.insert("tool_name".into(), json!(name));
        }
    }
    Ok(Value::Object(out))
}

/// Text (parts joined by newlines) and base64 images of an OpenAI `content`.
fn content(v: Option<&Value>, i: usize) -> Result<(String, Vec<String>), TranslateError> {
    let parts = match v {
        None | Some(Value::Null) => return Ok((String::new(), Vec::new())),
        Some(Value::String(s)) => return Ok((s.clone(), Vec::new())),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(TranslateError::bad(format!(
                "`messages[{i}].content` must be a string or a list of parts"
            )))
        }
    };
    let mut texts: Vec<&str> = Vec::new();
    let mut images_out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let what = format!("messages[{i}].content[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some(t) => texts.push(t),
                None => {
                    return Err(TranslateError::bad(format!(
                        "`{what}.text` must be a string"
                    )))
                }
            },
            Some("image_url") => {
                // `image_url` is an object with `url`; some clients send the URL string directly.
                let url = match part.get("image_url") {
                    Some(Value::String(s)) => Some(s.as_str()),
                    Some(obj) => obj.get("url").and_then(Value::as_str),
                    None => None,
                };
                let url = url.ok_or_else(|| {
                    TranslateError::bad(format!("`{what}.image_url.url` must be a string"))
                })?;
                images_out.push(images::base64_from_url(url)?);
            }
            Some(other) => {
                return Err(TranslateError::unsupported(format!(
                    "content parts of type \"{other}\" are not supported by this backend"
                )))
            }
            None => {
                return Err(TranslateError::bad(format!(
                    "`{what}.type` must be a string"
                )))
            }
        }
    }
    Ok((texts.join("\n"), images_out))
}

fn tool_calls(
    v: Option<&Value>,
    i: usize,
    names: &mut HashMap<String, String>,
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
    let mut out = Vec::with_capacity(items.len());
    for (j, call) in items.iter().enumerate() {
        let what = format!("messages[{i}].tool_calls[{j}]");
        let function = call
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| TranslateError::bad(format!("`{what}.function` must be an object")))?;
        let name = opt_str(function, "name", &format!("{what}.function.name"))?
            .ok_or_else(|| TranslateError::bad(format!("`{what}.function.name` is required")))?;
        let arguments = match function.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(obj @ Value::Object(_)) => obj,
                _ => {
                    return Err(TranslateError::bad(format!(
                        "`{what}.function.arguments` must be a JSON object encoded as a string"
                    )))
                }
            },
            Some(obj @ Value::Object(_)) => obj.clone(),
            Some(_) => {
                return Err(TranslateError::bad(format!(
                    "`{what}.function.arguments` must be a string"
                )))
            }
        };
        let mut call_out = Map::new();
        if let Some(id) = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            names.insert(id.to_string(), name.to_string());
            call_out.insert("id".into(), json!(id));
        }
        call_out.insert(
            "function".into(),
            json!({ "index": j, "name": name, "arguments": arguments }),
        );
        out.push(Value::Object(call_out));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_roles_and_errors() {
        let msgs = json!([
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"},
                                         {"type": "image_url", "image_url": "data:image/png;base64,QUJD"}]},
            {"role": "assistant", "content": null, "reasoning_content": "r"}
        ]);
        let out = convert(Some(&msgs)).unwrap();
        assert_eq!(out[0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(
            out[1],
            json!({"role": "user", "content": "a\nb", "images": ["QUJD"]})
        );
        assert_eq!(
            out[2],
            json!({"role": "assistant", "content": "", "thinking": "r"})
        );

        assert!(convert(None).is_err());
        let audio =
            json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]);
        assert!(matches!(
            convert(Some(&audio)),
            Err(TranslateError::Unsupported(_))
        ));
        let url = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]);
        assert!(matches!(
            convert(Some(&url)),
            Err(TranslateError::Unsupported(_))
        ));
        let bad_args = json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                               "function": {"name": "f", "arguments": "{not json"}}]}]);
        assert!(matches!(
            convert(Some(&bad_args)),
            Err(TranslateError::BadRequest(_))
        ));
        let array_args = json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                 "function": {"name": "f", "arguments": "[1]"}}]}]);
        assert!(convert(Some(&array_args)).is_err());
    }
}
