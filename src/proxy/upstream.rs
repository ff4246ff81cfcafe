//! The upstream-request phase: what goes to the chosen endpoint (the client's bytes, rewritten or
//! translated), and sending it with the request's deadlines.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response, StatusCode};

use super::session::InferenceRequest;
use super::translated;
use crate::api::errors::{ApiError, ApiFormat};
use crate::api::routes::Inference;
use crate::api::sniff::rewrite;
use crate::config::{Config, EndpointKind};
use crate::http::client::{UpstreamBody, UpstreamError};
use crate::http::lazy_timer::LazyTimer;
use crate::http::request_head::RequestHead;
use crate::routing::endpoint::EndpointState;
use crate::routing::fetch;
use crate::routing::names::ollama_equivalent;
use crate::translate::OllamaRoute;

/// What goes upstream: path, body, and whether the upstream answer will stream.
pub struct UpstreamRequest {
    pub path: String,
    pub body: Bytes,
    pub stream: bool,
    /// The Ollama route the answer is translated back from, when the endpoint speaks OpenAI's API.
    pub translate: Option<OllamaRoute>,
    /// The answer is read on its way (for the cache): ask for it uncompressed.
    pub plain: bool,
    /// The upstream was asked for a usage chunk the client did not ask for (`hidden_usage`).
    pub hide_usage: bool,
}

/// Builds the upstream request: the client's bytes (minus `nomyo`, with the model renamed when an
/// alias was resolved, asking for usage when `stream_usage` and the client did not), or their
/// translation for an OpenAI-compatible endpoint.
pub fn request(
    ep: &EndpointState,
    inf: &InferenceRequest<'_>,
    upstream_model: &str,
    stream_usage: bool,
) -> Result<UpstreamRequest, ApiError> {
    let (route, body, sniffed) = (inf.route, inf.body, &inf.sniffed);
    if let Some(oroute) = translation(route, ep.kind()) {
        let translate = match ep.kind() {
            EndpointKind::LlamaServer => crate::translate::request::ollama_to_llama_server,
            _ => crate::translate::request::ollama_to_openai,
        };
        let t = translate(oroute, body, upstream_model).map_err(|e| {
            ApiError::new(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.to_string(),
            )
        })?;
        return Ok(UpstreamRequest {
            path: format!("{}{}", ep.openai_base(), t.path),
            body: Bytes::from(t.body),
            stream: t.stream,
            translate: Some(oroute),
            plain: true,
            hide_usage: false,
        });
    }
    let rename = upstream_model != sniffed.model
        && !(ep.kind() == EndpointKind::Ollama
            && ollama_equivalent(&sniffed.model, upstream_model));
    let hide_usage = stream_usage
        && sniffed.stream
        && !sniffed.usage_asked
        && matches!(route, Inference::OaiChat | Inference::OaiCompletions);
    let out_body = if sniffed.has_nomyo || rename || hide_usage {
        Bytes::from(rewrite(body, rename.then_some(upstream_model), hide_usage)?)
    } else {
        body.clone()
    };
    let base = match route.format() {
        ApiFormat::Ollama => ep.url.base_path.as_str(),
        ApiFormat::OpenAi => ep.openai_base(),
    };
    let mut path = String::with_capacity(base.len() + route.path().len() + 1);
    path.push_str(base);
    path.push_str(route.path());
    if let Some(q) = crate::auth::query_without_key(inf.head.uri.query()) {
        path.push('?');
        path.push_str(&q);
    }
    Ok(UpstreamRequest {
        path,
        body: out_body,
        stream: sniffed.stream,
        translate: None,
        plain: false,
        hide_usage,
    })
}

/// The Ollama route to translate into, when an Ollama-API request goes to an OpenAI-compatible endpoint.
fn translation(route: Inference, kind: EndpointKind) -> Option<OllamaRoute> {
    if kind == EndpointKind::Ollama {
        return None;
    }
    match route {
        Inference::Chat => Some(OllamaRoute::Chat),
        Inference::Generate => Some(OllamaRoute::Generate),
        Inference::Embed => Some(OllamaRoute::Embed),
        Inference::Embeddings => Some(OllamaRoute::Embeddings),
        _ => None,
    }
}

/// The request's time limits for one attempt.
pub struct Deadlines {
    /// `timeouts.total` from the request's start, when set.
    pub hard: Option<Instant>,
    /// For the answer's head: `first_byte`, or `first_byte_cold` when the model is not loaded,
    /// never past `hard`.
    pub first_byte: Duration,
}

impl Deadlines {
    pub fn new(cfg: &Config, started: Instant, loaded: bool) -> Self {
        let t = &cfg.timeouts;
        let hard = (!t.total.is_zero()).then(|| started + t.total);
        let mut first_byte = if loaded {
            t.first_byte
        } else {
            t.first_byte_cold
        };
        if let Some(h) = hard {
            first_byte = first_byte.min(h.saturating_duration_since(Instant::now()));
        }
        Deadlines { hard, first_byte }
    }
}

/// Sends `up` to `ep` with the client's end-to-end headers (a translated request's adjusted for
/// its new body) and waits for the answer's head on the connection's `timer`.
pub async fn forward(
    ep: &EndpointState,
    up: &mut UpstreamRequest,
    req: &RequestHead,
    connect: Duration,
    deadlines: &Deadlines,
    timer: &mut LazyTimer,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let edited_headers = match (up.translate, up.plain) {
        (Some(_), _) => Some(translated::request_headers(&req.headers)),
        (None, true) => {
            let mut h = req.headers.to_map();
            h.remove(http::header::ACCEPT_ENCODING);
            Some(h)
        }
        (None, false) => None,
    };
    let headers = match &edited_headers {
        Some(map) => fetch::Forward::Map(map),
        None => fetch::Forward::Raw(&req.headers),
    };
    fetch::request(
        ep,
        Method::POST,
        &up.path,
        std::mem::take(&mut up.body),
        headers,
        fetch::Waits {
            connect,
            first_byte: deadlines.first_byte,
            timer,
        },
    )
    .await
}
