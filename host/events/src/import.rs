//! Import of the original Leviathan's NDJSON event store (`leviathan/graph/store.py`):
//! one JSON object per line, mapped to drafts of our catalogue.
//!
//! The original wrote flat objects whose type sits in `event_type` (or `type`), whose
//! references are `target_id` / `task_id` / `attempt_id` (top level or inside the
//! payload) and whose body is `payload` or `data`. Accepted per line:
//! - type: `event_type`, `type` or `kind` (required), mapped by
//!   [`super::catalog::map_legacy_kind`]; types without an equivalent keep their
//!   name under `legacy.`;
//! - references: `target_id`/`target`, `task_id`/`task`, `attempt_id`/`attempt`,
//!   looked up at the top level first, then in the payload;
//! - payload: `payload` or `data`; any other top-level fields are kept in it too;
//! - the original `event_id`/`id` and `timestamp`/`ts` are kept under
//!   `payload.imported` (our own sequence and time replace them).

use super::EventDraft;
use super::catalog::{lookup, map_legacy_kind, missing_ref};
use serde_json::{Map, Value};

/// A line that cannot be imported.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ImportError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

const TYPE_KEYS: [&str; 3] = ["event_type", "type", "kind"];
const REF_KEYS: [(&str, [&str; 2]); 3] = [
    ("target", ["target_id", "target"]),
    ("task", ["task_id", "task"]),
    ("attempt", ["attempt_id", "attempt"]),
];
const ID_KEYS: [&str; 2] = ["event_id", "id"];
const TIME_KEYS: [&str; 3] = ["timestamp", "ts", "created_at"];

/// Parses a whole NDJSON file into drafts; the first bad line fails the import, so
/// nothing is appended from a file that is not entirely valid. Blank lines are skipped.
pub fn parse_ndjson(file: &str, text: &str) -> Result<Vec<EventDraft>, ImportError> {
    let mut drafts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |field: &str, message: String| ImportError {
            file: file.to_string(),
            line: index + 1,
            field: field.to_string(),
            message,
        };
        let value: Value =
            serde_json::from_str(line).map_err(|e| err("line", format!("not JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(err("line", "expected a JSON object".into()));
        };
        drafts.push(draft_of(object).map_err(|(field, message)| err(&field, message))?);
    }
    Ok(drafts)
}

fn take_string(
    object: &mut Map<String, Value>,
    keys: &[&str],
) -> Result<Option<String>, (String, String)> {
    for key in keys {
        match object.remove(*key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if !s.is_empty() => return Ok(Some(s)),
            Some(Value::Number(n)) => return Ok(Some(n.to_string())),
            Some(other) => {
                return Err((
                    key.to_string(),
                    format!("expected a non-empty string, found {other}"),
                ));
            }
        }
    }
    Ok(None)
}

fn draft_of(mut object: Map<String, Value>) -> Result<EventDraft, (String, String)> {
    let original_type = take_string(&mut object, &TYPE_KEYS)?
        .ok_or_else(|| ("event_type".to_string(), "is required".to_string()))?;
    let kind = map_legacy_kind(&original_type);
    let mut payload = match object.remove("payload").or_else(|| object.remove("data")) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => Map::from_iter([("value".to_string(), other)]),
    };
    let mut refs: [Option<String>; 3] = [None, None, None];
    for (slot, (name, keys)) in refs.iter_mut().zip(REF_KEYS) {
        *slot = match take_string(&mut object, &keys)? {
            Some(v) => Some(v),
            None => {
                take_string(&mut payload, &keys).map_err(|(f, m)| (format!("payload.{f}"), m))?
            }
        };
        if let Some(v) = slot
            && v.len() > 256
        {
            return Err((name.to_string(), "longer than 256 characters".into()));
        }
    }
    let [target, task, attempt] = refs;
    if lookup(&kind).is_some()
        && let Some(field) = missing_ref(&kind, target.is_some(), task.is_some(), attempt.is_some())
    {
        return Err((
            format!("{field}_id"),
            format!("is required for `{original_type}` (imported as `{kind}`)"),
        ));
    }
    let mut imported = Map::new();
    imported.insert("type".into(), Value::String(original_type));
    for (name, keys) in [("id", &ID_KEYS[..]), ("timestamp", &TIME_KEYS[..])] {
        if let Some(v) = keys.iter().find_map(|k| object.remove(*k)) {
            imported.insert(name.into(), v);
        }
    }
    if kind.starts_with("pr.") {
        name_pr_fields(&mut payload);
    }
    // Whatever else the line carried stays with the event.
    payload.extend(object);
    payload.insert("imported".into(), Value::Object(imported));
    Ok(EventDraft {
        kind,
        target,
        task,
        attempt,
        payload: Value::Object(payload),
    })
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

    #[test]
    fn original_lines_map_to_catalogue_types() {
        let text = r#"{"event_id":"e1","event_type":"attempt.created","timestamp":"2025-01-02T03:04:05Z","actor_id":"worker","payload":{"target_id":"radix","task_id":"docs-1","attempt_id":"att-1"}}

{"event_type":"pr.created","target_id":"radix","task_id":"docs-1","attempt_id":"att-1","payload":{"pr_number":12}}
{"type":"graph.node_added","data":{"node":"x"}}
"#;
        let drafts = parse_ndjson("store.ndjson", text).unwrap();
        assert_eq!(drafts.len(), 3);
        assert_eq!(drafts[0].kind, "attempt.started");
        assert_eq!(
            (
                drafts[0].target.as_deref(),
                drafts[0].task.as_deref(),
                drafts[0].attempt.as_deref()
            ),
            (Some("radix"), Some("docs-1"), Some("att-1"))
        );
        assert_eq!(drafts[0].payload["imported"]["id"], "e1");
        assert_eq!(drafts[0].payload["imported"]["type"], "attempt.created");
        assert_eq!(drafts[0].payload["actor_id"], "worker");
        assert_eq!(drafts[1].kind, "pr.opened");
        assert_eq!(drafts[1].payload["pr"], 12);
        assert_eq!(drafts[2].kind, "legacy.graph.node_added");
        assert_eq!(drafts[2].payload["node"], "x");
    }

    #[test]
    fn a_bad_line_names_file_line_and_field() {
        let text =
            "{\"event_type\":\"x\"}\n{\"event_type\":\"attempt.failed\",\"target_id\":\"t\"}\n";
        let err = parse_ndjson("old.ndjson", text).unwrap_err().to_string();
        assert_eq!(
            err,
            "old.ndjson:2: task_id: is required for `attempt.failed` (imported as `attempt.failed`)"
        );
        let err = parse_ndjson("old.ndjson", "{\"event_type\": true}\n[1]\n").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (1, "event_type"));
        let err = parse_ndjson("old.ndjson", "{\"event_type\":\"a\"}\n[1]\n").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (2, "line"));
    }
}
