//! The completion write-back (issue #4): in `.leviathan/backlog.yaml`, set a task's
//! `status`, `ready`, `last_attempt_id`, `branch_name` and `completed_at`, editing only
//! those keys' lines and keeping every other byte (comments, order, quoting, line
//! endings). Existing keys keep their trailing comments; missing keys are added at the
//! end of the task's mapping, in that order (after its `id:` line when its last value
//! spans several lines). Every edit is checked before it is returned: the result is
//! parsed again and must read as the same document with only the task's completion
//! keys set, or the write-back is refused naming the task's line. The scheduler asks
//! the same question before it runs a task ([`crate::backlog::Backlog::completion_problem`]),
//! so a task whose completion cannot be recorded is refused up front, never after its
//! attempt.

use crate::backlog::MAX_BACKLOG;
use crate::yaml;
use serde_norway::Value;
use std::collections::BTreeMap;

/// What the write-back records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub attempt_id: String,
    pub branch_name: String,
    /// RFC 3339, e.g. `2026-11-24T22:58:46Z`.
    pub completed_at: String,
}

/// Why a backlog cannot be written back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteBackError {
    #[error("line {line}: {message}")]
    Unsupported { line: usize, message: String },
    #[error("no task with id `{0}` in the block-style `tasks:` list")]
    NoTask(String),
    /// The text is not a YAML document (the parser's message, which never quotes it).
    #[error("{0}")]
    Unparsable(String),
}

/// A line without its ending, the ending, and its indentation.
struct Line<'a> {
    body: &'a str,
    ending: &'a str,
}

impl Line<'_> {
    fn indent(&self) -> usize {
        self.body.len() - self.body.trim_start_matches(' ').len()
    }

    /// Blank or comment-only.
    fn is_filler(&self) -> bool {
        let t = self.body.trim();
        t.is_empty() || t.starts_with('#')
    }
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|raw| {
            let body = raw.trim_end_matches(['\n', '\r']);
            Line {
                body,
                ending: &raw[body.len()..],
            }
        })
        .collect()
}

/// A plain YAML scalar when it is unambiguous, else a double-quoted one.
fn scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
        && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"]
            .contains(&value.to_ascii_lowercase().as_str());
    if plain {
        value.to_string()
    } else {
        serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""))
    }
}

/// What follows `key:` on a mapping line (`body` without indentation or `- `) when
/// the line is that key: written plain, single- or double-quoted, with blanks
/// before the colon allowed, as YAML reads it; `None` for any other line.
fn after_key<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let rest = ["", "\"", "'"].into_iter().find_map(|quote| {
        body.strip_prefix(quote)?
            .strip_prefix(key)?
            .strip_prefix(quote)
    })?;
    let rest = rest.trim_start_matches([' ', '\t']).strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// Where a trailing comment starts in `text`: the first `#` after a blank that is
/// not inside a quoted scalar.
fn comment_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(b'"') if b == b'\\' => i += 1,
            Some(q) if b == q => {
                // A doubled single quote is an escaped one, not the end.
                if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None if (b == b'"' || b == b'\'')
                && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t')) =>
            {
                quote = Some(b)
            }
            None if b == b'#' && i > 0 && matches!(bytes[i - 1], b' ' | b'\t') => {
                return Some(i - 1);
            }
            None => {}
        }
        i += 1;
    }
    None
}

/// The value of `key: value` on a mapping line, with quotes and any comment removed;
/// `None` if the line is not that key.
fn key_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let value = without_comment(after_key(body, key)?).trim();
    Some(value.trim_matches(|c| c == '"' || c == '\''))
}

/// Replaces the value of `key` on `body`, keeping indentation, the key as written and
/// any trailing comment (the value is a one-line scalar: [`Item::editable`] checked it).
fn replace_value(body: &str, key: &str, value: &str) -> String {
    let rest = after_key(body.trim_start_matches(['-', ' ']), key).unwrap_or_default();
    let head = &body[..body.len() - rest.len()];
    // The value keeps the blanks that separated it from its key, and the comment
    // the spacing that separated it from the old value.
    let blanks = match rest.len() - rest.trim_start_matches([' ', '\t']).len() {
        0 => " ",
        n => &rest[..n],
    };
    let comment = match comment_start(rest) {
        Some(i) => &rest[rest[..i].trim_end().len().max(1)..],
        None => "",
    };
    format!("{head}{blanks}{value}{comment}")
}

/// One block-style item of the `tasks:` list: lines `start..end`, its keys at
/// `key_indent` (the first one may share the `- ` line).
struct Item {
    start: usize,
    end: usize,
    key_indent: usize,
    /// Why the item cannot be edited at all (a flow mapping, an anchor or alias).
    refused: Option<&'static str>,
}

/// The keys the write-back sets, in the order missing ones are added.
const KEYS: [&str; 5] = [
    "status",
    "ready",
    "last_attempt_id",
    "branch_name",
    "completed_at",
];

/// `body` without a trailing comment.
fn without_comment(body: &str) -> &str {
    match comment_start(body) {
        Some(i) => &body[..i],
        None => body,
    }
}

