//! The OpenAI stream chunk as `SseToNdjson` reads it: only the fields it translates; unknown fields are
//! ignored. Strings borrow from the event (copied only when they hold escapes), since a chunk is parsed
//! per token. Fields whose type varies between servers accept any value and keep only what is used.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::translate::json::content_text;

/// One chunk of an OpenAI chat (or text completion) stream.
#[derive(Debug, Deserialize)]
pub(super) struct ChunkIn<'a> {
    #[serde(borrow)]
    pub object: Option<Str<'a>>,
    /// With `object: "error"` (vLLM).
    pub message: Option<Value>,
    #[serde(borrow)]
    pub choices: Option<Vec<ChoiceIn<'a>>>,
    pub usage: Option<Value>,
    pub timings: Option<Value>,
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChoiceIn<'a> {
    pub index: Option<u64>,
    #[serde(borrow)]
    pub delta: Option<DeltaIn<'a>>,
    /// Some servers stream whole `message` objects instead of deltas.
    #[serde(borrow)]
    pub message: Option<DeltaIn<'a>>,
    /// Legacy text completions.
    #[serde(borrow)]
    pub text: Option<Str<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeltaIn<'a> {
    #[serde(borrow, default)]
    pub content: Content<'a>,
    #[serde(borrow, default)]
    pub reasoning: LooseStr<'a>,
    #[serde(borrow, default)]
    pub reasoning_content: LooseStr<'a>,
    #[serde(borrow, default)]
    pub refusal: LooseStr<'a>,
    #[serde(borrow)]
    pub tool_calls: Option<Vec<ToolDeltaIn<'a>>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ToolDeltaIn<'a> {
    pub index: Option<u64>,
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub function: Option<FunctionDeltaIn<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FunctionDeltaIn<'a> {
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    pub arguments: Option<Value>,
}

/// A string field; any other type is an error, as for `String`. (`Option<Cow<str>>` would always copy.)
#[derive(Debug)]
pub(super) struct Str<'a>(Cow<'a, str>);

/// A field that should be a string: the string, or `None` for any other value.
#[derive(Debug, Default)]
pub(super) struct LooseStr<'a>(pub Option<Cow<'a, str>>);

/// An OpenAI `content`: a string, or the text of an array of parts (see [`content_text`]); empty for
/// any other value.
#[derive(Debug, Default)]
pub(super) struct Content<'a>(pub Cow<'a, str>);

impl Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_str(TextVisitor { join_parts: false })?;
        text.map(Str).ok_or_else(|| {
            de::Error::invalid_type(de::Unexpected::Other("non-string"), &"a string")
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LooseStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor { join_parts: false })
            .map(LooseStr)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(TextVisitor { join_parts: true })?;
        Ok(Content(text.unwrap_or_default()))
    }
}

/// Reads any value `Value` accepts: a string (borrowed when possible), an array of content parts when
/// `join_parts`, and `None` for the rest.
struct TextVisitor {
    join_parts: bool,
}

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }

    // Arrays and objects are read as `Value`s (rare, and so they are accepted exactly as before).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut parts = Vec::new();
        while let Some(part) = seq.next_element::<Value>()? {
            parts.push(part);
        }
        if !self.join_parts {
            return Ok(None);
        }
        let parts = Value::Array(parts);
        Ok(Some(Cow::Owned(content_text(Some(&parts)).into_owned())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<String, Value>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}
