//! Generation parameters between the APIs: Ollama `options` ⇄ OpenAI sampling fields, `format` ⇄
//! `response_format`, `think` ⇄ `reasoning_effort`.
//!
//! Ollama options copied to OpenAI: `num_predict` (→ `max_tokens`, only when positive: 0 and negatives
//! mean "no limit" to Ollama), `temperature`, `top_p`, `seed`, `stop`, `presence_penalty`,
//! `frequency_penalty`. Dropped, because the OpenAI API has no such field (and OpenAI itself rejects
//! unknown ones): `num_ctx`, `num_keep`, `num_batch`, `num_gpu`, `main_gpu`, `num_thread`, `numa`,
//! `low_vram`, `use_mmap`, `use_mlock`, `top_k`, `min_p`, `typical_p`, `tfs_z`, `repeat_last_n`,
//! `repeat_penalty`, `penalize_newline`, `mirostat`, `mirostat_tau`, `mirostat_eta`, and any other key
//! — except towards llama-server, whose OpenAI-compatible API also takes llama.cpp's samplers:
//! `top_k`, `min_p`, `typical_p`, `repeat_penalty`, `repeat_last_n`, `mirostat`, `mirostat_tau`,
//! `mirostat_eta` under the same names, and `num_keep` as `n_keep` (`LLAMA_SERVER_SAMPLING`).

use serde_json::{json, Map, Value};

use super::json::as_int;
use super::TranslateError;

/// Floating-point sampling fields with the same name and meaning in both APIs.
const SAME_FLOATS: [&str; 4] = [
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
];

/// Ollama `options` → OpenAI top-level sampling fields in `out`.
pub(crate) fn ollama_options_to_openai(
    options: Option<&Value>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let opts = match options {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(TranslateError::bad("`options` must be an object")),
    };
    if let Some(v) = opts.get("num_predict").filter(|v| !v.is_null()) {
        let n = as_int(v)
            .ok_or_else(|| TranslateError::bad("`options.num_predict` must be an integer"))?;
        if n > 0 {
            out.insert("max_tokens".into(), json!(n));
        }
    }
    for key in SAME_FLOATS {
        copy_number(opts, key, key, &format!("options.{key}"), out)?;
    }
    if let Some(v) = opts.get("seed").filter(|v| !v.is_null()) {
        let seed =
            as_int(v).ok_or_else(|| TranslateError::bad("`options.seed` must be an integer"))?;
        out.insert("seed".into(), json!(seed));
    }
    if let Some(stop) = stop_list(opts.get("stop"), "options.stop")? {
        out.insert("stop".into(), stop);
    }
    Ok(())
}

/// Ollama options llama-server's OpenAI-compatible API takes too, with its names for them.
const LLAMA_SERVER_SAMPLING: [(&str, &str); 9] = [
    ("top_k", "top_k"),
    ("min_p", "min_p"),
    ("typical_p", "typical_p"),
    ("repeat_penalty", "repeat_penalty"),
    ("repeat_last_n", "repeat_last_n"),
    ("mirostat", "mirostat"),
    ("mirostat_tau", "mirostat_tau"),
    ("mirostat_eta", "mirostat_eta"),
    ("num_keep", "n_keep"),
];

/// Ollama `options` llama-server understands beyond OpenAI's fields → top-level fields in `out`
/// (after `ollama_options_to_openai`, which checked that `options` is an object).
pub(crate) fn llama_server_sampling(
    options: Option<&Value>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let Some(Value::Object(opts)) = options else {
        return Ok(());
    };
    for (key, to) in LLAMA_SERVER_SAMPLING {
        copy_number(opts, key, to, &format!("options.{key}"), out)?;
    }
    Ok(())
}

