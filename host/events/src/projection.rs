//! The in-memory projection of the log: targets → tasks → attempts → PRs, with the
//! per-target counters the guardrails read (open PRs, consecutive failures, circuit
//! breaker, paused). Rebuilt from the log when it is opened and updated on every
//! append, so reads never scan the log.
//!
//! Its size depends on the targets and tasks, never on the history's length: a task
//! keeps its newest [`KEPT_ATTEMPTS`] attempts and, beside every open PR, its newest
//! [`KEPT_PRS`] merged or closed ones, with counters of all of them; older detail
//! is read from the log through its indexes.
//!
//! What it acts on: a client's event (`origin: client`) is stored and shown, never
//! acted on. Every other event must also be consistent with the host's own flow: an
//! outcome needs a running attempt of its target and task, a completion a succeeded
//! attempt, a PR record one of the host's agent branches of its task, a merge or close
//! an open record. Version 1 events carry no origin (clients could then write any
//! type), so they must also have the exact shape the host itself wrote (see
//! [`Projection::admits`]); the others are counted in `unverified_events` and ignored.

use super::catalog::canonical_kind;
use super::event::Origin;
use leviathan_domain::branches::{branch_name, is_branch_of};
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
    /// Who wrote it; `None` for a version 1 event.
    pub origin: Option<Origin>,
}

/// A payload, decoded or still raw JSON.
pub enum Payload<'a> {
    Value(&'a serde_json::Value),
    Raw(&'a serde_json::value::RawValue),
}

/// The payload fields the projection reads, borrowed raw from the stored bytes;
/// everything else is skipped without being decoded.
#[derive(Default, serde::Deserialize)]
struct PayloadFields<'a> {
    #[serde(borrow, default)]
    reason: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    digest: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    kind: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    pr: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    branch: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    url: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    entry: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    plugin: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    sha256: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    via: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    by: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    index: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    count: Option<&'a serde_json::value::RawValue>,
}

impl PayloadFields<'_> {
    fn raw(&self, key: &str) -> Option<&serde_json::value::RawValue> {
        match key {
            "reason" => self.reason,
            "digest" => self.digest,
            "kind" => self.kind,
            "pr" => self.pr,
            "branch" => self.branch,
            "url" => self.url,
            "entry" => self.entry,
            "plugin" => self.plugin,
            "sha256" => self.sha256,
            "via" => self.via,
            "by" => self.by,
            "message" => self.message,
            "index" => self.index,
            "count" => self.count,
            _ => None,
        }
    }
}

/// A string's text, or a number's; other JSON values are `None`.
fn scalar_text(raw: &serde_json::value::RawValue) -> Option<String> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str(text).ok()
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Some(text.to_string())
    } else {
        None
    }
}

/// One event's payload as the projection reads it: a raw payload is decoded at most
/// once, on the first field asked for, however many checks and updates read it.
struct Fields<'p, 'a> {
    payload: &'p Payload<'a>,
    decoded: std::cell::OnceCell<PayloadFields<'a>>,
}

impl<'a> Payload<'a> {
    fn fields(&self) -> Fields<'_, 'a> {
        Fields {
            payload: self,
            decoded: std::cell::OnceCell::new(),
        }
    }
}

impl Fields<'_, '_> {
    /// The payload's string (or number, as text) fields named in `keys`, in order.
    /// Only the keys [`PayloadFields`] knows can be read.
    fn strings<const N: usize>(&self, keys: [&str; N]) -> [Option<String>; N] {
        match self.payload {
            Payload::Value(v) => keys.map(|k| match v.get(k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            }),
            Payload::Raw(raw) => {
                let fields = self
                    .decoded
                    .get_or_init(|| serde_json::from_str(raw.get()).unwrap_or_default());
                keys.map(|k| fields.raw(k).and_then(scalar_text))
            }
        }
    }
}

