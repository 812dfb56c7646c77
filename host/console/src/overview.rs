//! The overview: autonomy state, every target's guardrails and last pass, task
//! counts and the latest failures.

use super::layout::{self, Live, Tone, badge, encode, time};
use super::respond;
use super::web::Response;
use crate::host::ConsoleHost;
use leviathan_domain::config::{Config, Forge, Target};
use leviathan_events::projection::{PassNote, Projection, TargetView, TaskStatus};
use leviathan_forge::github::clients::Usage;
use maud::{Markup, html};
use std::collections::BTreeMap;

/// Every target the console knows: the configured ones in configuration order,
/// those the passes discovered in App installations, then any other the log holds.
pub fn known_targets<'a>(
    config: Option<&'a Config>,
    discovered: &'a [Target],
    p: &'a Projection,
) -> Vec<(&'a str, Option<&'a Target>, Option<&'a TargetView>)> {
    let mut out: Vec<_> = config
        .map(|c| c.targets.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(discovered)
        .map(|t| (t.id.as_str(), Some(t), p.targets.get(&t.id)))
        .collect();
    for (id, view) in &p.targets {
        if !out.iter().any(|(known, _, _)| known == id) {
            out.push((id.as_str(), None, Some(view)));
        }
    }
    out
}

/// A task status as a badge.
pub fn status_badge(status: TaskStatus) -> Markup {
    let (tone, word) = match status {
        TaskStatus::Pending => (Tone::Neutral, "pending"),
        TaskStatus::Selected => (Tone::Neutral, "selected"),
        TaskStatus::Running => (Tone::Warn, "running"),
        TaskStatus::Succeeded => (Tone::Good, "succeeded"),
        TaskStatus::Failed => (Tone::Bad, "failed"),
        TaskStatus::InReview => (Tone::Warn, "in review"),
        TaskStatus::Completed => (Tone::Good, "completed"),
        TaskStatus::Blocked => (Tone::Bad, "blocked"),
    };
    badge(tone, word)
}

/// The status words in display order, for counts.
const STATUSES: [(TaskStatus, &str); 8] = [
    (TaskStatus::Pending, "pending"),
    (TaskStatus::Selected, "selected"),
    (TaskStatus::Running, "running"),
    (TaskStatus::Succeeded, "succeeded"),
    (TaskStatus::Failed, "failed"),
    (TaskStatus::InReview, "in review"),
    (TaskStatus::Completed, "completed"),
    (TaskStatus::Blocked, "blocked"),
];

/// A target's breaker as a badge.
pub fn breaker_badge(view: Option<&TargetView>) -> Markup {
    match view {
        Some(v) if v.circuit_breaker.open => badge(Tone::Bad, "breaker open"),
        _ => badge(Tone::Good, "breaker closed"),
    }
}

/// How a pass ended, with its reason.
pub fn pass_outcome(pass: Option<&PassNote>, now: u64) -> Markup {
    html! {
        @match pass {
            None => span.muted { "no pass recorded" },
            Some(p) => {
                @let tone = match p.outcome.as_str() {
                    "succeeded" => Tone::Good,
                    "failed" => Tone::Bad,
                    _ => Tone::Warn,
                };
                (badge(tone, &p.outcome))
                @if let Some(r) = &p.reason { " " code { (r) } }
                @if let Some(m) = &p.message { " " span.muted { (m) } }
                br; (time(p.ts_ms, now))
            }
        }
    }
}

/// When the next pass is due, from the configuration's schedule or interval.
fn next_pass(config: Option<&Config>, last_tick_ms: Option<u64>, now: u64) -> Markup {
    let Some(config) = config else {
        return html! { span.muted { "no passes (serve runs without --config)" } };
    };
    let due = match &config.schedule {
        Some(cron) => cron.next_after(now / 1000).map(|s| s.saturating_mul(1000)),
        None => Some(
            last_tick_ms
                .map(|t| t + config.interval_seconds * 1000)
                .unwrap_or(now)
                .max(now),
        ),
    };
    match due {
        Some(ms) => time(ms, now),
        None => html! { span.muted { "not scheduled" } },
    }
}

/// Autonomy: running, paused (by whom, why), disabled by policy, or unknown.
fn autonomy(
    state: &dyn ConsoleHost,
    session: &super::session::Session,
    p: Option<&Projection>,
    now: u64,
) -> Markup {
    html! {
        section.card aria-labelledby="autonomy-h" {
            h3 #autonomy-h { "Autonomy" }
            @match p {
                None => {
                    (badge(Tone::Bad, "unknown"))
                    p.error { "The event log could not be read, so the state is not known." }
                }
                Some(p) if p.paused => {
                    (badge(Tone::Warn, "paused"))
                    @if let Some(note) = &p.pause {
                        p {
                            "by " strong { (note.by.as_deref().unwrap_or("unknown")) } ", "
                            (time(note.ts_ms, now))
                            @if let Some(r) = &note.reason { br; "reason: " (r) }
                        }
                    }
                    (layout::action_link(session, "resume", "", "Resume autonomy"))
                }
                Some(_) if !state.autonomy_enabled() => {
                    (badge(Tone::Neutral, "disabled by policy"))
                    p.muted { "No target's policy has autonomy_enabled." }
                }
                Some(_) => {
                    (badge(Tone::Good, "running"))
                    p {}
                    (layout::action_link(session, "pause", "", "Pause autonomy"))
                }
            }
        }
    }
}

/// The forge of a configured target, in words.
pub fn forge_name(target: Option<&Target>) -> &'static str {
    match target.map(|t| &t.forge) {
        Some(Forge::Local) => "local",
        Some(Forge::GitHub { .. }) => "GitHub",
        None => "not configured",
    }
}

