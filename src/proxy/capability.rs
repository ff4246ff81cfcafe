//! Capability retries (the reference's behaviour, done before any byte reached the client): a
//! backend that refuses a request's tools or images gets it again without them — once for each —
//! and the client is told in `X-Router-Retried-Without` and the log. The router never fetches an
//! image URL (SSRF): images go as the client sent them or not at all.
//!
//! Only an error answer to a request that carries tools or images is read (bounded), and only its
//! message decides: Ollama's "… does not support tools", llama-server's "tools param requires
//! --jinja flag" and "image input is not supported", and the like.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use memchr::memmem;
use serde_json::{Map, Value};

use crate::api::errors::ApiError;
use crate::http::client::UpstreamBody;

/// The answer header that names what was taken out of the request.
pub static HEADER: http::HeaderName = http::HeaderName::from_static("x-router-retried-without");

/// The most of an error answer read to judge it.
const MAX_ERROR_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Tools,
    Images,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Tools => "tools",
            Refusal::Images => "images",
        }
    }
}

const TOOL_REFUSALS: [&str; 4] = [
    "does not support tools",
    "tools param requires --jinja",
    "tool calling is not supported",
    "tools are not supported",
];
const IMAGE_REFUSALS: [&str; 4] = [
    "image input is not supported",
    "does not support images",
    "does not support vision",
    "multimodal is not supported",
];

/// Whether the request carries something a backend could refuse (a cheap look at the bytes; the
/// answer decides).
pub fn may_be_refused(body: &[u8]) -> bool {
    [
        &b"\"tools\""[..],
        b"\"images\"",
        b"\"image_url\"",
        b"\"input_image\"",
    ]
    .iter()
    .any(|needle| memmem::find(body, needle).is_some())
}

/// Reads an error answer (bounded in size and time); `None` when it could not be read.
pub async fn read_error(
    resp: Response<UpstreamBody>,
    within: std::time::Duration,
) -> Option<Bytes> {
    let body = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BYTES).collect();
    match monoio::time::timeout(within, body).await {
        Ok(Ok(b)) => Some(b.to_bytes()),
        _ => None,
    }
}

/// What the error message refuses, if it is one of the refusals retried.
pub fn refusal(error: &[u8]) -> Option<Refusal> {
    let lower = error.to_ascii_lowercase();
    let says = |phrases: &[&str]| {
        phrases
            .iter()
            .any(|p| memmem::find(&lower, p.as_bytes()).is_some())
    };
    if says(&TOOL_REFUSALS) {
        Some(Refusal::Tools)
    } else if says(&IMAGE_REFUSALS) {
        Some(Refusal::Images)
    } else {
        None
    }
}

/// The request body without what was refused: tools (and the fields that only make sense with
/// them), or every image (Ollama's `images`, OpenAI's image content parts) with the text kept.
pub fn without(body: &[u8], what: Refusal) -> Result<Bytes, ApiError> {
    let mut v: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    match what {
        Refusal::Tools => {
            for key in ["tools", "tool_choice", "parallel_tool_calls"] {
                v.remove(key);
            }
        }
        Refusal::Images => {
            v.remove("images");
            if let Some(Value::Array(messages)) = v.get_mut("messages") {
                messages.iter_mut().for_each(drop_images);
            }
        }
    }
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn drop_images(message: &mut Value) {
    let Some(m) = message.as_object_mut() else {
        return;
    };
    m.remove("images");
    if let Some(Value::Array(parts)) = m.get_mut("content") {
        parts.retain(|p| {
            !matches!(
                p.get("type").and_then(Value::as_str),
                Some("image_url" | "input_image" | "image")
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_are_read_from_the_messages_backends_send() {
        let ollama = br#"{"error":"registry.ollama.ai/library/gemma:2b does not support tools"}"#;
        assert_eq!(refusal(ollama), Some(Refusal::Tools));
        let llama = br#"{"error":{"code":500,"message":"tools param requires --jinja flag"}}"#;
        assert_eq!(refusal(llama), Some(Refusal::Tools));
        let vision = br#"{"error":{"message":"image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"}}"#;
        assert_eq!(refusal(vision), Some(Refusal::Images));
        assert_eq!(refusal(br#"{"error":"model 'x' not found"}"#), None);
        assert_eq!(
            refusal(b"\xff\xfe DOES NOT SUPPORT TOOLS"),
            Some(Refusal::Tools)
        );
    }

    #[test]
    fn tools_and_images_are_taken_out_and_the_text_kept() {
        let body = json!({"model": "m", "tools": [{"type": "function"}], "tool_choice": "auto",
            "messages": [
                {"role": "user", "content": "look", "images": ["aGk="]},
                {"role": "user", "content": [{"type": "text", "text": "and this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]}]});
        let bytes = body.to_string();
        let no_tools: Value =
            serde_json::from_slice(&without(bytes.as_bytes(), Refusal::Tools).unwrap()).unwrap();
        assert!(no_tools.get("tools").is_none() && no_tools.get("tool_choice").is_none());
        assert_eq!(no_tools["messages"], body["messages"]);
        let no_images: Value =
            serde_json::from_slice(&without(bytes.as_bytes(), Refusal::Images).unwrap()).unwrap();
        assert_eq!(
            no_images["messages"][0],
            json!({"role": "user", "content": "look"})
        );
        assert_eq!(
            no_images["messages"][1]["content"],
            json!([{"type": "text", "text": "and this"}])
        );
        assert_eq!(no_images["tools"], body["tools"]);
        assert!(may_be_refused(bytes.as_bytes()));
        assert!(!may_be_refused(br#"{"model":"m","messages":[]}"#));
    }
}
