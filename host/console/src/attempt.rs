//! An attempt: the timeline of its events, what it ran and produced, its failure
//! with the reason, and the diff of its branch (bounded, with a download).

use super::layout::{self, Live, Tone, badge, encode, time};
use super::session::Session;
use super::web::{Response, with_body};
use super::{error_page, respond};
use crate::host::{ConsoleHost, Host};
use http::StatusCode;
use http::header::{self, HeaderValue};
use leviathan_events::Projection;
use leviathan_events::projection::{AttemptOutcome, AttemptView, PrView};
use leviathan_events::{Event, EventLog};
use maud::{Markup, html};
use serde_json::Value;

/// Most bytes of a diff shown on the page.
const PAGE_DIFF: usize = 256 << 10;
/// Most bytes of a diff download.
const DOWNLOAD_DIFF: usize = 16 << 20;
/// Most events of one attempt listed.
const MAX_EVENTS: usize = 500;

/// An attempt's outcome as a badge.
pub fn outcome_badge(a: &AttemptView) -> Markup {
    match a.outcome {
        AttemptOutcome::Running => badge(Tone::Warn, "running"),
        AttemptOutcome::Succeeded => badge(Tone::Good, "succeeded"),
        AttemptOutcome::Failed => badge(
            Tone::Bad,
            &format!(
                "failed: {}",
                a.failure.as_deref().unwrap_or("no kind recorded")
            ),
        ),
    }
}

/// What the console knows of one attempt.
struct Found {
    task: String,
    view: AttemptView,
    pr: Option<PrView>,
    events: Vec<Event>,
}

fn find(state: &dyn ConsoleHost, target: &str, attempt: &str) -> Result<Option<Found>, String> {
    find_in(state.log(), target, attempt)
}

/// [`find`] in `log`: from the projection, or for an attempt older than those its
/// task keeps, from the attempt's own events.
fn find_in(log: &EventLog, target: &str, attempt: &str) -> Result<Option<Found>, String> {
    let events = log
        .by_attempt(attempt, 0, MAX_EVENTS)
        .map_err(|e| e.to_string())?;
    let kept = log
        .with_projection(|p| located(p, target, attempt))
        .map_err(|e| e.to_string())?;
    // An attempt older than those its task keeps: its own events tell the same.
    let found = kept.or_else(|| {
        let mut own = Projection::default();
        for e in &events {
            own.apply_event(e);
        }
        located(&own, target, attempt)
    });
    Ok(found.map(|(task, view, pr)| Found {
        task,
        view,
        pr,
        events,
    }))
}

/// The task, view and PR of `attempt` of `target` in `p`.
fn located(
    p: &Projection,
    target: &str,
    attempt: &str,
) -> Option<(String, AttemptView, Option<PrView>)> {
    let (t, task) = p.attempt_owner(attempt)?;
    if t != target {
        return None;
    }
    let task_view = p.targets.get(t)?.tasks.get(task)?;
    let view = task_view.attempts.iter().find(|a| a.id == attempt)?.clone();
    let pr = task_view
        .prs
        .iter()
        .rev()
        .find(|p| p.attempt.as_deref() == Some(attempt))
        .cloned();
    Some((task.to_string(), view, pr))
}

/// The branch an attempt worked on, from its PR or its `attempt.started`.
fn branch_of(found: &Found) -> Option<String> {
    found
        .pr
        .as_ref()
        .and_then(|p| p.branch.clone())
        .or_else(|| {
            found
                .events
                .iter()
                .find(|e| e.kind == "attempt.started")
                .and_then(|e| e.payload.get("branch")?.as_str().map(String::from))
        })
}