/// The whole graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Projection {
    /// The last event applied.
    pub last_seq: u64,
    /// Host-wide pause (`autonomy.paused` without a target).
    pub paused: bool,
    /// When a scheduler pass last ended (ms since the epoch): noted by the pass
    /// itself ([`Projection::note_pass`]; liveness is not an event), or a
    /// `scheduler.tick` of a log written before that.
    pub last_tick_ms: Option<u64>,
    pub targets: BTreeMap<String, TargetView>,
    /// The shard this log belongs to (`index`, `count`), once a sharded start or
    /// `shards migrate` recorded it.
    pub shard: Option<(u32, u32)>,
    /// The plugin registry's entries as last recorded, by entry directory.
    pub plugins: BTreeMap<String, PluginView>,
    /// Who paused the whole host, why and when (while it is paused).
    pub pause: Option<PauseNote>,
    /// The newest failed attempts, newest last (at most [`RECENT_FAILURES`]).
    pub recent_failures: std::collections::VecDeque<FailureNote>,
    /// Events of the host's types that were not acted on because they do not fit the
    /// host's own flow (forged in a version 1 log, or inconsistent).
    pub unverified_events: u64,
    /// Which target and task each attempt belongs to.
    #[serde(skip)]
    attempt_owner: HashMap<String, AttemptSlot>,
}

/// How many failed attempts [`Projection::recent_failures`] keeps.
pub const RECENT_FAILURES: usize = 20;
/// The most bytes of a message a note keeps (cut on a character boundary).
pub const NOTE_BYTES: usize = 512;

/// Who paused, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PauseNote {
    pub seq: u64,
    pub ts_ms: u64,
    pub by: Option<String>,
    pub reason: Option<String>,
}

/// How a target's latest pass ended: skipped with a reason, or an attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PassNote {
    pub seq: u64,
    pub ts_ms: u64,
    /// `skipped`, `succeeded` or `failed`.
    pub outcome: String,
    /// The skip reason or the failure kind.
    pub reason: Option<String>,
    /// The skip's or failure's message, bounded.
    pub message: Option<String>,
}

/// One failed attempt, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FailureNote {
    pub seq: u64,
    pub ts_ms: u64,
    pub target: String,
    pub task: String,
    pub attempt: String,
    pub kind: Option<String>,
    pub message: Option<String>,
}

/// `text` cut to at most [`NOTE_BYTES`] on a character boundary.
fn bounded(text: Option<String>) -> Option<String> {
    text.map(|mut t| {
        if t.len() > NOTE_BYTES {
            let mut end = NOTE_BYTES;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
            t.push('…');
        }
        t
    })
}

/// A registry entry as the `plugin.*` events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PluginView {
    /// `loaded` or `rejected`.
    pub status: String,
    pub plugin: Option<String>,
    pub sha256: Option<String>,
    pub reason: Option<String>,
}

/// Where an attempt lives: its target and task.
#[derive(Debug, Clone, PartialEq)]
struct AttemptSlot {
    target: String,
    task: String,
}

/// How many attempts a task keeps in the projection (the newest; a running one is
/// dropped only when all of them are running).
pub const KEPT_ATTEMPTS: usize = 20;
/// How many merged or closed PRs a task keeps in the projection (the newest), beside
/// all of its open ones.
pub const KEPT_PRS: usize = 20;

/// One target and its guardrail counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct TargetView {
    pub paused: bool,
    pub open_prs: u32,
    pub consecutive_failures: u32,
    pub circuit_breaker: Breaker,
    pub attempts_succeeded: u64,
    pub attempts_failed: u64,
    pub last_event_seq: u64,
    /// Who paused the target, why and when (while it is paused).
    pub pause: Option<PauseNote>,
    /// How its latest pass ended, when the log says. A skip is recorded only when
    /// its reason changes, so this is the first pass of the current run of skips.
    pub last_pass: Option<PassNote>,
    /// When a pass last served the target (ms since the epoch; not an event).
    pub last_served_ms: Option<u64>,
    pub tasks: BTreeMap<String, TaskView>,
}

/// A target's circuit breaker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Breaker {
    pub open: bool,
    /// When it last opened (ms since the epoch).
    pub opened_ms: Option<u64>,
}

/// What the log says about a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct TaskView {
    pub status: TaskStatus,
    /// The reason of the most recent `task.skipped` since the task last ran (a
    /// skip is recorded only when this changes).
    pub last_skip: Option<String>,
    /// The newest attempts, oldest first (at most [`KEPT_ATTEMPTS`]).
    pub attempts: Vec<AttemptView>,
    /// Every attempt the task ever had.
    pub attempts_total: u64,
    /// Every open PR and the newest [`KEPT_PRS`] others, oldest first.
    pub prs: Vec<PrView>,
    /// Every PR the task ever had.
    pub prs_total: u64,
}

