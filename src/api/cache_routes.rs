//! The cache's routes (SPEC §6.6): `GET /api/cache/stats` and `POST /api/cache/invalidate`, in the
//! reference's shapes (`enabled`, `hits`, `misses`, `hit_rate`, `semantic`, `backend`,
//! `similarity_threshold`, `history_weight`; `cleared`) with this router's further numbers.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;

use super::errors::ApiError;
use super::util::json_value;
use crate::http::body::RouterBody;
use crate::routing::names::strip_latest;
use crate::state::Shared;

pub async fn stats(shared: &Shared) -> Response<RouterBody> {
    let Some(cache) = shared.cache.as_ref() else {
        return json_value(StatusCode::OK, &json!({"enabled": false}));
    };
    let s = cache.stats.snapshot();
    let c = &cache.config;
    let (entries, bytes, size_error) = match cache.size().await {
        Ok((e, b)) => (Some(e), Some(b), None),
        Err(e) => (None, None, Some(e)),
    };
    let body = json!({
        "enabled": true,
        "hits": s.hits(),
        "misses": s.misses,
        "hit_rate": (s.hit_rate() * 1000.0).round() / 1000.0,
        "semantic": c.similarity < 1.0,
        "backend": c.backend.name(),
        "similarity_threshold": c.similarity,
        "history_weight": c.history_weight,
        "exact_hits": s.exact_hits,
        "semantic_hits": s.semantic_hits,
        "bypasses": s.bypasses,
        "coalesced": s.coalesced,
        "stores": s.stores,
        "not_stored": s.not_stored,
        "errors": s.errors,
        "lookup_timeouts": s.lookup_timeouts,
        "in_flight": cache.flights.in_flight(),
        "entries": entries,
        "bytes": bytes,
        "max_entries": c.max_entries,
        "max_bytes": c.max_bytes,
        "ttl": c.ttl.filter(|&t| t > 0),
        "opt_in": c.opt_in,
        "store_error": cache.store_error.as_deref().or(size_error.as_deref()),
        "semantic_layer": cache.semantic.as_ref().map(semantic_numbers),
    });
    json_value(StatusCode::OK, &body)
}

/// The embedding core's numbers: what it refused and why, and what missed its budget.
fn semantic_numbers(s: &crate::cache::semantic::Semantic) -> serde_json::Value {
    use crate::cache::semantic::Counters;
    let c = &s.counters;
    json!({
        "entries": Counters::get(&c.entries),
        "budget_ms": s.budget().as_secs_f64() * 1000.0,
        "over_budget": Counters::get(&c.over_budget),
        "late": Counters::get(&c.late),
        "ineligible": Counters::get(&c.ineligible),
        "guard_refused": Counters::get(&c.guard_refused),
        "history_refused": Counters::get(&c.history_refused),
        "errors": Counters::get(&c.errors),
    })
}

/// Drops every entry, or one model's (`{"model": "..."}`, or `?model=`), and zeroes the counters.
pub async fn invalidate(
    shared: &Shared,
    query: Option<&str>,
    body: Result<Bytes, ApiError>,
) -> Result<Response<RouterBody>, ApiError> {
    let body = body?;
    let Some(cache) = shared.cache.as_ref() else {
        return Ok(json_value(
            StatusCode::OK,
            &json!({"enabled": false, "cleared": false}),
        ));
    };
    let model = model_of(query, &body)?;
    let model = model.as_deref().map(strip_latest);
    match cache.invalidate(model).await {
        Ok(removed) => Ok(json_value(
            StatusCode::OK,
            &json!({"enabled": true, "cleared": true, "removed": removed, "model": model}),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the cache's store could not be cleared: {e}"),
        )),
    }
}

/// The model to invalidate: `?model=`, or the body's `model`; `None` (everything) only for an
/// empty body (or `{}`) and no query. Anything else unexpected is refused: a typo must not clear
/// every entry.
fn model_of(query: Option<&str>, body: &[u8]) -> Result<Option<String>, ApiError> {
    let from_query = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "model")
            .map(|(_, v)| v.into_owned())
    });
    if from_query.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return Err(ApiError::bad_request("model must be a non-empty string"));
    }
    let from_body = if body.trim_ascii().is_empty() {
        None
    } else {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("expected a JSON object: {e}")))?;
        if let Some(other) = v.keys().find(|k| *k != "model") {
            return Err(ApiError::bad_request(format!(
                "unknown field '{other}': the body is {{}} or {{\"model\": \"...\"}}"
            )));
        }
        match v.get("model") {
            None => None,
            Some(serde_json::Value::String(m)) if !m.trim().is_empty() => Some(m.clone()),
            Some(_) => return Err(ApiError::bad_request("model must be a non-empty string")),
        }
    };
    match (from_query, from_body) {
        (Some(q), Some(b)) if q != b => Err(ApiError::bad_request(
            "the query and the body name different models",
        )),
        (q, b) => Ok(q.or(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_comes_from_the_query_or_the_body() {
        assert_eq!(
            model_of(Some("model=a%3Ab"), b"").unwrap().as_deref(),
            Some("a:b")
        );
        assert_eq!(
            model_of(None, br#"{"model":"m"}"#).unwrap().as_deref(),
            Some("m")
        );
        assert_eq!(
            model_of(Some("model=m"), br#"{"model":"m"}"#)
                .unwrap()
                .as_deref(),
            Some("m")
        );
        assert_eq!(model_of(None, b"  ").unwrap(), None);
        assert_eq!(model_of(None, b"{}").unwrap(), None);
        assert_eq!(model_of(Some("x=1"), b"").unwrap(), None);
    }

    #[test]
    fn anything_unexpected_is_refused_rather_than_clearing_everything() {
        for body in [
            &br#"{"model":3}"#[..],
            b"{",
            b"1",
            br#""llama3""#,
            b"[]",
            br#"{"modle":"x"}"#,
            br#"{"model":null}"#,
            br#"{"model":""}"#,
        ] {
            assert!(
                model_of(None, body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(model_of(Some("model="), b"").is_err());
        assert!(model_of(Some("model=a"), br#"{"model":"b"}"#).is_err());
    }
}
