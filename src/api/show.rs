//! `POST /api/show`: asked of one healthy Ollama endpoint that has the model (no slot needed).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::Value;

use super::errors::ApiError;
use super::util::json;
use crate::config::EndpointKind;
use crate::http::body::RouterBody;
use crate::http::fetch;
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
    let ep = cands
        .iter()
        .map(|c| &c.slot.endpoint)
        .find(|e| e.kind() == EndpointKind::Ollama && e.is_healthy())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "model '{model}' is not on a healthy Ollama endpoint, which /api/show needs"
                ),
            )
        })?
        .clone();
    let timeout = shared.config.timeouts.first_byte;
    let (status, answer) =
        fetch::send_collect(&ep, Method::POST, "/api/show", body, Some(headers), timeout)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e))?;
    let mut resp = json(status, answer);
    if let Ok(v) = HeaderValue::from_str(&ep.cfg.url) {
        resp.headers_mut().insert("x-router-endpoint", v);
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