/// How an attempt ended, or that it is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Running,
    Succeeded,
    Failed,
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AttemptView {
    pub id: String,
    pub outcome: AttemptOutcome,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// The failure kind (`policy`, `plugin`, …) of a failed attempt.
    pub failure: Option<String>,
    /// The change digest of a successful attempt.
    pub digest: Option<String>,
    /// The failure's message, bounded to [`NOTE_BYTES`].
    pub message: Option<String>,
}

/// The state of a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrState {
    Open,
    Merged,
    Closed,
}

/// One pull request.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PrView {
    /// The forge's identifier (a number on GitHub).
    pub pr: String,
    pub branch: Option<String>,
    pub url: Option<String>,
    pub attempt: Option<String>,
    pub state: PrState,
}

impl Projection {
    /// Whether the projection acts on `e` (see the module documentation): a client's
    /// event never; another only when it fits the host's own flow, and a version 1
    /// event (no origin) only when it also has the exact shape the host wrote.
    pub fn admits(&self, kind: &str, e: &EventView) -> bool {
        self.admits_with(kind, e, &e.payload.fields())
    }

    fn admits_with(&self, kind: &str, e: &EventView, fields: &Fields) -> bool {
        let legacy = match e.origin {
            Some(Origin::Client) => return false,
            Some(_) => false,
            None => true,
        };
        let slot = |id: Option<&str>| {
            let id = id?;
            let s = self.attempt_owner.get(id)?;
            (Some(s.target.as_str()) == e.target && Some(s.task.as_str()) == e.task)
                .then(|| {
                    self.targets
                        .get(&s.target)?
                        .tasks
                        .get(&s.task)?
                        .attempts
                        .iter()
                        .find(|a| a.id == id)
                })
                .flatten()
        };
        match kind {
            "attempt.started" => {
                let (Some(task), Some(attempt)) = (e.task, e.attempt) else {
                    return false;
                };
                if self.attempt_owner.contains_key(attempt) {
                    return false;
                }
                if !legacy {
                    return true;
                }
                let [via, branch] = fields.strings(["via", "branch"]);
                match via.as_deref() {
                    Some("exec") => branch.is_none(),
                    Some("scheduler") => branch.as_deref() == Some(&branch_name(task, attempt)),
                    _ => false,
                }
            }
            "attempt.succeeded" | "attempt.failed" => {
                slot(e.attempt).is_some_and(|a| a.outcome == AttemptOutcome::Running)
            }
            "task.completed" => {
                slot(e.attempt).is_some_and(|a| a.outcome == AttemptOutcome::Succeeded)
            }
            "pr.opened" => {
                let (Some(task), [Some(_), Some(branch)]) =
                    (e.task, fields.strings(["pr", "branch"]))
                else {
                    return false;
                };
                if legacy {
                    e.attempt.is_some_and(|a| branch == branch_name(task, a))
                } else {
                    is_branch_of(&branch, task)
                }
            }
            "pr.merged" | "pr.closed" => {
                let [pr, branch] = fields.strings(["pr", "branch"]);
                let (Some(pr), Some(target), Some(task)) = (pr, e.target, e.task) else {
                    return false;
                };
                if legacy && branch.is_none() {
                    return false;
                }
                self.targets
                    .get(target)
                    .and_then(|t| t.tasks.get(task))
                    .is_some_and(|t| {
                        t.prs.iter().any(|p| {
                            p.state == PrState::Open
                                && p.pr == pr
                                && branch.as_ref().is_none_or(|b| p.branch.as_ref() == Some(b))
                        })
                    })
            }
            _ => true,
        }
    }

    /// Rebuilds what a checkpoint does not store: which target and task each kept
    /// attempt belongs to (each id once, in the order the attempts were admitted).
    pub fn rebuild_slots(&mut self) {
        self.attempt_owner.clear();
        for (target_id, target) in &self.targets {
            for (task_id, task) in &target.tasks {
                for a in &task.attempts {
                    self.attempt_owner
                        .entry(a.id.clone())
                        .or_insert_with(|| AttemptSlot {
                            target: target_id.clone(),
                            task: task_id.clone(),
                        });
                }
            }
        }
    }

