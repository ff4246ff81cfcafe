//! The exact cache key (SPEC §6.2): a hash of the whole request after normalisation, so that two
//! requests share an entry only when a backend would see the same request.
//!
//! Normalisation works on the body's top-level fields without building a JSON tree: each field's
//! value is taken as the exact bytes the client sent (serde_json's `RawValue`), the fields are
//! sorted by name, `model` is replaced by the model the request resolved to, and the fields that
//! only change how an answer is delivered are left out (`stream`, `stream_options`, `keep_alive`,
//! and the router's own `nomyo`). Everything else counts: every message with its role, text,
//! images, tool calls and tool results, the tools, `format` / `response_format`, every sampling
//! option. Values are compared as sent: two bodies that differ only in the spacing or key order
//! inside a value get two entries (a miss, never a wrong hit).
//!
//! The hash is BLAKE3 (collision-resistant: a client cannot craft a body whose key is another
//! request's, and so cannot plant an answer for it). The key also carries the route family (a
//! chat body and a completion body with the same fields are different requests) and the scope.
//!
//! The scope is the resolved model, the system prompt and, where a router key is configured, the
//! client's key: no entry is shared across scopes. An Ollama request and the same request in
//! OpenAI form get different keys: their bodies differ in shape (`options` against top-level
//! sampling fields, images inside or beside the text), and no normalisation here claims they mean
//! the same.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// Which kind of request the body is: the same fields mean different requests on different routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    OllamaChat,
    OllamaGenerate,
    OpenAiChat,
    OpenAiCompletions,
}

impl Family {
    fn tag(self) -> &'static [u8] {
        match self {
            Family::OllamaChat => b"ollama-chat",
            Family::OllamaGenerate => b"ollama-generate",
            Family::OpenAiChat => b"openai-chat",
            Family::OpenAiCompletions => b"openai-completions",
        }
    }
}

/// Fields that change how an answer is delivered, not what it is.
const DELIVERY_ONLY: [&str; 4] = ["stream", "stream_options", "keep_alive", "nomyo"];
/// The fields a semantic match compares by meaning: everything else must be identical.
const ASKED: [&str; 2] = ["messages", "prompt"];

/// An entry's identity: its exact key and the scope it lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub exact: [u8; 32],
    pub scope: [u8; 16],
    /// Where a semantic match may look: the scope plus every field but the conversation itself
    /// (tools, options, format, sampling, the query string), so that only requests identical in
    /// all of these can answer each other.
    pub semantic_scope: [u8; 16],
    /// The system prompt names someone (`privacy::personal_scope`).
    pub personal_scope: bool,
}

/// Why a body has no key (it is then not cached).
#[derive(Debug, PartialEq, Eq)]
pub enum NoKey {
    NotAnObject,
    /// Two top-level names that differ only in case: Ollama (Go) reads them as one field, the
    /// last in the body, so their order would matter while the key sorts it away.
    AmbiguousFields,
    /// The answer asked for is not one an entry can replay: several choices (`n`), token
    /// log-probabilities, a completion's echo.
    Unreplayable,
}

/// The key of a request whose body is `body` (already checked by the request filter), for
/// `model` as the client named it, with the query string `query` (which goes upstream with it;
/// without the router key), from a client that presented `client_key` (when the router has keys).
pub fn key(
    family: Family,
    body: &[u8],
    model: &str,
    query: Option<&str>,
    client_key: Option<&str>,
) -> Result<CacheKey, NoKey> {
    // A BTreeMap sorts the names; values stay the client's bytes.
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|_| NoKey::NotAnObject)?;
    check_fields(&fields)?;
    let mut exact = blake3::Hasher::new();
    exact.update(family.tag());
    exact.update(b"\0model\0");
    exact.update(model.as_bytes());
    exact.update(b"\0query\0");
    match query {
        Some(q) => exact
            .update(&[1])
            .update(&(q.len() as u64).to_le_bytes())
            .update(q.as_bytes()),
        None => exact.update(&[0]),
    };
    // The same bytes so far; the semantic scope then leaves out the conversation.
    let mut semantic = exact.clone();
    for (name, value) in &fields {
        if name == "model" || DELIVERY_ONLY.contains(&name.as_ref()) {
            continue;
        }
        let field = |h: &mut blake3::Hasher| {
            // Length-prefixed, so that no two field lists hash the same bytes.
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&(value.get().len() as u64).to_le_bytes());
            h.update(value.get().as_bytes());
        };
        field(&mut exact);
        if !ASKED.contains(&name.as_ref()) {
            field(&mut semantic);
        }
    }
    let system = system_prompt(family, &fields);
    let personal_scope = system
        .as_deref()
        .is_some_and(super::privacy::personal_scope);
    let scope = scope(model, system, client_key);
    exact.update(&scope);
    semantic.update(b"\0semantic\0").update(&scope);
    let mut semantic_scope = [0u8; 16];
    semantic_scope.copy_from_slice(&semantic.finalize().as_bytes()[..16]);
    Ok(CacheKey {
        exact: *exact.finalize().as_bytes(),
        scope,
        semantic_scope,
        personal_scope,
    })
}

