//! What a failure before the answer's head means (SPEC §4.6): whether the request is sent to the
//! next candidate, whether it counts against the endpoint's health, and what the client is told.
//!
//! - **Retried elsewhere** only when the backend is certainly not working on the request any more:
//!   it never got it whole (connect failed, the write failed), or the connection ended before any
//!   answer byte (a closed connection ends the generation on Ollama, llama.cpp and vLLM alike, so a
//!   re-send never runs one generation twice at once; inference has no other side effect), or the
//!   backend answered 502/503 (it, or the gateway in front of it, did not serve the request).
//! - **Never retried after a timeout**: a backend that is slow to answer is still generating, and
//!   a re-send would run the same generation on a second GPU. The client gets a 504; dropping the
//!   connection cancels the work upstream. A 504 from the backend is relayed for the same reason.
//! - **Never retried after a malformed answer**: something answered, so it may have acted.
//! - **Counts against the endpoint**: connection failures, ended connections, malformed answers
//!   and 502/503 answers. A slow answer does not (discovery's polls, with their own short timeout,
//!   notice a backend that hangs). `limits.failures_before_down` in a row mark the endpoint down
//!   until a poll succeeds; one success resets the count.

use http::StatusCode;

use crate::api::errors::ApiError;
use crate::http::client::UpstreamError;

/// What to do about one failed attempt.
pub struct Verdict {
    /// The request may go to the next candidate.
    pub retry: bool,
    /// The failure counts against the endpoint's health.
    pub blame: bool,
    /// The client's answer if no other candidate serves it.
    pub error: ApiError,
}

/// The verdict on a request that got no answer head.
pub fn no_answer(e: &UpstreamError) -> Verdict {
    let (retry, blame, status) = match e {
        UpstreamError::ConnectTimeout(_) => (true, true, StatusCode::GATEWAY_TIMEOUT),
        UpstreamError::Connect(..) | UpstreamError::NotSent(..) | UpstreamError::Closed(..) => {
            (true, true, StatusCode::BAD_GATEWAY)
        }
        UpstreamError::FirstByteTimeout(..) => (false, false, StatusCode::GATEWAY_TIMEOUT),
        UpstreamError::Http(..) => (false, true, StatusCode::BAD_GATEWAY),
    };
    Verdict {
        retry,
        blame,
        error: ApiError::new(status, format!("upstream failure: {e}")),
    }
}

/// The verdict on an answer head with `status` from `endpoint`; `None` when it goes to the client.
pub fn answer_status(status: StatusCode, endpoint: &str) -> Option<Verdict> {
    matches!(status.as_u16(), 502 | 503).then(|| Verdict {
        retry: true,
        blame: true,
        error: ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("{endpoint} answered {status}"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(e: UpstreamError) -> (bool, bool, u16) {
        let v = no_answer(&e);
        (v.retry, v.blame, v.error.status.as_u16())
    }

    #[test]
    fn timeouts_are_the_clients_504_and_never_rerun() {
        let slow = UpstreamError::FirstByteTimeout("e".into(), std::time::Duration::from_secs(1));
        assert_eq!(verdict(slow), (false, false, 504));
    }

    #[test]
    fn unsent_or_dropped_requests_go_elsewhere_and_count() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            verdict(UpstreamError::Connect("e".into(), refused)),
            (true, true, 502)
        );
        assert_eq!(
            verdict(UpstreamError::ConnectTimeout("e".into())),
            (true, true, 504)
        );
        assert_eq!(
            verdict(UpstreamError::NotSent("e".into(), "x".into())),
            (true, true, 502)
        );
        assert_eq!(
            verdict(UpstreamError::Closed("e".into(), "x".into())),
            (true, true, 502)
        );
        assert_eq!(
            verdict(UpstreamError::Http("e".into(), "x".into())),
            (false, true, 502)
        );
    }

    #[test]
    fn only_502_and_503_answers_are_retried() {
        assert!(answer_status(StatusCode::BAD_GATEWAY, "e").is_some());
        assert!(answer_status(StatusCode::SERVICE_UNAVAILABLE, "e").is_some());
        for s in [200, 400, 404, 429, 500, 504] {
            assert!(answer_status(StatusCode::from_u16(s).unwrap(), "e").is_none());
        }
    }
}