    /// Notes that a scheduler pass ended at `ms`, having served `targets`: the
    /// pass's liveness, kept beside the graph rather than written as events.
    pub fn note_pass<'a>(&mut self, ms: u64, targets: impl IntoIterator<Item = &'a str>) {
        self.last_tick_ms = Some(ms);
        for t in targets {
            entry(&mut self.targets, t).last_served_ms = Some(ms);
        }
    }

    /// Whether a skip of `target` for `reason` would say something new: the
    /// target's latest pass was not already a skip for that reason.
    pub fn target_skip_is_news(&self, target: &str, reason: &str) -> bool {
        let last = self.targets.get(target).and_then(|t| t.last_pass.as_ref());
        !last.is_some_and(|p| p.outcome == "skipped" && p.reason.as_deref() == Some(reason))
    }

    /// Whether a skip of `task` of `target` for `reason` would say something new.
    pub fn task_skip_is_news(&self, target: &str, task: &str, reason: &str) -> bool {
        let last = self
            .targets
            .get(target)
            .and_then(|t| t.tasks.get(task))
            .and_then(|t| t.last_skip.as_deref());
        last != Some(reason)
    }

    /// Folds one event into the graph. Events must arrive in sequence order.
    pub fn apply(&mut self, e: &EventView) {
        self.last_seq = e.seq;
        let kind = canonical_kind(e.kind);
        let fields = e.payload.fields();
        if !self.admits_with(kind, e, &fields) {
            if e.origin != Some(Origin::Client) && super::catalog::lookup(kind).is_some() {
                self.unverified_events += 1;
            }
            return;
        }
        if kind == "scheduler.tick" {
            self.last_tick_ms = Some(e.ts_ms);
        }
        let Some(target_id) = e.target else {
            match kind {
                "autonomy.paused" => {
                    self.paused = true;
                    self.pause = Some(pause_note(e, &fields));
                }
                "autonomy.resumed" => {
                    self.paused = false;
                    self.pause = None;
                }
                "plugin.loaded" | "plugin.rejected" | "plugin.removed" => {
                    self.apply_plugin(kind, &fields)
                }
                "shards.configured" => {
                    let [index, count] = fields.strings(["index", "count"]);
                    if let (Some(Ok(index)), Some(Ok(count))) = (
                        index.map(|i| i.parse::<u32>()),
                        count.map(|c| c.parse::<u32>()),
                    ) {
                        self.shard = Some((index, count));
                    }
                }
                _ => {}
            }
            return;
        };
        let target = entry(&mut self.targets, target_id);
        target.last_event_seq = e.seq;
        match kind {
            "autonomy.paused" => {
                target.paused = true;
                target.pause = Some(pause_note(e, &fields));
            }
            "autonomy.resumed" => {
                target.paused = false;
                target.pause = None;
            }
            "target.skipped" => {
                let [reason, message] = fields.strings(["reason", "message"]);
                target.last_pass = Some(PassNote {
                    seq: e.seq,
                    ts_ms: e.ts_ms,
                    outcome: "skipped".into(),
                    reason,
                    message: bounded(message).filter(|m| !m.is_empty()),
                });
            }
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
                target.last_pass = Some(PassNote {
                    seq: e.seq,
                    ts_ms: e.ts_ms,
                    outcome: "succeeded".into(),
                    reason: None,
                    message: None,
                });
            }
            "attempt.failed" => {
                target.attempts_failed += 1;
                target.consecutive_failures += 1;
                let [failure, message] = fields.strings(["kind", "message"]);
                let message = bounded(message);
                target.last_pass = Some(PassNote {
                    seq: e.seq,
                    ts_ms: e.ts_ms,
                    outcome: "failed".into(),
                    reason: failure.clone(),
                    message: message.clone(),
                });
                if let (Some(task), Some(attempt)) = (e.task, e.attempt) {
                    if self.recent_failures.len() == RECENT_FAILURES {
                        self.recent_failures.pop_front();
                    }
                    self.recent_failures.push_back(FailureNote {
                        seq: e.seq,
                        ts_ms: e.ts_ms,
                        target: target_id.to_string(),
                        task: task.to_string(),
                        attempt: attempt.to_string(),
                        kind: failure,
                        message,
                    });
                }
            }
            _ => {}
        }
        let Some(task_id) = e.task else { return };
        let task = entry(&mut target.tasks, task_id);
        if kind == "attempt.started"
            && let Some(id) = e.attempt
        {
            let slot = AttemptSlot {
                target: target_id.to_string(),
                task: task_id.to_string(),
            };
            self.attempt_owner.insert(id.to_string(), slot);
        }
        let applied = apply_to_task(task, kind, e, &fields);
        target.open_prs = target.open_prs.saturating_add_signed(applied.open_delta);
        if let Some(dropped) = applied.dropped_attempt {
            self.attempt_owner.remove(&dropped);
        }
    }

    fn apply_plugin(&mut self, kind: &str, fields: &Fields) {
        let [entry, plugin, sha256, reason] =
            fields.strings(["entry", "plugin", "sha256", "reason"]);
        let Some(entry) = entry else { return };
        match kind {
            "plugin.removed" => {
                self.plugins.remove(&entry);
            }
            _ => {
                let loaded = kind == "plugin.loaded";
                self.plugins.insert(
                    entry,
                    PluginView {
                        status: if loaded { "loaded" } else { "rejected" }.into(),
                        plugin,
                        sha256,
                        reason,
                    },
                );
            }
        }
    }

    /// Folds one stored event into the graph (see [`Projection::apply`]): e.g. an
    /// attempt's own events into an empty projection, for an attempt older than
    /// those a task keeps.
    pub fn apply_event(&mut self, event: &super::Event) {
        self.apply(&super::store::view_of(event));
    }

    /// The target and task of an attempt the projection keeps.
    pub fn attempt_owner(&self, attempt: &str) -> Option<(&str, &str)> {
        self.attempt_owner
            .get(attempt)
            .map(|s| (s.target.as_str(), s.task.as_str()))
    }

    /// How many targets have an open circuit breaker.
    pub fn open_breakers(&self) -> usize {
        self.targets
            .values()
            .filter(|t| t.circuit_breaker.open)
            .count()
    }
}

