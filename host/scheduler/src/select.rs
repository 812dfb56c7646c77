//! Task selection for one target: the guardrails in order and the first runnable task
//! in backlog order, with the reason every passed-over task was skipped. Pure: it
//! reads the backlog, the policy, what the event log says about the target, and the
//! agent branches open on the remote.

use leviathan_domain::backlog::{Backlog, Task};
use leviathan_domain::policy::Policy;
use leviathan_events::projection::{TargetView, TaskStatus};
use leviathan_sandbox::exec::checked_allowed_paths;

use leviathan_domain::branches::branch_task;

/// Why a task was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NotReady,
    Status,
    Deps,
    Scope,
    Inflight,
    Attempts,
    /// The host could not record the task's completion in the backlog as written.
    Format,
}

impl SkipReason {
    /// The reason as recorded in `task.skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotReady => "not_ready",
            SkipReason::Status => "status",
            SkipReason::Deps => "deps",
            SkipReason::Scope => "scope",
            SkipReason::Inflight => "inflight",
            SkipReason::Attempts => "attempts",
            SkipReason::Format => "format",
        }
    }
}

/// Why a whole target was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetStop {
    Disabled,
    Paused,
    MaxOpenPrs,
    CircuitOpen,
}

impl TargetStop {
    /// The reason as recorded in `target.skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStop::Disabled => "disabled",
            TargetStop::Paused => "paused",
            TargetStop::MaxOpenPrs => "max_open_prs",
            TargetStop::CircuitOpen => "circuit_open",
        }
    }
}

/// What to do with a target this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Tasks passed over, in backlog order, with why.
    pub skips: Vec<(String, SkipReason, String)>,
    /// Tasks that reached `max_attempts_per_task` and are not yet recorded as blocked.
    pub newly_blocked: Vec<String>,
    pub decision: Decision,
}

/// The outcome of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Stop(TargetStop),
    Run(String),
    Nothing,
}

/// What the scheduler knows about a target besides its backlog and policy.
pub struct TargetState<'a> {
    /// The target in the event log, if it has events.
    pub view: Option<&'a TargetView>,
    /// The agent branches on the remote: every one is an open PR of the host's.
    pub open_branches: &'a [String],
}

fn completed(backlog: &Backlog, view: Option<&TargetView>, id: &str) -> Option<bool> {
    let task = backlog.task(id)?;
    let by_log = view
        .and_then(|v| v.tasks.get(id))
        .is_some_and(|t| t.status == TaskStatus::Completed);
    Some(task.status.as_deref() == Some("completed") || by_log)
}

fn check(
    task: &Task,
    backlog: &Backlog,
    policy: &Policy,
    state: &TargetState,
) -> Result<(), (SkipReason, String)> {
    // Status first: a completed task also has `ready: false` after its write-back.
    let logged = state.view.and_then(|v| v.tasks.get(&task.id));
    match task.status.as_deref() {
        None | Some("pending") => {}
        Some(other) => return Err((SkipReason::Status, format!("status `{other}`"))),
    }
    if logged.is_some_and(|t| t.status == TaskStatus::Completed) {
        return Err((SkipReason::Status, "completed (event log)".into()));
    }
    if !task.ready {
        return Err((SkipReason::NotReady, "not `ready: true`".into()));
    }
    // A misspelt `dependencies`, `status` or `executor` is kept as a parameter and
    // would let the task run before what it depends on, again, or elsewhere.
    if let Some((key, meant)) = task.misspelt_fields().into_iter().next() {
        return Err((
            SkipReason::Format,
            format!(
                "field `{key}` is not one the host reads: did you mean `{meant}`? (the task waits until it is renamed)"
            ),
        ));
    }
    for dep in &task.dependencies {
        match completed(backlog, state.view, dep) {
            None => {
                return Err((
                    SkipReason::Deps,
                    format!("dependency `{dep}` does not exist"),
                ));
            }
            Some(false) => {
                return Err((
                    SkipReason::Deps,
                    format!("dependency `{dep}` is not completed"),
                ));
            }
            Some(true) => {}
        }
    }
    if let Err(e) = checked_allowed_paths(&backlog.source, task, policy) {
        return Err((SkipReason::Scope, e.message));
    }
    if let Some(why) = backlog.completion_problem(&task.id) {
        return Err((SkipReason::Format, why));
    }
    if let Some(branch) = state
        .open_branches
        .iter()
        .find(|b| branch_task(b) == Some(task.id.as_str()))
    {
        return Err((SkipReason::Inflight, format!("open PR on `{branch}`")));
    }
    let attempts = logged.map(|t| t.attempts_total).unwrap_or(0);
    if attempts >= policy.max_attempts_per_task {
        return Err((
            SkipReason::Attempts,
            format!(
                "{attempts} attempts of at most {}",
                policy.max_attempts_per_task
            ),
        ));
    }
    Ok(())
}

