//! `POST /api/show`: asked of one healthy Ollama endpoint that has the model (no slot needed).

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::Value;

use super::errors::ApiError;
use super::util::json;
use crate::config::EndpointKind;
use crate::http::body::RouterBody;
use crate::http::headers::X_ROUTER_ENDPOINT;
use crate::routing::fetch;
use crate::state::Shared;

pub async fn show(
    shared: &Shared,
    headers: &http::HeaderMap,
    body: Bytes,
) -> Result<Response<RouterBody>, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let model = v
        .get("model")
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("model is required"))?;
    let placement = shared.placement.load();
    let cands = placement.resolve(model);
    if cands.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("model '{model}' not found"),
        ));
    }
    let Some(ep) = cands
        .iter()
        .map(|c| &c.slot.endpoint)
        .find(|e| e.kind() == EndpointKind::Ollama && e.is_healthy())
        .cloned()
    else {
        if cands
            .iter()
            .any(|c| c.slot.endpoint.kind() == EndpointKind::Ollama)
        {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("every Ollama endpoint with '{model}' is down"),
            ));
        }
        // OpenAI-compatible endpoints have no /api/show: describe what they tell of the model.
        let c = &cands[0];
        let facts = super::show_remote::facts(shared, &c.slot.endpoint, &c.slot.model).await;
        return Ok(synthesized(&c.slot.model, &c.slot.endpoint.cfg.url, &facts));
    };
    let timeout = shared.config.timeouts.first_byte;
    let (status, answer) =
        fetch::request_whole(&ep, Method::POST, "/api/show", body, Some(headers), timeout)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e))?;
    let mut resp = json(status, answer);
    if let Some(v) = ep.name_header.clone() {
        resp.headers_mut().insert(X_ROUTER_ENDPOINT.clone(), v);
    }
    Ok(resp)
}

/// An `/api/show` answer for a model of an OpenAI-compatible endpoint: its name's quantisation, and
/// what the endpoint told of it (`show_remote`).
fn synthesized(
    model: &str,
    endpoint: &str,
    facts: &super::show_remote::Facts,
) -> Response<RouterBody> {
    let quant = model.rsplit_once(':').map(|(_, q)| q).unwrap_or("");
    let v = serde_json::json!({
        "modelfile": "",
        "parameters": facts.parameters(),
        "template": facts.template.clone().unwrap_or_default(),
        "details": {"parent_model": "", "format": if quant.is_empty() { "" } else { "gguf" }, "family": "", "families": null,
                    "parameter_size": facts.parameter_size(), "quantization_level": quant},
        "model_info": facts.model_info(),
        "capabilities": facts.capabilities(),
        "remote_model": model,
        "remote_host": endpoint,
    });
    super::util::json_value(StatusCode::OK, &v)
}
