//! Editing a Markdown changelog: pure functions over text.

use leviathan_executor_sdk::{ExecError, Task};

/// The heading for entries without a date.
pub const UNRELEASED: &str = "Unreleased";

/// The section a task's entry goes under: its `date` field (YYYY-MM-DD) or
/// [`UNRELEASED`].
pub fn section_for(task: &Task) -> Result<String, ExecError> {
    let Some((_, date)) = task.parameters.iter().find(|(k, _)| k == "date") else {
        return Ok(UNRELEASED.into());
    };
    let date = date.trim();
    let b = date.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let month: u32 = date.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(0);
    let day: u32 = date.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(0);
    if !shaped || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(ExecError::InvalidTask(format!(
            "field `date`: `{date}` is not a YYYY-MM-DD date"
        )));
    }
    Ok(date.to_string())
}

/// Whether section `a` goes above section `b`: Unreleased first, then dates newest
/// first, other headings keep their place (they sort last).
fn above(a: &str, b: &str) -> bool {
    let rank = |s: &str| {
        if s == UNRELEASED {
            (0, String::new())
        } else if s.len() == 10 && s.as_bytes()[4] == b'-' {
            // Negate the date's order by comparing it reversed below.
            (1, s.to_string())
        } else {
            (2, String::new())
        }
    };
    match (rank(a), rank(b)) {
        ((1, da), (1, db)) => da > db,
        ((ra, _), (rb, _)) => ra < rb,
    }
}

/// `text` with the entry `- <title> (<id>)` added under `## <section>`, or `None`
/// when an entry for `id` is already there. A missing file is created.
pub fn add_entry(text: Option<&str>, section: &str, title: &str, id: &str) -> Option<String> {
    let marker = format!("({id})");
    let entry = format!("- {title} {marker}");
    let Some(text) = text else {
        return Some(format!("# Changelog\n\n## {section}\n\n{entry}\n"));
    };
    if text
        .lines()
        .any(|l| l.trim_end().ends_with(&marker) && l.trim_start().starts_with("- "))
    {
        return None;
    }
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let headings: Vec<(usize, String)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.strip_prefix("## ").map(|h| (i, h.trim().to_string())))
        .collect();
    if let Some(pos) = headings.iter().position(|(_, h)| h == section) {
        // After the section's last non-blank line.
        let start = headings[pos].0;
        let end = headings
            .get(pos + 1)
            .map(|(i, _)| *i)
            .unwrap_or(lines.len());
        let last = (start..end)
            .rev()
            .find(|i| !lines[*i].trim().is_empty())
            .unwrap_or(start);
        if last == start {
            lines.insert(start + 1, String::new());
            lines.insert(start + 2, entry);
        } else {
            lines.insert(last + 1, entry);
        }
    } else {
        let block = vec![format!("## {section}"), String::new(), entry, String::new()];
        let at = headings
            .iter()
            .find(|(_, h)| above(section, h))
            .map(|(i, _)| *i);
        match at {
            Some(i) => {
                lines.splice(i..i, block);
            }
            None => {
                if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    lines.push(String::new());
                }
                lines.extend(block);
                lines.pop();
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_file_and_is_idempotent() {
        let text = add_entry(None, UNRELEASED, "Add the guide", "docs-1").unwrap();
        assert_eq!(
            text,
            "# Changelog\n\n## Unreleased\n\n- Add the guide (docs-1)\n"
        );
        assert_eq!(
            add_entry(Some(&text), UNRELEASED, "Add the guide", "docs-1"),
            None
        );
    }

    #[test]
    fn appends_within_a_section_and_orders_new_sections() {
        let base = "# Changelog\n\nIntro kept.\n\n## 2026-01-10\n\n- Old (a)\n\n## 2025-12-01\n\n- Older (b)\n";
        let same = add_entry(Some(base), "2026-01-10", "New", "c").unwrap();
        assert_eq!(
            same,
            "# Changelog\n\nIntro kept.\n\n## 2026-01-10\n\n- Old (a)\n- New (c)\n\n## 2025-12-01\n\n- Older (b)\n"
        );
        let newer = add_entry(Some(base), "2026-02-01", "Newer", "d").unwrap();
        assert!(
            newer.contains("Intro kept.\n\n## 2026-02-01\n\n- Newer (d)\n\n## 2026-01-10"),
            "{newer}"
        );
        let between = add_entry(Some(base), "2025-12-24", "Mid", "e").unwrap();
        assert!(
            between.contains("- Old (a)\n\n## 2025-12-24\n\n- Mid (e)\n\n## 2025-12-01"),
            "{between}"
        );
        let oldest = add_entry(Some(base), "2024-01-01", "First", "f").unwrap();
        assert!(
            oldest.ends_with("- Older (b)\n\n## 2024-01-01\n\n- First (f)\n"),
            "{oldest}"
        );
        let unreleased = add_entry(Some(base), UNRELEASED, "Next", "g").unwrap();
        assert!(
            unreleased.contains("Intro kept.\n\n## Unreleased\n\n- Next (g)\n\n## 2026-01-10"),
            "{unreleased}"
        );
    }

    #[test]
    fn dates_are_validated() {
        let task = |date: &str| Task {
            parameters: vec![("date".into(), date.into())],
            ..Task::default()
        };
        assert_eq!(section_for(&task("2026-11-24")).unwrap(), "2026-11-24");
        assert!(section_for(&task("2026-13-01")).is_err());
        assert!(section_for(&task("yesterday")).is_err());
        assert_eq!(section_for(&Task::default()).unwrap(), UNRELEASED);
    }
}