/// The checks that need no repository: autonomy switched off, or paused.
pub fn gate(policy: &Policy, paused: bool) -> Option<TargetStop> {
    if !policy.autonomy_enabled {
        Some(TargetStop::Disabled)
    } else if paused {
        Some(TargetStop::Paused)
    } else {
        None
    }
}

/// Whether `open_branches` fill the policy's `max_open_prs`: the plan's first
/// stop, which needs no backlog (the scheduler checks it before reading one).
pub fn at_max_open_prs(policy: &Policy, open_branches: &[String]) -> bool {
    open_branches.len() as u64 >= policy.max_open_prs
}

/// Plans one pass over a target that passed [`gate`].
pub fn plan(backlog: &Backlog, policy: &Policy, state: &TargetState) -> Plan {
    let stop = |reason| Plan {
        skips: Vec::new(),
        newly_blocked: Vec::new(),
        decision: Decision::Stop(reason),
    };
    if at_max_open_prs(policy, state.open_branches) {
        return stop(TargetStop::MaxOpenPrs);
    }
    if state.view.is_some_and(|v| v.circuit_breaker.open) {
        return stop(TargetStop::CircuitOpen);
    }
    let mut plan = Plan {
        skips: Vec::new(),
        newly_blocked: Vec::new(),
        decision: Decision::Nothing,
    };
    for task in &backlog.tasks {
        match check(task, backlog, policy, state) {
            Ok(()) => {
                plan.decision = Decision::Run(task.id.clone());
                break;
            }
            Err((reason, detail)) => {
                let already_blocked = state
                    .view
                    .and_then(|v| v.tasks.get(&task.id))
                    .is_some_and(|t| t.status == TaskStatus::Blocked);
                if reason == SkipReason::Attempts && !already_blocked {
                    plan.newly_blocked.push(task.id.clone());
                }
                plan.skips.push((task.id.clone(), reason, detail));
            }
        }
    }
    plan
}

/// Where a task stands if a pass ran now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It is the task the pass would run.
    Runs,
    /// It could run, but an earlier task in backlog order runs first (one attempt
    /// per target and pass).
    Behind(String),
    /// It is passed over, with why.
    Skipped(SkipReason, String),
}

/// What [`explain`] finds: the target's stop with its detail, if any, and every
/// task's standing in backlog order.
pub type Explained = (Option<(TargetStop, String)>, Vec<(String, Standing)>);

