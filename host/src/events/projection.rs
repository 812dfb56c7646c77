//! The in-memory projection of the log: targets → tasks → attempts → PRs, with the
//! per-target counters the guardrails read (open PRs, consecutive failures, circuit
//! breaker, paused). Rebuilt from the log when it is opened and updated on every
//! append, so reads never scan the log.

use super::catalog::canonical_kind;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The parts of an event the projection reads. The payload is parsed only for the
/// few types whose payload matters, which keeps replay fast.
pub struct EventView<'a> {
    pub seq: u64,
    pub ts_ms: u64,
    pub kind: &'a str,
    pub target: Option<&'a str>,
    pub task: Option<&'a str>,
    pub attempt: Option<&'a str>,
    pub payload: Payload<'a>,
}

/// A payload, decoded or still raw JSON.
pub enum Payload<'a> {
    Value(&'a serde_json::Value),
    Raw(&'a serde_json::value::RawValue),
}

impl Payload<'_> {
    fn decoded(&self) -> Option<serde_json::Value> {
        match self {
            Payload::Value(v) => Some((*v).clone()),
            Payload::Raw(raw) => serde_json::from_str(raw.get()).ok(),
        }
    }

    /// The payload's string (or number, as text) fields named in `keys`, in order.
    fn strings<const N: usize>(&self, keys: [&str; N]) -> [Option<String>; N] {
        let value = self.decoded();
        keys.map(|k| match value.as_ref().and_then(|v| v.get(k)) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    }
}

/// The whole graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Projection {
    /// The last event applied.
    pub last_seq: u64,
    /// Host-wide pause (`autonomy.paused` without a target).
    pub paused: bool,
    /// When the last `scheduler.tick` happened (ms since the epoch).
    pub last_tick_ms: Option<u64>,
    pub targets: BTreeMap<String, TargetView>,
    /// Which target and task each attempt belongs to.
    #[serde(skip)]
    attempt_owner: HashMap<String, (String, String)>,
}

/// One target and its guardrail counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TargetView {
    pub paused: bool,
    pub open_prs: u32,
    pub consecutive_failures: u32,
    pub circuit_breaker: Breaker,
    pub attempts_succeeded: u64,
    pub attempts_failed: u64,
    pub last_event_seq: u64,
    pub tasks: BTreeMap<String, TaskView>,
}

/// A target's circuit breaker.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Breaker {
    pub open: bool,
    /// When it last opened (ms since the epoch).
    pub opened_ms: Option<u64>,
}

/// What the log says about a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Seen only in skips (or not at all).
    #[default]
    Pending,
    Selected,
    Running,
    Succeeded,
    Failed,
    InReview,
    Completed,
    Blocked,
}

/// One task of a target.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskView {
    pub status: TaskStatus,
    /// The reason of the most recent `task.skipped`.
    pub last_skip: Option<String>,
    pub attempts: Vec<AttemptView>,
    pub prs: Vec<PrView>,
}

/// How an attempt ended, or that it is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Running,
    Succeeded,
    Failed,
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptView {
    pub id: String,
    pub outcome: AttemptOutcome,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// The failure kind (`policy`, `plugin`, …) of a failed attempt.
    pub failure: Option<String>,
    /// The change digest of a successful attempt.
    pub digest: Option<String>,
}

/// The state of a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrState {
    Open,
    Merged,
    Closed,
}

/// One pull request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrView {
    /// The forge's identifier (a number on GitHub).
    pub pr: String,
    pub branch: Option<String>,
    pub url: Option<String>,
    pub attempt: Option<String>,
    pub state: PrState,
}

