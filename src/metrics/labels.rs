//! The fixed label values of the request counters: every route, the statuses the router and its
//! upstreams answer with, and why an upstream attempt failed. No label value comes from a client.

use crate::api::routes::{Inference, Manage, Route};

/// `Route::name()` of every route, in `route_index` order.
pub const ROUTES: &[&str] = &[
    "root",
    "chat",
    "generate",
    "embed",
    "embeddings",
    "v1.chat",
    "v1.completions",
    "v1.embeddings",
    "rerank",
    "/api/pull",
    "/api/push",
    "/api/create",
    "/api/copy",
    "/api/delete",
    "blobs",
    "show",
    "tags",
    "ps",
    "version",
    "v1.models",
    "health",
    "usage",
    "usage_stream",
    "token_counts",
    "stats",
    "aggregate_time_series_days",
    "metrics",
    "cache_stats",
    "cache_invalidate",
    "config",
    "ps_details",
    "not_found",
    "method_not_allowed",
];

pub fn route_index(r: &Route) -> usize {
    match r {
        Route::Root => 0,
        Route::Inference(i) => match i {
            Inference::Chat => 1,
            Inference::Generate => 2,
            Inference::Embed => 3,
            Inference::Embeddings => 4,
            Inference::OaiChat => 5,
            Inference::OaiCompletions => 6,
            Inference::OaiEmbeddings => 7,
            Inference::Rerank => 8,
        },
        Route::Manage(m) => match m {
            Manage::Pull => 9,
            Manage::Push => 10,
            Manage::Create => 11,
            Manage::Copy => 12,
            Manage::Delete => 13,
        },
        Route::Blob(_) => 14,
        Route::Show => 15,
        Route::Tags => 16,
        Route::Ps => 17,
        Route::Version => 18,
        Route::OaiModels | Route::OaiModel(_) => 19,
        Route::Health => 20,
        Route::Usage => 21,
        Route::UsageStream => 22,
        Route::TokenCounts => 23,
        Route::Stats => 24,
        Route::AggregateTimeSeriesDays => 25,
        Route::Metrics => 26,
        Route::CacheStats => 27,
        Route::CacheInvalidate => 28,
        Route::Config => 29,
        Route::PsDetails => 30,
        Route::NotFound(_) => 31,
        Route::MethodNotAllowed(..) => 32,
    }
}

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
    use crate::api::errors::ApiFormat;

    #[test]
    fn names_match_the_routes() {
        let routes = [
            Route::Root,
            Route::Inference(Inference::Chat),
            Route::Inference(Inference::Rerank),
            Route::Manage(Manage::Pull),
            Route::Manage(Manage::Delete),
            Route::Blob("x".into()),
            Route::OaiModel("m".into()),
            Route::UsageStream,
            Route::TokenCounts,
            Route::Stats,
            Route::AggregateTimeSeriesDays,
            Route::Metrics,
            Route::PsDetails,
            Route::NotFound(ApiFormat::Ollama),
            Route::MethodNotAllowed("GET", ApiFormat::OpenAi),
        ];
        for r in routes {
            assert_eq!(ROUTES[route_index(&r)], r.name(), "{r:?}");
        }
        assert_eq!(REASONS[Reason::MidBody.index()], "mid_body");
        assert!(STATUSES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(status_label(status_index(404)), "404");
        assert_eq!(status_label(status_index(418)), "other");
    }
}
