//! A target: its backlog in backlog order with each task's state and, for a ready
//! task that is not running, why it waits; its attempts and pull requests.

use super::layout::{self, Live, Tone, badge, encode, time};
use super::overview::{breaker_badge, forge_name, pass_outcome, status_badge};
use super::session::Session;
use super::web::Response;
use super::{error_page, respond};
use crate::host::{ConsoleHost, Host, Waits};
use http::StatusCode;
use leviathan_domain::backlog::{BACKLOG_PATH, Backlog, MAX_BACKLOG};
use leviathan_domain::config::Target;
use leviathan_events::projection::{PrState, TargetView, TaskStatus};
use maud::{Markup, html};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most attempts listed on a target's page (the newest).
const MAX_ROWS: usize = 50;

/// The target's backlog on its base branch, read from git's objects in the host's
/// clone (never from the worktree, which a pass may have on an agent branch). The
/// parsed backlog is kept per target by base commit, so a render costs one `git
/// rev-parse` until a pass fetches a new base.
pub fn base_backlog(
    cache: &BacklogCache,
    work_dir: &std::path::Path,
    target: &Target,
) -> BacklogRead {
    let clone = work_dir.join(&target.id);
    let base = format!("origin/{}", target.base_branch);
    let Some(commit) = leviathan_forge::git::commit_of(&clone, &base) else {
        return Err("the host has not cloned this target yet (no pass has run)".into());
    };
    if let Some(hit) = cache.get(&target.id, &commit) {
        return hit;
    }
    let read = read_backlog(&clone, &commit, &base).map(Arc::new);
    cache.put(&target.id, commit, read.clone());
    read
}

/// Reads and parses the backlog at `commit` (named `base` in messages).
fn read_backlog(clone: &std::path::Path, commit: &str, base: &str) -> Result<Backlog, String> {
    let bytes =
        leviathan_forge::git::read_blob(clone, commit, BACKLOG_PATH, MAX_BACKLOG.bytes as usize)
            .map_err(|e| format!("{BACKLOG_PATH} on {base}: {}", e.message))?
            .ok_or_else(|| format!("{base} has no {BACKLOG_PATH}"))?;
    let text =
        leviathan_domain::yaml::utf8_text(std::path::Path::new(BACKLOG_PATH), bytes, "the backlog")
            .map_err(|e| e.to_string())?;
    Backlog::from_text(std::path::Path::new(BACKLOG_PATH), &text).map_err(|e| e.to_string())
}

/// Each target's parsed base backlog (or why it could not be read), with the commit
/// it was read at: one entry per target, replaced when the base moves.
#[derive(Default)]
pub struct BacklogCache {
    entries: Mutex<HashMap<String, (String, BacklogRead)>>,
}

/// A parsed backlog, or why it could not be read.
type BacklogRead = Result<Arc<Backlog>, String>;

impl BacklogCache {
    fn get(&self, target: &str, commit: &str) -> Option<BacklogRead> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(target)
            .filter(|(at, _)| at == commit)
            .map(|(_, read)| read.clone())
    }

    fn put(&self, target: &str, commit: String, read: BacklogRead) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(target.to_string(), (commit, read));
    }
}

/// Why a target-level stop holds every task back, in words.
fn stop_words(reason: &str, detail: &str) -> String {
    let base = match reason {
        "paused" => "autonomy is paused",
        "disabled" => "autonomy is disabled by the target's policy",
        "max_open_prs" => "max open PRs reached",
        "circuit_open" => "the circuit breaker is open",
        other => other,
    };
    if detail.is_empty() {
        base.to_string()
    } else {
        format!("{base} ({detail})")
    }
}

/// Why a task waits, in words, from the scheduler's own reasons.
fn skip_words(reason: &str, detail: &str) -> String {
    let base = match reason {
        "status" => "not pending",
        "deps" => "a dependency is not done",
        "scope" => "its paths are outside the policy",
        "inflight" => "already in flight",
        "attempts" => "attempts used up",
        "format" => "the host could not record its completion in the backlog as written",
        "not_ready" => "not ready",
        other => other,
    };
    format!("{base}: {detail}")
}