/// The lowest primary budget among the identities on `api_url`, as a badge with
/// the time to its reset.
fn github_budget(usage: &[Usage], api_url: &str, now_ms: u64) -> Markup {
    let apis = leviathan_forge::github::clients::by_api(usage);
    let lowest = apis
        .get(api_url.trim_end_matches('/'))
        .and_then(|api| api.lowest)
        .and_then(|b| Some((b.remaining?, b)));
    let Some((remaining, budget)) = lowest else {
        return html! { span.muted { "no request yet" } };
    };
    let tone = match budget.limit {
        Some(limit) if remaining * 10 < limit => Tone::Bad,
        Some(limit) if remaining * 4 < limit => Tone::Warn,
        _ => Tone::Good,
    };
    let words = match budget.limit {
        Some(limit) => format!("{remaining} / {limit} left"),
        None => format!("{remaining} left"),
    };
    let reset_in = budget
        .reset_epoch
        .map(|reset| reset.saturating_mul(1000).saturating_sub(now_ms) / 60_000);
    html! {
        (badge(tone, &words))
        @if let Some(minutes) = reset_in { " " span.muted { "resets in " (minutes) " min" } }
    }
}

/// Targets listed on one page of the overview (about 600 bytes each), so the page
/// stays under 100 KB however many targets there are.
pub const TARGETS_PER_PAGE: usize = 100;

/// The `?page=` of the overview (1-based).
#[derive(serde::Deserialize)]
pub struct OverviewQuery {
    pub page: Option<usize>,
}

