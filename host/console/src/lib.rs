//! The operator console (issue #13): server-rendered pages under `/console` on the
//! API's port, a cookie session made from an API token, CSRF-checked forms, and one
//! small script that follows the event stream. Every value goes through maud's
//! escaping; the script never builds HTML from strings.
//!
//! The console sits below the server: it asks the server what it needs through
//! [`ConsoleHost`], and the server mounts [`router`] beside the API.

mod actions;
mod assets;
pub mod attempt;
pub mod host;
mod layout;
mod lists;
mod login;
pub mod overview;
pub mod session;
pub mod target;
pub mod web;

pub use host::{
    ActionRequest, BoxFuture, ConsoleHost, ExplainWaits, Host, PeerAddr, Refusal, TaskWait, Waits,
};
pub use web::{ConsoleRequest, Response};
use web::{empty, redirect, with_body};

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use maud::{Markup, html};
use session::{LoginLimiter, Session, SessionLimits, Sessions};

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
    /// Each target's parsed base backlog, by base commit.
    pub backlogs: target::BacklogCache,
}

impl ConsoleState {
    pub fn new(limits: SessionLimits) -> ConsoleState {
        ConsoleState {
            sessions: Sessions::new(limits),
            logins: LoginLimiter::default(),
            backlogs: target::BacklogCache::default(),
        }
    }
}

/// The paths the console answers, as route templates: the server sends each to
/// [`handle`]. The event stream `/console/stream` is the server's own, behind
/// [`authenticate`] and [`secure`].
pub const PATHS: &[&str] = &[
    "/",
    "/console",
    "/console/",
    "/console/login",
    "/console/logout",
    "/console/targets/{id}",
    "/console/targets/{id}/attempts/{attempt}",
    "/console/targets/{id}/attempts/{attempt}/diff",
    "/console/prs",
    "/console/events",
    "/console/plugins",
    "/console/actions/{action}",
    "/console/assets/{file}",
];

/// Answers one console request; every response under `/console` carries the
/// console's security headers.
pub async fn handle(host: Host, req: ConsoleRequest) -> Response {
    let is_console = req.uri.path().starts_with("/console");
    let mut response = route(host, req).await;
    if is_console {
        secure(response.headers_mut());
    }
    response
}

/// Which handler a request goes to, by method and path.
async fn route(host: Host, req: ConsoleRequest) -> Response {
    let Some(segments) = req.segments() else {
        return not_found();
    };
    let path: Vec<&str> = segments.iter().map(String::as_str).collect();
    let read = req.method == Method::GET || req.method == Method::HEAD;
    let write = req.method == Method::POST;
    match path.as_slice() {
        [""] | ["console", ""] if read => redirect("/console"),
        ["console", "login"] if read => login::form(&*host, &req),
        ["console", "login"] if write => login::submit(&*host, &req),
        ["console", "assets", file] if read => assets::asset(file),
        [""] | ["console", ""] | ["console", "assets", _] => method_not_allowed("GET,HEAD"),
        ["console", "login"] => method_not_allowed("GET,HEAD,POST"),
        _ => {
            let session = match authenticate(&*host, &req.method, &req.uri, &req.headers) {
                Ok(session) => session,
                Err(refused) => return *refused,
            };
            signed_in(host, session, &path, req, read, write).await
        }
    }
}

/// The pages and actions of a logged-in caller.
async fn signed_in(
    host: Host,
    session: Session,
    path: &[&str],
    req: ConsoleRequest,
    read: bool,
    write: bool,
) -> Response {
    match path {
        ["console"] if read => match req.query::<overview::OverviewQuery>() {
            Some(q) => overview::render(&*host, &session, q.page.unwrap_or(1)),
            None => error_page(
                StatusCode::BAD_REQUEST,
                Some(&session),
                "`page` is a page number.",
            ),
        },
        ["console", "logout"] if write => login::logout(&*host, &session, &req),
        ["console", "targets", id] if read => target::target(host, session, id.to_string()).await,
        ["console", "targets", id, "attempts", attempt] if read => {
            attempt::attempt(host, session, id.to_string(), attempt.to_string()).await
        }
        ["console", "targets", id, "attempts", attempt, "diff"] if read => {
            attempt::download(host, session, id.to_string(), attempt.to_string()).await
        }
        ["console", "prs"] if read => lists::prs(&*host, session, &req),
        ["console", "events"] if read => lists::events(&*host, session, &req),
        ["console", "plugins"] if read => lists::plugins(&*host, session),
        ["console", "actions", name] if read => actions::confirm(session, name, &req),
        ["console", "actions", name] if write => actions::perform(host, session, name, &req).await,
        ["console", "logout"] => method_not_allowed("POST"),
        ["console", "actions", _] => method_not_allowed("GET,HEAD,POST"),
        ["console"]
        | ["console", "targets", _]
        | ["console", "targets", _, "attempts", _]
        | ["console", "targets", _, "attempts", _, "diff"]
        | ["console", "prs" | "events" | "plugins"] => method_not_allowed("GET,HEAD"),
        _ => not_found(),
    }
}

fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        None,
        "There is no such console page.",
    )
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Adds the console's security headers (and `no-store` unless the response set its
/// own caching).
pub fn secure(h: &mut HeaderMap) {
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

/// The session of a logged-in caller. Without a live session a page request is
/// sent to the login page (and back afterwards); anything else is refused.
pub fn authenticate(
    host: &dyn ConsoleHost,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<Session, Box<Response>> {
    if let Some(session) = session_id(headers).and_then(|id| host.console().sessions.get(&id)) {
        return Ok(session);
    }
    if method == Method::GET || method == Method::HEAD {
        let next = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/console");
        let to = format!("/console/login?next={}", layout::encode(next));
        return Err(Box::new(redirect(&to)));
    }
    Err(Box::new(error_page(
        StatusCode::FORBIDDEN,
        None,
        "You are not logged in (or your session ended).",
    )))
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
    with_body(
        StatusCode::OK,
        "text/html; charset=utf-8",
        markup.into_string(),
    )
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

/// A query parameter kept only when it is short and printable (filters).
pub fn filter_value(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 200 && !v.chars().any(char::is_control))
}
