//! The list views: pull requests, the event tail (paged, filtered, "N new events"
//! instead of rows moving under the pointer) and the plugin registry.

use super::layout::{self, Live, Tone, badge, encode, time};
use super::session::Session;
use super::web::{ConsoleRequest, Response};
use super::{error_page, filter_value, respond};
use crate::host::ConsoleHost;
use http::StatusCode;
use leviathan_events::Page;
use leviathan_events::projection::{PrState, PrView};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

/// A PR state as a badge.
fn pr_badge(state: PrState) -> Markup {
    match state {
        PrState::Open => badge(Tone::Warn, "open"),
        PrState::Merged => badge(Tone::Good, "merged"),
        PrState::Closed => badge(Tone::Neutral, "closed"),
    }
}

/// A table of `target`'s PRs, with merge and close for an operator on open ones.
pub fn pr_table<'a>(target: &str, prs: impl Iterator<Item = (&'a String, &'a PrView)>) -> Markup {
    pr_rows(None, prs.map(|(task, pr)| (target, task.as_str(), pr)))
}

fn pr_rows<'a>(
    session: Option<&Session>,
    prs: impl Iterator<Item = (&'a str, &'a str, &'a PrView)>,
) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "Target" } th scope="col" { "PR" } th scope="col" { "Task" }
                th scope="col" { "State" } th scope="col" { "Branch" } th scope="col" { "Attempt" }
                th scope="col" { "Forge" }
                @if session.is_some_and(layout::can_act) { th scope="col" { "Actions" } }
            } }
            tbody {
                @for (target, task, pr) in prs {
                    tr {
                        td { a href=(format!("/console/targets/{}", encode(target))) { (target) } }
                        td { (pr.pr) }
                        td { code { (task) } }
                        td { (pr_badge(pr.state)) }
                        td { code { (pr.branch.as_deref().unwrap_or("")) } }
                        td {
                            @if let Some(a) = &pr.attempt {
                                a href=(format!("/console/targets/{}/attempts/{}", encode(target), encode(a))) { (a) }
                            }
                        }
                        td {
                            @match &pr.url {
                                Some(url) => (layout::external_link(url, "open")),
                                None => span.muted { "local" },
                            }
                        }
                        @if let Some(s) = session.filter(|s| layout::can_act(s)) {
                            td {
                                @if pr.state == PrState::Open && pr.url.is_none() {
                                    @let q = format!("target={}&pr={}", encode(target), encode(&pr.pr));
                                    (layout::action_link(s, "merge", &q, "Merge"))
                                    " "
                                    (layout::action_link(s, "close", &q, "Close"))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Most rows of the pull-request list.
const MAX_PR_ROWS: usize = 200;

#[derive(Deserialize)]
pub struct PrQuery {
    state: Option<String>,
    target: Option<String>,
}

/// `GET /console/prs?state=&target=`
pub fn prs(state: &dyn ConsoleHost, session: Session, req: &ConsoleRequest) -> Response {
    let Some(q) = req.query::<PrQuery>() else {
        return error_page(StatusCode::BAD_REQUEST, Some(&session), "Unknown filter.");
    };
    let wanted = match filter_value(q.state).as_deref() {
        None | Some("all") => None,
        Some("open") => Some(PrState::Open),
        Some("merged") => Some(PrState::Merged),
        Some("closed") => Some(PrState::Closed),
        Some(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                Some(&session),
                "`state` is one of all, open, merged, closed.",
            );
        }
    };
    let target = filter_value(q.target);
    let last_seq = state.log().last_seq();
    let Ok(table) = state.log().with_projection(|p| {
        let rows = p
            .targets
            .iter()
            .filter(|(id, _)| target.as_ref().is_none_or(|t| t == *id))
            .flat_map(|(id, t)| {
                t.tasks.iter().flat_map(move |(task, v)| {
                    v.prs.iter().map(move |pr| (id.as_str(), task.as_str(), pr))
                })
            })
            .filter(|(_, _, pr)| wanted.is_none_or(|w| pr.state == w));
        let mut rows: Vec<_> = rows.collect();
        let total = rows.len();
        rows.truncate(MAX_PR_ROWS);
        (total, pr_rows(Some(&session), rows.into_iter()))
    }) else {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&session),
            "The event log could not be read.",
        );
    };
    let (total, table) = table;
    let selected = |s: &str| match wanted {
        None => s == "all",
        Some(PrState::Open) => s == "open",
        Some(PrState::Merged) => s == "merged",
        Some(PrState::Closed) => s == "closed",
    };
    let body = html! {
        h1 { "Pull requests" }
        form.filters method="get" action="/console/prs" {
            label { "State"
                select name="state" {
                    @for s in ["all", "open", "merged", "closed"] {
                        option value=(s) selected[selected(s)] { (s) }
                    }
                }
            }
            label { "Target" input type="text" name="target" value=(target.as_deref().unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        @if total == 0 { p.muted { "No pull requests match." } } @else {
            p.muted { (total) " pull requests" @if total > MAX_PR_ROWS { ", the first " (MAX_PR_ROWS) " shown: filter by target or state for the rest" } }
            (table)
        }
    };
    respond(layout::page(
        "Pull requests",
        Some(&session),
        Live::Render,
        last_seq,
        body,
    ))
}

#[derive(Deserialize)]
pub struct EventQuery {
    target: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    before: Option<u64>,
}

/// Events shown per page, and most events read to fill one when filtering by type.
const EVENTS_PER_PAGE: usize = 50;
const TYPE_SCAN: usize = 5000;

/// A payload in one bounded line.
fn summary(payload: &Value) -> String {
    if payload.is_null() {
        return String::new();
    }
    let mut s = payload.to_string();
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// `GET /console/events?target=&type=&before=`
pub fn events(state: &dyn ConsoleHost, session: Session, req: &ConsoleRequest) -> Response {
    let Some(q) = req.query::<EventQuery>() else {
        return error_page(StatusCode::BAD_REQUEST, Some(&session), "Unknown filter.");
    };
    let target = filter_value(q.target);
    let kind = filter_value(q.kind);
    let now = leviathan_domain::clock::now_ms();
    let last_seq = state.log().last_seq();
    // Newest first, from `before` down; a type filter reads on (up to a bound)
    // until a page is full. `cursor` ends at the oldest event looked at.
    let mut cursor = q.before.unwrap_or(u64::MAX);
    let mut shown = Vec::new();
    let mut scanned = 0usize;
    let more = 'scan: loop {
        let page = Page {
            count: EVENTS_PER_PAGE,
            bytes: 1 << 20,
        };
        let Ok(paged) = state.log().newest_page(target.as_deref(), cursor, page) else {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&session),
                "The event log could not be read.",
            );
        };
        scanned += paged.events.len();
        for e in paged.events {
            cursor = e.seq;
            if kind.as_ref().is_none_or(|k| e.kind.starts_with(k.as_str())) {
                shown.push(e);
                if shown.len() == EVENTS_PER_PAGE {
                    break 'scan true;
                }
            }
        }
        if !paged.more {
            break false;
        }
        if scanned >= TYPE_SCAN {
            break true;
        }
    };
    let before = cursor;
    let mut older = format!("/console/events?before={before}");
    if let Some(t) = &target {
        older.push_str(&format!("&target={}", encode(t)));
    }
    if let Some(k) = &kind {
        older.push_str(&format!("&type={}", encode(k)));
    }
    let body = html! {
        h1 { "Events" }
        form.filters method="get" action="/console/events" {
            label { "Target" input type="text" name="target" value=(target.as_deref().unwrap_or("")); }
            label { "Type (prefix)" input type="text" name="type" value=(kind.as_deref().unwrap_or("")) placeholder="attempt."; }
            button type="submit" { "Filter" }
            a href="/console/events" { "Newest, unfiltered" }
        }
        @if shown.is_empty() { p.muted { "No events match." } } @else {
            table {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Type" }
                    th scope="col" { "Target" } th scope="col" { "Task" } th scope="col" { "Attempt" }
                    th scope="col" { "By" } th scope="col" { "Payload" }
                } }
                tbody {
                    @for e in &shown {
                        tr {
                            td { (e.seq) }
                            td { (time(e.ts_ms, now)) }
                            td { code { (e.kind) } }
                            td { @if let Some(t) = &e.target { a href=(format!("/console/targets/{}", encode(t))) { (t) } } }
                            td { (e.task.as_deref().unwrap_or("")) }
                            td {
                                @if let (Some(t), Some(a)) = (&e.target, &e.attempt) {
                                    a href=(format!("/console/targets/{}/attempts/{}", encode(t), encode(a))) { (a) }
                                }
                            }
                            td {
                                (e.origin.map(|o| o.as_str()).unwrap_or("host"))
                                @if let Some(actor) = &e.actor { " · " (actor) }
                            }
                            td { code { (summary(&e.payload)) } }
                        }
                    }
                }
            }
        }
        @if more && before > 1 { p { a href=(older) { "Older events" } } }
    };
    respond(layout::page(
        "Events",
        Some(&session),
        Live::Count,
        last_seq,
        body,
    ))
}

/// `GET /console/plugins`
pub fn plugins(state: &dyn ConsoleHost, session: Session) -> Response {
    let last_seq = state.log().last_seq();
    let set = state.plugins();
    let summary = set.as_deref().map(|set| state.plugin_summary(set));
    let list = |key: &str| -> Vec<Value> {
        summary
            .as_ref()
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let field = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let body = html! {
        h1 { "Plugins" }
        @if summary.is_none() { (layout::notice("The plugin registry is still loading.")) } @else {
            h2 { "Loaded" }
            @let loaded = list("loaded");
            @if loaded.is_empty() { p.muted { "No plugin is loaded." } } @else {
                table {
                    thead { tr {
                        th scope="col" { "Plugin" } th scope="col" { "Scopes" } th scope="col" { "Signed" }
                        th scope="col" { "World" } th scope="col" { "SHA-256" }
                    } }
                    tbody {
                        @for p in &loaded {
                            tr {
                                td { code { (field(p, "plugin")) } }
                                td { (field(p, "scopes")) }
                                td {
                                    @let signed = field(p, "signed");
                                    @match signed.as_str() { "trusted" => (badge(Tone::Good, "signed, trusted key")), "untrusted" => (badge(Tone::Warn, "signed, untrusted key")), _ => (badge(Tone::Neutral, "unsigned")), }
                                }
                                td { code { (field(p, "world")) } }
                                td { code { (field(p, "sha256")) } }
                            }
                        }
                    }
                }
            }
            h2 { "Rejected" }
            @let rejected = list("rejected");
            @if rejected.is_empty() { p.muted { "No entry is rejected." } } @else {
                table {
                    thead { tr { th scope="col" { "Entry" } th scope="col" { "Reason" } } }
                    tbody {
                        @for r in &rejected {
                            tr { td { code { (field(r, "entry")) } } td { (badge(Tone::Bad, "rejected")) " " (field(r, "reason")) } }
                        }
                    }
                }
            }
        }
    };
    respond(layout::page(
        "Plugins",
        Some(&session),
        Live::Render,
        last_seq,
        body,
    ))
}