impl Projection {
    /// Folds one event into the graph. Events must arrive in sequence order.
    pub fn apply(&mut self, e: &EventView) {
        self.last_seq = e.seq;
        let kind = canonical_kind(e.kind);
        if kind == "scheduler.tick" {
            self.last_tick_ms = Some(e.ts_ms);
        }
        let Some(target_id) = e.target else {
            match kind {
                "autonomy.paused" => self.paused = true,
                "autonomy.resumed" => self.paused = false,
                _ => {}
            }
            return;
        };
        if let Some(attempt) = e.attempt
            && let Some(task) = e.task
            && kind == "attempt.started"
        {
            self.attempt_owner.insert(
                attempt.to_string(),
                (target_id.to_string(), task.to_string()),
            );
        }
        let target = self.targets.entry(target_id.to_string()).or_default();
        target.last_event_seq = e.seq;
        match kind {
            "autonomy.paused" => target.paused = true,
            "autonomy.resumed" => target.paused = false,
            "circuit_breaker.opened" => {
                target.circuit_breaker = Breaker {
                    open: true,
                    opened_ms: Some(e.ts_ms),
                }
            }
            "circuit_breaker.closed" => {
                target.circuit_breaker.open = false;
                target.consecutive_failures = 0;
            }
            "attempt.succeeded" => {
                target.attempts_succeeded += 1;
                target.consecutive_failures = 0;
            }
            "attempt.failed" => {
                target.attempts_failed += 1;
                target.consecutive_failures += 1;
            }
            _ => {}
        }
        let Some(task_id) = e.task else { return };
        let task = target.tasks.entry(task_id.to_string()).or_default();
        let open_delta = apply_to_task(task, kind, e);
        target.open_prs = target.open_prs.saturating_add_signed(open_delta);
    }

    /// The target and task an attempt belongs to.
    pub fn attempt_owner(&self, attempt: &str) -> Option<(&str, &str)> {
        self.attempt_owner
            .get(attempt)
            .map(|(t, k)| (t.as_str(), k.as_str()))
    }

    /// How many targets have an open circuit breaker.
    pub fn open_breakers(&self) -> usize {
        self.targets
            .values()
            .filter(|t| t.circuit_breaker.open)
            .count()
    }
}

