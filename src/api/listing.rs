//! Merged listings across endpoints (SPEC §2.4): `/api/tags`, `/api/ps`, `/api/ps_details`,
//! `/api/version`, `/v1/models`, `/v1/models/{id}`. Each endpoint is asked concurrently with a short
//! timeout; one that fails is left out of the merge, not the whole answer.

use std::collections::HashSet;

use futures_util::future::join_all;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::errors::ApiError;
use super::util::json_value;
use crate::config::EndpointKind;
use crate::http::body::RouterBody;
use crate::routing::endpoint::EndpointState;
use crate::routing::fetch::get_json;
use crate::routing::names::llama_short;
use crate::state::Shared;

/// What one endpoint lists, in its own format.
async fn ask_all<'a>(
    shared: &'a Shared,
    ollama_path: &str,
    openai_models: bool,
) -> Vec<(&'a EndpointState, Result<Value, String>)> {
    let timeout = shared
        .config
        .discovery
        .poll_timeout
        .max(std::time::Duration::from_secs(2));
    let futures = shared.endpoints.iter().filter_map(|ep| {
        let path = match ep.kind() {
            EndpointKind::Ollama => ollama_path.to_string(),
            _ if openai_models => format!("{}/models", ep.openai_base()),
            _ => return None,
        };
        Some(async move { (&**ep, get_json(ep, &path, timeout).await) })
    });
    join_all(futures).await
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// An OpenAI model object shown in Ollama's `/api/tags` form. A name without a tag gets
/// `:latest`, as Ollama lists its own: a client that checks the name it asks for against the
/// listing finds `name:latest`, which routing serves (`name` ⇄ `name:latest`).
fn openai_as_ollama(ep: &EndpointState, m: &Value) -> Option<Value> {
    let id = m.get("id").or_else(|| m.get("name"))?.as_str()?;
    let name = crate::routing::names::with_tag(id);
    let quant = if ep.kind() == EndpointKind::LlamaServer {
        id.rsplit_once(':').map(|(_, q)| q).unwrap_or("")
    } else {
        ""
    };
    Some(json!({
        "name": name,
        "model": name,
        "modified_at": crate::translate::time::rfc3339(m.get("created").and_then(Value::as_i64).unwrap_or(0), 0),
        "size": 0,
        "digest": "",
        "details": {"parent_model": "", "format": if quant.is_empty() { "" } else { "gguf" }, "family": "", "families": null,
                    "parameter_size": "", "quantization_level": quant},
        "remote_host": ep.cfg.url,
    }))
}

/// `GET /api/tags`: every endpoint's models, Ollama form, first occurrence of a name wins.
pub async fn tags(shared: &Shared) -> Response<RouterBody> {
    let mut seen = HashSet::new();
    let mut models = Vec::new();
    for (ep, answer) in ask_all(shared, "/api/tags", true).await {
        let Ok(v) = answer else { continue };
        let list: Vec<Value> = match ep.kind() {
            EndpointKind::Ollama => items(&v, "models").cloned().collect(),
            _ => items(&v, "data")
                .filter_map(|m| openai_as_ollama(ep, m))
                .collect(),
        };
        for m in list {
            let name = m
                .get("name")
                .or_else(|| m.get("model"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !name.is_empty() && seen.insert(name) {
                models.push(m);
            }
        }
    }
    json_value(StatusCode::OK, &json!({ "models": models }))
}

/// Loaded models per endpoint, Ollama `/api/ps` form.
async fn loaded(shared: &Shared) -> Vec<(&EndpointState, Vec<Value>)> {
    let mut out = Vec::new();
    for (ep, answer) in ask_all(shared, "/api/ps", false).await {
        let Ok(v) = answer else { continue };
        out.push((ep, items(&v, "models").cloned().collect()));
    }
    let llama = shared
        .endpoints
        .iter()
        .filter(|e| e.kind() == EndpointKind::LlamaServer);
    let timeout = shared
        .config
        .discovery
        .poll_timeout
        .max(std::time::Duration::from_secs(2));
    let answers = join_all(llama.map(|ep| async move {
        (
            &**ep,
            get_json(ep, &format!("{}/models", ep.openai_base()), timeout).await,
        )
    }))
    .await;
    for (ep, answer) in answers {
        let Ok(v) = answer else { continue };
        let models = items(&v, "data")
            .filter(|m| crate::discovery::llama_is_loaded(m))
            .filter_map(|m| {
                let id = m.get("id")?.as_str()?;
                let quant = id.rsplit_once(':').map(|(_, q)| q).unwrap_or("");
                Some(json!({"name": llama_short(id), "model": crate::routing::names::with_tag(id), "digest": "", "size": 0, "size_vram": 0,
                            "details": {"quantization_level": quant}, "status": m.get("status")}))
            })
            .collect();
        out.push((ep, models));
    }
    out
}

/// `GET /api/ps`: loaded models, one entry per model name.
pub async fn ps(shared: &Shared) -> Response<RouterBody> {
    let mut seen = HashSet::new();
    let mut models = Vec::new();
    for (_, list) in loaded(shared).await {
        for m in list {
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if seen.insert(name) {
                models.push(m);
            }
        }
    }
    json_value(StatusCode::OK, &json!({ "models": models }))
}

/// `GET /api/ps_details`: one entry per endpoint instance, with the endpoint named.
pub async fn ps_details(shared: &Shared) -> Response<RouterBody> {
    let mut models = Vec::new();
    for (ep, list) in loaded(shared).await {
        for mut m in list {
            if let Some(o) = m.as_object_mut() {
                o.insert("endpoint".into(), json!(ep.cfg.url));
            }
            models.push(m);
        }
    }
    json_value(StatusCode::OK, &json!({ "models": models }))
}

/// Compares versions numerically part by part; non-numeric parts (`0.6.0-rc1`) compare by their digits.
fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+'])
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(0)
        })
        .collect()
}

