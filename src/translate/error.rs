//! The translators' error type. Its `Display` text is meant for the client: it names the field or the
//! feature at fault and never contains more than a short excerpt of a body.

/// Why a request or a response could not be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's body is not JSON, or a field has the wrong type or value.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// Valid in the client's API, but the backend's API cannot express it (e.g. an image URL for Ollama).
    #[error("{0}")]
    Unsupported(String),
    /// The backend's body is not what its API promises.
    #[error("invalid response from upstream: {0}")]
    BadUpstream(String),
    /// The backend answered with an error body; this is its message.
    #[error("{0}")]
    Upstream(String),
}

impl TranslateError {
    /// The HTTP status to answer with: 400 when the client's request is at fault, 502 when the backend's
    /// response is.
    pub fn status(&self) -> u16 {
        match self {
            TranslateError::BadRequest(_) | TranslateError::Unsupported(_) => 400,
            TranslateError::BadUpstream(_) | TranslateError::Upstream(_) => 502,
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        TranslateError::BadRequest(message.into())
    }

    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        TranslateError::Unsupported(message.into())
    }

    pub(crate) fn bad_upstream(message: impl Into<String>) -> Self {
        TranslateError::BadUpstream(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        let e = TranslateError::bad("`messages` must be an array");
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.to_string(),
            "invalid request: `messages` must be an array"
        );
        assert_eq!(TranslateError::unsupported("no").status(), 400);
        assert_eq!(TranslateError::bad_upstream("x").status(), 502);
        assert_eq!(
            TranslateError::Upstream("model not found".into()).to_string(),
            "model not found"
        );
    }
}
