//! Operator actions: pause and resume (host or target), reset a breaker, merge or
//! close a local-forge PR. Each has a confirm step that asks for a reason, posts
//! with the session's CSRF token, and is recorded in the log with the actor.

use super::layout::{self, Live, encode};
use super::session::Session;
use super::web::{ConsoleRequest, Response, redirect};
use super::{Refused, check_form, error_page, filter_value, respond};
use crate::host::{ActionRequest, Host};
use http::StatusCode;
use maud::html;
use serde::Deserialize;

/// Longest reason accepted, in characters.
const MAX_REASON: usize = 500;

/// The actions the console offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pause,
    Resume,
    ResetBreaker,
    Merge,
    Close,
}

impl Action {
    fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            "reset-breaker" => Action::ResetBreaker,
            "merge" => Action::Merge,
            "close" => Action::Close,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::ResetBreaker => "reset-breaker",
            Action::Merge => "merge",
            Action::Close => "close",
        }
    }

    /// What the action does, in words, for the confirm page.
    fn describe(self, target: Option<&str>, pr: Option<&str>) -> String {
        let scope = target.map_or("the whole host".to_string(), |t| format!("target `{t}`"));
        let pr = pr.unwrap_or("?");
        let t = target.unwrap_or("?");
        match self {
            Action::Pause => {
                format!("Pause autonomy for {scope}: no new attempts start until it is resumed.")
            }
            Action::Resume => format!("Resume autonomy for {scope}."),
            Action::ResetBreaker => {
                format!("Close the circuit breaker of target `{t}` and clear its failure count.")
            }
            Action::Merge => format!("Merge PR {pr} of target `{t}` into its base branch."),
            Action::Close => format!("Close PR {pr} of target `{t}` and delete its branch."),
        }
    }

    fn needs(self) -> (bool, bool) {
        match self {
            Action::Pause | Action::Resume => (false, false),
            Action::ResetBreaker => (true, false),
            Action::Merge | Action::Close => (true, true),
        }
    }
}

#[derive(Deserialize)]
pub struct ActionQuery {
    target: Option<String>,
    pr: Option<String>,
}

fn refuse_viewer(session: &Session) -> Option<Response> {
    (!layout::can_act(session)).then(|| {
        error_page(
            StatusCode::FORBIDDEN,
            Some(session),
            "Only an operator may do this; your token has the viewer role.",
        )
    })
}

/// The action and its references, checked.
fn resolve(
    name: &str,
    target: Option<String>,
    pr: Option<String>,
) -> Result<(Action, Option<String>, Option<String>), Refused> {
    let Some(action) = Action::parse(name) else {
        return Err(Refused {
            status: StatusCode::NOT_FOUND,
            message: "There is no such action.",
        });
    };
    let (target, pr) = (filter_value(target), filter_value(pr));
    let (needs_target, needs_pr) = action.needs();
    if (needs_target && target.is_none()) || (needs_pr && pr.is_none()) {
        return Err(Refused {
            status: StatusCode::BAD_REQUEST,
            message: "This action needs a target (and a PR for merge and close).",
        });
    }
    Ok((action, target, pr))
}

/// `GET /console/actions/{action}?target=&pr=`: the confirm step.
pub fn confirm(session: Session, name: &str, req: &ConsoleRequest) -> Response {
    if let Some(refused) = refuse_viewer(&session) {
        return refused;
    }
    let Some(q) = req.query::<ActionQuery>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "The query could not be read.",
        );
    };
    let (action, target, pr) = match resolve(name, q.target, q.pr) {
        Ok(resolved) => resolved,
        Err(refused) => return refused.page(Some(&session)),
    };
    let back = target.as_deref().map_or("/console".to_string(), |t| {
        format!("/console/targets/{}", encode(t))
    });
    let body = html! {
        h1 { "Confirm: " (action.name()) }
        p { (action.describe(target.as_deref(), pr.as_deref())) }
        form.stack method="post" action=(format!("/console/actions/{}", action.name())) {
            input type="hidden" name="csrf" value=(session.csrf);
            @if let Some(t) = &target { input type="hidden" name="target" value=(t); }
            @if let Some(p) = &pr { input type="hidden" name="pr" value=(p); }
            label for="reason" { "Reason (recorded in the event log with your name)" }
            textarea #reason name="reason" required maxlength=(MAX_REASON) rows="3" {}
            div {
                button.danger #confirm type="submit" { "Confirm " (action.name()) }
                " "
                a href=(back) { "Cancel" }
            }
        }
    };
    respond(layout::page("Confirm", Some(&session), Live::Off, 0, body))
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    target: Option<String>,
    pr: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /console/actions/{action}`: performs a confirmed action.
pub async fn perform(state: Host, session: Session, name: &str, req: &ConsoleRequest) -> Response {
    if let Some(refused) = refuse_viewer(&session) {
        return refused;
    }
    let Some(form) = req.form::<ActionForm>() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "The form could not be read.",
        );
    };
    if let Err(refused) = check_form(&session, &req.headers, &form.csrf) {
        return refused.page(Some(&session));
    }
    let (action, target, pr) = match resolve(name, form.target, form.pr) {
        Ok(resolved) => resolved,
        Err(refused) => return refused.page(Some(&session)),
    };
    let reason = form.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            &format!("A reason of 1 to {MAX_REASON} characters is required."),
        );
    }
    let caller = session.principal.clone();
    let request = match action {
        Action::Pause | Action::Resume => ActionRequest::Pause {
            target: target.clone(),
            paused: action == Action::Pause,
            reason,
        },
        Action::ResetBreaker => ActionRequest::ResetBreaker {
            target: target.clone().unwrap_or_default(),
            reason,
        },
        Action::Merge | Action::Close => ActionRequest::Settle {
            target: target.clone().unwrap_or_default(),
            pr: pr.unwrap_or_default(),
            merge: action == Action::Merge,
            reason,
        },
    };
    let done = state.act(caller, request).await;
    match done {
        Ok(()) => {
            let to = target.as_deref().map_or("/console".to_string(), |t| {
                format!("/console/targets/{}", encode(t))
            });
            redirect(&to)
        }
        Err(e) => error_page(e.status, Some(&session), &e.message),
    }
}
