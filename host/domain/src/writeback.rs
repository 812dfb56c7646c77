//! The completion write-back (issue #4): in `.leviathan/backlog.yaml`, set a task's
//! `status`, `ready`, `last_attempt_id`, `branch_name` and `completed_at`, editing only
//! those keys' lines and keeping every other byte (comments, order, quoting, line
//! endings). Existing keys keep their trailing comments; missing keys are added at the
//! end of the task's mapping, in that order (after its `id:` line when its last value
//! spans several lines). Tasks the write-back could not edit are listed by the
//! parser ([`uneditable`]) and never run.

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

/// The value of `key: value` on a mapping line (`body` without indentation or `- `),
/// with quotes removed; `None` if the line is not that key.
fn key_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let rest = body.strip_prefix(key)?.strip_prefix(':')?;
    let value = rest.split(" #").next().unwrap_or(rest).trim();
    Some(value.trim_matches(|c| c == '"' || c == '\''))
}

/// Replaces the value of `key` on `body`, keeping indentation and any trailing comment
/// (the value is a one-line plain scalar: [`Item::editable`] checked it).
fn replace_value(body: &str, key: &str, value: &str) -> String {
    let at = body.find(&format!("{key}:")).unwrap_or(0);
    let (head, rest) = body.split_at(at + key.len() + 1);
    // The comment keeps the spacing that separated it from the old value.
    let comment = match rest.find(" #") {
        Some(i) => {
            let before = &rest[..i];
            &rest[before.trim_end().len().max(1)..]
        }
        None => "",
    };
    format!("{head} {value}{comment}")
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

/// `body` without a trailing ` #` comment.
fn without_comment(body: &str) -> &str {
    match body.find(" #") {
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
        } else if rest.starts_with(['{', '[', '*', '&', '!', '"', '\'', '|', '>']) {
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

    fn id<'a>(&self, lines: &'a [Line]) -> Option<&'a str> {
        if self.refused.is_some() {
            return None;
        }
        self.find(lines, "id")
            .and_then(|i| self.key_body(lines, i))
            .and_then(|b| key_value(b, "id"))
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
            let value = without_comment(&body[key.len() + 1..]).trim();
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

/// The tasks of `ids` whose completion the write-back could not record in `text`,
/// each with why (naming the line). The scheduler never runs such a task, so no
/// attempt does its work only to fail at the write-back.
pub fn uneditable(text: &str, ids: &[&str]) -> std::collections::BTreeMap<String, String> {
    let mut found = std::collections::BTreeMap::new();
    if ids.is_empty() {
        return found;
    }
    let why = |e: WriteBackError| {
        format!("{e} (the host records a task's completion by editing its lines in place)")
    };
    let lines = split_lines(text);
    let items = match items(&lines) {
        Ok(items) => items,
        Err(e) => {
            let message = why(e);
            for id in ids {
                found.insert(id.to_string(), message.clone());
            }
            return found;
        }
    };
    let by_id: std::collections::HashMap<&str, &Item> = items
        .iter()
        .filter_map(|item| item.id(&lines).map(|id| (id, item)))
        .collect();
    for id in ids {
        let problem = match by_id.get(id) {
            Some(item) => item.editable(&lines).err(),
            None => Some(match items.iter().find(|item| item.id(&lines).is_none()) {
                Some(item) => unsupported(
                    item.start,
                    "a task must be a block-style mapping with its `id:` on a line of its own",
                ),
                None => WriteBackError::NoTask(id.to_string()),
            }),
        };
        if let Some(e) = problem {
            found.insert(id.to_string(), why(e));
        }
    }
    found
}

/// `text` with the write-back of `task_id` applied.
pub fn write_back(
    text: &str,
    task_id: &str,
    completion: &Completion,
) -> Result<String, WriteBackError> {
    let lines = split_lines(text);
    let items = items(&lines)?;
    let item = items
        .iter()
        .find(|item| item.id(&lines) == Some(task_id))
        .ok_or_else(|| WriteBackError::NoTask(task_id.into()))?;
    item.editable(&lines)?;
    let (start, end, key_indent) = (item.start, item.end, item.key_indent);
    let values = [
        "completed".to_string(),
        "false".to_string(),
        scalar(&completion.attempt_id),
        scalar(&completion.branch_name),
        serde_json::to_string(&completion.completed_at).unwrap_or_default(),
    ];
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| format!("{}{}", l.body, l.ending))
        .collect();
    let mut missing = Vec::new();
    for (key, value) in KEYS.into_iter().zip(values) {
        match item.find(&lines, key) {
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
    if !missing.is_empty() {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
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
            item.find(&lines, "id").unwrap_or(last)
        };
        let unterminated = lines[last].ending.is_empty();
        if unterminated {
            // The file ends without a newline: so will the added block.
            out[last].push_str(newline);
        }
        let mut block = missing.join(newline);
        if !unterminated {
            block.push_str(newline);
        }
        out.insert(last + 1, block);
    }
    Ok(out.concat())
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
        let id_line = match g.pick(&["plain", "single", "double"]) {
            "plain" => format!("id: {id}"),
            "single" => format!("id: '{id}'"),
            _ => format!("id: \"{id}\""),
        };
        let mut keys = vec![
            format!("title: 'Task {id}: a title'"),
            "scope: docs".to_string(),
            "allowed_paths: [docs/]".to_string(),
        ];
        keys.push(g.pick(&["ready: true", "ready: true  # go"]).to_string());
        match g.pick(&["none", "plain", "commented"]) {
            "plain" => keys.push("status: pending".into()),
            "commented" => keys.push("status: pending   # waiting".into()),
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
        text
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
                .uneditable
                .get("a")
                .unwrap_or_else(|| panic!("{text}"));
            assert!(
                why.contains(line) && why.contains("completion"),
                "{text}: {why}"
            );
            assert!(write_back(text, "a", &completion()).is_err(), "{text}");
        }
    }
}
