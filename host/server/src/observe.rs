//! Cross-cutting request handling: request ids, access logs and request metrics,
//! the bearer-token check, and the unauthenticated health, readiness and metrics
//! endpoints.

use super::auth::Role;
use super::metrics::RequestLabels;
use super::{ApiError, AppState};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::Instrument;

/// The header carrying the request id, accepted from clients and always returned.
pub const REQUEST_ID: &str = "x-request-id";

/// A new request id: process-unique, sortable by arrival.
fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = START.get_or_init(leviathan_domain::clock::now_ms);
    format!("{start:x}-{:06x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A client's request id, if it is short and printable.
fn client_request_id(req: &Request) -> Option<String> {
    let value = req.headers().get(REQUEST_ID)?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| value.to_string())
}

/// Gives the request an id, logs it in a span and counts it by route and status.
pub async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = client_request_id(&req).unwrap_or_else(new_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let took = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(status, elapsed_us = took.as_micros() as u64, "request");
    });
    state.metrics.observe_request(
        RequestLabels {
            route,
            method: method.to_string(),
            status,
        },
        took,
    );
    response
}

/// The role a request needs: reads are for viewers, everything else for operators.
fn required_role(method: &Method) -> Role {
    if method == Method::GET || method == Method::HEAD {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// Checks the bearer token and the role; the caller is added to the request.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
    let principal = state
        .tokens()
        .check(presented)
        .ok_or_else(|| ApiError::unauthorized("the token is not valid"))?;
    let needed = required_role(req.method());
    if principal.role < needed {
        return Err(ApiError::forbidden(format!(
            "`{}` has role {}; this request needs {}",
            principal.name,
            principal.role.as_str(),
            needed.as_str()
        )));
    }
    tracing::debug!(caller = %principal.name, "authorized");
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// The loaded plugins and the rejected entries of a set.
pub(crate) fn plugin_summary(
    set: &leviathan_sandbox::plugins::set::PluginSet,
) -> serde_json::Value {
    let loaded: Vec<_> = set
        .loaded
        .values()
        .map(|p| {
            let m = &p.entry.manifest;
            serde_json::json!({
                "plugin": p.entry.id(), "name": m.name, "version": m.version.to_string(),
                "scopes": m.scopes, "world": m.world, "sha256": m.sha256,
                "signed": format!("{:?}", p.signature).to_lowercase(),
                "cache": format!("{:?}", p.component.cache).to_lowercase(),
            })
        })
        .collect();
    let rejected: Vec<_> = set
        .states()
        .into_iter()
        .filter_map(|(entry, state)| match state {
            leviathan_sandbox::plugins::set::EntryState::Rejected { reason } => {
                Some(serde_json::json!({"entry": entry, "reason": reason}))
            }
            _ => None,
        })
        .collect();
    serde_json::json!({"loaded": loaded, "rejected": rejected})
}

/// `GET /api/v1/plugins`: the plugin set in force.
pub async fn plugins(State(state): State<Arc<AppState>>) -> Response {
    match state.plugins.current() {
        Some(set) => axum::Json(plugin_summary(&set)).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {"code": "starting", "message": "plugins are still loading"}})),
        )
            .into_response(),
    }
}

/// `GET /readyz`: the store is open and the plugins have loaded. It answers without a
/// token, so it gives counts only; the entries and rejection reasons are at
/// `/api/v1/plugins`.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store = serde_json::json!({"open": true, "last_seq": state.log.last_seq()});
    match state.plugins.current() {
        Some(set) => axum::Json(serde_json::json!({
            "status": "ready", "store": store,
            "plugins": {"loaded": set.loaded.len(), "rejected": set.registry.rejected.len()},
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "starting", "store": store, "plugins": "loading",
            })),
        )
            .into_response(),
    }
}

/// `GET /metrics`: OpenMetrics text when the scraper accepts it (Prometheus does),
/// the Prometheus text format otherwise.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let text = state
        .log
        .with_projection(|p| state.metrics.render(p, &super::metrics::Scrape::of(&state)))?
        .map_err(ApiError::internal)?;
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if wants_openmetrics {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            super::metrics::to_prometheus_text(&text),
        )
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// Any other path: a JSON 404.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// 405 in the API's error shape (the `Allow` header, which the router adds, lists the
/// methods the path takes).
pub async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not a method of {}; the Allow header lists those it takes",
            req.method(),
            req.uri().path()
        ),
    )
}