/// Who paused, why and when, from an `autonomy.paused` event.
fn pause_note(e: &EventView, fields: &Fields) -> PauseNote {
    let [by, reason] = fields.strings(["by", "reason"]);
    PauseNote {
        seq: e.seq,
        ts_ms: e.ts_ms,
        by: bounded(by),
        reason: bounded(reason),
    }
}

/// The value under `key`, created on first use; later lookups do not allocate.
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// What applying a task-level event changed beyond the task.
#[derive(Default)]
struct Applied {
    /// The change in the target's open PRs.
    open_delta: i32,
    /// The attempt no longer kept, to forget its owner.
    dropped_attempt: Option<String>,
}

/// Removes the oldest attempt past [`KEPT_ATTEMPTS`] (the oldest finished one,
/// unless every one is running); returns its id.
fn drop_oldest_attempt(task: &mut TaskView) -> Option<String> {
    if task.attempts.len() <= KEPT_ATTEMPTS {
        return None;
    }
    let at = task
        .attempts
        .iter()
        .position(|a| a.outcome != AttemptOutcome::Running)
        .unwrap_or(0);
    Some(task.attempts.remove(at).id)
}

/// Removes the oldest merged or closed PRs past [`KEPT_PRS`].
fn drop_oldest_prs(task: &mut TaskView) {
    let mut others = task.prs.iter().filter(|p| p.state != PrState::Open).count();
    while others > KEPT_PRS {
        if let Some(at) = task.prs.iter().position(|p| p.state != PrState::Open) {
            task.prs.remove(at);
        }
        others -= 1;
    }
}

