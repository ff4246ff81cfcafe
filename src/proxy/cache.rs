//! The cache phases (SPEC §6). The lookup runs after the body was sniffed and before an endpoint is
//! chosen, so a hit takes no slot; it decides whether the request uses the cache at all (route,
//! `moe-*`, opt-in/out), looks the key up, and on a miss joins the key's flight (coalescing). The
//! store runs in the epilogue: the answer is read off the client's bytes as they pass
//! (`cache::capture`) and kept only when it ended complete and successful.

use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use serde::Deserialize;

use super::session::{InferenceRequest, Session};
use crate::api::errors::{ApiError, ApiFormat};
use crate::api::routes::Inference;
use crate::cache::answer::Answer;
use crate::cache::capture::{Capture, Wire};
use crate::cache::flights::{Join, Leader};
use crate::cache::key::{self, CacheKey, Family};
use crate::cache::replay::{render, Body};
use crate::cache::response_cache::{Refused, ResponseCache};
use crate::cache::stats::Stats;
use crate::http::body::RouterBody;
use crate::routing::names::strip_latest;
use crate::state::Shared;

/// The `X-Cache` header: what the cache did for the request.
pub const HEADER: &str = "x-cache";

/// What the lookup decided.
pub enum Lookup {
    /// The answer, from the cache.
    Hit(Response<RouterBody>),
    /// Go upstream; with a store to make when the answer ends, if the request uses the cache.
    Upstream(Option<Pending>),
}

/// A miss that will store the upstream's answer.
pub struct Pending {
    shared: Arc<Shared>,
    key: CacheKey,
    model: String,
    chat: bool,
    wire: Wire,
    /// The first of concurrent identical misses hands its answer to the others.
    leader: Option<Leader>,
    /// The cache's invalidation generation when the request missed.
    generation: u64,
    /// The embedding core kept the request's vectors: the answer joins the semantic index.
    indexable: bool,
}

/// A hit: the stored answer replayed, its tokens counted as saved (accounting and the log line).
fn served(
    s: &mut Session,
    inf: &InferenceRequest<'_>,
    answer: &Arc<Answer>,
    similarity: Option<f32>,
) -> Lookup {
    s.cache = Some("hit");
    let tokens = crate::accounting::Tokens {
        prompt: answer.prompt_tokens,
        completion: answer.completion_tokens,
    };
    s.tokens = Some(tokens);
    if let Some(acc) = &s.shared.accounting {
        acc.record(crate::accounting::Record {
            endpoint: std::sync::Arc::from("cache"),
            model: std::sync::Arc::from(strip_latest(&inf.sniffed.model)),
            tokens,
            cached: true,
        });
    }
    Lookup::Hit(replay(inf, answer, similarity))
}

/// The lookup phase; sets the session's `X-Cache` value when the cache is on.
pub async fn lookup(s: &mut Session, inf: &InferenceRequest<'_>) -> Result<Lookup, ApiError> {
    let shared = s.shared.clone();
    let Some(cache) = shared.cache.as_ref() else {
        return Ok(Lookup::Upstream(None));
    };
    let Some((family, key)) = uses_cache(cache, inf)? else {
        s.cache = Some("bypass");
        Stats::add(&cache.stats.bypasses);
        return Ok(Lookup::Upstream(None));
    };
    let indexable = match cache.lookup(&key, family, inf.body).await {
        Ok(hit) => {
            Stats::add(match hit.similarity {
                None => &cache.stats.exact_hits,
                Some(_) => &cache.stats.semantic_hits,
            });
            return Ok(served(s, inf, &hit.answer, hit.similarity));
        }
        Err(miss) => miss.indexable,
    };
    Stats::add(&cache.stats.misses);
    s.cache = Some("miss");
    let generation = cache.generation();
    let leader = match cache.flights.join(key.exact) {
        Join::Leader(l) => Some(l),
        Join::Follower(rx) => {
            // The leader's own timeouts end its flight, but not a leader whose client reads
            // slowly: a follower waits at most `timeouts.first_byte`, then goes upstream itself.
            let wait = shared.config.timeouts.first_byte;
            if let Ok(Ok(Some(answer))) = monoio::time::timeout(wait, rx).await {
                Stats::add(&cache.stats.coalesced);
                return Ok(served(s, inf, &answer, None));
            }
            // The leader had no answer to share: this request goes upstream itself.
            None
        }
    };
    let chat = matches!(inf.route, Inference::Chat | Inference::OaiChat);
    let wire = match (inf.route.format(), inf.sniffed.stream) {
        (ApiFormat::Ollama, _) => Wire::Ollama,
        (ApiFormat::OpenAi, true) => Wire::OpenAiSse,
        (ApiFormat::OpenAi, false) => Wire::OpenAiJson,
    };
    Ok(Lookup::Upstream(Some(Pending {
        model: strip_latest(&inf.sniffed.model).to_string(),
        shared,
        key,
        chat,
        wire,
        leader,
        generation,
        indexable,
    })))
}

