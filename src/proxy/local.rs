//! Answers the router makes itself: its own routes, merged listings, management fan-out, CORS.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::api::errors::ApiError;
use crate::api::routes::Route;
use crate::api::{accounting_routes, cache_routes, dashboard, listing, manage, own, show, usage};
use crate::http::body::RouterBody;
use crate::http::request_head::RequestHead;
use crate::state::Shared;

/// The answer to every route but inference.
pub async fn answer(
    shared: Arc<Shared>,
    route: &Route,
    req: &RequestHead,
    body: Result<Bytes, ApiError>,
) -> Result<Response<RouterBody>, ApiError> {
    match route {
        Route::Root => Ok(dashboard::root(&req.headers)),
        Route::Dashboard(asset) => Ok(dashboard::asset(asset)),
        Route::Health => Ok(own::health(&shared)),
        Route::Usage => Ok(usage::usage(&shared)),
        Route::UsageStream => Ok(usage::stream(shared.clone())),
        Route::TokenCounts => accounting_routes::token_counts(&shared).await,
        Route::Stats => accounting_routes::stats(&shared, req.uri.query(), body).await,
        Route::AggregateTimeSeriesDays => accounting_routes::aggregate(&shared, body).await,
        Route::Metrics => accounting_routes::metrics(&shared),
        Route::Config => Ok(own::config(&shared)),
        Route::ConfigReload => own::reload(shared.clone()).await,
        Route::CacheStats => Ok(cache_routes::stats(&shared).await),
        Route::CacheInvalidate => cache_routes::invalidate(&shared, req.uri.query(), body).await,
        Route::Tags => Ok(listing::tags(&shared).await),
        Route::Ps => Ok(listing::ps(&shared).await),
        Route::PsDetails => Ok(listing::ps_details(&shared).await),
        Route::Version => listing::version(&shared).await,
        Route::OaiModels => Ok(listing::v1_models(&shared).await),
        Route::OaiModel(id) => listing::v1_model(&shared, id).await,
        Route::NotFound(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no route for {}", req.uri.path()),
        )),
        Route::MethodNotAllowed(allowed, _) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here; use {allowed}", req.method),
        )),
        Route::Show | Route::Manage(_) | Route::Blob(_) => {
            let body = body?;
            let headers = req.headers.to_map();
            match route {
                Route::Show => show::show(&shared, &headers, body).await,
                Route::Manage(m) => manage::manage(&shared, *m, &headers, body).await,
                Route::Blob(digest) => {
                    manage::blob(&shared, &req.method, digest, &headers, body).await
                }
                _ => unreachable!("outer match limits the routes"),
            }
        }
        Route::Inference(_) => unreachable!("run proxies inference"),
    }
}

pub fn allowed_origin(shared: &Shared, origin: &HeaderValue) -> Option<HeaderValue> {
    let origins = &shared.config.cors_origins;
    if origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    let o = origin.to_str().ok()?;
    origins.iter().any(|a| a == o).then(|| origin.clone())
}

/// CORS preflight for browser clients (SPEC §5.2).
pub fn preflight(shared: &Shared, origin: Option<&HeaderValue>) -> Response<RouterBody> {
    let mut resp = Response::new(RouterBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    if origin.and_then(|o| allowed_origin(shared, o)).is_some() {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, HEAD, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type, X-Request-Id"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    resp
}
