//! Import of the original Leviathan's NDJSON journal (`leviathan/graph/events.py`):
//! one JSON object per line, its hash chain verified before anything is written, each
//! event mapped to a draft of our catalogue, and a last `import.completed` event that
//! carries the original's head hash into our own chain.
//!
//! Per line:
//! - type: `event_type`, `type` or `kind` (required), mapped by
//!   [`super::catalog::map_legacy_kind`];
//! - references: `target_id`/`target`, `task_id`/`task`, `attempt_id`/`attempt`,
//!   looked up at the top level first, then in the payload;
//! - payload: `payload` or `data`; any other top-level fields are kept in it too;
//! - the original `event_id`/`id` and `timestamp`/`ts` are kept under
//!   `payload.imported` (our own sequence and time replace them).
//!
//! Every event the original stored is kept. One the catalogue requires references
//! for but the original did not record (its API accepted `task.completed` with only a
//! `task_id`), and one of a type we have no equivalent for, is stored under
//! `legacy.<its type>` with the reason in `payload.imported.legacy`: the scheduler and
//! the projection never act on the legacy namespace. The [`Report`] counts both.

use super::EventDraft;
use super::catalog::{LEGACY_NAMESPACE, legacy_kind, lookup, map_legacy_kind, missing_ref};
use super::original::{ChainCheck, pyjson::PyValue, verify_chain};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The type of the event that closes an imported segment.
pub const IMPORT_COMPLETED: &str = "import.completed";

/// A journal that cannot be imported; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ImportError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// What happened to the events of one original type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeReport {
    /// Our type for it (`legacy.…` when there is no equivalent).
    pub imported_as: String,
    /// Imported as that type.
    pub as_is: usize,
    /// Kept under `legacy.` instead.
    pub legacy: usize,
    /// Why, with how many events each.
    pub reasons: BTreeMap<String, usize>,
}

/// Per original type, what the import did.
pub type Report = BTreeMap<String, TypeReport>;

/// A journal read, verified and mapped, ready to append in one batch.
#[derive(Debug)]
pub struct Journal {
    /// The original's events, then the `import.completed` record.
    pub drafts: Vec<EventDraft>,
    pub report: Report,
    pub chain: ChainCheck,
}

impl Journal {
    /// How many of the original's events it holds.
    pub fn events(&self) -> usize {
        self.drafts.len().saturating_sub(1)
    }
}

const TYPE_KEYS: [&str; 3] = ["event_type", "type", "kind"];
const REF_KEYS: [(&str, [&str; 2]); 3] = [
    ("target", ["target_id", "target"]),
    ("task", ["task_id", "task"]),
    ("attempt", ["attempt_id", "attempt"]),
];
const ID_KEYS: [&str; 2] = ["event_id", "id"];
const TIME_KEYS: [&str; 3] = ["timestamp", "ts", "created_at"];
/// A reference longer than this is not one (the event is kept as legacy).
const MAX_REF: usize = 256;

/// Reads a whole journal. The chain is verified first: its first break refuses the
/// whole file, naming line, event and field, unless `allow_broken` (a journal known to
/// be broken), which the `import.completed` record then states. A line that is not a
/// JSON object, or has no type, refuses the file too. Blank lines are skipped.
pub fn read_journal(file: &str, text: &str, allow_broken: bool) -> Result<Journal, ImportError> {
    let err = |line: usize, field: &str, message: String| ImportError {
        file: file.to_string(),
        line,
        field: field.to_string(),
        message,
    };
    let mut events = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value =
            PyValue::parse(line).map_err(|e| err(index + 1, "line", format!("not JSON: {e}")))?;
        if !matches!(value, PyValue::Dict(_)) {
            return Err(err(index + 1, "line", "expected a JSON object".into()));
        }
        events.push((index + 1, value));
    }
    let chain = verify_chain(&events);
    if let (Some(b), false) = (&chain.first_break, allow_broken) {
        return Err(err(
            b.line,
            b.field,
            format!(
                "event {}: {}; the original's hash chain is broken here, so nothing was imported (pass --allow-broken-chain to import a journal known to be broken)",
                b.event_id, b.reason
            ),
        ));
    }
    let mut report = Report::new();
    let mut drafts = Vec::with_capacity(events.len() + 1);
    for (line, value) in &events {
        let Value::Object(object) = value.to_json() else {
            unreachable!("checked to be a dict above")
        };
        let (original, mapped, draft, legacy) =
            draft_of(object).map_err(|(field, message)| err(*line, &field, message))?;
        let entry = report.entry(original).or_default();
        entry.imported_as = mapped;
        match legacy {
            Some(reason) => {
                entry.legacy += 1;
                *entry.reasons.entry(reason).or_default() += 1;
            }
            None => entry.as_is += 1,
        }
        drafts.push(draft);
    }
    if !drafts.is_empty() {
        drafts.push(custody(file, drafts.len(), &chain, &report));
    }
    Ok(Journal {
        drafts,
        report,
        chain,
    })
}

