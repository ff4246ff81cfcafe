//! The route table: method + path → what the router does with the request (SPEC §2).

use http::Method;

use super::dashboard::{self, Asset};
use super::errors::ApiFormat;

/// Inference routes that go to one chosen endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inference {
    Chat,
    Generate,
    Embed,
    Embeddings,
    OaiChat,
    OaiCompletions,
    OaiEmbeddings,
    Rerank,
    /// `/v1/responses`, passed through as it is to an endpoint that serves the model.
    OaiResponses,
}

impl Inference {
    pub fn format(self) -> ApiFormat {
        match self {
            Inference::Chat | Inference::Generate | Inference::Embed | Inference::Embeddings => {
                ApiFormat::Ollama
            }
            _ => ApiFormat::OpenAi,
        }
    }

    /// Ollama's native routes stream unless told not to; OpenAI's only when asked (SPEC §2.6).
    pub fn streams_by_default(self) -> bool {
        matches!(self, Inference::Chat | Inference::Generate)
    }

    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Inference::Chat
                | Inference::Generate
                | Inference::OaiChat
                | Inference::OaiCompletions
                | Inference::OaiResponses
        )
    }

    /// Path after the API base (`/api/...` for Ollama, after `/v1` for OpenAI).
    pub fn path(self) -> &'static str {
        match self {
            Inference::Chat => "/api/chat",
            Inference::Generate => "/api/generate",
            Inference::Embed => "/api/embed",
            Inference::Embeddings => "/api/embeddings",
            Inference::OaiChat => "/chat/completions",
            Inference::OaiCompletions => "/completions",
            Inference::OaiEmbeddings => "/embeddings",
            Inference::Rerank => "/rerank",
            Inference::OaiResponses => "/responses",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Inference::Chat => "chat",
            Inference::Generate => "generate",
            Inference::Embed => "embed",
            Inference::Embeddings => "embeddings",
            Inference::OaiChat => "v1.chat",
            Inference::OaiCompletions => "v1.completions",
            Inference::OaiEmbeddings => "v1.embeddings",
            Inference::Rerank => "rerank",
            Inference::OaiResponses => "v1.responses",
        }
    }
}

/// Ollama management routes, fanned out to every Ollama endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manage {
    Pull,
    Push,
    Create,
    Copy,
    Delete,
}