/// Page `page` (1-based, clamped) of `all`, the page and the number of pages.
fn page_of<T>(all: &[T], page: usize) -> (&[T], usize, usize) {
    let pages = all.len().div_ceil(TARGETS_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let from = (page - 1) * TARGETS_PER_PAGE;
    let to = (from + TARGETS_PER_PAGE).min(all.len());
    (&all[from..to], page, pages)
}

fn body(
    state: &dyn ConsoleHost,
    session: &super::session::Session,
    p: Option<&Projection>,
    page: usize,
) -> Markup {
    let now = leviathan_domain::clock::now_ms();
    let github = state.github_usage();
    let discovered = state.discovered_targets();
    let config = state.forge().map(|f| f.config.current());
    let config = config.as_deref();
    html! {
        h1 { "Overview" }
        div.cards {
            (autonomy(state, session, p, now))
            @if let Some(p) = p {
                section.card aria-labelledby="tasks-h" {
                    h3 #tasks-h { "Tasks by state" }
                    @let counts = task_counts(p);
                    ul {
                        @for (status, word) in STATUSES {
                            @let n = counts.get(word).copied().unwrap_or(0);
                            @if n > 0 { li { (status_badge(status)) " " (n) } }
                        }
                        @if counts.is_empty() { li.muted { "no tasks in the event log yet" } }
                    }
                }
                section.card aria-labelledby="breakers-h" {
                    h3 #breakers-h { "Circuit breakers" }
                    @let open = p.open_breakers();
                    @if open == 0 { (badge(Tone::Good, "all closed")) } @else { (badge(Tone::Bad, &format!("{open} open"))) }
                }
            }
        }
        @if let Some(p) = p {
            h2 { "Targets" }
            @let all = known_targets(config, &discovered, p);
            @let (targets, page, pages) = page_of(&all, page);
            @if pages > 1 {
                p.pager {
                    "Targets " ((page - 1) * TARGETS_PER_PAGE + 1) "–" ((page - 1) * TARGETS_PER_PAGE + targets.len()) " of " (all.len())
                    @if page > 1 { " · " a rel="prev" href=(format!("/console?page={}", page - 1)) { "previous" } }
                    @if page < pages { " · " a rel="next" href=(format!("/console?page={}", page + 1)) { "next" } }
                }
            }
            @if targets.is_empty() {
                (layout::notice("No targets: serve runs without --config and the event log names none."))
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Target" } th scope="col" { "Forge" } th scope="col" { "Open PRs" }
                        th scope="col" { "Breaker" } th scope="col" { "Last pass" } th scope="col" { "Next pass" }
                        th scope="col" { "GitHub budget" }
                    } }
                    tbody {
                        @for &(id, target, view) in targets {
                            tr {
                                td {
                                    a href=(format!("/console/targets/{}", encode(id))) { (id) }
                                    @if view.is_some_and(|v| v.paused) { " " (badge(Tone::Warn, "paused")) }
                                }
                                td { (forge_name(target)) }
                                td {
                                    (view.map(|v| v.open_prs).unwrap_or(0))
                                    @if let Some(t) = target { " / " (t.policy.max_open_prs) }
                                }
                                td { (breaker_badge(view)) }
                                td { (pass_outcome(view.and_then(|v| v.last_pass.as_ref()), now)) }
                                td { (next_pass(config, p.last_tick_ms, now)) }
                                td {
                                    @match target.map(|t| &t.forge) {
                                        Some(Forge::GitHub { api_url, .. }) => (github_budget(&github, api_url, now)),
                                        _ => span.muted { "n/a" },
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Latest failures" }
            @if p.recent_failures.is_empty() {
                p.muted { "No failed attempts." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Target" } th scope="col" { "Task" }
                        th scope="col" { "Attempt" } th scope="col" { "Reason" }
                    } }
                    tbody {
                        @for f in p.recent_failures.iter().rev() {
                            tr {
                                td { (time(f.ts_ms, now)) }
                                td { a href=(format!("/console/targets/{}", encode(&f.target))) { (f.target) } }
                                td { (f.task) }
                                td { a href=(format!("/console/targets/{}/attempts/{}", encode(&f.target), encode(&f.attempt))) { (f.attempt) } }
                                td {
                                    (badge(Tone::Bad, f.kind.as_deref().unwrap_or("failed")))
                                    " " (f.message.as_deref().unwrap_or("no message recorded"))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Tasks by status word across every target.
fn task_counts(p: &Projection) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for t in p.targets.values() {
        for task in t.tasks.values() {
            let word = STATUSES
                .iter()
                .find(|(s, _)| *s == task.status)
                .map(|(_, w)| *w)
                .unwrap_or("pending");
            *counts.entry(word).or_default() += 1;
        }
    }
    counts
}

/// `GET /console`: renders the overview for `session` (the bench calls this directly).
pub fn render(state: &dyn ConsoleHost, session: &super::session::Session, page: usize) -> Response {
    let last_seq = state.log().last_seq();
    let markup = state
        .log()
        .with_projection(|p| body(state, session, Some(p), page))
        .unwrap_or_else(|_| body(state, session, None, page));
    respond(layout::page(
        "Overview",
        Some(session),
        Live::Render,
        last_seq,
        markup,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use leviathan_forge::github::ratelimit::Budget;

    fn usage(api: &str, remaining: u64) -> Usage {
        Usage {
            identity: "env:GITHUB_TOKEN".into(),
            targets: Vec::new(),
            secondary: Default::default(),
            api_url: api.into(),
            budget: Budget {
                remaining: Some(remaining),
                reset_epoch: Some(1_000_600),
                limit: Some(5000),
            },
            content_requests: 0,
        }
    }

    #[test]
    fn known_targets_are_the_configured_then_the_discovered_then_the_logs_others() {
        let target = |id: &str| Target {
            id: id.into(),
            repository: format!("acme/{id}"),
            base_branch: "main".into(),
            forge: Forge::Local,
            policy: leviathan_domain::policy::Policy::default_policy(),
            labels: Vec::new(),
            auto_merge: false,
            policy_in_repo: false,
        };
        let config = Config {
            source: "leviathan.yaml".into(),
            interval_seconds: 60,
            schedule: None,
            workers: 1,
            shards: 1,
            github_limits: Default::default(),
            git_timeout_seconds: 600,
            max_clone_mib: 4096,
            targets: vec![target("configured")],
            discover: Vec::new(),
        };
        let discovered = [target("found")];
        let mut p = Projection::default();
        for id in ["only-in-log", "found", "configured"] {
            p.targets.insert(id.into(), TargetView::default());
        }
        let known = known_targets(Some(&config), &discovered, &p);
        let listed: Vec<(&str, bool, bool)> = known
            .iter()
            .map(|(id, t, v)| (*id, t.is_some(), v.is_some()))
            .collect();
        assert_eq!(
            listed,
            [
                ("configured", true, true),
                ("found", true, true),
                ("only-in-log", false, true)
            ]
        );
        assert_eq!(known_targets(None, &[], &p).len(), 3);
    }

    #[test]
    fn targets_are_paged_and_a_page_out_of_range_is_clamped() {
        let all: Vec<usize> = (0..250).collect();
        let (first, page, pages) = page_of(&all, 1);
        assert_eq!((first.len(), first[0], page, pages), (100, 0, 1, 3));
        let (last, page, _) = page_of(&all, 3);
        assert_eq!((last.len(), last[0], page), (50, 200, 3));
        assert_eq!(page_of(&all, 99).1, 3);
        assert_eq!(page_of(&all, 0).1, 1);
        let none: Vec<usize> = Vec::new();
        assert_eq!(page_of(&none, 5), (&none[..], 1, 1));
    }

    #[test]
    fn the_github_budget_is_the_lowest_identity_on_the_target_api() {
        let all = [
            usage("https://ghe.example/api/v3", 4000),
            usage("https://ghe.example/api/v3", 400),
            usage("https://api.github.com", 3),
        ];
        let cell = github_budget(&all, "https://ghe.example/api/v3/", 1_000_000_000).into_string();
        assert!(
            cell.contains("badge bad") && cell.contains("400 / 5000 left"),
            "{cell}"
        );
        assert!(cell.contains("resets in 10 min"), "{cell}");
        let fine =
            github_budget(&all[..1], "https://ghe.example/api/v3", 1_000_000_000).into_string();
        assert!(
            fine.contains("badge good") && fine.contains("4000 / 5000 left"),
            "{fine}"
        );
        let none = github_budget(&all, "https://other.example", 0).into_string();
        assert!(none.contains("no request yet"), "{none}");
    }
}
