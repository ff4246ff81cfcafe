//! One request's life, top to bottom: id → CORS → route → auth → body → dispatch → log.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use crate::api::errors::ApiError;
use crate::api::routes::{route, Route};
use crate::api::util::{request_id, Ctx, RouterHeaders};
use super::inference;
use crate::api::{listing, manage, own, show};
use crate::http::body::RouterBody;
use crate::http::lazy_timer::LazyTimer;
use crate::http::request_head::RequestHead;
use crate::state::Shared;

/// Serves one request; never fails: every error becomes a response in the client's format. The body
/// was read by the connection, or is the error to answer with once a route needs it (413, 408).
/// `upstream_timer` is the connection's, for the wait on an upstream's answer. The head is borrowed:
/// the connection keeps the one copy, instead of each level of the request's future its own.
/// Returns the answer and the headers the router adds to it (request id, endpoint), which the
/// connection writes itself: a relayed answer needs no header map.
pub async fn handle(
    req: &RequestHead,
    body: Result<Bytes, ApiError>,
    shared: Arc<Shared>,
    upstream_timer: &mut LazyTimer,
) -> (Response<RouterBody>, RouterHeaders) {
    let mut ctx = Ctx {
        request_id: request_id(req.headers.value("x-request-id")),
        started: Instant::now(),
        logs_at_end: false,
        endpoint: None,
        shared,
    };
    let origin = req.headers.value("origin");
    let method = &req.method;
    let route = route(method, req.uri.path());
    let mut resp = if method == Method::OPTIONS {
        preflight(&ctx.shared, origin.as_ref())
    } else {
        match dispatch(&mut ctx, &route, req, body, upstream_timer).await {
            Ok(r) => r,
            Err(e) => e.into_response(route.format()),
        }
    };
    if let Some(allowed) = origin.and_then(|o| allowed_origin(&ctx.shared, &o)) {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    }
    // Relayed responses log when their body ends; the rest log here.
    if !ctx.logs_at_end {
        tracing::info!(
            request_id = ctx.request_id.to_str().unwrap_or(""),
            method = %method,
            route = route.name(),
            status = resp.status().as_u16(),
            latency_ms = format_args!("{:.2}", ctx.started.elapsed().as_secs_f64() * 1000.0),
            "request"
        );
    }
    let added = RouterHeaders {
        request_id: ctx.request_id,
        endpoint: ctx.endpoint,
    };
    (resp, added)
}

/// The answer a request gets before its body is read: the router key is checked on the head alone,
/// so an unauthenticated client cannot make the router read (or ask for, with `100 Continue`) a
/// body of up to `max_body_bytes`. `None` when the request may go on.
pub fn refuse_before_body(req: &RequestHead, shared: &Shared) -> Option<ApiError> {
    let key = shared.config.router_api_key.as_ref()?;
    if req.method == Method::OPTIONS || route(&req.method, req.uri.path()).is_public() {
        return None;
    }
    crate::auth::check(key, &req.headers, req.uri.query()).err()
}

async fn dispatch(
    ctx: &mut Ctx,
    route: &Route,
    req: &RequestHead,
    body: Result<Bytes, ApiError>,
    upstream_timer: &mut LazyTimer,
) -> Result<Response<RouterBody>, ApiError> {
    if let (Some(key), false) = (&ctx.shared.config.router_api_key, route.is_public()) {
        crate::auth::check(key, &req.headers, req.uri.query())?;
    }
    match route {
        Route::Inference(i) => inference::inference(ctx, *i, req, body?, upstream_timer).await,
        // Boxed: these routes are rare next to inference, and their futures (listing fan-outs,
        // pulls) would otherwise enlarge every request's future.
        _ => Box::pin(other_route(ctx.shared.clone(), route, req, body)).await,
    }
}

/// Every route but inference.
async fn other_route(
    shared: Arc<Shared>,
    route: &Route,
    req: &RequestHead,
    body: Result<Bytes, ApiError>,
) -> Result<Response<RouterBody>, ApiError> {
    match route {
        Route::Root => Ok(own::root()),
        Route::Health => Ok(own::health(&shared)),
        Route::Usage => Ok(own::usage(&shared)),
        Route::Config => Ok(own::config(&shared)),
        Route::Tags => Ok(listing::tags(&shared).await),
        Route::Ps => Ok(listing::ps(&shared).await),
        Route::PsDetails => Ok(listing::ps_details(&shared).await),
        Route::Version => listing::version(&shared).await,
        Route::OaiModels => Ok(listing::v1_models(&shared).await),
        Route::OaiModel(id) => listing::v1_model(&shared, id).await,
        Route::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no route for {}", req.uri.path()),
        )),
        Route::MethodNotAllowed(allowed) => Err(ApiError::new(
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
        Route::Inference(_) => unreachable!("dispatch serves inference itself"),
    }
}

fn allowed_origin(shared: &Shared, origin: &HeaderValue) -> Option<HeaderValue> {
    let origins = &shared.config.cors_origins;
    if origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    let o = origin.to_str().ok()?;
    origins.iter().any(|a| a == o).then(|| origin.clone())
}

/// CORS preflight for browser clients (SPEC §5.2).
fn preflight(shared: &Shared, origin: Option<&HeaderValue>) -> Response<RouterBody> {
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
