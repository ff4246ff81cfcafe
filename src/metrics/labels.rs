//! The fixed label values of the request counters: the statuses the router and its upstreams answer
//! with, and why an upstream attempt failed (the routes' names are `api::routes::ROUTE_NAMES`). No
//! label value comes from a client.

/// Statuses counted under their own code (sorted); any other under `other`.
pub const STATUSES: &[u16] = &[
    200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 408, 409, 411, 413, 415, 422, 429, 431, 499,
    500, 501, 502, 503, 504,
];

/// The index of `status` in `STATUSES`, or `STATUSES.len()` for `other`.
pub fn status_index(status: u16) -> usize {
    STATUSES.binary_search(&status).unwrap_or(STATUSES.len())
}

pub fn status_label(i: usize) -> String {
    STATUSES
        .get(i)
        .map_or_else(|| "other".to_string(), |s| s.to_string())
}

/// Why an upstream attempt gave the client no (or no whole) answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Connect,
    ConnectTimeout,
    FirstByteTimeout,
    NotSent,
    Closed,
    BadResponse,
    /// An answer the router did not pass on (a 5xx it tried elsewhere, a refused model).
    Status,
    /// Failed or went idle after the answer began.
    MidBody,
}

pub const REASONS: &[&str] = &[
    "connect",
    "connect_timeout",
    "first_byte_timeout",
    "not_sent",
    "closed",
    "bad_response",
    "status",
    "mid_body",
];

impl Reason {
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(REASONS[Reason::MidBody.index()], "mid_body");
        assert!(STATUSES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(status_label(status_index(404)), "404");
        assert_eq!(status_label(status_index(418)), "other");
    }
}