/// Refuses bodies whose key could not tell requests apart (names equal but for case), and
/// requests whose answer an entry cannot replay.
fn check_fields(fields: &BTreeMap<String, &RawValue>) -> Result<(), NoKey> {
    // Go's case-insensitive match folds Unicode too (`ſ` is `s`, `K` is `k`): fold both ways.
    let folded: std::collections::HashSet<String> = fields
        .keys()
        .map(|k| {
            k.chars()
                .flat_map(char::to_uppercase)
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect();
    if folded.len() != fields.len() {
        return Err(NoKey::AmbiguousFields);
    }
    let is = |name: &str, allowed: &[&str]| {
        fields
            .get(name)
            .is_some_and(|v| !allowed.contains(&v.get().trim()))
    };
    if is("n", &["1", "null"])
        || is("best_of", &["1", "null"])
        || is("logprobs", &["false", "null"])
        || is("top_logprobs", &["0", "null"])
        || is("echo", &["false", "null"])
    {
        return Err(NoKey::Unreplayable);
    }
    Ok(())
}

fn scope(model: &str, system: Option<String>, client_key: Option<&str>) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(b"scope\0");
    for part in [Some(model), system.as_deref(), client_key] {
        match part {
            Some(p) => {
                h.update(&[1]);
                h.update(&(p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            None => {
                h.update(&[0]);
            }
        }
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// The system prompt: Ollama's `system` field, or the text of the first message when it is a
/// system (or developer) message, as clients put it. Only the first message is read: the scope
/// costs no second pass over a long history (the key has every message anyway).
fn system_prompt(family: Family, fields: &BTreeMap<String, &RawValue>) -> Option<String> {
    if let Some(system) = fields.get("system") {
        return serde_json::from_str::<String>(system.get()).ok();
    }
    if !matches!(family, Family::OllamaChat | Family::OpenAiChat) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        role: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        content: Option<&'a RawValue>,
    }
    let list = fields.get("messages")?.get().trim_start();
    let after_bracket = list.strip_prefix('[')?;
    // One value from the front of the list; what follows it (a comma, more messages) is not read.
    let first: Message = serde_json::Deserializer::from_str(after_bracket)
        .into_iter::<Message>()
        .next()?
        .ok()?;
    if !matches!(first.role.as_deref(), Some("system" | "developer")) {
        return None;
    }
    Some(
        first
            .content
            .map(|c| c.get().to_string())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(body: &str) -> CacheKey {
        key(
            Family::OllamaChat,
            body.as_bytes(),
            "llama3:latest",
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn names_equal_but_for_case_and_unreplayable_answers_have_no_key() {
        for body in [
            r#"{"model":"m","system":"A","System":"B"}"#,
            r#"{"model":"m","format":"json","FORMAT":"x"}"#,
            "{\"model\":\"m\",\"system\":\"A\",\"\u{17f}ystem\":\"B\"}",
        ] {
            let got = key(Family::OllamaGenerate, body.as_bytes(), "m", None, None);
            assert_eq!(got, Err(NoKey::AmbiguousFields), "{body}");
        }
        for body in [
            r#"{"model":"m","n":2}"#,
            r#"{"model":"m","logprobs":true}"#,
            r#"{"model":"m","top_logprobs":3}"#,
            r#"{"model":"m","echo":true}"#,
        ] {
            let got = key(Family::OpenAiChat, body.as_bytes(), "m", None, None);
            assert_eq!(got, Err(NoKey::Unreplayable), "{body}");
        }
        for body in [
            r#"{"model":"m","n":1}"#,
            r#"{"model":"m","logprobs":false}"#,
        ] {
            assert!(
                key(Family::OpenAiChat, body.as_bytes(), "m", None, None).is_ok(),
                "{body}"
            );
        }
    }

    #[test]
    fn the_query_is_part_of_the_key() {
        let body = br#"{"model":"m","messages":[]}"#;
        let none = key(Family::OpenAiChat, body, "m", None, None).unwrap();
        let v1 = key(Family::OpenAiChat, body, "m", Some("api-version=1"), None).unwrap();
        let v2 = key(Family::OpenAiChat, body, "m", Some("api-version=2"), None).unwrap();
        assert!(none != v1 && v1 != v2 && none != v2);
    }

    const BASE: &str = r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"options":{"temperature":0.2}}"#;

    #[test]
    fn delivery_fields_and_field_order_do_not_change_the_key() {
        let base = k(BASE);
        for same in [
            r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"options":{"temperature":0.2},"stream":true}"#,
            r#"{"stream":false,"options":{"temperature":0.2},"keep_alive":"5m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"model":"llama3:latest","nomyo":{"cache":true}}"#,
        ] {
            assert_eq!(k(same), base, "{same}");
        }
    }

    #[test]
    fn anything_that_changes_the_answer_changes_the_key() {
        let base = k(BASE);
        for other in [
            // history
            r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}],"options":{"temperature":0.2}}"#,
            // an earlier turn
            r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"x"},{"role":"assistant","content":"y"},{"role":"user","content":"hi"}],"options":{"temperature":0.2}}"#,
            // a tool result
            r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"tool","content":"42"}],"options":{"temperature":0.2}}"#,
            // tools
            r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"options":{"temperature":0.2},"tools":[{"type":"function","function":{"name":"f"}}]}"#,
            // options
            r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"options":{"temperature":0.3}}"#,
            // format
            r#"{"model":"llama3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"options":{"temperature":0.2},"format":"json"}"#,
            // system prompt
            r#"{"model":"llama3","messages":[{"role":"system","content":"be long"},{"role":"user","content":"hi"}],"options":{"temperature":0.2}}"#,
        ] {
            assert_ne!(k(other), base, "{other}");
        }
        assert_ne!(
            key(Family::OllamaChat, BASE.as_bytes(), "llama3:8b", None, None).unwrap(),
            base,
            "another resolved model"
        );
        assert_ne!(
            key(
                Family::OpenAiChat,
                BASE.as_bytes(),
                "llama3:latest",
                None,
                None
            )
            .unwrap(),
            base,
            "another route family"
        );
    }

    #[test]
    fn scopes_split_by_model_system_prompt_and_client_key() {
        let base = k(BASE);
        let keyed = key(
            Family::OllamaChat,
            BASE.as_bytes(),
            "llama3:latest",
            None,
            Some("a"),
        )
        .unwrap();
        let other = key(
            Family::OllamaChat,
            BASE.as_bytes(),
            "llama3:latest",
            None,
            Some("b"),
        )
        .unwrap();
        assert_ne!(keyed.scope, base.scope);
        assert_ne!(keyed.scope, other.scope);
        assert_ne!(keyed.exact, other.exact, "no entry crosses client keys");
        let system = r#"{"model":"m","messages":[{"role":"system","content":"be long"},{"role":"user","content":"hi"}]}"#;
        assert_ne!(k(system).scope, base.scope);
        let same_scope = r#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"other"}]}"#;
        assert_eq!(k(same_scope).scope, base.scope);
        let generate = |system: &str| {
            let body = format!(r#"{{"model":"m","prompt":"hi","system":"{system}"}}"#);
            key(
                Family::OllamaGenerate,
                body.as_bytes(),
                "llama3:latest",
                None,
                None,
            )
            .unwrap()
        };
        assert_eq!(generate("be brief").scope, generate("be brief").scope);
        assert_ne!(generate("be brief").scope, generate("be long").scope);
    }

    #[test]
    fn only_a_leading_system_message_is_the_system_prompt() {
        let later = r#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"system","content":"be brief"}]}"#;
        let none = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(k(later).scope, k(none).scope);
        assert_ne!(
            k(later).exact,
            k(none).exact,
            "the key still has every message"
        );
        assert_eq!(k(r#"{"model":"m","messages":[]}"#).scope, k(none).scope);
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let a = k(r#"{"model":"m","ab":"1","c":"2"}"#);
        let b = k(r#"{"model":"m","a":"b1","c":"2"}"#);
        assert_ne!(a, b);
    }

    #[test]
    fn a_body_that_is_not_an_object_has_no_key() {
        assert_eq!(
            key(Family::OllamaChat, b"[1]", "m", None, None),
            Err(NoKey::NotAnObject)
        );
    }

    #[test]
    fn the_semantic_scope_leaves_out_only_the_conversation() {
        let a = k(
            r#"{"model":"m","messages":[{"role":"user","content":"What is Python?"}],"options":{"temperature":0}}"#,
        );
        let b = k(
            r#"{"model":"m","messages":[{"role":"user","content":"What's Python?"}],"options":{"temperature":0}}"#,
        );
        assert_ne!(a.exact, b.exact);
        assert_eq!(a.semantic_scope, b.semantic_scope);
        for other in [
            r#"{"model":"m","messages":[{"role":"user","content":"What is Python?"}],"options":{"temperature":1}}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"What is Python?"}],"options":{"temperature":0},"tools":[]}"#,
            r#"{"model":"m","messages":[{"role":"system","content":"terse"},{"role":"user","content":"What is Python?"}],"options":{"temperature":0}}"#,
        ] {
            assert_ne!(k(other).semantic_scope, a.semantic_scope, "{other}");
        }
        let other_model = key(Family::OllamaChat, br#"{"model":"m","messages":[{"role":"user","content":"What is Python?"}],"options":{"temperature":0}}"#, "other", None, None).unwrap();
        assert_ne!(other_model.semantic_scope, a.semantic_scope);
    }
}
