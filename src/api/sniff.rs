//! Reads only what routing needs from a request body (`model`, `stream`, the kinds of a few fields)
//! in one validating pass without building a JSON tree, and checks their types (SPEC §2.5, §7).

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::errors::ApiError;
use super::routes::Inference;

/// The JSON type of a field, learned without keeping its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool(bool),
    Number,
    String,
    EmptyString,
    Array,
    Object,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number => "a number",
            Kind::String | Kind::EmptyString => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Kind, E> {
                Ok(Kind::Null)
            }
            fn visit_none<E>(self) -> Result<Kind, E> {
                Ok(Kind::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Kind, E> {
                Ok(Kind::Bool(b))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Kind, E> {
                Ok(Kind::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Kind, E> {
                Ok(Kind::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Kind, E> {
                Ok(Kind::Number)
            }
            fn visit_str<E>(self, s: &str) -> Result<Kind, E> {
                Ok(if s.is_empty() {
                    Kind::EmptyString
                } else {
                    Kind::String
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
                while seq.next_element::<Kind>()?.is_some() {}
                Ok(Kind::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
                while map.next_entry::<IgnoredAny, Kind>()?.is_some() {}
                Ok(Kind::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields routing looks at. Every other field is walked as a `Kind` too, so the parser's nesting
/// limit applies to the whole body.
#[derive(Default)]
struct Raw {
    model: Option<serde_json::Value>,
    stream: Option<Kind>,
    messages: Option<Kind>,
    prompt: Option<Kind>,
    input: Option<Kind>,
    options: Option<Kind>,
    nomyo: Option<Kind>,
    stream_options: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut raw = Raw::default();
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::Model => raw.model = Some(map.next_value()?),
                        Field::Stream => raw.stream = Some(map.next_value()?),
                        Field::Messages => raw.messages = Some(map.next_value()?),
                        Field::Prompt => raw.prompt = Some(map.next_value()?),
                        Field::Input => raw.input = Some(map.next_value()?),
                        Field::Options => raw.options = Some(map.next_value()?),
                        Field::Nomyo => raw.nomyo = Some(map.next_value()?),
                        Field::StreamOptions => raw.stream_options = Some(map.next_value()?),
                        Field::Other => {
                            map.next_value::<Kind>()?;
                        }
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(V)
    }
}

/// A top-level key, matched without allocating (serde's `Cow<str>` key would own a copy).
enum Field {
    Model,
    Stream,
    Messages,
    Prompt,
    Input,
    Options,
    Nomyo,
    StreamOptions,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "model" => Field::Model,
                    "stream" => Field::Stream,
                    "messages" => Field::Messages,
                    "prompt" => Field::Prompt,
                    "input" => Field::Input,
                    "options" => Field::Options,
                    "nomyo" => Field::Nomyo,
                    "stream_options" => Field::StreamOptions,
                    other => {
                        if let Some(name) = folds_to_a_field(other) {
                            return Err(E::custom(format!(
                                "field {other:?} differs from \"{name}\" only in letter case: \
                                 refused, as backends disagree on which of the two counts"
                            )));
                        }
                        Field::Other
                    }
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The field `key` would be read as by a backend that matches names without regard to case, as
/// Go's `encoding/json` does for Ollama (Unicode simple folding: `ſ` is an `s` there). Routing,
/// queueing and caching read only the exact name, so such a key would make the router and the
/// backend see two different requests.
fn folds_to_a_field(key: &str) -> Option<&'static str> {
    const FIELDS: [&str; 7] = [
        "model", "stream", "messages", "prompt", "input", "options", "nomyo",
    ];
    // Folding never makes a name shorter than its ASCII form, nor more than twice as long here.
    if key.len() < 5 || key.len() > 16 {
        return None;
    }
    let folded: String = key
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ſ' => 's',
            c => c,
        })
        .collect();
    FIELDS.into_iter().find(|f| *f == folded)
}

/// What routing learned from the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sniffed {
    pub model: String,
    pub stream: bool,
    /// The body has a router-only `nomyo` field that must not go upstream.
    pub has_nomyo: bool,
    /// An OpenAI stream's client asked for the usage chunk (`stream_options.include_usage`).
    pub usage_asked: bool,
}

/// Parses and checks a body for an inference route.
pub fn sniff(body: &[u8], route: Inference) -> Result<Sniffed, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty: expected a JSON object",
        ));
    }
    // One UTF-8 check of the whole body, instead of one per string inside it.
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: the body is not UTF-8 ({e})")))?;
    let raw: Raw = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(ApiError::bad_request(format!(
                "invalid request: {}",
                data_error(&e)
            )))
        }
        Err(e) => return Err(ApiError::bad_request(format!("invalid JSON: {e}"))),
    };
    let model = match raw.model {
        Some(serde_json::Value::String(m)) if !m.trim().is_empty() => m,
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::String(_)) => {
            return Err(ApiError::bad_request("model is required"))
        }
        Some(_) => return Err(ApiError::bad_request("model must be a string")),
    };
    let stream = match raw.stream {
        None | Some(Kind::Null) => route.streams_by_default(),
        Some(Kind::Bool(b)) => b,
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "stream must be a boolean, not {}",
                k.name()
            )))
        }
    };
    expect(raw.options, "options", &[Kind::Object], false)?;
    match route {
        Inference::Chat => expect(raw.messages, "messages", &[Kind::Array], false)?,
        Inference::OaiChat => expect(raw.messages, "messages", &[Kind::Array], true)?,
        Inference::Generate | Inference::Embeddings => expect(
            raw.prompt,
            "prompt",
            &[Kind::String, Kind::EmptyString],
            false,
        )?,
        Inference::OaiCompletions => {
            expect(raw.prompt, "prompt", &[Kind::String, Kind::Array], true)?
        }
        Inference::Embed | Inference::OaiEmbeddings => expect(
            raw.input,
            "input",
            &[Kind::String, Kind::EmptyString, Kind::Array],
            true,
        )?,
        Inference::Rerank | Inference::OaiResponses => {}
    }
    Ok(Sniffed {
        model,
        stream: stream && route.can_stream(),
        has_nomyo: raw.nomyo.is_some(),
        usage_asked: raw
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    })
}

