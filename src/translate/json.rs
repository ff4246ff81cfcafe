//! JSON helpers shared by the translators: lenient parsing of upstream bodies (bare `NaN`/`Infinity`
//! tokens, which Python- and C++-based servers emit but serde_json rejects), and typed access to client
//! fields with client-readable errors.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::TranslateError;

/// Rewrites bare non-finite number tokens outside strings (`NaN`, `Infinity`, `-Infinity`, and C's
/// `nan`/`-nan`/`inf`, any case) to `0`. `None` when there was nothing to rewrite.
pub(crate) fn sanitize_non_finite(input: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if matches!(b, b'N' | b'n' | b'I' | b'i' | b'-' | b'+') {
            if let Some(len) = non_finite_token_len(&input[i..]) {
                let o = out.get_or_insert_with(|| Vec::with_capacity(input.len()));
                o.extend_from_slice(&input[copied..i]);
                o.push(b'0');
                i += len;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.map(|mut o| {
        o.extend_from_slice(&input[copied..]);
        o
    })
}

/// Length of a non-finite token at the start of `s` (with its sign), if there is one.
fn non_finite_token_len(s: &[u8]) -> Option<usize> {
    let (sign, rest) = match s.first() {
        Some(b'-' | b'+') => (1, &s[1..]),
        _ => (0, s),
    };
    // Longest word first so `Infinity` is not read as `inf` followed by garbage.
    for word in [&b"infinity"[..], b"nan", b"inf"] {
        let Some(head) = rest.get(..word.len()) else {
            continue;
        };
        let ends_word = !rest
            .get(word.len())
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if head.eq_ignore_ascii_case(word) && ends_word {
            return Some(sign + word.len());
        }
    }
    None
}

/// Parses an upstream body, retrying once with non-finite tokens rewritten when the strict parse fails.
/// The fast path (valid JSON) does no extra work.
pub(crate) fn parse_lenient<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    parse_lenient_borrowed(bytes, &mut Vec::new())
}

/// [`parse_lenient`] for types that borrow from the input; the rewritten copy, when one is needed, is
/// kept in `scratch` so the value can borrow from it.
pub(crate) fn parse_lenient_borrowed<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(e) => match sanitize_non_finite(bytes) {
            Some(clean) => {
                *scratch = clean;
                serde_json::from_slice(scratch)
            }
            None => Err(e),
        },
    }
}

/// A client's request body, which must be a JSON object.
pub(crate) fn client_object(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TranslateError::bad("the body must be a JSON object")),
        Err(e) => Err(TranslateError::bad(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// An upstream response body, which must be a JSON object.
pub(crate) fn upstream_object(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    match parse_lenient::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TranslateError::bad_upstream(
            "the body is not a JSON object",
        )),
        Err(e) => Err(TranslateError::bad_upstream(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// A field that may be absent or null, else must be a string.
pub(crate) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a str>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TranslateError::bad(format!("`{what}` must be a string"))),
    }
}

/// A field that may be absent or null, else must be a boolean.
pub(crate) fn opt_bool(
    obj: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<bool>, TranslateError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(TranslateError::bad(format!("`{what}` must be a boolean"))),
    }
}

/// An integral number, also when written as a float with no fraction (`100.0`), as Go's decoder accepts.
/// Copies an embeddings `dimensions` field (same name and meaning in both APIs) when it is a
/// positive integer; anything else is the client's error.
pub(crate) fn copy_dimensions(
    dimensions: Option<&Value>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    match dimensions {
        None | Some(Value::Null) => Ok(()),
        Some(d) if d.as_u64().is_some() => {
            out.insert("dimensions".into(), d.clone());
            Ok(())
        }
        Some(_) => Err(TranslateError::bad(
            "`dimensions` must be a positive integer",
        )),
    }
}

/// Copies `tools` (the same shape in both APIs) when it is a non-empty array.
pub(crate) fn copy_tools(
    tools: Option<&Value>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    match tools {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(t)) if t.is_empty() => Ok(()),
        Some(t @ Value::Array(_)) => {
            out.insert("tools".into(), t.clone());
            Ok(())
        }
        Some(_) => Err(TranslateError::bad("`tools` must be an array")),
    }
}

