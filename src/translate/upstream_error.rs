//! Upstream error bodies in either API's format (or a server's own: FastAPI `detail`, vLLM top-level
//! `message`) → their message, for re-wrapping in the client's format.

use serde_json::Value;

/// Longest fallback excerpt of a body that is not a recognised error object.
const MAX_RAW: usize = 500;

/// See [`super::response::error_message`].
pub(crate) fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    // An error that arrived as a stream event (`data: {...}`) reads the same.
    let json_part = trimmed.strip_prefix("data:").map_or(trimmed, str::trim);
    if let Ok(v) = super::json::parse_lenient::<Value>(json_part.as_bytes()) {
        if let Some(m) = message_of(&v) {
            return m;
        }
    }
    if trimmed.is_empty() {
        return "upstream returned an empty error response".to_string();
    }
    trimmed.chars().take(MAX_RAW).collect()
}

/// The message of an error object: `{"error": "m"}`, `{"error": {"message": "m"}}`, `{"message": "m"}`,
/// `{"detail": "m" | [{"msg": "m"}]}`, or the first element of an array of those.
pub(crate) fn message_of(v: &Value) -> Option<String> {
    match v {
        Value::Object(o) => {
            if let Some(e) = o.get("error") {
                match e {
                    Value::String(s) if !s.is_empty() => return Some(s.clone()),
                    Value::Object(inner) => {
                        if let Some(m) = non_empty(inner.get("message")) {
                            return Some(m.to_string());
                        }
                        if let Some(m) = message_of(e) {
                            return Some(m);
                        }
                        return Some(e.to_string());
                    }
                    _ => {}
                }
            }
            if let Some(m) = non_empty(o.get("message")) {
                return Some(m.to_string());
            }
            match o.get("detail") {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Array(items)) => {
                    let msgs: Vec<&str> = items
                        .iter()
                        .filter_map(|i| i.get("msg").and_then(Value::as_str))
                        .collect();
                    (!msgs.is_empty()).then(|| msgs.join("; "))
                }
                _ => None,
            }
        }
        Value::Array(items) => items.first().and_then(message_of),
        _ => None,
    }
}

/// A string value with something in it: an empty message says nothing, so the next candidate is read.
fn non_empty(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|m| !m.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_message_is_never_the_answer() {
        // Found by fuzzing: the client got an error with an empty message.
        let m = error_message(br#"{"error":{"message":"","code":null}}"#);
        assert!(!m.trim().is_empty(), "{m:?}");
        assert_eq!(error_message(br#"{"message":" ","detail":"d"}"#), "d");
    }

    #[test]
    fn both_formats_and_fallbacks() {
        assert_eq!(
            error_message(br#"{"error":"model 'x' not found"}"#),
            "model 'x' not found"
        );
        assert_eq!(
            error_message(br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#),
            "Incorrect API key"
        );
        assert_eq!(
            error_message(br#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#),
            "the request exceeds the available context size"
        );
        assert_eq!(
            error_message(br#"{"object":"error","message":"vllm says no","code":400}"#),
            "vllm says no"
        );
        assert_eq!(error_message(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message(br#"{"detail":[{"msg":"field required"},{"msg":"bad"}]}"#),
            "field required; bad"
        );
        assert_eq!(
            error_message(br#"[{"error":{"message":"quota"}}]"#),
            "quota"
        );
        assert_eq!(
            error_message(br#"data: {"error":{"message":"mid"}}"#),
            "mid"
        );
        assert_eq!(error_message(br#"{"error":{"code":7}}"#), r#"{"code":7}"#);
        assert_eq!(error_message(b"  502 Bad Gateway\n"), "502 Bad Gateway");
        assert_eq!(
            error_message(b""),
            "upstream returned an empty error response"
        );
        let long = "é".repeat(800);
        assert_eq!(error_message(long.as_bytes()).chars().count(), 500);
        assert_eq!(error_message(&[0xff, 0xfe, b'x']), "\u{fffd}\u{fffd}x");
    }
}