/// The request's family and key, or `None` when it does not use the cache: a route that is never cached
/// (embeddings, rerank), a `moe-*` model, `Cache-Control: no-cache`/`no-store`, `"nomyo":
/// {"cache": false}`, or — with `cache_opt_in` — no `"nomyo": {"cache": true}`.
fn uses_cache(
    cache: &ResponseCache,
    inf: &InferenceRequest<'_>,
) -> Result<Option<(Family, CacheKey)>, ApiError> {
    let Some(family) = family(inf.route) else {
        return Ok(None);
    };
    if inf.sniffed.model.starts_with("moe-") || no_cache_header(inf) {
        return Ok(None);
    }
    let asked = if inf.sniffed.has_nomyo {
        nomyo_cache(inf.body)?
    } else {
        None
    };
    if asked == Some(false) || (cache.config.opt_in && asked != Some(true)) {
        return Ok(None);
    }
    // The model as named: `llama3` and `llama3:latest` are one model on Ollama, but two on an
    // OpenAI-compatible server may be two (a miss, never a wrong hit).
    let query = crate::auth::query_without_key(inf.head.uri.query());
    let model = &inf.sniffed.model;
    Ok(key::key(family, inf.body, model, query.as_deref(), None)
        .ok()
        .map(|k| (family, k)))
}

fn family(route: Inference) -> Option<Family> {
    match route {
        Inference::Chat => Some(Family::OllamaChat),
        Inference::Generate => Some(Family::OllamaGenerate),
        Inference::OaiChat => Some(Family::OpenAiChat),
        Inference::OaiCompletions => Some(Family::OpenAiCompletions),
        _ => None,
    }
}

/// `Cache-Control: no-cache` or `no-store` (with or without an argument), or `Pragma: no-cache`.
fn no_cache_header(inf: &InferenceRequest<'_>) -> bool {
    let names = |v: &[u8], wanted: &[&[u8]]| {
        v.split(|&b| b == b',').any(|d| {
            let name = d.split(|&b| b == b'=').next().unwrap_or(d).trim_ascii();
            wanted.iter().any(|w| name.eq_ignore_ascii_case(w))
        })
    };
    let headers = &inf.head.headers;
    headers
        .get_all("cache-control")
        .any(|v| names(v, &[b"no-cache", b"no-store"]))
        || headers.get_all("pragma").any(|v| names(v, &[b"no-cache"]))
}

/// `nomyo.cache` of the body: a boolean, or absent (`nomyo` or `cache` missing or null).
fn nomyo_cache(body: &[u8]) -> Result<Option<bool>, ApiError> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        nomyo: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let bad = || ApiError::bad_request("nomyo must be an object, and nomyo.cache a boolean");
    let b: Body = serde_json::from_slice(body).map_err(|_| bad())?;
    match b.nomyo.as_ref().and_then(|n| n.get("cache")) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(c)) => Ok(Some(*c)),
        Some(_) => Err(bad()),
    }
}

/// A hit as the client's answer, in its format.
fn replay(
    inf: &InferenceRequest<'_>,
    answer: &Arc<Answer>,
    similarity: Option<f32>,
) -> Response<RouterBody> {
    let family = family(inf.route).expect("only cached routes hit");
    let include_usage = inf.route.format() == ApiFormat::OpenAi
        && inf.sniffed.stream
        && crate::translate::request::stream_include_usage(inf.body);
    let r = render(
        answer,
        family,
        inf.sniffed.stream,
        &inf.sniffed.model,
        include_usage,
    );
    let body = match r.body {
        Body::Whole(b) => RouterBody::full(b),
        Body::Stream(s) => RouterBody::Streamed(s),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(r.content_type),
    );
    if let Some(sim) = similarity {
        if let Ok(v) = HeaderValue::from_str(&format!("{sim:.4}")) {
            h.insert("x-cache-similarity", v);
        }
    }
    resp
}

/// The store phase's state, carried by the answer's body: reads the answer as it passes.
pub struct Store {
    pending: Pending,
    capture: Capture,
}

impl Store {
    /// Only a 200 answer is read; anything else is never stored (and releases followers).
    pub fn new(pending: Pending, status: StatusCode) -> Option<Store> {
        if status != StatusCode::OK {
            return None;
        }
        let cache = &pending.shared.config.cache;
        let limit = cache.max_entry_bytes.min(cache.max_bytes);
        let capture = Capture::new(pending.wire, pending.chat, limit);
        Some(Store { pending, capture })
    }

    pub fn observe(&mut self, bytes: &[u8]) {
        self.capture.data(bytes);
    }

    /// The answer did not end complete (the upstream failed, the client left): nothing is kept,
    /// and the flight's followers go upstream themselves.
    pub fn abandon(self) {
        if let Some(cache) = self.pending.shared.cache.as_ref() {
            Stats::add(&cache.stats.not_stored);
        }
    }

    /// The answer ended complete: keep it, and hand it to the flight's followers.
    pub fn complete(self) {
        let Store { pending, capture } = self;
        let Some(cache) = pending.shared.cache.as_ref() else {
            return;
        };
        let answer = match capture.finish() {
            Ok(a) => Arc::new(a),
            Err(_) => {
                Stats::add(&cache.stats.not_stored);
                return;
            }
        };
        let stored = cache.store(
            &pending.key,
            &pending.model,
            answer.clone(),
            pending.generation,
            pending.indexable,
        );
        match stored {
            Ok(()) => Stats::add(&cache.stats.stores),
            Err(Refused::Busy) => {}
            Err(Refused::Personal | Refused::Invalidated) => {
                Stats::add(&cache.stats.not_stored);
                // Not stored for anyone: the followers go upstream themselves.
                return;
            }
        }
        if let Some(leader) = pending.leader {
            leader.land(Some(answer));
        }
    }
}