impl Manage {
    pub fn path(self) -> &'static str {
        match self {
            Manage::Pull => "/api/pull",
            Manage::Push => "/api/push",
            Manage::Create => "/api/create",
            Manage::Copy => "/api/copy",
            Manage::Delete => "/api/delete",
        }
    }

    pub fn streams_by_default(self) -> bool {
        matches!(self, Manage::Pull | Manage::Push | Manage::Create)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Root,
    Inference(Inference),
    Manage(Manage),
    Blob(String),
    Show,
    Tags,
    Ps,
    Version,
    OaiModels,
    OaiModel(String),
    Health,
    Usage,
    UsageStream,
    TokenCounts,
    Stats,
    AggregateTimeSeriesDays,
    Metrics,
    Config,
    CacheStats,
    CacheInvalidate,
    PsDetails,
    /// `POST /api/config/reload`.
    ConfigReload,
    /// A file of the dashboard page (`/dashboard/<name>`); the page itself is `Root`'s HTML answer.
    Dashboard(&'static Asset),
    /// No such path; errors in the API its prefix suggests (`/v1/...`: OpenAI's).
    NotFound(ApiFormat),
    /// The path exists with other methods (listed).
    MethodNotAllowed(&'static str, ApiFormat),
}

impl Route {
    pub fn format(&self) -> ApiFormat {
        match self {
            Route::Inference(i) => i.format(),
            Route::OaiModels | Route::OaiModel(_) => ApiFormat::OpenAi,
            Route::NotFound(f) | Route::MethodNotAllowed(_, f) => *f,
            _ => ApiFormat::Ollama,
        }
    }

    /// Routes any client may call without the router key (SPEC §5.1); the dashboard's files carry
    /// no data.
    pub fn is_public(&self) -> bool {
        matches!(self, Route::Root | Route::Health | Route::Dashboard(_))
    }

    /// The route's name in logs and metrics.
    pub fn name(&self) -> &'static str {
        ROUTE_NAMES[self.index()]
    }

    /// The route's place in `ROUTE_NAMES` (its metrics are counted there).
    pub fn index(&self) -> usize {
        match self {
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
                Inference::OaiResponses => 35,
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
            Route::ConfigReload => 31,
            Route::NotFound(_) => 32,
            Route::MethodNotAllowed(..) => 33,
            Route::Dashboard(_) => 34,
        }
    }
}

/// Every route's name, by `Route::index`.
pub const ROUTE_NAMES: [&str; crate::metrics::ROUTES] = [
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
    "config_reload",
    "not_found",
    "method_not_allowed",
    "dashboard",
    "v1.responses",
];

/// Matches a request to its route. Unknown paths give `NotFound`, known paths with the wrong method
/// `MethodNotAllowed` with the allowed methods.
pub fn route(method: &Method, path: &str) -> Route {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let format = if path == "/v1" || path.starts_with("/v1/") || path == "/rerank" {
        ApiFormat::OpenAi
    } else {
        ApiFormat::Ollama
    };
    let wrong = |allowed: &'static str| Route::MethodNotAllowed(allowed, format);
    let r = match path {
        "/" => return if get { Route::Root } else { wrong("GET, HEAD") },
        "/api/chat" => Route::Inference(Inference::Chat),
        "/api/generate" => Route::Inference(Inference::Generate),
        "/api/embed" => Route::Inference(Inference::Embed),
        "/api/embeddings" => Route::Inference(Inference::Embeddings),
        "/v1/chat/completions" => Route::Inference(Inference::OaiChat),
        "/v1/completions" => Route::Inference(Inference::OaiCompletions),
        "/v1/embeddings" => Route::Inference(Inference::OaiEmbeddings),
        "/v1/rerank" | "/rerank" => Route::Inference(Inference::Rerank),
        "/v1/responses" => Route::Inference(Inference::OaiResponses),
        "/api/pull" => Route::Manage(Manage::Pull),
        "/api/push" => Route::Manage(Manage::Push),
        "/api/create" => Route::Manage(Manage::Create),
        "/api/copy" => Route::Manage(Manage::Copy),
        "/api/show" => Route::Show,
        "/api/delete" => {
            return if method == Method::DELETE {
                Route::Manage(Manage::Delete)
            } else {
                wrong("DELETE")
            }
        }
        "/api/tags" => return if get { Route::Tags } else { wrong("GET, HEAD") },
        "/api/ps" => return if get { Route::Ps } else { wrong("GET") },
        "/api/version" => {
            return if get {
                Route::Version
            } else {
                wrong("GET, HEAD")
            }
        }
        "/v1/models" => return if get { Route::OaiModels } else { wrong("GET") },
        "/health" => return if get { Route::Health } else { wrong("GET") },
        "/api/usage" => return if get { Route::Usage } else { wrong("GET") },
        "/api/usage-stream" => {
            return if get {
                Route::UsageStream
            } else {
                wrong("GET")
            }
        }
        "/api/token_counts" => {
            return if get {
                Route::TokenCounts
            } else {
                wrong("GET")
            }
        }
        "/api/stats" => {
            return if get || post {
                Route::Stats
            } else {
                wrong("GET, POST")
            }
        }
        "/api/aggregate_time_series_days" => Route::AggregateTimeSeriesDays,
        "/metrics" => return if get { Route::Metrics } else { wrong("GET") },
        "/api/cache/stats" => return if get { Route::CacheStats } else { wrong("GET") },
        "/api/cache/invalidate" => Route::CacheInvalidate,
        "/api/config" => return if get { Route::Config } else { wrong("GET") },
        "/api/ps_details" => return if get { Route::PsDetails } else { wrong("GET") },
        "/api/config/reload" => {
            return if post {
                Route::ConfigReload
            } else {
                wrong("POST")
            }
        }
        p => {
            if let Some(id) = p.strip_prefix("/v1/models/").filter(|id| !id.is_empty()) {
                // The openai SDK sends `org%2Fname:tag` and `llama3%3Alatest`.
                let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
                return if get {
                    Route::OaiModel(id.into_owned())
                } else {
                    wrong("GET")
                };
            }
            if let Some(asset) = p.strip_prefix("/dashboard/").and_then(dashboard::find) {
                return if get {
                    Route::Dashboard(asset)
                } else {
                    wrong("GET, HEAD")
                };
            }
            if let Some(digest) = p
                .strip_prefix("/api/blobs/")
                .filter(|d| !d.is_empty() && !d.contains('/'))
            {
                return if post || method == Method::HEAD {
                    Route::Blob(digest.to_string())
                } else {
                    wrong("HEAD, POST")
                };
            }
            return Route::NotFound(format);
        }
    };
    if post {
        r
    } else {
        wrong("POST")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(
            route(&Method::POST, "/api/chat"),
            Route::Inference(Inference::Chat)
        );
        assert_eq!(
            route(&Method::GET, "/api/chat"),
            Route::MethodNotAllowed("POST", ApiFormat::Ollama)
        );
        assert_eq!(
            route(&Method::GET, "/v1/chat/completions"),
            Route::MethodNotAllowed("POST", ApiFormat::OpenAi)
        );
        assert_eq!(
            route(&Method::GET, "/v1/nope"),
            Route::NotFound(ApiFormat::OpenAi)
        );
        assert_eq!(
            route(&Method::GET, "/v1"),
            Route::NotFound(ApiFormat::OpenAi)
        );
        assert_eq!(route(&Method::HEAD, "/"), Route::Root);
        assert_eq!(
            route(&Method::DELETE, "/api/delete"),
            Route::Manage(Manage::Delete)
        );
        assert_eq!(
            route(&Method::GET, "/v1/models/org/model:q4"),
            Route::OaiModel("org/model:q4".into())
        );
        // Percent-encoded ids (the openai SDK's); bytes that are not UTF-8 cannot name a model.
        for (path, id) in [
            ("/v1/models/org%2Fmodel%3Aq4", "org/model:q4"),
            ("/v1/models/llama3%3alatest", "llama3:latest"),
            ("/v1/models/a%ff", "a\u{fffd}"),
            ("/v1/models/%", "%"),
        ] {
            assert_eq!(
                route(&Method::GET, path),
                Route::OaiModel(id.into()),
                "{path}"
            );
        }
        assert_eq!(
            route(&Method::HEAD, "/api/blobs/sha256:abc"),
            Route::Blob("sha256:abc".into())
        );
        assert_eq!(
            route(&Method::POST, "/rerank"),
            Route::Inference(Inference::Rerank)
        );
        assert_eq!(
            route(&Method::GET, "/nope"),
            Route::NotFound(ApiFormat::Ollama)
        );
        assert_eq!(route(&Method::GET, "/api/tags/"), Route::Tags);
        let js = dashboard::find("app.js").unwrap();
        assert_eq!(
            route(&Method::GET, "/dashboard/app.js"),
            Route::Dashboard(js)
        );
        assert_eq!(
            route(&Method::HEAD, "/dashboard/app.js"),
            Route::Dashboard(js)
        );
        assert!(Route::Dashboard(js).is_public());
        assert_eq!(
            route(&Method::POST, "/dashboard/app.js"),
            Route::MethodNotAllowed("GET, HEAD", ApiFormat::Ollama)
        );
        assert_eq!(
            route(&Method::GET, "/dashboard/../api/usage"),
            Route::NotFound(ApiFormat::Ollama)
        );
        assert_eq!(
            route(&Method::GET, "/dashboard/"),
            Route::NotFound(ApiFormat::Ollama)
        );
    }

    #[test]
    fn every_route_has_its_own_name() {
        use std::collections::BTreeSet;
        let f = ApiFormat::Ollama;
        let inference = [
            Inference::Chat,
            Inference::Generate,
            Inference::Embed,
            Inference::Embeddings,
            Inference::OaiChat,
            Inference::OaiCompletions,
            Inference::OaiEmbeddings,
            Inference::Rerank,
            Inference::OaiResponses,
        ];
        let manage = [
            Manage::Pull,
            Manage::Push,
            Manage::Create,
            Manage::Copy,
            Manage::Delete,
        ];
        let mut routes: Vec<Route> = inference.into_iter().map(Route::Inference).collect();
        routes.extend(manage.into_iter().map(Route::Manage));
        routes.extend([
            Route::Root,
            Route::Blob("b".into()),
            Route::Show,
            Route::Tags,
            Route::Ps,
            Route::Version,
            Route::OaiModels,
            Route::Health,
            Route::Usage,
            Route::UsageStream,
            Route::TokenCounts,
            Route::Stats,
            Route::AggregateTimeSeriesDays,
            Route::Metrics,
            Route::CacheStats,
            Route::CacheInvalidate,
            Route::Config,
            Route::PsDetails,
            Route::ConfigReload,
            Route::NotFound(f),
            Route::MethodNotAllowed("GET", f),
            Route::Dashboard(&dashboard::ASSETS[0]),
        ]);
        let indexes: BTreeSet<usize> = routes.iter().map(Route::index).collect();
        assert_eq!(indexes, (0..ROUTE_NAMES.len()).collect());
        assert_eq!(Route::OaiModel("m".into()).name(), "v1.models");
        assert_eq!(Route::Manage(Manage::Pull).name(), "/api/pull");
        assert_eq!(Route::Inference(Inference::OaiChat).name(), "v1.chat");
    }
}
