//! Errors in the client's API format (SPEC §3.4): Ollama `{"error": "..."}`, OpenAI
//! `{"error": {"message", "type", "param", "code"}}`.

use http::{header, HeaderValue, Response, StatusCode};

use crate::http::body::RouterBody;

/// Which API a route speaks, and so how its errors look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiFormat {
    Ollama,
    OpenAi,
}

/// An error to send to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for `Retry-After` (429/503 from saturation).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    fn openai_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 | 403 => "authentication_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    pub fn body(&self, format: ApiFormat) -> String {
        let msg = serde_json::Value::String(self.message.clone());
        match format {
            ApiFormat::Ollama => format!("{{\"error\":{msg}}}"),
            ApiFormat::OpenAi => format!(
                "{{\"error\":{{\"message\":{msg},\"type\":\"{}\",\"param\":null,\"code\":{}}}}}",
                self.openai_type(),
                self.status.as_u16()
            ),
        }
    }

    pub fn into_response(self, format: ApiFormat) -> Response<RouterBody> {
        let mut resp = Response::new(RouterBody::full(self.body(format)));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let e = ApiError::new(StatusCode::NOT_FOUND, "model \"x\" not found");
        assert_eq!(
            e.body(ApiFormat::Ollama),
            r#"{"error":"model \"x\" not found"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&e.body(ApiFormat::OpenAi)).unwrap();
        assert_eq!(v["error"]["type"], "not_found_error");
        assert_eq!(v["error"]["message"], "model \"x\" not found");
    }
}