fn expect(
    kind: Option<Kind>,
    field: &str,
    allowed: &[Kind],
    required: bool,
) -> Result<(), ApiError> {
    match kind {
        None | Some(Kind::Null) if required => {
            Err(ApiError::bad_request(format!("{field} is required")))
        }
        None | Some(Kind::Null) => Ok(()),
        Some(k) if allowed.contains(&k) => Ok(()),
        Some(k) => {
            let want: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
            Err(ApiError::bad_request(format!(
                "{field} must be {}, not {}",
                want.join(" or "),
                k.name()
            )))
        }
    }
}

/// serde's message for a type error, reworded for a client.
fn data_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.contains("expected a JSON object") {
        "the body must be a JSON object".to_string()
    } else {
        text
    }
}

/// Removes the router-only `nomyo` field and, when given, replaces `model`. Only used when needed:
/// the common case forwards the client's bytes untouched.
pub fn rewrite(body: &[u8], model: Option<&str>, ask_usage: bool) -> Result<Vec<u8>, ApiError> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    v.remove("nomyo");
    if let Some(m) = model {
        v.insert("model".into(), serde_json::Value::String(m.to_string()));
    }
    if ask_usage {
        let options = v
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        if !options.is_object() {
            *options = serde_json::json!({});
        }
        options["include_usage"] = serde_json::Value::Bool(true);
    }
    serde_json::to_vec(&v).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_and_stream_defaults() {
        let s = sniff(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            Inference::Chat,
        )
        .unwrap();
        assert_eq!(
            s,
            Sniffed {
                model: "m".into(),
                stream: true,
                has_nomyo: false,
                usage_asked: false,
            }
        );
        let s = sniff(br#"{"model":"m","messages":[]}"#, Inference::OaiChat).unwrap();
        assert!(!s.stream);
        let asked =
            br#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
        assert!(sniff(asked, Inference::OaiChat).unwrap().usage_asked);
        let out = rewrite(br#"{"model":"m","stream_options":{"x":1}}"#, None, true).unwrap();
        assert_eq!(
            out,
            br#"{"model":"m","stream_options":{"include_usage":true,"x":1}}"#
        );
        let s = sniff(
            br#"{"model":"m","prompt":"","stream":false,"nomyo":{"cache":false}}"#,
            Inference::Generate,
        )
        .unwrap();
        assert!(!s.stream && s.has_nomyo);
        let s = sniff(
            br#"{"model":"m","input":["a"],"stream":true}"#,
            Inference::Embed,
        )
        .unwrap();
        assert!(!s.stream, "embeddings never stream");
    }

    #[test]
    fn rejects_bad_bodies_with_clear_messages() {
        let cases: &[(&[u8], Inference, &str)] = &[
            (b"", Inference::Chat, "empty"),
            (b"{", Inference::Chat, "invalid JSON"),
            (b"[1]", Inference::Chat, "JSON object"),
            (b"{\"messages\":[]}", Inference::Chat, "model is required"),
            (b"{\"model\":5}", Inference::Chat, "model must be a string"),
            (b"{\"model\":\"\"}", Inference::Chat, "model is required"),
            (
                b"{\"model\":\"m\",\"stream\":\"yes\"}",
                Inference::Chat,
                "stream must be a boolean",
            ),
            (
                b"{\"model\":\"m\",\"messages\":\"hi\"}",
                Inference::Chat,
                "messages must be an array",
            ),
            (
                b"{\"model\":\"m\",\"options\":[]}",
                Inference::Generate,
                "options must be an object",
            ),
            (
                b"{\"model\":\"m\"}",
                Inference::OaiChat,
                "messages is required",
            ),
            (b"{\"model\":\"m\"}", Inference::Embed, "input is required"),
            (
                b"{\"model\":\"m\",\"prompt\":7}",
                Inference::Generate,
                "prompt must be a string",
            ),
        ];
        for (body, route, want) in cases {
            let err = sniff(body, *route).unwrap_err();
            assert!(
                err.message.contains(want),
                "{:?}: {}",
                String::from_utf8_lossy(body),
                err.message
            );
        }
    }

    #[test]
    fn rewrite_drops_nomyo_and_sets_model() {
        let out = rewrite(
            br#"{"model":"a","nomyo":{"cache":true},"x":1}"#,
            Some("b"),
            false,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"model":"b","x":1}));
    }

    #[test]
    fn names_that_differ_from_a_field_only_in_case_are_refused() {
        for body in [
            r#"{"model":"m","MODEL":"other","messages":[]}"#,
            r#"{"model":"m","Stream":true,"messages":[]}"#,
            r#"{"model":"m","ſtream":true,"messages":[]}"#,
            r#"{"model":"m","messages":[],"Messages":[{"role":"user","content":"x"}]}"#,
        ] {
            let e = sniff(body.as_bytes(), Inference::Chat).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{body}");
            assert!(e.message.contains("letter case"), "{body}: {}", e.message);
        }
        assert!(sniff(
            br#"{"model":"m","messages":[],"modelx":1}"#,
            Inference::Chat
        )
        .is_ok());
    }
}