/// The diff of `branch` against the target's base in the host's clone.
fn branch_diff(
    state: &dyn ConsoleHost,
    target: &str,
    branch: &str,
    max: usize,
) -> Result<leviathan_forge::git::Diff, String> {
    let config = state.forge().map(|f| (f, f.config.current()));
    let Some((forge, t)) = config
        .as_ref()
        .and_then(|(f, c)| c.targets.iter().find(|t| t.id == target).map(|t| (f, t)))
    else {
        return Err("the target is not in the configuration".into());
    };
    let clone = forge.work_dir.join(target);
    let head = format!("origin/{branch}");
    if !leviathan_forge::git::has_commit(&clone, &head) {
        return Err(
            "the branch is no longer on the forge (merged or closed), or not fetched yet".into(),
        );
    }
    leviathan_forge::git::diff(&clone, &format!("origin/{}", t.base_branch), &head, max)
        .map_err(|e| format!("git diff failed: {}", e.message))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn facts(found: &Found, now: u64) -> Markup {
    let outcome = found
        .events
        .iter()
        .rev()
        .find(|e| e.kind == "attempt.succeeded" || e.kind == "attempt.failed");
    let payload = outcome.map(|e| &e.payload);
    let field = |k: &str| {
        payload
            .and_then(|p| p.get(k))
            .filter(|v| !v.is_null())
            .map(text)
    };
    let a = &found.view;
    html! {
        dl.facts {
            dt { "Task" } dd { code { (found.task) } }
            dt { "Outcome" } dd { (outcome_badge(a)) }
            dt { "Started" } dd { (time(a.started_ms, now)) }
            dt { "Finished" } dd { @match a.finished_ms { Some(ms) => (time(ms, now)), None => span.muted { "not yet" } } }
            dt { "Executor" } dd { (field("executor").unwrap_or_else(|| "not recorded".into())) }
            dt { "Change digest" } dd { code { (a.digest.clone().or_else(|| field("digest")).unwrap_or_else(|| "none".into())) } }
            dt { "Fuel used" } dd { (field("fuel_used").unwrap_or_else(|| "not recorded".into())) }
            dt { "Time" } dd {
                @match (field("instantiate_us"), field("execute_us")) {
                    (Some(i), Some(x)) => { "instantiate " (i) " µs, execute " (x) " µs" }
                    _ => span.muted { "not recorded" },
                }
            }
            @let record = payload.and_then(|p| p.get("record"));
            @let recorded = |k: &str| record.and_then(|r| r.get(k)).filter(|v| !v.is_null()).map(text);
            dt { "Component" } dd {
                @match recorded("component_sha256") {
                    Some(sha) => code { "sha256:" (sha) },
                    None => span.muted { "not recorded by the host version that ran it" },
                }
            }
            dt { "Base commit" } dd {
                @match recorded("base_commit") {
                    Some(commit) => code { (commit) },
                    None => span.muted { "not recorded" },
                }
            }
            dt { "Memory" } dd {
                @match (field("memory_peak_bytes"), recorded("memory_bytes")) {
                    (Some(peak), Some(cap)) => { (peak) " bytes at most, of " (cap) " allowed" }
                    (Some(peak), None) => { (peak) " bytes at most" }
                    _ => span.muted { "not recorded" },
                }
            }
            @if let Some(fuel) = recorded("fuel") { dt { "Fuel allowed" } dd { (fuel) } }
            dt { "Executor's stderr" } dd {
                @match field("stderr_tail") {
                    Some(tail) => pre { (tail) },
                    None => span.muted { "nothing" },
                }
            }
            @if record.is_some() && a.outcome == AttemptOutcome::Succeeded {
                dt { "Replay" } dd { code { "leviathan-host replay " (a.id) } }
            }
            @if a.outcome == AttemptOutcome::Failed {
                dt { "Error kind" } dd { (badge(Tone::Bad, a.failure.as_deref().unwrap_or("no kind recorded"))) }
                dt { "Reason" } dd.error { (field("message").or_else(|| a.message.clone()).unwrap_or_else(|| "no message recorded".into())) }
            }
            dt { "Pull request" } dd {
                @match &found.pr {
                    Some(pr) => {
                        "PR " (pr.pr) " "
                        @if let Some(url) = &pr.url { (layout::external_link(url, "open on the forge")) }
                    }
                    None => span.muted { "none" },
                }
            }
        }
        (refused(payload))
        @if let Some(files) = payload.and_then(|p| p.get("files")).and_then(Value::as_array) {
            h2 { "Files" }
            table {
                thead { tr { th scope="col" { "Path" } th scope="col" { "Bytes" } th scope="col" { "SHA-256" } } }
                tbody {
                    @for f in files {
                        tr {
                            td { code { (f.get("path").map(text).unwrap_or_default()) } }
                            td { (f.get("bytes").map(text).unwrap_or_default()) }
                            td { code { (f.get("sha256").map(text).unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
    }
}

/// The filesystem calls the sandbox refused during the run (the outcome's `denied`
/// list), or nothing when it refused none.
fn refused(payload: Option<&Value>) -> Markup {
    let rows = payload
        .and_then(|p| p.get("denied"))
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty());
    let cell = |d: &Value, k: &str| d.get(k).map(text).unwrap_or_default();
    html! {
        @if let Some(rows) = rows {
            h2 { "Refused by the sandbox" }
            table {
                thead { tr { th scope="col" { "Call" } th scope="col" { "Path" } th scope="col" { "Rule" } } }
                tbody {
                    @for d in rows {
                        tr {
                            td { (cell(d, "action")) }
                            td { code { (cell(d, "path")) } }
                            td { code { (cell(d, "rule")) } }
                        }
                    }
                }
            }
        }
    }
}

fn timeline(events: &[Event], now: u64) -> Markup {
    html! {
        h2 { "Timeline" }
        ol {
            @for e in events {
                li {
                    (time(e.ts_ms, now)) " " code { (e.kind) } " "
                    span.muted { "#" (e.seq) " by " (e.actor.as_deref().unwrap_or("host")) }
                }
            }
        }
    }
}

fn diff_view(diff: &leviathan_forge::git::Diff) -> Markup {
    html! {
        pre.diff {
            @for line in diff.text.lines() {
                @if line.starts_with('+') && !line.starts_with("+++") { span.add { (line) } "\n" }
                @else if line.starts_with('-') && !line.starts_with("---") { span.del { (line) } "\n" }
                @else { (line) "\n" }
            }
        }
        @if diff.truncated { p.notice { "The diff is longer than the page shows; download it for the whole." } }
    }
}

/// `GET /console/targets/{id}/attempts/{attempt}`
pub async fn attempt(state: Host, session: Session, target: String, attempt: String) -> Response {
    tokio::task::spawn_blocking(move || {
        let now = leviathan_domain::clock::now_ms();
        let last_seq = state.log().last_seq();
        let found = match find(&*state, &target, &attempt) {
            Ok(Some(f)) => f,
            Ok(None) => return error_page(StatusCode::NOT_FOUND, Some(&session), "There is no such attempt of this target."),
            Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(&session), "The event log could not be read."),
        };
        let branch = branch_of(&found);
        let diff = branch.as_deref().map(|b| branch_diff(&*state, &target, b, PAGE_DIFF));
        let download = format!(
            "/console/targets/{}/attempts/{}/diff",
            encode(&target),
            encode(&attempt)
        );
        let body = html! {
            h1 { "Attempt " code { (attempt) } }
            p { "Target " a href=(format!("/console/targets/{}", encode(&target))) { (target) } }
            (facts(&found, now))
            h2 { "Diff" }
            @match (&branch, &diff) {
                (None, _) => p.muted { "This attempt pushed no branch." },
                (Some(b), Some(Ok(d))) => {
                    p { "Branch " code { (b) } " · " a href=(download) download { "Download the whole diff" } }
                    (diff_view(d))
                }
                (Some(b), Some(Err(e))) => p.notice { "Branch " code { (b) } ": " (e) },
                (Some(_), None) => {}
            }
            (timeline(&found.events, now))
        };
        respond(layout::page(&format!("Attempt {attempt}"), Some(&session), Live::Render, last_seq, body))
    })
    .await
    .unwrap_or_else(|_| error_page(StatusCode::INTERNAL_SERVER_ERROR, None, "The page failed to render."))
}

/// `GET /console/targets/{id}/attempts/{attempt}/diff`: the whole diff as a file.
pub async fn download(state: Host, session: Session, target: String, attempt: String) -> Response {
    tokio::task::spawn_blocking(move || {
        let found = match find(&*state, &target, &attempt) {
            Ok(Some(f)) => f,
            _ => {
                return error_page(
                    StatusCode::NOT_FOUND,
                    Some(&session),
                    "There is no such attempt of this target.",
                );
            }
        };
        let Some(branch) = branch_of(&found) else {
            return error_page(
                StatusCode::NOT_FOUND,
                Some(&session),
                "This attempt pushed no branch.",
            );
        };
        match branch_diff(&*state, &target, &branch, DOWNLOAD_DIFF) {
            Ok(diff) => {
                let mut r = with_body(StatusCode::OK, "text/x-diff; charset=utf-8", diff.text);
                let name: String = attempt
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if let Ok(v) =
                    HeaderValue::from_str(&format!("attachment; filename=\"{name}.diff\""))
                {
                    r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
                }
                r
            }
            Err(e) => error_page(StatusCode::NOT_FOUND, Some(&session), &e),
        }
    })
    .await
    .unwrap_or_else(|_| {
        error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "The download failed.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_calls_are_listed_escaped_and_absent_when_there_are_none() {
        let payload = serde_json::json!({"denied": [
            {"action": "write", "path": "docs/<b>x</b>.md", "rule": "allowed_paths"},
            {"action": "create a hard link at", "path": "docs/l.md", "rule": "no_links"},
        ]});
        let html = refused(Some(&payload)).into_string();
        assert!(html.contains("Refused by the sandbox"), "{html}");
        assert!(html.contains("docs/&lt;b&gt;x&lt;/b&gt;.md"), "{html}");
        assert!(
            html.contains("no_links") && html.contains("allowed_paths"),
            "{html}"
        );
        assert_eq!(html.matches("<tr>").count(), 3, "{html}");
        for none in [
            serde_json::json!({}),
            serde_json::json!({"denied": []}),
            serde_json::json!({"denied": null}),
        ] {
            assert_eq!(refused(Some(&none)).into_string(), "");
        }
        assert_eq!(refused(None).into_string(), "");
    }

    #[test]
    fn an_attempt_older_than_its_task_keeps_is_found_from_its_events() {
        use leviathan_events::EventDraft;
        use leviathan_events::projection::KEPT_ATTEMPTS;
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let ids: Vec<String> = (0..KEPT_ATTEMPTS + 3).map(|i| format!("{i:08x}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let event = |kind: &str, payload: serde_json::Value| EventDraft {
                kind: kind.into(),
                target: Some("t".into()),
                task: Some("k".into()),
                attempt: Some(id.clone()),
                payload,
            };
            let branch = leviathan_domain::branches::branch_name("k", id);
            log.append(vec![
                event(
                    "attempt.started",
                    serde_json::json!({"via": "scheduler", "branch": branch}),
                ),
                event(
                    "attempt.succeeded",
                    serde_json::json!({"digest": format!("d{i}")}),
                ),
                event(
                    "pr.opened",
                    serde_json::json!({"pr": i + 1, "branch": branch}),
                ),
            ])
            .unwrap();
        }
        let kept = log.projection().unwrap().targets["t"].tasks["k"]
            .attempts
            .len();
        assert_eq!(kept, KEPT_ATTEMPTS);
        for id in [&ids[0], ids.last().unwrap()] {
            let found = find_in(&log, "t", id).unwrap().expect("found");
            assert_eq!(found.task, "k");
            assert_eq!(found.view.id, *id);
            assert_eq!(found.view.outcome, AttemptOutcome::Succeeded);
            assert!(found.pr.is_some_and(|p| p.branch.is_some()));
            assert_eq!(found.events.len(), 3);
        }
        assert_eq!(
            find_in(&log, "t", "00000000")
                .unwrap()
                .unwrap()
                .view
                .digest
                .as_deref(),
            Some("d0")
        );
        assert!(
            find_in(&log, "other", &ids[0]).unwrap().is_none(),
            "another target's"
        );
        assert!(find_in(&log, "t", "ffffffff").unwrap().is_none());
    }
}
