//! The completion write-back (issue #4): in `.leviathan/backlog.yaml`, set a task's
//! `status`, `ready`, `last_attempt_id`, `branch_name` and `completed_at`, editing only
//! those keys' lines and keeping every other byte (comments, order, quoting, line
//! endings). Existing keys keep their trailing comments; missing keys are added at the
//! end of the task's mapping, in that order.

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

/// Replaces the value of `key` on `body`, keeping indentation and any trailing comment.
fn replace_value(
    body: &str,
    key: &str,
    value: &str,
    line: usize,
) -> Result<String, WriteBackError> {
    let at = body.find(&format!("{key}:")).unwrap_or(0);
    let (head, rest) = body.split_at(at + key.len() + 1);
    let old = rest.split(" #").next().unwrap_or(rest).trim();
    if old.starts_with(['|', '>', '[', '{', '&', '*', '!']) {
        return Err(WriteBackError::Unsupported {
            line,
            message: format!(
                "`{key}` has a block, flow, anchor or tagged value; write it as a plain scalar"
            ),
        });
    }
    // The comment keeps the spacing that separated it from the old value.
    let comment = match rest.find(" #") {
        Some(i) => {
            let before = &rest[..i];
            &rest[before.trim_end().len().max(1)..]
        }
        None => "",
    };
    Ok(format!("{head} {value}{comment}"))
}

/// `text` with the write-back of `task_id` applied.
pub fn write_back(
    text: &str,
    task_id: &str,
    completion: &Completion,
) -> Result<String, WriteBackError> {
    let lines = split_lines(text);
    let tasks_line = lines
        .iter()
        .position(|l| l.body.trim_end() == "tasks:" || l.body.starts_with("tasks: #"))
        .ok_or_else(|| WriteBackError::NoTask(task_id.into()))?;
    // The items of the sequence: lines starting with `- ` at the first item's indent.
    let first_item = lines[tasks_line + 1..]
        .iter()
        .position(|l| !l.is_filler())
        .map(|i| i + tasks_line + 1)
        .filter(|&i| lines[i].body.trim_start().starts_with("- "))
        .ok_or_else(|| WriteBackError::NoTask(task_id.into()))?;
    let item_indent = lines[first_item].indent();
    let key_indent = item_indent + 2;
    let end_of_list = lines[first_item..]
        .iter()
        .position(|l| !l.is_filler() && l.indent() < item_indent)
        .map(|i| i + first_item)
        .unwrap_or(lines.len());
    let starts: Vec<usize> = (first_item..end_of_list)
        .filter(|&i| {
            lines[i].indent() == item_indent && lines[i].body.trim_start().starts_with("- ")
        })
        .collect();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(end_of_list);
        let key_body = |i: usize| -> Option<&str> {
            let body = lines[i].body;
            if i == start {
                body.trim_start().strip_prefix("- ")
            } else if lines[i].indent() == key_indent {
                Some(&body[key_indent..])
            } else {
                None
            }
        };
        if lines[start].body.trim_start().starts_with("- {") {
            continue;
        }
        let is_task =
            (start..end).any(|i| key_body(i).and_then(|b| key_value(b, "id")) == Some(task_id));
        if !is_task {
            continue;
        }
        let edits = [
            ("status", "completed".to_string()),
            ("ready", "false".to_string()),
            ("last_attempt_id", scalar(&completion.attempt_id)),
            ("branch_name", scalar(&completion.branch_name)),
            (
                "completed_at",
                serde_json::to_string(&completion.completed_at).unwrap_or_default(),
            ),
        ];
        let mut out: Vec<String> = lines
            .iter()
            .map(|l| format!("{}{}", l.body, l.ending))
            .collect();
        let mut missing = Vec::new();
        for (key, value) in edits {
            match (start..end).find(|&i| key_body(i).is_some_and(|b| key_value(b, key).is_some())) {
                Some(i) => {
                    out[i] = format!(
                        "{}{}",
                        replace_value(lines[i].body, key, &value, i + 1)?,
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
        return Ok(out.concat());
    }
    Err(WriteBackError::NoTask(task_id.into()))
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
}
