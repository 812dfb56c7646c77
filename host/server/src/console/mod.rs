//! The operator console (issue #13): server-rendered pages under `/console` on the
//! API's port, a cookie session made from an API token, CSRF-checked forms, and one
//! small script that follows the event stream. Every value goes through maud's
//! escaping; the script never builds HTML from strings.

mod actions;
mod assets;
mod attempt;
mod layout;
mod lists;
mod login;
mod overview;
pub mod session;
mod target;

use crate::AppState;
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use session::{LoginLimiter, Session, SessionLimits, Sessions};
use std::sync::Arc;

/// The session cookie: `__Host-` (Secure, path `/`, no domain), HttpOnly, Strict.
pub const SESSION_COOKIE: &str = "__Host-leviathan-session";

/// The Content-Security-Policy of every console response: only the console's own
/// script and style, no inline code, no eval, no framing, Trusted Types required
/// and no policy allowed (the script uses no HTML sinks at all).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// What the console keeps: its sessions and the failed-login limit.
pub struct ConsoleState {
    pub sessions: Sessions,
    pub logins: LoginLimiter,
}

impl ConsoleState {
    pub fn new(limits: SessionLimits) -> ConsoleState {
        ConsoleState {
            sessions: Sessions::new(limits),
            logins: LoginLimiter::default(),
        }
    }
}

/// The console's routes (merged into the API's router).
pub fn router() -> Router<Arc<AppState>> {
    let pages = Router::new()
        .route("/console", get(overview::overview))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", axum::routing::post(login::logout))
        .route("/console/targets/{id}", get(target::target))
        .route(
            "/console/targets/{id}/attempts/{attempt}",
            get(attempt::attempt),
        )
        .route(
            "/console/targets/{id}/attempts/{attempt}/diff",
            get(attempt::download),
        )
        .route("/console/prs", get(lists::prs))
        .route("/console/events", get(lists::events))
        .route("/console/plugins", get(lists::plugins))
        .route(
            "/console/actions/{action}",
            get(actions::confirm).post(actions::perform),
        )
        .route("/console/stream", get(stream))
        .route("/console/assets/{file}", get(assets::asset))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security_headers));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .merge(pages)
}

async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        None,
        "There is no such console page.",
    )
}

/// Adds the console's security headers to every response under `/console`.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_console = req.uri().path().starts_with("/console");
    let mut response = next.run(req).await;
    if is_console {
        let h = response.headers_mut();
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// The session id in the request's cookie, if any.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A request from a logged-in caller. Without a live session a page request is
/// sent to the login page (and back afterwards); anything else is refused.
pub struct Authed(pub Session);

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Authed, Response> {
        if let Some(session) =
            session_id(&parts.headers).and_then(|id| state.console.sessions.get(&id))
        {
            return Ok(Authed(session));
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/console");
            let to = format!("/console/login?next={}", layout::encode(next));
            return Err(Redirect::to(&to).into_response());
        }
        Err(error_page(
            StatusCode::FORBIDDEN,
            None,
            "You are not logged in (or your session ended).",
        ))
    }
}

/// Whether a state-changing request comes from the console's own pages: the
/// browser says `Sec-Fetch-Site: same-origin`, or, from a browser that does not
/// send it, `Origin` names this host. A request with neither is refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// A refused console request: its status and what its error page says.
pub struct Refused {
    pub status: StatusCode,
    pub message: &'static str,
}

impl Refused {
    /// The error page for `session`.
    pub fn page(self, session: Option<&Session>) -> Response {
        error_page(self.status, session, self.message)
    }
}

/// Checks a cookie-authenticated form post: same origin and the session's CSRF
/// token (compared in constant time).
pub fn check_form(session: &Session, headers: &HeaderMap, csrf: &str) -> Result<(), Refused> {
    use subtle::ConstantTimeEq;
    if !same_origin(headers) {
        return Err(Refused {
            status: StatusCode::FORBIDDEN,
            message: "Refused: the request did not come from the console's own page.",
        });
    }
    if !bool::from(session.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
        return Err(Refused {
            status: StatusCode::FORBIDDEN,
            message: "Refused: the form's security token is missing or stale. Reload the page and try again.",
        });
    }
    Ok(())
}

/// A rendered page as a response.
pub fn respond(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// An error page with `status` and a plain message.
pub fn error_page(status: StatusCode, session: Option<&Session>, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (title) }
        p.notice { (message) }
        p { a href="/console" { "Back to the overview" } }
    };
    let mut response = respond(layout::page(title, session, layout::Live::Off, 0, body));
    *response.status_mut() = status;
    response
}

/// `GET /console/stream`: the API's event stream for a logged-in caller
/// (`Last-Event-ID` resumes it after a drop).
async fn stream(
    _caller: Authed,
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    headers: HeaderMap,
    q: Result<
        axum::extract::Query<crate::routes_events::StreamQuery>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Response {
    match crate::routes_events::open_stream(state, headers, q, false) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A query parameter kept only when it is short and printable (filters).
pub fn filter_value(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 200 && !v.chars().any(char::is_control))
}