/// OpenAI sampling fields of a request → Ollama `options` (empty map when none).
pub(crate) fn openai_sampling_to_ollama(
    req: &Map<String, Value>,
) -> Result<Map<String, Value>, TranslateError> {
    let mut opts = Map::new();
    // max_completion_tokens is the newer name; it wins when a client sends both.
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = req.get(key).filter(|v| !v.is_null()) {
            let n = as_int(v)
                .ok_or_else(|| TranslateError::bad(format!("`{key}` must be an integer")))?;
            opts.insert("num_predict".into(), json!(n));
        }
    }
    for key in SAME_FLOATS {
        copy_number(req, key, key, key, &mut opts)?;
    }
    if let Some(v) = req.get("seed").filter(|v| !v.is_null()) {
        let seed = as_int(v).ok_or_else(|| TranslateError::bad("`seed` must be an integer"))?;
        opts.insert("seed".into(), json!(seed));
    }
    if let Some(stop) = stop_list(req.get("stop"), "stop")? {
        // Ollama's `stop` is always a list.
        let stop = if stop.is_string() {
            Value::Array(vec![stop])
        } else {
            stop
        };
        opts.insert("stop".into(), stop);
    }
    Ok(opts)
}

fn copy_number(
    from: &Map<String, Value>,
    key: &str,
    to_key: &str,
    what: &str,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    match from.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v @ Value::Number(_)) => {
            out.insert(to_key.into(), v.clone());
            Ok(())
        }
        Some(_) => Err(TranslateError::bad(format!("`{what}` must be a number"))),
    }
}

/// `stop` as a string or a list of strings (empty list → none).
fn stop_list(v: Option<&Value>, what: &str) -> Result<Option<Value>, TranslateError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Value::String(s.clone()))),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok((!items.is_empty()).then(|| Value::Array(items.clone())))
        }
        Some(_) => Err(TranslateError::bad(format!(
            "`{what}` must be a string or a list of strings"
        ))),
    }
}

/// Ollama `format` → OpenAI `response_format`: `"json"` is JSON mode; a schema object becomes a strict
/// `json_schema` (Ollama constrains output to the schema, which is what strict means for OpenAI).
pub(crate) fn format_to_response_format(
    format: Option<&Value>,
) -> Result<Option<Value>, TranslateError> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(json!({ "type": "json_object" }))),
        Some(schema @ Value::Object(_)) => Ok(Some(json!({
            "type": "json_schema",
            "json_schema": { "name": "response", "schema": schema, "strict": true }
        }))),
        Some(_) => Err(TranslateError::bad(
            "`format` must be \"json\" or a JSON schema object",
        )),
    }
}

/// OpenAI `response_format` → Ollama `format`.
pub(crate) fn response_format_to_format(
    rf: Option<&Value>,
) -> Result<Option<Value>, TranslateError> {
    let Some(rf) = rf.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Value::String("json".into()))),
        Some("json_schema") => match rf.get("json_schema").and_then(|j| j.get("schema")) {
            Some(schema @ Value::Object(_)) => Ok(Some(schema.clone())),
            _ => Err(TranslateError::bad(
                "`response_format.json_schema.schema` must be an object",
            )),
        },
        _ => Err(TranslateError::bad(
            "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\"",
        )),
    }
}

/// Ollama `think` → OpenAI `reasoning_effort`. `true` is the default effort; `false` sends nothing (there
/// is no portable "off"); Ollama's `"max"` is the highest portable effort.
pub(crate) fn think_to_effort(
    think: Option<&Value>,
) -> Result<Option<&'static str>, TranslateError> {
    match think {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some("medium")),
        Some(Value::String(s)) => match s.as_str() {
            "low" => Ok(Some("low")),
            "medium" => Ok(Some("medium")),
            "high" | "max" => Ok(Some("high")),
            _ => Err(TranslateError::bad(
                "`think` must be true, false, \"low\", \"medium\" or \"high\"",
            )),
        },
        Some(_) => Err(TranslateError::bad("`think` must be a boolean or a string")),
    }
}

