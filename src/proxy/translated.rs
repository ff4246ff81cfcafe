//! Answers for Ollama-API clients from OpenAI-compatible endpoints (SPEC §3.1-3.4): streams are
//! translated chunk by chunk as they arrive, whole answers once complete, errors keep the upstream
//! status and come back in Ollama's `{"error": "..."}` form.

use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use super::epilogue::Epilogue;
use super::relay::{Outcome, Relay, StreamErrorFormat, Transform};
use crate::api::errors::{ApiError, ApiFormat};
use crate::config::Limits;
use crate::http::body::RouterBody;
use crate::http::client::UpstreamBody;
use crate::http::request_headers::RequestHeaders;
use crate::routing::slots::SlotGuard;
use crate::translate::response::{error_message, openai_to_ollama_response};
use crate::translate::stream::SseToNdjson;
use crate::translate::{OllamaRoute, TranslateError};

impl Transform for SseToNdjson {
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        SseToNdjson::feed(self, input, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        SseToNdjson::finish(self, out);
    }

    fn has_failed(&self) -> bool {
        SseToNdjson::has_failed(self)
    }
}

/// The client's headers for a translated request: the body is new, and the answer must be plain
/// (uncompressed) for the router to read it.
pub fn request_headers(client: &RequestHeaders) -> HeaderMap {
    let mut h = client.to_map();
    h.remove(header::ACCEPT_ENCODING);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    h
}

/// How to answer one translated request.
pub struct Answer<'a> {
    pub route: OllamaRoute,
    /// The model name the client asked for (answers carry it back).
    pub model: &'a str,
    pub stream: bool,
    pub limits: &'a Limits,
    pub idle: Duration,
    pub hard_deadline: Option<std::time::Instant>,
}

impl Answer<'_> {
    pub async fn respond(
        self,
        resp: Response<UpstreamBody>,
        guard: SlotGuard,
        mut epilogue: Epilogue,
    ) -> Response<RouterBody> {
        let status = resp.status();
        if status.is_success() && self.stream {
            let transform = Box::new(SseToNdjson::new(self.route, self.model));
            let relay = Relay::new(
                resp.into_body(),
                Some(guard),
                StreamErrorFormat::NdjsonLine,
                self.idle,
                epilogue,
            )
            .with_transform(transform)
            .with_hard_deadline(self.hard_deadline);
            let mut out = Response::new(RouterBody::Streamed(Box::new(relay)));
            out.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            return out;
        }
        // Whole answers (and errors) are read completely, translated, then sent.
        let read = monoio::time::timeout(
            self.idle,
            http_body_util::Limited::new(resp.into_body(), self.limits.max_body_bytes).collect(),
        )
        .await;
        let bytes = match read {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => {
                return self.fail(
                    epilogue,
                    StatusCode::BAD_GATEWAY,
                    format!("upstream answer could not be read: {e}"),
                )
            }
            Err(_) => {
                return self.fail(
                    epilogue,
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("upstream answer not complete within {:?}", self.idle),
                )
            }
        };
        drop(guard);
        if !status.is_success() {
            let out = ApiError::new(status, error_message(&bytes)).into_response(ApiFormat::Ollama);
            epilogue.run(Outcome::Complete);
            return out;
        }
        match openai_to_ollama_response(self.route, &bytes, self.model) {
            Ok(body) => {
                epilogue.observe(&body);
                epilogue.run(Outcome::Complete);
                let mut out = Response::new(RouterBody::full(body));
                out.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                out
            }
            // The backend answered 2xx with an error body: pass its message on.
            Err(TranslateError::Upstream(message)) => {
                self.fail(epilogue, StatusCode::BAD_GATEWAY, message)
            }
            Err(e) => self.fail(
                epilogue,
                StatusCode::BAD_GATEWAY,
                format!("upstream answer could not be translated: {e}"),
            ),
        }
    }

    fn fail(
        &self,
        epilogue: Epilogue,
        status: StatusCode,
        message: String,
    ) -> Response<RouterBody> {
        epilogue.run(Outcome::UpstreamFailed(message.clone()));
        ApiError::new(status, message).into_response(ApiFormat::Ollama)
    }
}
