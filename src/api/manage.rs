//! Ollama management routes fanned out to every Ollama endpoint (SPEC §2.1): pull, push, create,
//! copy, delete, blobs. Every endpoint's failure is reported by name; `pull`/`push`/`create` stream
//! the endpoints' progress lines as they come, then one final status.

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::future::join_all;
use futures_util::SinkExt;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::routes::Manage;
use super::util::json_value;
use crate::config::EndpointKind;
use crate::http::body::RouterBody;
use crate::http::lazy_timer::LazyTimer;
use crate::routing::endpoint::EndpointState;
use crate::routing::fetch;
use crate::state::Shared;
use std::sync::Arc;
use std::time::Duration;

/// Management calls can download gigabytes: generous limits.
/// One endpoint's answer: its URL and `(status, body)` or why it failed.
type EndpointAnswer = (String, Result<(StatusCode, Bytes), String>);

const MANAGE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

fn ollama_endpoints(shared: &Shared) -> Vec<Arc<EndpointState>> {
    shared
        .endpoints
        .iter()
        .filter(|e| e.kind() == EndpointKind::Ollama)
        .cloned()
        .collect()
}

/// Whether the client asked for a progress stream (these routes stream unless `"stream": false`).
fn wants_stream(route: Manage, body: &[u8]) -> bool {
    if !route.streams_by_default() {
        return false;
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v.get("stream").and_then(Value::as_bool).unwrap_or(true)
}

/// Checks the body is a JSON object with the fields Ollama requires.
fn validate(route: Manage, body: &[u8]) -> Result<(), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let has = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let ok = match route {
        Manage::Copy => has("source") && has("destination"),
        _ => has("model") || has("name"),
    };
    if ok {
        Ok(())
    } else if route == Manage::Copy {
        Err(ApiError::bad_request("source and destination are required"))
    } else {
        Err(ApiError::bad_request("model is required"))
    }
}

/// Serves a management route.
pub async fn manage(
    shared: &Shared,
    route: Manage,
    headers: &http::HeaderMap,
    body: Bytes,
) -> Result<Response<RouterBody>, ApiError> {
    validate(route, &body)?;
    let endpoints = ollama_endpoints(shared);
    if endpoints.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "no Ollama endpoint is configured for model management",
        ));
    }
    let method = if route == Manage::Delete {
        Method::DELETE
    } else {
        Method::POST
    };
    if wants_stream(route, &body) {
        return Ok(stream_fan_out(
            shared,
            endpoints,
            method,
            route.path(),
            headers.clone(),
            body,
        ));
    }
    let answers = join_all(endpoints.iter().map(|ep| {
        let body = body.clone();
        let method = method.clone();
        async move {
            (
                ep.cfg.url.clone(),
                fetch::request_whole(
                    ep,
                    method,
                    route.path(),
                    body,
                    Some(headers),
                    MANAGE_TIMEOUT,
                )
                .await,
            )
        }
    }))
    .await;
    // A model lives on some endpoints only: copying or deleting it succeeds where it is.
    Ok(merge(
        answers,
        matches!(route, Manage::Copy | Manage::Delete),
    ))
}