/// Whether a top-level line opens the `tasks:` mapping entry (plain or quoted key,
/// any comment after it).
fn is_tasks_key(body: &str) -> bool {
    let bare = without_comment(body).trim_end();
    bare == "tasks:" || bare == "\"tasks\":" || bare == "'tasks':"
}

fn unsupported(line: usize, message: impl Into<String>) -> WriteBackError {
    WriteBackError::Unsupported {
        line: line + 1,
        message: message.into(),
    }
}

/// The items of the top-level block-style `tasks:` list.
fn items(lines: &[Line]) -> Result<Vec<Item>, WriteBackError> {
    let Some(tasks_line) = lines.iter().position(|l| is_tasks_key(l.body)) else {
        return match lines.iter().position(|l| {
            let b = l.body.trim_start_matches(['"', '\'']);
            l.indent() == 0 && b.starts_with("tasks")
        }) {
            Some(i) => Err(unsupported(
                i,
                "the `tasks:` list must be block style (a `- ` line per task) for the host to record completions",
            )),
            None => Ok(Vec::new()),
        };
    };
    let Some(first) = lines[tasks_line + 1..]
        .iter()
        .position(|l| !l.is_filler())
        .map(|i| i + tasks_line + 1)
    else {
        return Ok(Vec::new());
    };
    let is_dash = |l: &Line| {
        let t = l.body.trim_start();
        t == "-" || t.starts_with("- ")
    };
    if !is_dash(&lines[first]) {
        if lines[first].indent() == 0 {
            // `tasks:` is empty and the next top-level key follows.
            return Ok(Vec::new());
        }
        return Err(unsupported(
            first,
            "the `tasks:` list must be block style (a `- ` line per task) for the host to record completions",
        ));
    }
    let item_indent = lines[first].indent();
    // The list ends at a line left of its items, or level with them but not an
    // item (the next top-level key when the items are not indented).
    let end_of_list = lines[first..]
        .iter()
        .position(|l| {
            !l.is_filler()
                && (l.indent() < item_indent || (l.indent() == item_indent && !is_dash(l)))
        })
        .map(|i| i + first)
        .unwrap_or(lines.len());
    let starts: Vec<usize> = (first..end_of_list)
        .filter(|&i| lines[i].indent() == item_indent && is_dash(&lines[i]))
        .collect();
    let mut found = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(end_of_list);
        let after_dash = &lines[start].body[item_indent + 1..];
        let rest = after_dash.trim_start_matches(' ');
        let mut refused = None;
        let key_indent = if rest.is_empty() || rest.starts_with('#') {
            // `-` alone: the keys start on the next line.
            match (start + 1..end).find(|&i| !lines[i].is_filler()) {
                Some(i) => lines[i].indent(),
                None => {
                    refused = Some("a task item without keys");
                    item_indent + 2
                }
            }
        } else if rest.starts_with(['{', '[', '*', '&', '!', '|', '>']) {
            refused = Some(
                "a task must be a block-style mapping (`- id: ...` and one key per line) for the host to record its completion",
            );
            item_indent + 2
        } else {
            item_indent + 1 + (after_dash.len() - rest.len())
        };
        found.push(Item {
            start,
            end,
            key_indent,
            refused,
        });
    }
    Ok(found)
}

impl Item {
    /// The `key: value` text of line `i` if it is one of this item's own keys.
    fn key_body<'a>(&self, lines: &'a [Line], i: usize) -> Option<&'a str> {
        let body = lines[i].body;
        if i == self.start {
            let t = body.trim_start();
            let rest = t.strip_prefix('-')?.trim_start_matches(' ');
            (!rest.is_empty()).then_some(rest)
        } else if lines[i].indent() == self.key_indent && !lines[i].is_filler() {
            Some(&body[self.key_indent..])
        } else {
            None
        }
    }

    /// The line holding `key`, if the item has it.
    fn find(&self, lines: &[Line], key: &str) -> Option<usize> {
        (self.start..self.end).find(|&i| {
            self.key_body(lines, i)
                .is_some_and(|b| key_value(b, key).is_some())
        })
    }

    /// Checks that each key the write-back sets is absent or a one-line plain
    /// scalar it can replace.
    fn editable(&self, lines: &[Line]) -> Result<(), WriteBackError> {
        if let Some(why) = self.refused {
            return Err(unsupported(self.start, why));
        }
        for key in KEYS {
            let Some(i) = self.find(lines, key) else {
                continue;
            };
            let body = self.key_body(lines, i).unwrap_or_default();
            let value = without_comment(after_key(body, key).unwrap_or_default()).trim();
            if value.starts_with(['|', '>', '[', '{', '&', '*', '!']) {
                return Err(unsupported(
                    i,
                    format!(
                        "`{key}` has a block, flow, anchor or tagged value; write it as a plain scalar"
                    ),
                ));
            }
            let continued = lines
                .get(i + 1)
                .is_some_and(|next| !next.is_filler() && next.indent() > self.key_indent);
            if value.is_empty() || continued {
                return Err(unsupported(
                    i,
                    format!("`{key}` must have its value on its own line, as a plain scalar"),
                ));
            }
        }
        Ok(())
    }
}

/// The position of the task `id` in the parsed document's `tasks` list.
fn task_index(document: &Value, id: &str) -> Option<usize> {
    document
        .get("tasks")?
        .as_sequence()?
        .iter()
        .position(|task| task.get("id").and_then(yaml::scalar_text).as_deref() == Some(id))
}