struct Row {
    id: String,
    title: String,
    description: String,
    criteria: Vec<String>,
    ready: bool,
    status: Option<TaskStatus>,
    backlog_status: Option<String>,
    why: Option<(Tone, String)>,
}

impl Row {
    /// Completed, by the log or by the backlog: "not ready" would be noise.
    fn done(&self) -> bool {
        match self.status {
            Some(s) => s == TaskStatus::Completed,
            None => self.backlog_status.as_deref() == Some("completed"),
        }
    }
}

fn rows(
    state: &dyn ConsoleHost,
    target: &Target,
    backlog: &Backlog,
    view: Option<&TargetView>,
    host_paused: bool,
) -> Vec<Row> {
    let open_branches: Vec<String> = view
        .map(|v| {
            v.tasks
                .values()
                .flat_map(|t| t.prs.iter())
                .filter(|p| p.state == PrState::Open)
                .filter_map(|p| p.branch.clone())
                .collect()
        })
        .unwrap_or_default();
    let paused = host_paused || view.is_some_and(|v| v.paused);
    let waits: Option<Waits> = state
        .explain()
        .map(|explain| explain(backlog, &target.policy, view, &open_branches, paused));
    let plugins = state
        .plugins()
        .filter(|set| set.rules == target.policy.plugins);
    backlog
        .tasks
        .iter()
        .map(|task| {
            let status = view.and_then(|v| v.tasks.get(&task.id)).map(|t| t.status);
            let running = status == Some(TaskStatus::Running);
            let why = if running {
                Some((Tone::Warn, "running now".to_string()))
            } else if !task.ready {
                None
            } else {
                waits.as_ref().and_then(|w| {
                    let standing = w.tasks.iter().find(|t| t.task == task.id)?;
                    if let Some(reason) = &standing.skipped {
                        if reason == "status" {
                            return None;
                        }
                        return Some((Tone::Bad, skip_words(reason, &standing.detail)));
                    }
                    if let Some((reason, detail)) = &w.stop {
                        return Some((Tone::Warn, stop_words(reason, detail)));
                    }
                    if let Some(set) = &plugins
                        && let Err(e) = set.route(task)
                    {
                        return Some((Tone::Bad, format!("no executor for the scope: {e}")));
                    }
                    Some(match &standing.behind {
                        Some(first) => (
                            Tone::Neutral,
                            format!(
                                "waits behind `{first}` (one attempt per pass, in backlog order)"
                            ),
                        ),
                        None => (Tone::Good, "runs at the next pass".to_string()),
                    })
                })
            };
            Row {
                id: task.id.clone(),
                title: task.title.clone(),
                description: task.description.clone(),
                criteria: task.acceptance_criteria.clone(),
                ready: task.ready,
                status,
                backlog_status: task.status.clone(),
                why,
            }
        })
        .collect()
}

fn backlog_table(rows: &[Row]) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "#" } th scope="col" { "Task" } th scope="col" { "Title" }
                th scope="col" { "State" } th scope="col" { "Why it waits" }
            } }
            tbody {
                @for (i, r) in rows.iter().enumerate() {
                    tr {
                        td { (i + 1) }
                        td { code { (r.id) } }
                        td {
                            @if r.description.is_empty() && r.criteria.is_empty() { (r.title) } @else {
                                details {
                                    summary { (r.title) }
                                    @if !r.description.is_empty() { p { (r.description) } }
                                    @if !r.criteria.is_empty() { ul { @for c in &r.criteria { li { (c) } } } }
                                }
                            }
                        }
                        td {
                            @match (r.status, r.backlog_status.as_deref()) {
                                (Some(s), _) => (status_badge(s)),
                                (None, Some("completed")) => (badge(Tone::Good, "completed")),
                                (None, Some(other)) => (badge(Tone::Neutral, other)),
                                (None, None) => (badge(Tone::Neutral, "pending")),
                            }
                            @if !r.ready && !r.done() { " " span.muted { "not ready" } }
                        }
                        td {
                            @if let Some((tone, why)) = &r.why { (badge(*tone, why)) }
                        }
                    }
                }
            }
        }
    }
}