/// Applies a task-level event.
fn apply_to_task(task: &mut TaskView, kind: &str, e: &EventView, fields: &Fields) -> Applied {
    if matches!(kind, "task.selected" | "attempt.started") {
        // The task ran: a later skip starts a new run of skips.
        task.last_skip = None;
    }
    match kind {
        "task.selected" => task.status = TaskStatus::Selected,
        "task.skipped" => {
            let [reason] = fields.strings(["reason"]);
            task.last_skip = reason;
        }
        "task.blocked" => task.status = TaskStatus::Blocked,
        "task.completed" => task.status = TaskStatus::Completed,
        "attempt.started" => {
            task.status = TaskStatus::Running;
            if let Some(id) = e.attempt {
                task.attempts.push(AttemptView {
                    id: id.to_string(),
                    outcome: AttemptOutcome::Running,
                    started_ms: e.ts_ms,
                    finished_ms: None,
                    failure: None,
                    digest: None,
                    message: None,
                });
                task.attempts_total += 1;
                return Applied {
                    dropped_attempt: drop_oldest_attempt(task),
                    ..Applied::default()
                };
            }
        }
        "attempt.succeeded" | "attempt.failed" => {
            let succeeded = kind == "attempt.succeeded";
            task.status = if succeeded {
                TaskStatus::Succeeded
            } else {
                TaskStatus::Failed
            };
            let [digest, failure, message] = fields.strings(["digest", "kind", "message"]);
            let attempt = e
                .attempt
                .and_then(|id| task.attempts.iter_mut().rev().find(|a| a.id == id));
            if let Some(a) = attempt {
                a.finished_ms = Some(e.ts_ms);
                if succeeded {
                    a.outcome = AttemptOutcome::Succeeded;
                    a.digest = digest;
                } else {
                    a.outcome = AttemptOutcome::Failed;
                    a.failure = failure;
                    a.message = bounded(message);
                }
            }
        }
        "pr.opened" => {
            let [pr, branch, url] = fields.strings(["pr", "branch", "url"]);
            let Some(pr) = pr else {
                return Applied::default();
            };
            task.status = TaskStatus::InReview;
            task.prs.push(PrView {
                pr,
                branch,
                url,
                attempt: e.attempt.map(str::to_string),
                state: PrState::Open,
            });
            task.prs_total += 1;
            return Applied {
                open_delta: 1,
                ..Applied::default()
            };
        }
        "pr.merged" | "pr.closed" => {
            let [pr] = fields.strings(["pr"]);
            let Some(view) = task
                .prs
                .iter_mut()
                .rev()
                .find(|p| p.state == PrState::Open && Some(&p.pr) == pr.as_ref())
            else {
                return Applied::default();
            };
            if kind == "pr.merged" {
                view.state = PrState::Merged;
                task.status = TaskStatus::Completed;
            } else {
                view.state = PrState::Closed;
                task.status = TaskStatus::Pending;
            }
            drop_oldest_prs(task);
            return Applied {
                open_delta: -1,
                ..Applied::default()
            };
        }
        _ => {}
    }
    Applied::default()
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
            origin: Some(Origin::Host),
        }
    }

    fn legacy<'a>(
        seq: u64,
        kind: &'a str,
        refs: [Option<&'a str>; 3],
        payload: &'a serde_json::Value,
    ) -> EventView<'a> {
        EventView {
            origin: None,
            ..view(seq, kind, refs, payload)
        }
    }

    #[test]
    fn pauses_passes_and_failures_keep_their_reasons() {
        let mut p = Projection::default();
        let pause = json!({"by": "ops", "reason": "maintenance"});
        p.apply(&view(1, "autonomy.paused", [None, None, None], &pause));
        let note = p.pause.clone().unwrap();
        assert_eq!(
            (note.by.as_deref(), note.reason.as_deref()),
            (Some("ops"), Some("maintenance"))
        );
        p.apply(&view(2, "autonomy.resumed", [None, None, None], &json!({})));
        assert!(p.pause.is_none() && !p.paused);
        let skip = json!({"reason": "max_open_prs", "message": "1 open of at most 1"});
        p.apply(&view(3, "target.skipped", [Some("t"), None, None], &skip));
        let pass = p.targets["t"].last_pass.clone().unwrap();
        assert_eq!(
            (pass.outcome.as_str(), pass.reason.as_deref()),
            ("skipped", Some("max_open_prs"))
        );
        let null = serde_json::Value::Null;
        let long = json!({"kind": "limit", "message": "x".repeat(2000)});
        for i in 0..(RECENT_FAILURES as u64 + 2) {
            let id = format!("a{i}");
            p.apply(&view(
                10 + 2 * i,
                "attempt.started",
                [Some("t"), Some("k"), Some(&id)],
                &null,
            ));
            p.apply(&view(
                11 + 2 * i,
                "attempt.failed",
                [Some("t"), Some("k"), Some(&id)],
                &long,
            ));
        }
        assert_eq!(p.recent_failures.len(), RECENT_FAILURES);
        let newest = p.recent_failures.back().unwrap();
        assert_eq!(newest.attempt, format!("a{}", RECENT_FAILURES + 1));
        assert_eq!(newest.kind.as_deref(), Some("limit"));
        assert!(newest.message.as_ref().unwrap().len() <= NOTE_BYTES + '…'.len_utf8());
        assert_eq!(p.targets["t"].last_pass.as_ref().unwrap().outcome, "failed");
        let attempt = p.targets["t"].tasks["k"].attempts.last().unwrap();
        assert!(attempt.message.as_ref().unwrap().starts_with("xxx"));
    }

    #[test]
    fn a_long_history_keeps_the_newest_attempts_and_prs_and_counts_them_all() {
        let mut p = Projection::default();
        let null = json!(null);
        let mut seq = 0;
        let mut next = || {
            seq += 1;
            seq
        };
        // One attempt that never finishes, then many that each open and merge a PR.
        let hung = [Some("t"), Some("k"), Some("hung")];
        p.apply(&view(next(), "attempt.started", hung, &null));
        let rounds = 3 * KEPT_ATTEMPTS as u64;
        for i in 0..rounds {
            let id = format!("{i:08x}");
            let refs = [Some("t"), Some("k"), Some(id.as_str())];
            p.apply(&view(next(), "attempt.started", refs, &null));
            let ok = json!({"digest": format!("d{i}")});
            p.apply(&view(next(), "attempt.succeeded", refs, &ok));
            let pr = json!({"pr": i, "branch": branch_name("k", &id)});
            p.apply(&view(next(), "pr.opened", refs, &pr));
            if i + 1 < rounds {
                let done = json!({"pr": i});
                p.apply(&view(
                    next(),
                    "pr.merged",
                    [Some("t"), Some("k"), None],
                    &done,
                ));
            }
        }
        let task = &p.targets["t"].tasks["k"];
        assert_eq!(task.attempts_total, rounds + 1);
        assert_eq!(task.prs_total, rounds);
        assert_eq!(task.attempts.len(), KEPT_ATTEMPTS);
        // The running attempt is kept; the finished ones kept are the newest.
        assert_eq!(task.attempts[0].id, "hung");
        assert_eq!(
            task.attempts.last().unwrap().id,
            format!("{:08x}", rounds - 1)
        );
        assert_eq!(task.attempts[1].id, format!("{:08x}", rounds - 19));
        // Every open PR and the newest merged ones.
        assert_eq!(task.prs.len(), KEPT_PRS + 1);
        assert_eq!(task.prs.last().unwrap().state, PrState::Open);
        assert_eq!(task.prs[0].pr, (rounds - 1 - KEPT_PRS as u64).to_string());
        assert_eq!(p.targets["t"].open_prs, 1);
        // Owners are known for the kept attempts only, and only those take outcomes.
        assert_eq!(p.attempt_owner("hung"), Some(("t", "k")));
        assert_eq!(p.attempt_owner("00000000"), None);
        assert_eq!(p.attempt_owner.len(), KEPT_ATTEMPTS);
        p.apply(&view(
            next(),
            "attempt.failed",
            hung,
            &json!({"kind": "timeout"}),
        ));
        assert_eq!(
            p.targets["t"].tasks["k"].attempts[0].outcome,
            AttemptOutcome::Failed
        );
        let old = [Some("t"), Some("k"), Some("00000000")];
        p.apply(&view(next(), "attempt.failed", old, &null));
        assert_eq!(p.unverified_events, 1);
        // The last open PR still merges.
        let last = json!({"pr": rounds - 1});
        p.apply(&view(
            next(),
            "pr.merged",
            [Some("t"), Some("k"), None],
            &last,
        ));
        assert_eq!(p.targets["t"].open_prs, 0);
        assert_eq!(p.targets["t"].tasks["k"].prs.len(), KEPT_PRS);
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
        let pr = json!({"pr": 7, "branch": "agent/task-exec-attempt-k1-1a2b3c4d"});
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
    fn an_outcome_only_attaches_to_the_attempt_its_target_and_task_started() {
        let mut p = Projection::default();
        let null = json!(null);
        p.apply(&view(
            1,
            "attempt.started",
            [Some("t1"), Some("k1"), Some("a")],
            &null,
        ));
        let failed = json!({"kind": "plugin"});
        p.apply(&view(
            2,
            "attempt.failed",
            [Some("t2"), Some("k2"), Some("a")],
            &failed,
        ));
        let a = &p.targets["t1"].tasks["k1"].attempts[0];
        assert_eq!((a.outcome, a.finished_ms), (AttemptOutcome::Running, None));
        assert!(
            !p.targets.contains_key("t2"),
            "an outcome of no attempt is not acted on"
        );
        assert_eq!(p.targets["t1"].consecutive_failures, 0);
        p.apply(&view(
            3,
            "attempt.failed",
            [Some("t1"), Some("k1"), Some("a")],
            &failed,
        ));
        let a = &p.targets["t1"].tasks["k1"].attempts[0];
        assert_eq!(
            (a.outcome, a.failure.as_deref()),
            (AttemptOutcome::Failed, Some("plugin"))
        );
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

    #[test]
    fn client_events_are_never_acted_on() {
        let mut p = Projection::default();
        let null = json!(null);
        let mut paused = view(1, "autonomy.paused", [None; 3], &null);
        paused.origin = Some(Origin::Client);
        p.apply(&paused);
        assert!(!p.paused);
        assert_eq!(p.last_seq, 1);
        assert_eq!(
            p.unverified_events, 0,
            "a client event is not a forgery to count"
        );
    }

    /// What the probe forged through the API of the version that took any type: none
    /// of it fits what the host writes, so a version 1 log holding it replays without
    /// acting on it; the host's own version 1 events still count.
    #[test]
    fn forged_version_1_events_replay_without_acting() {
        let mut p = Projection::default();
        let t = |task, attempt| [Some("t"), Some(task), attempt];
        let forged_start = json!({"branch": "release"});
        p.apply(&legacy(
            1,
            "attempt.started",
            t("k", Some("a1")),
            &forged_start,
        ));
        let forged_pr = json!({"pr": 9, "branch": "release"});
        p.apply(&legacy(2, "pr.opened", t("k", Some("a1")), &forged_pr));
        let done = json!({"reason": "forged"});
        p.apply(&legacy(3, "task.completed", t("dep", None), &done));
        let ok = json!({"digest": "d"});
        p.apply(&legacy(4, "attempt.succeeded", t("k", Some("zz")), &ok));
        let failed = json!({"kind": "x"});
        p.apply(&legacy(5, "attempt.failed", t("k", Some("zz")), &failed));
        assert_eq!(p.unverified_events, 5);
        let target = &p.targets.get("t");
        assert!(target.is_none_or(|t| t.tasks.is_empty() && t.consecutive_failures == 0));

        // The host's own version 1 shapes.
        let attempt = "1a2b3c4d";
        let branch = leviathan_domain::branches::branch_name("k", attempt);
        let started = json!({"via": "scheduler", "branch": branch});
        p.apply(&legacy(
            6,
            "attempt.started",
            t("k", Some(attempt)),
            &started,
        ));
        p.apply(&legacy(7, "attempt.succeeded", t("k", Some(attempt)), &ok));
        let opened = json!({"pr": "1", "branch": branch});
        p.apply(&legacy(8, "pr.opened", t("k", Some(attempt)), &opened));
        let merged = json!({"pr": "1", "branch": branch});
        p.apply(&legacy(9, "pr.merged", t("k", None), &merged));
        let task = &p.targets["t"].tasks["k"];
        assert_eq!(task.status, TaskStatus::Completed);
        assert_eq!(task.prs[0].state, PrState::Merged);
        assert_eq!(p.unverified_events, 5);
        // A merge of a PR that is no longer open, or of another branch, is refused.
        p.apply(&legacy(10, "pr.merged", t("k", None), &merged));
        assert_eq!(p.unverified_events, 6);
    }

    #[test]
    fn host_events_must_fit_the_flow_too() {
        let mut p = Projection::default();
        let null = json!(null);
        let t = [Some("t"), Some("k"), Some("a")];
        p.apply(&view(1, "attempt.started", t, &null));
        p.apply(&view(2, "attempt.started", t, &null));
        assert_eq!(
            p.targets["t"].tasks["k"].attempts.len(),
            1,
            "a duplicate start"
        );
        let pr = json!({"pr": 3, "branch": "main"});
        p.apply(&view(3, "pr.opened", t, &pr));
        assert!(
            p.targets["t"].tasks["k"].prs.is_empty(),
            "not an agent branch"
        );
        let merged = json!({});
        p.apply(&view(4, "pr.merged", [Some("t"), Some("k"), None], &merged));
        assert_eq!(p.unverified_events, 3);
    }
}