/// The `import.completed` record: what the segment before it came from and how far
/// the original's chain vouches for it.
fn custody(file: &str, events: usize, chain: &ChainCheck, report: &Report) -> EventDraft {
    let mut payload = json!({
        "file": file,
        "events": events,
        "chain": if chain.first_break.is_none() { "verified" } else { "broken" },
        "verified_events": chain.verified,
        "original_head": chain.head,
        "report": report,
    });
    if let Some(b) = &chain.first_break {
        payload["first_break"] = json!({
            "line": b.line,
            "event_id": b.event_id,
            "field": b.field,
            "reason": b.reason,
        });
    }
    EventDraft {
        kind: IMPORT_COMPLETED.into(),
        payload,
        ..EventDraft::default()
    }
}

fn as_ref_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first of `keys` in `object` that holds a usable reference, taken out of it.
fn take_ref(object: &mut Map<String, Value>, keys: &[&str]) -> Option<String> {
    let key = keys
        .iter()
        .find(|k| object.get(**k).and_then(as_ref_string).is_some())?;
    object.remove(*key).as_ref().and_then(as_ref_string)
}

/// What one line becomes.
type Mapped = (String, String, EventDraft, Option<String>);

/// One line's original type, our type for it, its draft, and why it is kept as
/// legacy instead (if it is).
fn draft_of(mut object: Map<String, Value>) -> Result<Mapped, (String, String)> {
    let original = TYPE_KEYS
        .iter()
        .find_map(|k| object.remove(*k))
        .ok_or_else(|| ("event_type".to_string(), "is required".to_string()))?;
    let original = match original {
        Value::String(s) if !s.is_empty() => s,
        _ => {
            return Err((
                "event_type".to_string(),
                "expected a non-empty string".into(),
            ));
        }
    };
    let mapped = map_legacy_kind(&original);
    let mut payload = match object.remove("payload").or_else(|| object.remove("data")) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => Map::from_iter([("value".to_string(), other)]),
    };
    let mut refs: [Option<String>; 3] = [None, None, None];
    let mut legacy = None;
    for (slot, (name, keys)) in refs.iter_mut().zip(REF_KEYS) {
        *slot = take_ref(&mut object, &keys).or_else(|| take_ref(&mut payload, &keys));
        if slot.as_ref().is_some_and(|v| v.len() > MAX_REF) {
            // Kept where the original had it, but not used as a reference.
            payload.insert(
                format!("{name}_id"),
                Value::String(slot.take().unwrap_or_default()),
            );
            legacy.get_or_insert(format!("{name}_id longer than {MAX_REF} characters"));
        }
    }
    let [target, task, attempt] = refs;
    if lookup(&mapped).is_none() {
        legacy.get_or_insert("no equivalent type in the host's catalogue".to_string());
    } else if let Some(field) =
        missing_ref(&mapped, target.is_some(), task.is_some(), attempt.is_some())
    {
        legacy.get_or_insert(format!("no {field}_id (required for `{mapped}`)"));
    }
    let kind = match (&legacy, mapped.starts_with(LEGACY_NAMESPACE)) {
        (Some(_), false) => legacy_kind(&original),
        _ => mapped.clone(),
    };
    let mut imported = Map::new();
    imported.insert("type".into(), Value::String(original.clone()));
    for (name, keys) in [("id", &ID_KEYS[..]), ("timestamp", &TIME_KEYS[..])] {
        if let Some(v) = keys.iter().find_map(|k| object.remove(*k)) {
            imported.insert(name.into(), v);
        }
    }
    if let Some(reason) = &legacy {
        imported.insert("legacy".into(), Value::String(reason.clone()));
    }
    if kind.starts_with("pr.") {
        name_pr_fields(&mut payload);
    }
    // Whatever else the line carried (`actor_id`, `prev_hash`, `hash`) stays with it.
    payload.extend(object);
    payload.insert("imported".into(), Value::Object(imported));
    let draft = EventDraft {
        kind,
        target,
        task,
        attempt,
        payload: Value::Object(payload),
    };
    Ok((original, mapped, draft, legacy))
}