/// `GET /api/version`: the lowest version among the Ollama endpoints.
pub async fn version(shared: &Shared) -> Result<Response<RouterBody>, ApiError> {
    let lowest = ask_all(shared, "/api/version", false)
        .await
        .into_iter()
        .filter_map(|(_, a)| a.ok()?.get("version")?.as_str().map(str::to_string))
        .min_by_key(|v| version_key(v));
    match lowest {
        Some(v) => Ok(json_value(StatusCode::OK, &json!({ "version": v }))),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no endpoint answered /api/version",
        )),
    }
}

/// Every model in OpenAI form, deduplicated by id.
async fn openai_models(shared: &Shared) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut data = Vec::new();
    for (ep, answer) in ask_all(shared, "/api/tags", true).await {
        let Ok(v) = answer else { continue };
        let list: Vec<Value> = match ep.kind() {
            EndpointKind::Ollama => items(&v, "models")
                .filter_map(|m| {
                    let name = m.get("name").or_else(|| m.get("model"))?.as_str()?;
                    let owner = name.split_once('/').map(|(o, _)| o).unwrap_or("library");
                    Some(json!({"id": name, "object": "model", "created": 0, "owned_by": owner}))
                })
                .collect(),
            _ => items(&v, "data").cloned().collect(),
        };
        for m in list {
            if let Some(id) = m.get("id").and_then(Value::as_str) {
                if seen.insert(id.to_string()) {
                    data.push(m);
                }
            }
        }
    }
    data
}

/// `GET /v1/models`.
pub async fn v1_models(shared: &Shared) -> Response<RouterBody> {
    json_value(
        StatusCode::OK,
        &json!({ "object": "list", "data": openai_models(shared).await }),
    )
}

/// `GET /v1/models/{id}`: the model of the listing that routing would serve for `id` (its exact
/// name, `name` ⇄ `name:latest`, or a llama-server short name).
pub async fn v1_model(shared: &Shared, id: &str) -> Result<Response<RouterBody>, ApiError> {
    let models = openai_models(shared).await;
    let stripped = crate::routing::names::strip_latest(id);
    let served: Vec<std::sync::Arc<str>> = shared
        .placement
        .load()
        .resolve(id)
        .iter()
        .map(|c| c.slot.model.clone())
        .collect();
    models
        .iter()
        .find(|m| {
            m.get("id").and_then(Value::as_str).is_some_and(|m| {
                m == id
                    || crate::routing::names::strip_latest(m) == stripped
                    || served.iter().any(|s| &**s == m)
            })
        })
        .map(|m| json_value(StatusCode::OK, m))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("The model '{id}' does not exist"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let mut v = vec!["0.6.0", "0.5.12-rc1", "0.12.1"];
        v.sort_by_key(|s| version_key(s));
        assert_eq!(v, vec!["0.5.12-rc1", "0.6.0", "0.12.1"]);
    }

    #[test]
    fn llama_loaded_states() {
        assert!(crate::discovery::llama_is_loaded(&json!({"id": "a"})));
        assert!(crate::discovery::llama_is_loaded(
            &json!({"status": {"value": "loaded"}})
        ));
        assert!(!crate::discovery::llama_is_loaded(
            &json!({"status": "unloaded"})
        ));
    }
}