/// The first line ending in a carriage return alone (the write-back edits lines
/// ending in `\n` or `\r\n`; YAML also reads a lone `\r` as a line break).
fn lone_carriage_return(text: &str) -> Option<usize> {
    let at = text
        .as_bytes()
        .windows(2)
        .position(|w| w[0] == b'\r' && w[1] != b'\n')
        .or_else(|| text.ends_with('\r').then(|| text.len() - 1))?;
    Some(text[..at].matches('\n').count())
}

/// A backlog's text split for editing: its byte-order mark (kept in front of the
/// edited text, not read as a line's), its lines, and one item per task of the parsed
/// document, in the same order.
struct Prepared<'a> {
    bom: &'a str,
    lines: Vec<Line<'a>>,
    items: Vec<Item>,
    crlf: bool,
}

impl<'a> Prepared<'a> {
    fn new(text: &'a str, document: &Value) -> Result<Prepared<'a>, WriteBackError> {
        let (bom, body) = match text.strip_prefix('\u{feff}') {
            Some(rest) => ("\u{feff}", rest),
            None => ("", text),
        };
        if let Some(line) = lone_carriage_return(body) {
            return Err(unsupported(
                line,
                "a line ends in a carriage return alone; the host edits backlogs with `\\n` or `\\r\\n` line endings",
            ));
        }
        let lines = split_lines(body);
        let items = items(&lines)?;
        let listed = document
            .get("tasks")
            .and_then(Value::as_sequence)
            .map_or(0, Vec::len);
        if items.len() != listed {
            let at = lines.iter().position(|l| is_tasks_key(l.body)).unwrap_or(0);
            return Err(unsupported(
                at,
                "the `tasks:` list must be block style (a `- ` line per task) for the host to record completions",
            ));
        }
        Ok(Prepared {
            bom,
            lines,
            items,
            crlf: text.contains("\r\n"),
        })
    }

    /// The text with the completion written into the items `edited` (positions in
    /// the `tasks` list); each item's edit touches only its own lines.
    fn edit(&self, edited: &[usize], completion: &Completion) -> String {
        let mut out: Vec<String> = self
            .lines
            .iter()
            .map(|l| format!("{}{}", l.body, l.ending))
            .collect();
        for &index in edited {
            edit_item(
                &mut out,
                &self.lines,
                &self.items[index],
                completion,
                self.crlf,
            );
        }
        format!("{}{}", self.bom, out.concat())
    }
}

/// The completion keys as the edited text must read them back.
fn completion_values(completion: &Completion) -> [(&'static str, Value); 5] {
    [
        ("status", Value::String("completed".into())),
        ("ready", Value::Bool(false)),
        (
            "last_attempt_id",
            Value::String(completion.attempt_id.clone()),
        ),
        ("branch_name", Value::String(completion.branch_name.clone())),
        (
            "completed_at",
            Value::String(completion.completed_at.clone()),
        ),
    ]
}

/// Checks that `edited` reads as `before` with only the completion `values` set on
/// the tasks at `indices`: what the write-back promises, whatever the text's shape.
fn verify(
    before: &Value,
    indices: &[usize],
    values: &[(&str, Value)],
    edited: &str,
    line: usize,
) -> Result<(), WriteBackError> {
    let mut expected = before.clone();
    for &index in indices {
        let task = expected
            .get_mut("tasks")
            .and_then(|tasks| tasks.get_mut(index))
            .and_then(Value::as_mapping_mut);
        if let Some(task) = task {
            for (key, value) in values {
                task.insert(Value::String(key.to_string()), value.clone());
            }
        }
    }
    if too_large(edited) {
        return Err(unsupported(
            line,
            "recording this task's completion would take the backlog past its size limit; split the backlog or remove completed tasks",
        ));
    }
    match yaml::parse(std::path::Path::new(crate::backlog::BACKLOG_PATH), edited) {
        Ok(after) if after == expected => Ok(()),
        _ => Err(unsupported(
            line,
            "the host's edit of this task would not read back as its completion alone; write the task as a block-style mapping with one plain `key: value` per line",
        )),
    }
}

/// Whether `edited` is past [`MAX_BACKLOG`]: the host would commit a backlog it then
/// refuses to read.
fn too_large(edited: &str) -> bool {
    edited.len() as u64 > MAX_BACKLOG.bytes
}

/// `text` with the write-back of `task_id` applied. The edit is parsed again before it
/// is returned and must read as `text` with only the task's completion keys set;
/// anything else is an error naming the task's line, and nothing is returned.
pub fn write_back(
    text: &str,
    task_id: &str,
    completion: &Completion,
) -> Result<String, WriteBackError> {
    let before = yaml::parse(std::path::Path::new(crate::backlog::BACKLOG_PATH), text)
        .map_err(|e| WriteBackError::Unparsable(e.to_string()))?;
    let index =
        task_index(&before, task_id).ok_or_else(|| WriteBackError::NoTask(task_id.into()))?;
    let prepared = Prepared::new(text, &before)?;
    let item = &prepared.items[index];
    item.editable(&prepared.lines)?;
    let edited = prepared.edit(&[index], completion);
    verify(
        &before,
        &[index],
        &completion_values(completion),
        &edited,
        item.start,
    )?;
    Ok(edited)
}

/// How many bytes of edited text the check of one backlog parses at most: a backlog
/// whose edits do not read back is narrowed down by halves, and a hostile one (every
/// task in a shape the edit breaks, near the 1 MiB limit) must not cost a pass more
/// than about a second.
const CHECK_BUDGET_BYTES: usize = 32 << 20;

/// Every task of `text` (parsed as `before`) whose completion the write-back could not
/// record, with why. All edits are made at once and parsed once (the edits of different
/// tasks touch different lines); when they do not read back right, the tasks are
/// halved until the ones at fault are named, within [`CHECK_BUDGET_BYTES`] (tasks left
/// unchecked then are named as such, never passed as editable).
pub(crate) fn problems(text: &str, before: &Value) -> BTreeMap<String, WriteBackError> {
    let ids: Vec<String> = before
        .get("tasks")
        .and_then(Value::as_sequence)
        .map(|tasks| {
            tasks
                .iter()
                .map(|t| t.get("id").and_then(yaml::scalar_text).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let prepared = match Prepared::new(text, before) {
        Ok(prepared) => prepared,
        Err(e) => return ids.into_iter().map(|id| (id, e.clone())).collect(),
    };
    let mut check = Check {
        before,
        prepared: &prepared,
        probe: Completion {
            attempt_id: "att-00000000".into(),
            branch_name: "agent/task-exec-attempt-probe-00000000".into(),
            completed_at: "2000-01-01T00:00:00Z".into(),
        },
        budget: CHECK_BUDGET_BYTES,
        found: BTreeMap::new(),
    };
    let mut editable = Vec::new();
    for (index, item) in prepared.items.iter().enumerate() {
        match item.editable(&prepared.lines) {
            Ok(()) => editable.push(index),
            Err(e) => {
                check.found.insert(index, e);
            }
        }
    }
    check.narrow(&editable);
    check
        .found
        .into_iter()
        .map(|(index, e)| (ids[index].clone(), e))
        .collect()
}

/// The state of [`problems`]: what is found so far (by task position) and the bytes
/// left to parse.
struct Check<'a> {
    before: &'a Value,
    prepared: &'a Prepared<'a>,
    probe: Completion,
    budget: usize,
    found: BTreeMap<usize, WriteBackError>,
}

impl Check<'_> {
    /// Edits the tasks at `indices` at once and, when the result does not read back as
    /// their completion, each half again, down to the single tasks at fault.
    fn narrow(&mut self, indices: &[usize]) {
        let Some(&first) = indices.first() else {
            return;
        };
        let edited = self.prepared.edit(indices, &self.probe);
        if edited.len() > self.budget {
            for &index in indices {
                self.found.insert(
                    index,
                    unsupported(
                        self.prepared.items[index].start,
                        "not checked: the backlog's other tasks (in shapes the host cannot edit, or too near the backlog's size limit) used up the check's budget; fix those first",
                    ),
                );
            }
            return;
        }
        self.budget -= edited.len();
        let line = self.prepared.items[first].start;
        let values = completion_values(&self.probe);
        match verify(self.before, indices, &values, &edited, line) {
            Ok(()) => {}
            Err(e) if indices.len() == 1 => {
                self.found.insert(first, e);
            }
            Err(_) => {
                let (left, right) = indices.split_at(indices.len() / 2);
                self.narrow(left);
                self.narrow(right);
            }
        }
    }
}

/// Writes `item`'s completion keys into `out` (one string per line of `lines`):
/// present keys replaced in place, missing ones appended to the item's last line.
fn edit_item(out: &mut [String], lines: &[Line], item: &Item, completion: &Completion, crlf: bool) {
    let (start, end, key_indent) = (item.start, item.end, item.key_indent);
    let values = [
        "completed".to_string(),
        "false".to_string(),
        scalar(&completion.attempt_id),
        scalar(&completion.branch_name),
        serde_json::to_string(&completion.completed_at).unwrap_or_default(),
    ];
    let mut missing = Vec::new();
    for (key, value) in KEYS.into_iter().zip(values) {
        match item.find(lines, key) {
            Some(i) => {
                out[i] = format!(
                    "{}{}",
                    replace_value(lines[i].body, key, &value),
                    lines[i].ending
                );
            }
            None => missing.push(format!("{}{key}: {value}", " ".repeat(key_indent))),
        }
    }
    if missing.is_empty() {
        return;
    }
    let newline = if crlf { "\r\n" } else { "\n" };
    let last = (start..end)
        .rev()
        .find(|&i| !lines[i].is_filler())
        .unwrap_or(start);
    // After the last line if it holds a whole key (or list item) of the task;
    // after the `id:` line if the last value spans lines (a block scalar there
    // would take the added keys' line break into its value).
    let last = if last == start || lines[last].indent() == key_indent {
        last
    } else {
        item.find(lines, "id").unwrap_or(last)
    };
    let unterminated = lines[last].ending.is_empty();
    if unterminated {
        // The file ends without a newline: so will the added block.
        out[last].push_str(newline);
    }
    out[last].push_str(&missing.join(newline));
    if !unterminated {
        out[last].push_str(newline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion() -> Completion {
        Completion {
            attempt_id: "att-1a2b3c4d".into(),
            branch_name: "agent/task-exec-attempt-docs-1-1a2b3c4d".into(),
            completed_at: "2026-11-24T22:58:46Z".into(),
        }
    }

    #[test]
    fn edits_only_the_task_keys_and_keeps_every_other_byte() {
        let text = "# Backlog, edited by humans.\ntasks:\n  - id: docs-1  # the first\n    title: 'Quoted: title'\n    status: pending   # waiting\n    ready: true\n    allowed_paths: [docs/]\n\n  # next one\n  - id: \"docs-2\"\n    ready: true\nother: kept\n";
        let out = write_back(text, "docs-1", &completion()).unwrap();
        assert_eq!(
            out,
            "# Backlog, edited by humans.\ntasks:\n  - id: docs-1  # the first\n    title: 'Quoted: title'\n    status: completed   # waiting\n    ready: false\n    allowed_paths: [docs/]\n    last_attempt_id: att-1a2b3c4d\n    branch_name: agent/task-exec-attempt-docs-1-1a2b3c4d\n    completed_at: \"2026-11-24T22:58:46Z\"\n\n  # next one\n  - id: \"docs-2\"\n    ready: true\nother: kept\n"
        );
        let second = write_back(&out, "docs-2", &completion()).unwrap();
        let (before, item) = second.split_at(second.find("  - id: \"docs-2\"").unwrap());
        assert!(out.starts_with(before), "nothing before the task changes");
        assert_eq!(
            item,
            "  - id: \"docs-2\"\n    ready: false\n    status: completed\n    last_attempt_id: att-1a2b3c4d\n    branch_name: agent/task-exec-attempt-docs-1-1a2b3c4d\n    completed_at: \"2026-11-24T22:58:46Z\"\nother: kept\n"
        );
    }

    #[test]
    fn the_result_reads_back_as_completed_with_the_other_tasks_unchanged() {
        let text = "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: true\n    extra_field: kept\n  - id: b\n    title: B\n    scope: docs\n    ready: true\n";
        let out = write_back(text, "a", &completion()).unwrap();
        let file = std::path::Path::new(".leviathan/backlog.yaml");
        let before = crate::backlog::Backlog::from_text(file, text).unwrap();
        let after = crate::backlog::Backlog::from_text(file, &out).unwrap();
        let a = after.task("a").unwrap();
        assert_eq!((a.ready, a.status.as_deref()), (false, Some("completed")));
        let params = a.parameters();
        for (key, value) in [
            ("extra_field", "kept"),
            ("last_attempt_id", "att-1a2b3c4d"),
            ("branch_name", "agent/task-exec-attempt-docs-1-1a2b3c4d"),
            ("completed_at", "2026-11-24T22:58:46Z"),
        ] {
            assert!(
                params.iter().any(|(k, v)| k == key && v == value),
                "{key}: {params:?}"
            );
        }
        assert_eq!(after.task("b"), before.task("b"));
    }

    #[test]
    fn keys_as_yaml_writes_them_are_edited_in_place_and_a_byte_order_mark_is_kept() {
        let text = "\u{feff}tasks:\n  - \"id\": \"\\x74\"\n    'ready' : true # go\n    \"status\":\t\"pending # not a comment\"  # one\n";
        let out = write_back(text, "t", &completion()).unwrap();
        assert_eq!(
            out,
            "\u{feff}tasks:\n  - \"id\": \"\\x74\"\n    'ready' : false # go\n    \"status\":\tcompleted  # one\n    last_attempt_id: att-1a2b3c4d\n    branch_name: agent/task-exec-attempt-docs-1-1a2b3c4d\n    completed_at: \"2026-11-24T22:58:46Z\"\n"
        );
    }

    /// A backlog of `count` tasks; those in `broken` carry an explicit `? status` key,
    /// which the line editor cannot see and its edit turns into a duplicate key.
    fn many(count: usize, broken: &[usize]) -> String {
        let mut text = String::from("tasks:\n");
        for i in 0..count {
            text.push_str(&format!(
                "  - id: t{i}\n    title: T\n    scope: docs\n    ready: true\n"
            ));
            if broken.contains(&i) {
                text.push_str("    ? status\n    : pending\n");
            }
        }
        text
    }

    #[test]
    fn the_few_tasks_at_fault_among_many_are_named_and_only_they() {
        use crate::backlog::Backlog;
        let broken = [7, 150, 299];
        let text = many(300, &broken);
        let backlog =
            Backlog::from_text(std::path::Path::new(crate::backlog::BACKLOG_PATH), &text).unwrap();
        for i in 0..300 {
            let problem = backlog.completion_problem(&format!("t{i}"));
            if broken.contains(&i) {
                let why = problem.unwrap_or_else(|| panic!("t{i} passed"));
                assert!(why.contains("read back"), "t{i}: {why}");
                assert!(write_back(&text, &format!("t{i}"), &completion()).is_err());
            } else {
                assert_eq!(problem, None, "t{i}");
            }
        }
    }

    #[test]
    fn a_backlog_of_tasks_the_edit_breaks_is_refused_whole_within_the_check_budget() {
        use crate::backlog::Backlog;
        let count = 7000;
        let every: Vec<usize> = (0..count).collect();
        let text = many(count, &every);
        assert!(text.len() < 1 << 20, "within the backlog size limit");
        let backlog =
            Backlog::from_text(std::path::Path::new(crate::backlog::BACKLOG_PATH), &text).unwrap();
        let problems: Vec<String> = (0..count)
            .map(|i| {
                backlog
                    .completion_problem(&format!("t{i}"))
                    .unwrap_or_else(|| panic!("t{i} passed"))
            })
            .collect();
        // Halving down to every single task would parse the whole text thousands of
        // times; the budget stops it and names what it left unchecked.
        assert!(
            problems.iter().any(|why| why.contains("not checked")),
            "the budget was never reached"
        );
    }

    /// [`many`] padded with a comment to `size` bytes.
    fn padded(count: usize, size: usize) -> String {
        let mut text = many(count, &[]);
        let pad = size - text.len() - 2;
        text.push('#');
        text.push_str(&" ".repeat(pad));
        text.push('\n');
        assert_eq!(text.len(), size);
        text
    }

    #[test]
    fn a_completion_that_would_take_the_backlog_past_its_size_limit_is_refused_up_front() {
        use crate::backlog::Backlog;
        let file = std::path::Path::new(crate::backlog::BACKLOG_PATH);
        let limit = MAX_BACKLOG.bytes as usize;
        // One task's edit adds about 150 bytes: none fits in the last 100.
        let text = padded(10, limit - 100);
        let backlog = Backlog::from_text(file, &text).unwrap();
        for i in 0..10 {
            let why = backlog
                .completion_problem(&format!("t{i}"))
                .unwrap_or_else(|| panic!("t{i} passed"));
            let past = "would take the backlog past its size limit";
            assert!(why.contains(past), "t{i}: {why}");
            let refused = write_back(&text, &format!("t{i}"), &completion()).unwrap_err();
            assert!(refused.to_string().contains(past), "{refused}");
        }
        // In the last 1,000 bytes each task's own edit fits, though all twenty at
        // once do not: no task is refused, and each write-back is within the limit.
        let text = padded(20, limit - 1000);
        let backlog = Backlog::from_text(file, &text).unwrap();
        assert!(too_large(&edit_of_all(&text)));
        for i in 0..20 {
            assert_eq!(backlog.completion_problem(&format!("t{i}")), None, "t{i}");
            let out = write_back(&text, &format!("t{i}"), &completion()).unwrap();
            assert!(out.len() <= limit);
        }
    }

    /// Every task of `text` edited at once (what the up-front check tries first).
    fn edit_of_all(text: &str) -> String {
        let before = yaml::parse(std::path::Path::new("b.yaml"), text).unwrap();
        let prepared = Prepared::new(text, &before).unwrap();
        let all: Vec<usize> = (0..prepared.items.len()).collect();
        prepared.edit(&all, &completion())
    }

    #[test]
    fn a_second_write_back_replaces_values_in_place() {
        let text = "tasks:\n- id: t\n  ready: true\n";
        let once = write_back(text, "t", &completion()).unwrap();
        let again = Completion {
            attempt_id: "att-2".into(),
            ..completion()
        };
        let twice = write_back(&once, "t", &again).unwrap();
        assert_eq!(twice, once.replace("att-1a2b3c4d\n", "att-2\n"));
    }

    #[test]
    fn crlf_and_a_missing_final_newline_are_kept() {
        let text = "tasks:\r\n  - id: t\r\n    ready: true";
        let out = write_back(text, "t", &completion()).unwrap();
        assert_eq!(
            out,
            "tasks:\r\n  - id: t\r\n    ready: false\r\n    status: completed\r\n    last_attempt_id: att-1a2b3c4d\r\n    branch_name: agent/task-exec-attempt-docs-1-1a2b3c4d\r\n    completed_at: \"2026-11-24T22:58:46Z\""
        );
    }

    #[test]
    fn unknown_tasks_and_unsupported_values_are_errors() {
        assert_eq!(
            write_back("tasks:\n  - id: a\n", "b", &completion()),
            Err(WriteBackError::NoTask("b".into()))
        );
        let err = write_back(
            "tasks:\n  - id: a\n    status: |\n      pending\n",
            "a",
            &completion(),
        )
        .unwrap_err();
        assert!(
            matches!(err, WriteBackError::Unsupported { line: 3, .. }),
            "{err}"
        );
    }

    /// A small deterministic generator (xorshift), so the shapes are the same on
    /// every run and a failure names its case.
    struct Shapes(u64);

    impl Shapes {
        fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            options[(self.0 % options.len() as u64) as usize]
        }
    }

    /// One task item in a generated shape.
    fn item(g: &mut Shapes, id: &str, item_indent: usize) -> String {
        let pad = " ".repeat(item_indent);
        let dash = g.pick(&["- ", "-   ", "-\n"]);
        let key_pad = match dash {
            "-\n" => " ".repeat(item_indent + 2),
            d => " ".repeat(item_indent + d.len()),
        };
        let id_line = match g.pick(&["plain", "single", "double", "escaped", "quoted-key"]) {
            "plain" => format!("id: {id}"),
            "single" => format!("id: '{id}'"),
            // The same id written with a YAML escape: found by position, not by text.
            "escaped" => format!("id: \"\\x{:02x}\"", id.as_bytes()[0]),
            "quoted-key" => format!("\"id\" : {id}"),
            _ => format!("id: \"{id}\""),
        };
        let mut keys = vec![
            format!("title: 'Task {id}: a title'"),
            "scope: docs".to_string(),
            "allowed_paths: [docs/]".to_string(),
        ];
        keys.push(
            g.pick(&[
                "ready: true",
                "ready: true  # go",
                "ready : true",
                "'ready': true",
                "ready:\ttrue\t# go",
            ])
            .to_string(),
        );
        match g.pick(&["none", "plain", "commented", "quoted-key", "hash-inside"]) {
            "plain" => keys.push("status: pending".into()),
            "commented" => keys.push("status: pending   # waiting".into()),
            "quoted-key" => keys.push("\"status\"  :  pending".into()),
            "hash-inside" => keys.push("status: \"pending # not a comment\"  # one".into()),
            _ => {}
        }
        match g.pick(&["none", "list-at-key", "list-deeper", "block"]) {
            "list-at-key" => keys.push(format!(
                "acceptance_criteria:\n{key_pad}- one\n{key_pad}- 'two: three'"
            )),
            "list-deeper" => keys.push(format!("acceptance_criteria:\n{key_pad}  - one")),
            "block" => keys.push(format!(
                "description: |\n{key_pad}  status: not a key\n{key_pad}  - not an item"
            )),
            _ => {}
        }
        let at = if g.pick(&["first", "later"]) == "first" {
            0
        } else {
            2
        };
        keys.insert(at, id_line);
        let mut text = String::new();
        for (n, key) in keys.iter().enumerate() {
            match (n, dash) {
                (0, "-\n") => text.push_str(&format!("{pad}-\n{key_pad}{key}\n")),
                (0, d) => text.push_str(&format!("{pad}{d}{key}\n")),
                _ => text.push_str(&format!("{key_pad}{key}\n")),
            }
        }
        text
    }

    /// A generated backlog with tasks `a` and `b`.
    fn backlog(g: &mut Shapes) -> String {
        let header = g.pick(&[
            "tasks:",
            "tasks:   # the team's backlog",
            "tasks: #c",
            "\"tasks\":",
            "'tasks':",
        ]);
        let item_indent = g.pick(&["0", "2", "4"]).parse::<usize>().unwrap();
        let mut text = format!("# kept\n{header}\n");
        text.push_str(&item(g, "a", item_indent));
        match g.pick(&["none", "blank", "comment"]) {
            "blank" => text.push('\n'),
            "comment" => text.push_str(&format!("{}# next\n", " ".repeat(item_indent))),
            _ => {}
        }
        text.push_str(&item(g, "b", item_indent));
        if g.pick(&["end", "more"]) == "more" {
            text.push_str("other: kept\n");
        }
        if g.pick(&["lf", "crlf"]) == "crlf" {
            text = text.replace('\n', "\r\n");
        }
        if g.pick(&["newline", "none"]) == "none" {
            text.truncate(text.trim_end_matches(['\r', '\n']).len());
        }
        if g.pick(&["plain", "plain", "bom"]) == "bom" {
            text.insert(0, '\u{feff}');
        }
        text
    }

    /// A generated backlog in a shape YAML reads but the line editor may not: each
    /// must be refused up front or written back correctly, never accepted and then
    /// corrupted.
    fn hostile(g: &mut Shapes) -> String {
        let keys = "title: A\n    scope: docs\n    allowed_paths: [docs/]";
        let task_a = match g.pick(&[
            "explicit-key",
            "explicit-status",
            "flow-item",
            "tagged-ready",
            "anchored-status",
            "multi-line-status",
            "status-next-line",
            "ready-no-space",
            "quoted-dash",
            "key-inside-a-quoted-value",
        ]) {
            "explicit-key" => format!("  - id: a\n    {keys}\n    ? ready\n    : true\n"),
            "explicit-status" => {
                format!("  - id: a\n    {keys}\n    ready: true\n    ? status\n    : pending\n")
            }
            "flow-item" => {
                "  - {id: a, title: A, scope: docs, allowed_paths: [docs/], ready: true}\n".into()
            }
            "tagged-ready" => format!("  - id: a\n    {keys}\n    ready: !!bool true\n"),
            "anchored-status" => {
                format!("  - id: a\n    {keys}\n    ready: true\n    status: &s pending\n")
            }
            "multi-line-status" => {
                format!("  - id: a\n    {keys}\n    ready: true\n    status: \"pen\n      ding\"\n")
            }
            "status-next-line" => {
                format!("  - id: a\n    {keys}\n    ready: true\n    status:\n      pending\n")
            }
            "ready-no-space" => {
                format!("  - id: a\n    {keys}\n    ready: true\n    status:pending: x\n")
            }
            // A continuation line of a quoted scalar that looks like a key at the
            // task's indentation: the edit parses, but not as the completion.
            "key-inside-a-quoted-value" => format!(
                "  - id: a\n    {keys}\n    ready: true\n    description: \"first\n    status: pending\n    last\"\n"
            ),
            _ => format!("  - \"id\": a\n    {keys}\n    \"ready\" : true\n"),
        };
        let header = g.pick(&["tasks:", "tasks: !!seq", "\"tasks\" :"]);
        let mut text = format!("{header}\n{task_a}  - id: b\n    {keys}\n    ready: true\n");
        match g.pick(&["lf", "crlf", "cr"]) {
            "crlf" => text = text.replace('\n', "\r\n"),
            "cr" => text = text.replace('\n', "\r"),
            _ => {}
        }
        text
    }

    #[test]
    fn a_backlog_the_parser_accepts_is_written_back_correctly_or_refused_up_front() {
        use crate::backlog::Backlog;
        let file = std::path::Path::new(".leviathan/backlog.yaml");
        let mut g = Shapes(0x2545_f491_4f6c_dd1d);
        let (mut refused, mut written) = (0, 0);
        for case in 0..2000 {
            let text = hostile(&mut g);
            let Ok(before) = Backlog::from_text(file, &text) else {
                continue;
            };
            for task in &before.tasks {
                let problem = before.completion_problem(&task.id);
                let result = write_back(&text, &task.id, &completion());
                match (problem, result) {
                    (Some(why), Err(_)) => {
                        assert!(why.contains("line "), "case {case}: {why}\n{text}");
                        refused += 1;
                    }
                    (None, Ok(out)) => {
                        let after = Backlog::from_text(file, &out).unwrap_or_else(|e| {
                            panic!("case {case}: the result does not parse: {e}\n{out}")
                        });
                        let done = after.task(&task.id).unwrap();
                        assert_eq!(
                            (done.ready, done.status.as_deref()),
                            (false, Some("completed")),
                            "case {case}\n{out}"
                        );
                        written += 1;
                    }
                    (problem, result) => panic!(
                        "case {case}: {}: the up-front answer {problem:?} and the write-back {:?} disagree\n{text}",
                        task.id,
                        result.map(|_| "written")
                    ),
                }
            }
        }
        // Both outcomes occur: the generator reaches the shapes it is meant to.
        assert!(
            refused > 100 && written > 100,
            "{refused} refused, {written} written"
        );
    }

    #[test]
    fn every_generated_backlog_the_parser_accepts_is_written_back_correctly() {
        use crate::backlog::Backlog;
        let file = std::path::Path::new(".leviathan/backlog.yaml");
        let mut g = Shapes(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            let text = backlog(&mut g);
            let before = Backlog::from_text(file, &text).unwrap_or_else(|e| {
                panic!("case {case}: a supported shape is refused: {e}\n{text}")
            });
            for (done, other) in [("a", "b"), ("b", "a")] {
                assert_eq!(
                    before.completion_problem(done),
                    None,
                    "case {case}: a supported shape is refused up front\n{text}"
                );
                let out = write_back(&text, done, &completion())
                    .unwrap_or_else(|e| panic!("case {case}: {done}: {e}\n{text}"));
                let after = Backlog::from_text(file, &out).unwrap_or_else(|e| {
                    panic!("case {case}: {done}: the result does not parse: {e}\n{out}")
                });
                let task = after.task(done).unwrap();
                assert_eq!(
                    (task.ready, task.status.as_deref()),
                    (false, Some("completed")),
                    "case {case}: {done}\n{out}"
                );
                assert_eq!(
                    after.task(other),
                    before.task(other),
                    "case {case}: {other} unchanged\n{out}"
                );
                let mut unchanged = before.task(done).unwrap().clone();
                let mut written = task.clone();
                (unchanged.ready, unchanged.status) = (false, None);
                (written.ready, written.status) = (false, None);
                let recorded = ["last_attempt_id", "branch_name", "completed_at"];
                unchanged
                    .extra
                    .retain(|k, _| !recorded.contains(&k.as_str()));
                written.extra.retain(|k, _| !recorded.contains(&k.as_str()));
                assert_eq!(
                    written, unchanged,
                    "case {case}: only the completion keys change\n{out}"
                );
                // A second write-back edits the same lines: nothing is added twice.
                let again = write_back(&out, done, &completion()).unwrap();
                assert_eq!(again, out, "case {case}: {done}");
            }
        }
    }

    #[test]
    fn shapes_the_write_back_cannot_edit_are_named_by_the_parser_with_the_line() {
        use crate::backlog::Backlog;
        let file = std::path::Path::new(".leviathan/backlog.yaml");
        for (text, line) in [
            (
                "tasks: [{id: a, title: A, scope: docs, ready: true}]\n",
                "line 1",
            ),
            (
                "tasks:\n  - {id: a, title: A, scope: docs, ready: true}\n",
                "line 2",
            ),
            (
                "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: true\n    status: >\n      pending\n",
                "line 6",
            ),
            (
                "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready:\n      true\n",
                "line 5",
            ),
            (
                "base: &b\n  scope: docs\ntasks:\n  - &t\n    id: a\n    title: A\n    scope: docs\n    ready: true\n",
                "line 4",
            ),
        ] {
            let backlog = Backlog::from_text(file, text).expect(text);
            let why = backlog
                .completion_problem("a")
                .unwrap_or_else(|| panic!("{text}"));
            assert!(
                why.contains(line) && why.contains("completion"),
                "{text}: {why}"
            );
            assert!(write_back(text, "a", &completion()).is_err(), "{text}");
        }
    }
}
