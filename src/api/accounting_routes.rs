//! The token routes (seed-behaviour §1.5): `/api/token_counts`, `/api/stats`,
//! `/api/aggregate_time_series_days`, answered by the accounting thread from the database; and
//! `GET /metrics`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::errors::ApiError;
use super::util::json_value;
use crate::accounting::{Accounting, Query};
use crate::http::body::RouterBody;
use crate::state::Shared;

fn accounting(shared: &Shared) -> Result<&Accounting, ApiError> {
    shared.accounting.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "token accounting is off (token_accounting: false)",
        )
    })
}

async fn ask(acc: &Accounting, q: Query) -> Result<Option<Value>, ApiError> {
    acc.query(q)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e).retry_after(5))
}

/// `GET /api/token_counts`.
pub async fn token_counts(shared: &Shared) -> Result<Response<RouterBody>, ApiError> {
    let v = ask(accounting(shared)?, Query::TokenCounts).await?;
    Ok(json_value(StatusCode::OK, &v.unwrap_or(Value::Null)))
}

/// `POST /api/stats` (or GET): the model from `?model=` or the body's `model`.
pub async fn stats(
    shared: &Shared,
    query: Option<&str>,
    body: Result<Bytes, ApiError>,
) -> Result<Response<RouterBody>, ApiError> {
    let acc = accounting(shared)?;
    let from_query = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "model")
            .map(|(_, v)| v.into_owned())
    });
    let model = match from_query {
        Some(m) => m,
        None => {
            let body = body?;
            let v: Value = if body.trim_ascii().is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?
            };
            match v.get("model") {
                Some(Value::String(m)) => m.clone(),
                None | Some(Value::Null) => {
                    return Err(ApiError::bad_request("missing 'model' (query or body)"))
                }
                Some(_) => return Err(ApiError::bad_request("'model' must be a string")),
            }
        }
    };
    if model.is_empty() {
        return Err(ApiError::bad_request("missing 'model' (query or body)"));
    }
    match ask(acc, Query::Stats(model)).await? {
        Some(v) => Ok(json_value(StatusCode::OK, &v)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "No token data found for this model",
        )),
    }
}

/// `POST /api/aggregate_time_series_days` with `{"days": 30, "trim_old": false}` (both
/// optional; an empty body takes both defaults). Each series row is aggregated once, however
/// often this is called.
pub async fn aggregate(
    shared: &Shared,
    body: Result<Bytes, ApiError>,
) -> Result<Response<RouterBody>, ApiError> {
    let acc = accounting(shared)?;
    let body = body?;
    let v: Value = if body.trim_ascii().is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let days = match v.get("days") {
        None | Some(Value::Null) => 30,
        Some(d) => d.as_u64().filter(|&d| d <= 100_000).ok_or_else(|| {
            ApiError::bad_request("'days' must be a whole number of days from 0 to 100000")
        })?,
    };
    let trim = match v.get("trim_old") {
        None | Some(Value::Null) => false,
        Some(t) => t
            .as_bool()
            .ok_or_else(|| ApiError::bad_request("'trim_old' must be true or false"))?,
    };
    let groups = ask(acc, Query::Aggregate { days, trim }).await?;
    Ok(json_value(
        StatusCode::OK,
        &json!({"status": "ok", "days": days, "trim_old": trim,
                "aggregated_groups": groups.unwrap_or(Value::from(0))}),
    ))
}

/// `GET /metrics`.
pub fn metrics(shared: &Shared) -> Result<Response<RouterBody>, ApiError> {
    if shared.metrics.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics are off (metrics: false)",
        ));
    }
    let mut resp = Response::new(RouterBody::full(super::metrics_text::render(shared)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::metrics_text::CONTENT_TYPE),
    );
    Ok(resp)
}