/// What a pass would decide now, for the operator: the target's stop, if any, and
/// every task's standing, each checked on its own with the same rules as [`plan`].
pub fn explain(backlog: &Backlog, policy: &Policy, state: &TargetState, paused: bool) -> Explained {
    let open = state.open_branches.len() as u64;
    let stop = match gate(policy, paused) {
        Some(stop) => Some((stop, String::new())),
        None if open >= policy.max_open_prs => Some((
            TargetStop::MaxOpenPrs,
            format!("{open} open of at most {}", policy.max_open_prs),
        )),
        None if state.view.is_some_and(|v| v.circuit_breaker.open) => {
            Some((TargetStop::CircuitOpen, String::new()))
        }
        None => None,
    };
    let mut first: Option<&str> = None;
    let tasks = backlog
        .tasks
        .iter()
        .map(|task| {
            let standing = match (check(task, backlog, policy, state), first) {
                (Err((reason, detail)), _) => Standing::Skipped(reason, detail),
                (Ok(()), Some(earlier)) => Standing::Behind(earlier.to_string()),
                (Ok(()), None) => {
                    first = Some(&task.id);
                    Standing::Runs
                }
            };
            (task.id.clone(), standing)
        })
        .collect();
    (stop, tasks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use leviathan_events::projection::{AttemptOutcome, AttemptView, Breaker};
    use std::path::Path;

    fn backlog(text: &str) -> Backlog {
        Backlog::from_text(Path::new(".leviathan/backlog.yaml"), text).unwrap()
    }

    const BACKLOG: &str = "tasks:
  - id: not-ready
    title: a
    scope: docs
    ready: false
    allowed_paths: [docs/]
  - id: done
    title: b
    scope: docs
    ready: true
    status: completed
    allowed_paths: [docs/]
  - id: waits
    title: c
    scope: docs
    ready: true
    dependencies: [not-ready]
    allowed_paths: [docs/]
  - id: outside
    title: d
    scope: docs
    ready: true
    allowed_paths: [ops/]
  - id: flying
    title: e
    scope: docs
    ready: true
    allowed_paths: [docs/]
  - id: tried
    title: f
    scope: docs
    ready: true
    allowed_paths: [docs/]
  - id: next
    title: g
    scope: docs
    ready: true
    dependencies: [done]
    allowed_paths: [docs/]
  - id: later
    title: h
    scope: docs
    ready: true
    allowed_paths: [docs/]
";

    fn view_with_attempts(task: &str, n: usize) -> TargetView {
        let mut view = TargetView::default();
        let t = view.tasks.entry(task.into()).or_default();
        for i in 0..n {
            t.attempts.push(AttemptView {
                id: format!("a{i}"),
                outcome: AttemptOutcome::Failed,
                started_ms: 0,
                finished_ms: Some(1),
                failure: Some("plugin".into()),
                digest: None,
                message: None,
            });
            t.attempts_total += 1;
        }
        view
    }

    /// A policy allowing 5 open PRs, `tried` with 2 failed attempts, `flying` in flight.
    fn fixture() -> (Policy, TargetView, Vec<String>) {
        let mut policy = Policy::default_policy();
        policy.max_open_prs = 5;
        let branches = vec!["agent/task-exec-attempt-flying-0badcafe".to_string()];
        (policy, view_with_attempts("tried", 2), branches)
    }

    #[test]
    fn every_passed_over_task_has_its_reason_and_the_first_runnable_wins() {
        let (policy, view, branches) = fixture();
        let state = TargetState {
            view: Some(&view),
            open_branches: &branches,
        };
        let plan = plan(&backlog(BACKLOG), &policy, &state);
        let reasons: Vec<(&str, &str)> = plan
            .skips
            .iter()
            .map(|(t, r, _)| (t.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("not-ready", "not_ready"),
                ("done", "status"),
                ("waits", "deps"),
                ("outside", "scope"),
                ("flying", "inflight"),
                ("tried", "attempts"),
            ]
        );
        assert_eq!(plan.newly_blocked, ["tried"]);
        assert_eq!(plan.decision, Decision::Run("next".into()));
    }

    #[test]
    fn explain_gives_every_task_the_reasons_a_pass_would() {
        let (mut policy, view, branches) = fixture();
        let state = TargetState {
            view: Some(&view),
            open_branches: &branches,
        };
        let b = backlog(BACKLOG);
        let (stop, tasks) = explain(&b, &policy, &state, false);
        assert_eq!(stop, None);
        let plan = plan(&b, &policy, &state);
        for (task, reason, _) in &plan.skips {
            let standing = &tasks.iter().find(|(t, _)| t == task).unwrap().1;
            assert!(
                matches!(standing, Standing::Skipped(r, _) if r == reason),
                "{task}: {standing:?}"
            );
        }
        assert_eq!(tasks[6], ("next".to_string(), Standing::Runs));
        assert_eq!(
            tasks[7],
            ("later".to_string(), Standing::Behind("next".into()))
        );
        let (stop, _) = explain(&b, &policy, &state, true);
        assert_eq!(stop.map(|s| s.0), Some(TargetStop::Paused));
        policy.max_open_prs = 1;
        let (stop, _) = explain(&b, &policy, &state, false);
        assert_eq!(stop.map(|s| s.0), Some(TargetStop::MaxOpenPrs));
    }

    #[test]
    fn target_guardrails_come_first() {
        let policy = Policy::default_policy();
        let b = backlog(BACKLOG);
        let none: Vec<String> = Vec::new();
        assert_eq!(gate(&policy, true), Some(TargetStop::Paused));
        assert_eq!(gate(&policy, false), None);
        let one = vec!["agent/task-exec-attempt-x-12345678".to_string()];
        let full = TargetState {
            view: None,
            open_branches: &one,
        };
        assert_eq!(
            plan(&b, &policy, &full).decision,
            Decision::Stop(TargetStop::MaxOpenPrs)
        );
        let broken = TargetView {
            circuit_breaker: Breaker {
                open: true,
                opened_ms: Some(1),
            },
            ..TargetView::default()
        };
        let open = TargetState {
            view: Some(&broken),
            open_branches: &none,
        };
        assert_eq!(
            plan(&b, &policy, &open).decision,
            Decision::Stop(TargetStop::CircuitOpen)
        );
        let mut off = policy.clone();
        off.autonomy_enabled = false;
        assert_eq!(gate(&off, false), Some(TargetStop::Disabled));
    }

    #[test]
    fn a_task_whose_completion_cannot_be_recorded_is_skipped_before_any_attempt() {
        let b = backlog(
            "tasks:\n  - {id: flow, title: a, scope: docs, ready: true, allowed_paths: [docs/]}\n  - id: block\n    title: b\n    scope: docs\n    ready: true\n    allowed_paths: [docs/]\n",
        );
        let policy = Policy::default_policy();
        let plan = plan(
            &b,
            &policy,
            &TargetState {
                view: None,
                open_branches: &[],
            },
        );
        assert_eq!(plan.decision, Decision::Run("block".into()));
        assert_eq!(plan.skips.len(), 1);
        let (task, reason, detail) = &plan.skips[0];
        assert_eq!((task.as_str(), *reason), ("flow", SkipReason::Format));
        assert!(detail.contains("line 2"), "{detail}");
    }

    #[test]
    fn a_task_with_a_misspelt_field_waits_instead_of_running_without_it() {
        let b = backlog(
            "tasks:\n  - id: first\n    title: a\n    scope: docs\n    ready: true\n    allowed_paths: [docs/]\n    dependecies: [second]\n  - id: second\n    title: b\n    scope: docs\n    ready: true\n    allowed_paths: [docs/]\n    changelog_section: Added\n",
        );
        let plan = plan(
            &b,
            &Policy::default_policy(),
            &TargetState {
                view: None,
                open_branches: &[],
            },
        );
        assert_eq!(plan.decision, Decision::Run("second".into()));
        let (task, reason, detail) = &plan.skips[0];
        assert_eq!((task.as_str(), *reason), ("first", SkipReason::Format));
        assert!(
            detail.contains("`dependecies`") && detail.contains("`dependencies`"),
            "{detail}"
        );
    }
}