pub(crate) fn as_int(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    // The bounds keep the cast exact and in range.
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// A non-negative count from an upstream field (integers, or floats some servers write).
pub(crate) fn count(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    if let Some(u) = v.as_u64() {
        return Some(u);
    }
    let f = v.as_f64()?;
    (0.0..1.8e19).contains(&f).then_some(f.round() as u64)
}

/// The text of an OpenAI `content`: a string, or the `text` of its text parts joined (some servers send
/// parts even in responses); anything else is empty.
pub(crate) fn content_text(v: Option<&Value>) -> std::borrow::Cow<'_, str> {
    match v {
        Some(Value::String(s)) => std::borrow::Cow::Borrowed(s.as_str()),
        Some(Value::Array(parts)) => std::borrow::Cow::Owned(
            parts
                .iter()
                .filter(|p| {
                    p.get("type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "text")
                })
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => std::borrow::Cow::Borrowed(""),
    }
}

/// Serialises a value the translators built; serialising a `Value` or a plain struct cannot fail, but a
/// failure would still become an error rather than a panic.
pub(crate) fn to_vec<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, TranslateError> {
    serde_json::to_vec(v)
        .map_err(|e| TranslateError::bad_upstream(format!("cannot serialise: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        String::from_utf8(
            sanitize_non_finite(s.as_bytes()).unwrap_or_else(|| s.as_bytes().to_vec()),
        )
        .unwrap_or_default()
    }

    #[test]
    fn rewrites_non_finite_tokens_outside_strings_only() {
        assert_eq!(clean("[NaN, Infinity, -Infinity, 1.5]"), "[0, 0, 0, 1.5]");
        assert_eq!(clean("[nan,-nan,inf,-inf,+Infinity]"), "[0,0,0,0,0]");
        assert_eq!(
            clean(r#"{"a":"NaN Infinity","b":NaN}"#),
            r#"{"a":"NaN Infinity","b":0}"#
        );
        assert_eq!(
            clean(r#"{"a":"x\"NaN","b":-1}"#),
            r#"{"a":"x\"NaN","b":-1}"#
        );
        assert_eq!(
            clean("[null, true, false, -0.5e-3]"),
            "[null, true, false, -0.5e-3]"
        );
        assert!(sanitize_non_finite(b"[1,2,null]").is_none());
    }

    #[test]
    fn lenient_parse_only_when_needed() {
        let v: Value = parse_lenient(b"[NaN, 2.0]").unwrap_or_default();
        assert_eq!(v, serde_json::json!([0, 2.0]));
        assert!(parse_lenient::<Value>(b"[NaNa]").is_err());
        assert!(parse_lenient::<Value>(b"{").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(as_int(&serde_json::json!(100.0)), Some(100));
        assert_eq!(as_int(&serde_json::json!(1.5)), None);
        assert_eq!(as_int(&serde_json::json!(-2)), Some(-2));
        assert_eq!(count(Some(&serde_json::json!(3.0))), Some(3));
        assert_eq!(count(Some(&serde_json::json!(-3))), None);
        assert_eq!(count(Some(&serde_json::json!("3"))), None);
        assert_eq!(count(None), None);
    }

    #[test]
    fn content_texts() {
        assert_eq!(content_text(Some(&serde_json::json!("hi"))), "hi");
        let parts = serde_json::json!([{"type": "text", "text": "a"}, {"type": "image_url"}, {"text": "b"}]);
        assert_eq!(content_text(Some(&parts)), "ab");
        assert_eq!(content_text(Some(&Value::Null)), "");
        assert_eq!(content_text(None), "");
    }

    #[test]
    fn client_bodies() {
        assert!(client_object(b"{}").is_ok());
        assert!(matches!(
            client_object(b"[]"),
            Err(TranslateError::BadRequest(_))
        ));
        assert!(matches!(
            client_object(b"{"),
            Err(TranslateError::BadRequest(_))
        ));
        assert!(matches!(
            upstream_object(b"nope"),
            Err(TranslateError::BadUpstream(_))
        ));
    }
}