/// Applies a task-level event; returns the change in the target's open PRs.
fn apply_to_task(task: &mut TaskView, kind: &str, e: &EventView) -> i32 {
    let attempt = e.attempt.map(str::to_string);
    let find_attempt = |task: &mut TaskView| -> Option<usize> {
        let id = attempt.as_deref()?;
        task.attempts.iter().rposition(|a| a.id == id)
    };
    match kind {
        "task.selected" => task.status = TaskStatus::Selected,
        "task.skipped" => {
            let [reason] = e.payload.strings(["reason"]);
            task.last_skip = reason;
        }
        "task.blocked" => task.status = TaskStatus::Blocked,
        "task.completed" => task.status = TaskStatus::Completed,
        "attempt.started" => {
            task.status = TaskStatus::Running;
            if let Some(id) = attempt.clone() {
                task.attempts.push(AttemptView {
                    id,
                    outcome: AttemptOutcome::Running,
                    started_ms: e.ts_ms,
                    finished_ms: None,
                    failure: None,
                    digest: None,
                });
            }
        }
        "attempt.succeeded" | "attempt.failed" => {
            let succeeded = kind == "attempt.succeeded";
            task.status = if succeeded {
                TaskStatus::Succeeded
            } else {
                TaskStatus::Failed
            };
            let [digest, failure] = e.payload.strings(["digest", "kind"]);
            if let Some(i) = find_attempt(task) {
                let a = &mut task.attempts[i];
                a.finished_ms = Some(e.ts_ms);
                if succeeded {
                    a.outcome = AttemptOutcome::Succeeded;
                    a.digest = digest;
                } else {
                    a.outcome = AttemptOutcome::Failed;
                    a.failure = failure;
                }
            }
        }
        "pr.opened" => {
            let [pr, branch, url] = e.payload.strings(["pr", "branch", "url"]);
            let Some(pr) = pr else { return 0 };
            task.status = TaskStatus::InReview;
            task.prs.push(PrView {
                pr,
                branch,
                url,
                attempt,
                state: PrState::Open,
            });
            return 1;
        }
        "pr.merged" | "pr.closed" => {
            let [pr] = e.payload.strings(["pr"]);
            let Some(view) = task
                .prs
                .iter_mut()
                .rev()
                .find(|p| pr.is_none() || Some(&p.pr) == pr.as_ref())
            else {
                return 0;
            };
            let was_open = view.state == PrState::Open;
            if kind == "pr.merged" {
                view.state = PrState::Merged;
                task.status = TaskStatus::Completed;
            } else {
                view.state = PrState::Closed;
                task.status = TaskStatus::Pending;
            }
            return if was_open { -1 } else { 0 };
        }
        _ => {}
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view<'a>(
        seq: u64,
        kind: &'a str,
        refs: [Option<&'a str>; 3],
        payload: &'a serde_json::Value,
    ) -> EventView<'a> {
        EventView {
            seq,
            ts_ms: seq * 10,
            kind,
            target: refs[0],
            task: refs[1],
            attempt: refs[2],
            payload: Payload::Value(payload),
        }
    }

    #[test]
    fn a_loop_through_pr_and_breaker() {
        let mut p = Projection::default();
        let null = json!(null);
        let t = [Some("t1"), Some("k1"), Some("a1")];
        p.apply(&view(1, "scheduler.tick", [None; 3], &null));
        p.apply(&view(2, "attempt.started", t, &null));
        let ok = json!({"digest": "d1"});
        p.apply(&view(3, "attempt.succeeded", t, &ok));
        let pr = json!({"pr": 7, "branch": "agent/x"});
        p.apply(&view(4, "pr.opened", t, &pr));
        let target = &p.targets["t1"];
        assert_eq!(target.open_prs, 1);
        assert_eq!(target.tasks["k1"].status, TaskStatus::InReview);
        assert_eq!(target.tasks["k1"].prs[0].pr, "7");
        assert_eq!(target.tasks["k1"].attempts[0].digest.as_deref(), Some("d1"));
        let merged = json!({"pr": "7"});
        p.apply(&view(
            5,
            "pr.merged",
            [Some("t1"), Some("k1"), None],
            &merged,
        ));
        assert_eq!(p.targets["t1"].open_prs, 0);
        assert_eq!(p.targets["t1"].tasks["k1"].status, TaskStatus::Completed);

        let f = [Some("t1"), Some("k2"), Some("a2")];
        p.apply(&view(6, "attempt.started", f, &null));
        let failed = json!({"kind": "policy"});
        p.apply(&view(7, "attempt.failed", f, &failed));
        assert_eq!(p.targets["t1"].consecutive_failures, 1);
        p.apply(&view(
            8,
            "circuit_breaker.opened",
            [Some("t1"), None, None],
            &null,
        ));
        assert_eq!(p.open_breakers(), 1);
        p.apply(&view(
            9,
            "circuit_breaker.closed",
            [Some("t1"), None, None],
            &null,
        ));
        assert_eq!(p.open_breakers(), 0);
        assert_eq!(p.targets["t1"].consecutive_failures, 0);
        assert_eq!(
            p.targets["t1"].tasks["k2"].attempts[0].failure.as_deref(),
            Some("policy")
        );
        assert_eq!(p.attempt_owner("a2"), Some(("t1", "k2")));
        assert_eq!(p.last_tick_ms, Some(10));
        assert_eq!(p.last_seq, 9);
    }

    #[test]
    fn pause_is_host_wide_or_per_target() {
        let mut p = Projection::default();
        let null = json!(null);
        p.apply(&view(1, "autonomy.paused", [None; 3], &null));
        assert!(p.paused);
        p.apply(&view(2, "autonomy.paused", [Some("t"), None, None], &null));
        p.apply(&view(3, "autonomy.resumed", [None; 3], &null));
        assert!(!p.paused);
        assert!(p.targets["t"].paused);
    }
}
