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

/// How one attempt failed before any byte of an answer reached the client.
#[derive(Debug)]
pub enum Failure<'a> {
    /// No answer head came.
    NoAnswer(&'a UpstreamError),
    /// An answer head came with this status, one `passes_through` refuses.
    Answered(StatusCode),
}

/// Whether the request may be sent to the next candidate: only when this backend cannot be working
/// on it any more (never got it whole, dropped it before answering, or answered 502/503).
pub fn may_resend(f: &Failure) -> bool {
    match f {
        Failure::NoAnswer(e) => matches!(
            e,
            UpstreamError::Connect(..)
                | UpstreamError::ConnectTimeout(_)
                | UpstreamError::NotSent(..)
                | UpstreamError::Closed(..)
        ),
        Failure::Answered(_) => true,
    }
}

/// Whether the failure counts against the endpoint's health (`limits.failures_before_down` in a
/// row mark it down): everything but a slow answer, which is the client's 504 and not the
/// backend's fault.
pub fn counts_against_endpoint(f: &Failure) -> bool {
    !matches!(f, Failure::NoAnswer(UpstreamError::FirstByteTimeout(..)))
}

/// Whether an answer head with `status` goes to the client as it is: all but 502 and 503, which
/// say the backend (or a gateway in front of it) did not serve the request. A 504 passes: the
/// backend may still be generating.
pub fn passes_through(status: StatusCode) -> bool {
    !matches!(status.as_u16(), 502 | 503)
}

/// What the client is told when no other candidate serves the request.
pub fn client_error(f: &Failure, endpoint: &str) -> ApiError {
    match f {
        Failure::NoAnswer(e) => {
            let status = match e {
                UpstreamError::ConnectTimeout(_) | UpstreamError::FirstByteTimeout(..) => {
                    StatusCode::GATEWAY_TIMEOUT
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            ApiError::new(status, format!("upstream failure: {e}"))
        }
        Failure::Answered(status) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("{endpoint} answered {status}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn refused() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
    }

    /// Every kind of failure: (failure, re-sent elsewhere, counts against the endpoint, client status).
    #[test]
    fn the_policy_table() {
        let e = |s: &str| s.to_string();
        let no_answer = [
            (UpstreamError::Connect(e("a"), refused()), true, true, 502),
            (UpstreamError::ConnectTimeout(e("a")), true, true, 504),
            (UpstreamError::NotSent(e("a"), e("x")), true, true, 502),
            (UpstreamError::Closed(e("a"), e("x")), true, true, 502),
            (
                UpstreamError::FirstByteTimeout(e("a"), Duration::from_secs(1)),
                false,
                false,
                504,
            ),
            (UpstreamError::Http(e("a"), e("x")), false, true, 502),
        ];
        for (err, resend, blame, status) in &no_answer {
            let f = Failure::NoAnswer(err);
            assert_eq!(may_resend(&f), *resend, "{err}");
            assert_eq!(counts_against_endpoint(&f), *blame, "{err}");
            assert_eq!(client_error(&f, "a").status.as_u16(), *status, "{err}");
        }
        for code in [502, 503] {
            let f = Failure::Answered(StatusCode::from_u16(code).unwrap());
            assert!(may_resend(&f) && counts_against_endpoint(&f));
            assert_eq!(client_error(&f, "a").status, StatusCode::BAD_GATEWAY);
        }
    }

    #[test]
    fn only_502_and_503_answers_are_held_back() {
        assert!(!passes_through(StatusCode::BAD_GATEWAY));
        assert!(!passes_through(StatusCode::SERVICE_UNAVAILABLE));
        for s in [200, 400, 404, 429, 500, 504] {
            assert!(passes_through(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
