//! Embedding responses between the APIs: every vector of a batch, in input order, with non-finite or
//! missing values (NaN, ±Infinity, null) written as 0.0 so the output is valid JSON for any client.

use serde::Serialize;
use serde_json::Value;

use super::json::{count, parse_lenient, to_vec, upstream_object};
use super::upstream_error::message_of;
use super::TranslateError;

/// OpenAI embeddings response → Ollama `/api/embed` (`legacy` false) or `/api/embeddings` (true).
pub(crate) fn to_ollama(body: &[u8], model: &str, legacy: bool) -> Result<Vec<u8>, TranslateError> {
    let v = upstream_object(body)?;
    if v.get("error").is_some_and(|e| !e.is_null()) {
        let message =
            message_of(&Value::Object(v.clone())).unwrap_or_else(|| "upstream error".into());
        return Err(TranslateError::Upstream(message));
    }
    let data = v.get("data").and_then(Value::as_array).ok_or_else(|| {
        TranslateError::bad_upstream("the embeddings response has no `data` list")
    })?;
    let mut indexed = Vec::with_capacity(data.len());
    for (pos, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(pos as u64);
        indexed.push((index, vector(item.get("embedding"))?));
    }
    // Servers may answer out of order; `index` says which input each vector belongs to.
    indexed.sort_by_key(|(index, _)| *index);
    let mut vectors: Vec<Vec<f64>> = indexed.into_iter().map(|(_, v)| v).collect();
    if legacy {
        let embedding = if vectors.is_empty() {
            Vec::new()
        } else {
            vectors.swap_remove(0)
        };
        return to_vec(&Legacy { embedding });
    }
    let prompt_tokens = v
        .get("usage")
        .and_then(|u| count(u.get("prompt_tokens")))
        .unwrap_or(0);
    to_vec(&Embed {
        model,
        embeddings: vectors,
        total_duration: 0,
        load_duration: 0,
        prompt_eval_count: prompt_tokens,
    })
}

/// Ollama `/api/embed` (or legacy `/api/embeddings`) response → OpenAI embeddings response.
pub(crate) fn to_openai(body: &[u8], model: &str) -> Result<Vec<u8>, TranslateError> {
    let v: Value = parse_lenient(body)
        .map_err(|e| TranslateError::bad_upstream(format!("the body is not valid JSON: {e}")))?;
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return Err(TranslateError::Upstream(
            message_of(&v).unwrap_or_else(|| "upstream error".into()),
        ));
    }
    let vectors: Vec<Vec<f64>> = match (v.get("embeddings"), v.get("embedding")) {
        (Some(Value::Array(list)), _) => list
            .iter()
            .map(|e| vector(Some(e)))
            .collect::<Result<_, _>>()?,
        (_, Some(single)) => vec![vector(Some(single))?],
        _ => {
            return Err(TranslateError::bad_upstream(
                "the embed response has no `embeddings` list",
            ))
        }
    };
    let prompt_tokens = count(v.get("prompt_eval_count")).unwrap_or(0);
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| Item {
            object: "embedding",
            index,
            embedding,
        })
        .collect();
    to_vec(&List {
        object: "list",
        data,
        model,
        usage: Usage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
}

fn vector(v: Option<&Value>) -> Result<Vec<f64>, TranslateError> {
    match v {
        Some(Value::Array(xs)) => Ok(xs
            .iter()
            .map(|x| x.as_f64().filter(|f| f.is_finite()).unwrap_or(0.0))
            .collect()),
        Some(Value::String(_)) => Err(TranslateError::bad_upstream(
            "base64 embeddings are not supported",
        )),
        _ => Err(TranslateError::bad_upstream(
            "an embedding is not a list of numbers",
        )),
    }
}

#[derive(Serialize)]
struct Embed<'a> {
    model: &'a str,
    embeddings: Vec<Vec<f64>>,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: u64,
}

#[derive(Serialize)]
struct Legacy {
    embedding: Vec<f64>,
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Vec<f64>,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}