/// One answer for many endpoints: the first success when all succeeded (or, with `absent_ok`, when
/// the others only lacked the model), else the failures by endpoint.
fn merge(answers: Vec<EndpointAnswer>, absent_ok: bool) -> Response<RouterBody> {
    let total = answers.len();
    let mut failures = Vec::new();
    let mut first_ok: Option<(StatusCode, Bytes)> = None;
    let mut all_404 = true;
    for (url, answer) in answers {
        match answer {
            Ok((status, body)) if status.is_success() => {
                first_ok.get_or_insert((status, body));
            }
            Ok((status, body)) => {
                all_404 &= status == StatusCode::NOT_FOUND;
                let msg = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
                failures.push(json!({"endpoint": url, "status": status.as_u16(), "error": msg}));
            }
            Err(e) => {
                all_404 = false;
                failures.push(json!({"endpoint": url, "status": 502, "error": e}));
            }
        }
    }
    let tolerated = absent_ok && all_404;
    match (first_ok, failures.is_empty() || tolerated) {
        (Some((status, body)), true) => {
            let mut resp = Response::new(RouterBody::full(body));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        (ok, _) => {
            let status = if ok.is_none() && all_404 {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_GATEWAY
            };
            let summary: Vec<String> = failures
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        f["endpoint"].as_str().unwrap_or(""),
                        f["error"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let body = json!({
                "error": format!("failed on {} of {total} endpoints: {}", failures.len(), summary.join("; ")),
                "endpoints": failures,
            });
            json_value(status, &body)
        }
    }
}

/// Streams every endpoint's NDJSON progress as it arrives; each endpoint's own final
/// `{"status":"success"}` is held back and one overall result ends the stream.
fn stream_fan_out(
    shared: &Shared,
    endpoints: Vec<Arc<EndpointState>>,
    method: Method,
    path: &'static str,
    headers: http::HeaderMap,
    body: Bytes,
) -> Response<RouterBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let connect = shared.config.timeouts.connect;
    monoio::spawn(async move {
        let results = join_all(endpoints.iter().map(|ep| {
            let mut tx = tx.clone();
            let (method, body, headers) = (method.clone(), body.clone(), headers.clone());
            async move {
                relay_progress(ep, method, path, body, &headers, connect, &mut tx)
                    .await
                    .map_err(|e| format!("{}: {e}", ep.cfg.url))
            }
        }))
        .await;
        let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        let last = if failures.is_empty() {
            json!({"status": "success"})
        } else {
            json!({"error": format!("failed on {} of {} endpoints: {}", failures.len(), endpoints.len(), failures.join("; "))})
        };
        let mut tx = tx;
        let _ = tx.send(Bytes::from(format!("{last}\n"))).await;
    });
    let mut resp = Response::new(RouterBody::Channel(rx));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// Copies one endpoint's progress lines to the client. Returns the endpoint's error, if any.
async fn relay_progress(
    ep: &EndpointState,
    method: Method,
    path: &str,
    body: Bytes,
    headers: &http::HeaderMap,
    connect: Duration,
    tx: &mut mpsc::Sender<Bytes>,
) -> Result<(), String> {
    let waits = fetch::Waits {
        connect,
        first_byte: MANAGE_TIMEOUT,
        timer: &mut LazyTimer::new(std::time::Instant::now()),
    };
    let resp = fetch::request(ep, method, path, body, fetch::Forward::Map(headers), waits)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut pending: Vec<u8> = Vec::new();
    let mut error = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            if let Some(e) = forward_line(&line, tx).await? {
                error = Some(e);
            }
        }
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        if let Some(e) = forward_line(&pending, tx).await? {
            error = Some(e);
        }
    }
    match (error, status.is_success()) {
        (Some(e), _) => Err(e),
        (None, true) => Ok(()),
        (None, false) => Err(format!("answered {status}")),
    }
}

/// Sends one progress line on; returns the error it carries, if it is an error line.
async fn forward_line(line: &[u8], tx: &mut mpsc::Sender<Bytes>) -> Result<Option<String>, String> {
    let v: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
    if let Some(e) = v.get("error") {
        return Ok(Some(
            e.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        ));
    }
    if v.get("status").and_then(Value::as_str) == Some("success") {
        return Ok(None);
    }
    tx.send(Bytes::copy_from_slice(line))
        .await
        .map_err(|_| "client went away".to_string())?;
    Ok(None)
}

/// `HEAD/POST /api/blobs/:digest`: present everywhere (HEAD 200), or uploaded everywhere (POST 201).
pub async fn blob(
    shared: &Shared,
    method: &Method,
    digest: &str,
    headers: &http::HeaderMap,
    body: Bytes,
) -> Result<Response<RouterBody>, ApiError> {
    let endpoints = ollama_endpoints(shared);
    let path = format!("/api/blobs/{digest}");
    let answers = join_all(endpoints.iter().map(|ep| {
        let (body, method, path) = (body.clone(), method.clone(), path.clone());
        async move {
            (
                ep.cfg.url.clone(),
                fetch::request_whole(ep, method, &path, body, Some(headers), MANAGE_TIMEOUT).await,
            )
        }
    }))
    .await;
    if method == Method::HEAD {
        let all_present = !answers.is_empty()
            && answers
                .iter()
                .all(|(_, a)| matches!(a, Ok((s, _)) if s.is_success()));
        let mut resp = Response::new(RouterBody::empty());
        *resp.status_mut() = if all_present {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        return Ok(resp);
    }
    Ok(merge(answers, false))
}