fn attempts_and_prs(id: &str, view: &TargetView, now: u64) -> Markup {
    let mut attempts: Vec<_> = view
        .tasks
        .iter()
        .flat_map(|(task, t)| t.attempts.iter().map(move |a| (task, a)))
        .collect();
    attempts.sort_by_key(|(_, a)| std::cmp::Reverse(a.started_ms));
    let all_attempts = view.tasks.values().map(|t| t.attempts_total).sum::<u64>();
    let all_prs = view.tasks.values().map(|t| t.prs_total).sum::<u64>();
    let open_prs: Vec<_> = view
        .tasks
        .iter()
        .flat_map(|(task, t)| t.prs.iter().map(move |p| (task, p)))
        .filter(|(_, p)| p.state == PrState::Open)
        .collect();
    let shown_attempts = attempts.len().min(MAX_ROWS);
    html! {
        h2 { "Attempts" }
        @if attempts.is_empty() { p.muted { "No attempts yet." } } @else {
            table {
                thead { tr {
                    th scope="col" { "Attempt" } th scope="col" { "Task" } th scope="col" { "Started" }
                    th scope="col" { "Outcome" }
                } }
                tbody {
                    @for (task, a) in attempts.iter().take(MAX_ROWS) {
                        tr {
                            td { a href=(format!("/console/targets/{}/attempts/{}", encode(id), encode(&a.id))) { (a.id) } }
                            td { code { (task) } }
                            td { (time(a.started_ms, now)) }
                            td { (super::attempt::outcome_badge(a)) }
                        }
                    }
                }
            }
        }
        @if (shown_attempts as u64) < all_attempts {
            p.muted { "The newest " (shown_attempts) " of " (all_attempts) " attempts; older ones are in the event log." }
        }
        h2 { "Open pull requests" }
        @if open_prs.is_empty() { p.muted { "No open pull request." } } @else {
            (super::lists::pr_table(id, open_prs.into_iter()))
        }
        p { a href=(format!("/console/prs?target={}", encode(id))) { "All " (all_prs) " pull requests of this target" } }
    }
}

/// Renders target `id` for `session` (the bench calls this directly).
pub fn render(state: &dyn ConsoleHost, session: &super::session::Session, id: &str) -> Response {
    let now = leviathan_domain::clock::now_ms();
    let last_seq = state.log().last_seq();
    // A configured target, or one the passes discovered in an App installation.
    let discovered = state.discovered_targets();
    let config = state.forge().map(|f| (f, f.config.current()));
    let target = config.as_ref().and_then(|(f, c)| {
        c.targets
            .iter()
            .chain(&discovered)
            .find(|t| t.id == id)
            .map(|t| (*f, t))
    });
    let Ok((view, host_paused)) = state
        .log()
        .with_projection(|p| (p.targets.get(id).cloned(), p.paused))
    else {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(session),
            "The event log could not be read.",
        );
    };
    if target.is_none() && view.is_none() {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(session),
            "There is no such target.",
        );
    }
    let backlog =
        target.map(|(forge, t)| base_backlog(&state.console().backlogs, &forge.work_dir, t));
    let rows = match (&backlog, target) {
        (Some(Ok(b)), Some((_, t))) => Some(rows(state, t, b, view.as_ref(), host_paused)),
        _ => None,
    };
    let paused = view.as_ref().is_some_and(|v| v.paused);
    let q = format!("target={}", encode(id));
    let body = html! {
        h1 { "Target " code { (id) } }
        p {
            (forge_name(target.map(|(_, t)| t))) " forge · "
            @if paused { (badge(Tone::Warn, "paused")) } @else { (badge(Tone::Good, "not paused")) }
            " " (breaker_badge(view.as_ref()))
            @if let Some((_, t)) = target { " · open PRs " (view.as_ref().map(|v| v.open_prs).unwrap_or(0)) " / " (t.policy.max_open_prs) }
        }
        @if let Some(note) = view.as_ref().and_then(|v| v.pause.as_ref()) {
            p { "Paused by " strong { (note.by.as_deref().unwrap_or("unknown")) } ", " (time(note.ts_ms, now))
                @if let Some(r) = &note.reason { ": " (r) } }
        }
        p.actions {
            @if paused {
                (layout::action_link(session, "resume", &q, "Resume this target"))
            } @else {
                (layout::action_link(session, "pause", &q, "Pause this target"))
            }
            " "
            @if view.as_ref().is_some_and(|v| v.circuit_breaker.open) {
                (layout::action_link(session, "reset-breaker", &q, "Reset the circuit breaker"))
            }
        }
        p { "Last pass: " (pass_outcome(view.as_ref().and_then(|v| v.last_pass.as_ref()), now)) }
        h2 { "Backlog" }
        @match (&backlog, &rows) {
            (None, _) => (layout::notice("This target is not in the configuration, so its backlog is not read.")),
            (Some(Err(e)), _) => p.notice.error { "The backlog cannot be shown: " (e) },
            (Some(Ok(_)), Some(rows)) => (backlog_table(rows)),
            _ => {}
        }
        @if let Some(v) = &view { (attempts_and_prs(id, v, now)) }
    };
    respond(layout::page(
        &format!("Target {id}"),
        Some(session),
        Live::Render,
        last_seq,
        body,
    ))
}

