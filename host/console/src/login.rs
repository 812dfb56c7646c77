//! Logging in with an API token (which starts a server-side session) and out.

use super::layout::{self, Live};
use super::session::Session;
use super::web::{ConsoleRequest, Response, redirect};
use super::{SESSION_COOKIE, error_page, respond, same_origin, session_id};
use crate::host::ConsoleHost;
use http::StatusCode;
use http::header::{self, HeaderValue};
use leviathan_domain::tokens::token_digest;
use maud::html;
use serde::Deserialize;

/// Where to go after logging in: only a console path of this host.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with("/console/login")
                && n.len() <= 2000
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/console".into(),
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(next: &str, message: Option<&str>) -> Response {
    let body = html! {
        h1 { "Log in" }
        p.muted { "Use an API token from the tokens file. The console keeps a session; the token is not stored in the browser." }
        @if let Some(m) = message {
            p.notice.error role="alert" { (m) }
        }
        form.stack method="post" action="/console/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            div { button type="submit" { "Log in" } }
        }
    };
    respond(layout::page("Log in", None, Live::Off, 0, body))
}

/// `GET /console/login`
pub fn form(state: &dyn ConsoleHost, req: &ConsoleRequest) -> Response {
    let Some(q) = req.query::<NextQuery>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            None,
            "The query could not be read.",
        );
    };
    let next = safe_next(q.next.as_deref());
    if session_id(&req.headers).is_some_and(|id| state.console().sessions.get(&id).is_some()) {
        return redirect(&next);
    }
    login_page(&next, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /console/login`
pub fn submit(state: &dyn ConsoleHost, req: &ConsoleRequest) -> Response {
    if !same_origin(&req.headers) {
        return error_page(
            StatusCode::FORBIDDEN,
            None,
            "Refused: the login did not come from the console's own page.",
        );
    }
    let Some(form) = req.form::<LoginForm>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            None,
            "The login form needs a `token` field.",
        );
    };
    let next = safe_next(form.next.as_deref());
    let address = req
        .peer
        .map(|p| p.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let limiter = &state.console().logins;
    if !limiter.allows(address) {
        let mut r = login_page(
            &next,
            Some("Too many failed logins. Wait a minute and try again."),
        );
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return r;
    }
    let token = form.token.trim();
    let Some(principal) = state.tokens().check(token) else {
        limiter.failed(address);
        tracing::warn!(%address, "console login refused");
        let mut r = login_page(&next, Some("That token is not valid."));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    tracing::info!(caller = %principal.name, "console login");
    let id = state
        .console()
        .sessions
        .create(principal, token_digest(token));
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict");
    let mut response = redirect(&next);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`
pub fn logout(state: &dyn ConsoleHost, session: &Session, req: &ConsoleRequest) -> Response {
    let Some(form) = req.form::<LogoutForm>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(session),
            "The form could not be read.",
        );
    };
    if let Err(refused) = super::check_form(session, &req.headers, &form.csrf) {
        return refused.page(Some(session));
    }
    if let Some(id) = session_id(&req.headers) {
        state.console().sessions.end(&id);
    }
    let mut response = redirect("/console/login");
    let clear = format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/console/prs?state=open")),
            "/console/prs?state=open"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console",
            "/console//evil",
            "/console\\evil",
            "/api/v1/graph",
            "/consolex",
            "/console/login?next=/x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }
}