/// OpenAI `reasoning_effort` (or `reasoning.effort`) → Ollama `think`.
pub(crate) fn effort_to_think(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let effort = match req.get("reasoning_effort") {
        Some(Value::String(s)) => Some(s.as_str()),
        None | Some(Value::Null) => req
            .get("reasoning")
            .and_then(|r| r.get("effort"))
            .and_then(Value::as_str),
        Some(_) => return Err(TranslateError::bad("`reasoning_effort` must be a string")),
    };
    Ok(match effort {
        None => None,
        Some("none") => Some(Value::Bool(false)),
        Some("minimal" | "low") => Some(json!("low")),
        Some("medium") => Some(json!("medium")),
        Some("high" | "xhigh") => Some(json!("high")),
        Some(other) => {
            return Err(TranslateError::bad(format!(
                "unknown `reasoning_effort` \"{other}\""
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn ollama_options_map_and_drop() {
        let mut out = Map::new();
        let opts = json!({"num_predict": 128, "temperature": 0.2, "top_p": 0.9, "seed": 42.0, "stop": ["\n\n"],
                          "presence_penalty": 0.1, "frequency_penalty": 0.3, "num_ctx": 8192, "top_k": 40,
                          "min_p": 0.05, "repeat_penalty": 1.1});
        ollama_options_to_openai(Some(&opts), &mut out).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"max_tokens": 128, "temperature": 0.2, "top_p": 0.9, "seed": 42, "stop": ["\n\n"],
                   "presence_penalty": 0.1, "frequency_penalty": 0.3})
        );
        for n in [-1, -2, 0] {
            let mut out = Map::new();
            ollama_options_to_openai(Some(&json!({"num_predict": n})), &mut out).unwrap();
            assert!(out.is_empty());
        }
        let mut out = Map::new();
        ollama_options_to_openai(Some(&json!({"stop": "END", "seed": null})), &mut out).unwrap();
        assert_eq!(Value::Object(out), json!({"stop": "END"}));
        let mut out = Map::new();
        assert!(ollama_options_to_openai(Some(&json!({"temperature": "hot"})), &mut out).is_err());
        assert!(ollama_options_to_openai(Some(&json!({"num_predict": 1.5})), &mut out).is_err());
        assert!(ollama_options_to_openai(Some(&json!([1])), &mut out).is_err());
        assert!(ollama_options_to_openai(Some(&json!({"stop": [1]})), &mut out).is_err());
    }

    #[test]
    fn openai_sampling_maps() {
        let req = obj(
            json!({"max_tokens": 10, "max_completion_tokens": 20, "temperature": 1, "stop": "x",
                             "seed": 7, "top_p": null, "logit_bias": {"1": 2}}),
        );
        assert_eq!(
            Value::Object(openai_sampling_to_ollama(&req).unwrap()),
            json!({"num_predict": 20, "temperature": 1, "stop": ["x"], "seed": 7})
        );
        assert!(openai_sampling_to_ollama(&obj(json!({"max_tokens": "many"}))).is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(
            format_to_response_format(Some(&json!("json"))).unwrap(),
            Some(json!({"type": "json_object"}))
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert_eq!(
            format_to_response_format(Some(&schema)).unwrap(),
            Some(
                json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": true}})
            )
        );
        assert_eq!(format_to_response_format(Some(&json!(""))).unwrap(), None);
        assert!(format_to_response_format(Some(&json!("yaml"))).is_err());
        assert_eq!(
            response_format_to_format(Some(&json!({"type": "json_object"}))).unwrap(),
            Some(json!("json"))
        );
        assert_eq!(
            response_format_to_format(Some(
                &json!({"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
            ))
            .unwrap(),
            Some(schema)
        );
        assert_eq!(
            response_format_to_format(Some(&json!({"type": "text"}))).unwrap(),
            None
        );
        assert!(response_format_to_format(Some(&json!({"type": "json_schema"}))).is_err());
    }

    #[test]
    fn thinking() {
        assert_eq!(think_to_effort(Some(&json!(true))).unwrap(), Some("medium"));
        assert_eq!(think_to_effort(Some(&json!(false))).unwrap(), None);
        assert_eq!(think_to_effort(Some(&json!("low"))).unwrap(), Some("low"));
        assert_eq!(think_to_effort(Some(&json!("max"))).unwrap(), Some("high"));
        assert!(think_to_effort(Some(&json!("lots"))).is_err());
        assert!(think_to_effort(Some(&json!(1))).is_err());
        assert_eq!(
            effort_to_think(&obj(json!({"reasoning_effort": "high"}))).unwrap(),
            Some(json!("high"))
        );
        assert_eq!(
            effort_to_think(&obj(json!({"reasoning": {"effort": "minimal"}}))).unwrap(),
            Some(json!("low"))
        );
        assert_eq!(
            effort_to_think(&obj(json!({"reasoning_effort": "none"}))).unwrap(),
            Some(json!(false))
        );
        assert_eq!(effort_to_think(&obj(json!({}))).unwrap(), None);
        assert!(effort_to_think(&obj(json!({"reasoning_effort": "ultra"}))).is_err());
    }
}