/// Adds our PR payload names (`pr`, `branch`, `url`) where the original used its
/// own (`pr_number`, `branch_name`, `pr_url`, …); the original fields stay.
fn name_pr_fields(payload: &mut Map<String, Value>) {
    for (ours, theirs) in [
        ("pr", ["pr_number", "number", "pr_id"]),
        ("branch", ["branch_name", "head", "head_branch"]),
        ("url", ["pr_url", "html_url", "url"]),
    ] {
        if payload.contains_key(ours) {
            continue;
        }
        if let Some(v) = theirs.iter().find_map(|k| payload.get(*k)).cloned() {
            payload.insert(ours.to_string(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOURNAL: &str = include_str!("../../../tests/fixtures/original/journal.ndjson");

    #[test]
    fn every_event_of_the_originals_journal_is_kept_and_counted() {
        let journal = read_journal("events.ndjson", JOURNAL, false).unwrap();
        assert_eq!(journal.events(), 10);
        let kinds: Vec<&str> = journal.drafts.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "legacy.target.registered",
                "legacy.task.created",
                "attempt.started",
                "attempt.started",
                "legacy.attempt.started",
                "legacy.artifact.created",
                "pr.opened",
                "attempt.succeeded",
                "legacy.task.completed",
                "legacy.attempt.invalidated",
                IMPORT_COMPLETED,
            ]
        );
        let loose = &journal.drafts[8];
        assert_eq!(loose.task.as_deref(), Some("docs-api"));
        assert_eq!(loose.payload["status"], "completed");
        assert_eq!(
            loose.payload["imported"]["legacy"],
            "no target_id (required for `task.completed`)"
        );
        assert_eq!(loose.payload["imported"]["id"], "5b0c1d2e-0009");
        let started = &journal.report["attempt.started"];
        assert_eq!((started.as_is, started.legacy), (1, 1));
        assert_eq!(started.imported_as, "attempt.started");
        assert_eq!(
            started.reasons["no target_id (required for `attempt.started`)"],
            1
        );
        assert_eq!(journal.report["attempt.created"].as_is, 1);
        let pr = &journal.drafts[6];
        assert_eq!(
            (pr.payload["pr"].clone(), pr.payload["branch"].clone()),
            (
                json!(64),
                json!("agent/task-exec-attempt-docs-api-7f3a9c01")
            )
        );
        // Floats, big integers and non-ASCII text survive into our log.
        let task = &journal.drafts[1].payload;
        assert_eq!(task["tiny"], json!(1e-5));
        assert_eq!(task["big"], "1180591620717411303424");
        assert!(task["title"].as_str().unwrap().contains("café API ☃ 𝄞"));

        let record = &journal.drafts[10].payload;
        assert_eq!(record["chain"], "verified");
        assert_eq!(record["events"], 10);
        assert_eq!(record["original_head"], journal.chain.head.clone().unwrap());
    }

    #[test]
    fn a_broken_chain_refuses_the_file_unless_allowed_and_then_says_so() {
        let tampered = JOURNAL.replacen("\"attempt_number\":1", "\"attempt_number\":2", 1);
        let err = read_journal("events.ndjson", &tampered, false).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (3, "hash"));
        assert!(
            err.to_string()
                .starts_with("events.ndjson:3: hash: event 5b0c1d2e-0003: "),
            "{err}"
        );
        assert!(
            !err.to_string().contains("attempt_number"),
            "never quotes content: {err}"
        );

        let journal = read_journal("events.ndjson", &tampered, true).unwrap();
        assert_eq!(journal.events(), 10);
        let record = &journal.drafts[10].payload;
        assert_eq!(record["chain"], "broken");
        assert_eq!(record["verified_events"], 2);
        assert_eq!(record["first_break"]["line"], 3);
    }

    #[test]
    fn lines_that_are_not_events_refuse_the_file() {
        let err = read_journal("old.ndjson", "{\"event_type\": true}\n", true).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (1, "event_type"));
        let err = read_journal("old.ndjson", "{\"event_type\":\"a\"}\n[1]\n", true).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (2, "line"));
        let err = read_journal("old.ndjson", "\n{\"event_type\":\"a\"\n", true).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (2, "line"));
        let err = read_journal("old.ndjson", "{\"event_type\":\"a\"}\n", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "old.ndjson:1: hash: event (none): is missing: the original's store wrote one on every line; the original's hash chain is broken here, so nothing was imported (pass --allow-broken-chain to import a journal known to be broken)"
        );
    }
}