/// `GET /console/targets/{id}`
pub async fn target(state: Host, session: Session, id: String) -> Response {
    tokio::task::spawn_blocking(move || render(&*state, &session, &id))
        .await
        .unwrap_or_else(|_| {
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "The page failed to render.",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use leviathan_domain::config::Forge;
    use leviathan_domain::policy::Policy;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn commit_backlog(repo: &Path, tasks: &[&str]) {
        let mut text = String::from("tasks:\n");
        for t in tasks {
            text.push_str(&format!("  - id: {t}\n    title: {t}\n    scope: docs\n    ready: true\n    allowed_paths: [docs/]\n"));
        }
        std::fs::create_dir_all(repo.join(".leviathan")).expect("mkdir");
        std::fs::write(repo.join(BACKLOG_PATH), text).expect("write");
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-q", "-m", "backlog"]);
    }

    #[test]
    fn the_base_backlog_is_read_once_per_base_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = dir.path().join("origin");
        std::fs::create_dir_all(&origin).expect("mkdir");
        git(&origin, &["init", "-q", "-b", "main"]);
        commit_backlog(&origin, &["a"]);
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("mkdir");
        let target = Target {
            id: "t".into(),
            repository: origin.display().to_string(),
            base_branch: "main".into(),
            forge: Forge::Local,
            policy: Policy::default_policy(),
            labels: Vec::new(),
            auto_merge: false,
            policy_in_repo: false,
        };
        let cache = BacklogCache::default();
        assert!(
            base_backlog(&cache, &work, &target).is_err(),
            "not cloned yet"
        );
        git(&work, &["clone", "-q", &origin.display().to_string(), "t"]);
        let first = base_backlog(&cache, &work, &target).expect("backlog");
        assert_eq!(first.tasks.len(), 1);
        let again = base_backlog(&cache, &work, &target).expect("backlog");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same commit is not read again"
        );
        // The base moves (a pass fetches): the new backlog is read.
        commit_backlog(&origin, &["a", "b"]);
        git(&work.join("t"), &["fetch", "-q", "origin"]);
        let moved = base_backlog(&cache, &work, &target).expect("backlog");
        assert_eq!(moved.tasks.len(), 2);
        // Three tasks it cannot read: the first is named, and how many more there are.
        std::fs::write(
            origin.join(BACKLOG_PATH),
            "tasks:\n  - id: a\n    scope: docs\n  - id: b\n    title: [B]\n    scope: docs\n  - id: c\n    title: C\n",
        )
        .expect("write");
        git(&origin, &["commit", "-q", "-am", "broken"]);
        git(&work.join("t"), &["fetch", "-q", "origin"]);
        let why = base_backlog(&cache, &work, &target).expect_err("broken");
        assert!(
            why.contains("task #1 `a`: field `title`") && why.contains("and 2 more"),
            "{why}"
        );
    }
}
