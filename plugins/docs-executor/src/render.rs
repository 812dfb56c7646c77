//! Output path choice and Markdown rendering for docs tasks.

use leviathan_executor_sdk::paths::choose_output;
use leviathan_executor_sdk::{ExecError, Task};
use std::borrow::Cow;

/// The kind of document a task asks for, which picks the body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// A pull-request template: criteria become `- [ ]` checkboxes.
    PullRequestTemplate,
    /// Any other template.
    Template,
    /// Rules the team or the agent operates under.
    OperatingRules,
    /// An operational runbook.
    Runbook,
    /// Anything else: one numbered subsection per criterion.
    Generic,
}

/// The repository-relative path the docs executor writes for `task`.
pub fn output_path(task: &Task) -> Result<String, ExecError> {
    choose_output(&task.allowed_paths, "md", &file_name(&task.id))
}

/// The file name for a task id: upper-cased, `-` as `_`, with `.md` (built in one
/// string: the executor's work is measured per allocation).
fn file_name(id: &str) -> String {
    let mut name = String::with_capacity(id.len() + 3);
    for c in id.chars() {
        match c {
            '-' => name.push('_'),
            c if c.is_ascii() => name.push(c.to_ascii_uppercase()),
            c => name.extend(c.to_uppercase()),
        }
    }
    name.push_str(".md");
    name
}

/// The words of a text, lower-cased, split at every character that is not
/// alphanumeric. A word already in lower-case ASCII is borrowed, not copied.
struct Words<'a>(Vec<Cow<'a, str>>);

impl<'a> Words<'a> {
    fn of(text: &'a str) -> Words<'a> {
        Words(
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(lower_case)
                .collect(),
        )
    }

    /// Whether `word` (lower-case) is one of the words.
    fn has(&self, word: &str) -> bool {
        self.0.iter().any(|w| w == word)
    }

    /// Whether `phrase` (lower-case words) occurs as consecutive words.
    fn has_phrase(&self, phrase: &[&str]) -> bool {
        self.0
            .windows(phrase.len())
            .any(|win| win.iter().zip(phrase).all(|(a, b)| a == b))
    }
}

/// `word.to_lowercase()`, borrowing `word` when that changes nothing.
fn lower_case(word: &str) -> Cow<'_, str> {
    if !word.is_ascii() {
        Cow::Owned(word.to_lowercase())
    } else if word.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(word.to_ascii_lowercase())
    } else {
        Cow::Borrowed(word)
    }
}

/// The words that pick a document's kind, each with its bit in a [`mentions`] set.
const KIND_WORDS: [(&str, u8); 7] = [
    ("template", 1),
    ("templates", 1 << 1),
    ("rules", 1 << 2),
    ("guardrails", 1 << 3),
    ("runbook", 1 << 4),
    ("playbook", 1 << 5),
    ("pr", 1 << 6),
];
const TEMPLATE: u8 = 1 | 1 << 1;
const RULES: u8 = 1 << 2 | 1 << 3;
const RUNBOOK: u8 = 1 << 4 | 1 << 5;
const PR: u8 = 1 << 6;

/// Which of [`KIND_WORDS`] are among the words of `text` (split at every character
/// that is not alphanumeric, compared lower-cased), as a set of bits. One pass and
/// no allocation for ASCII text, which is compared byte by byte.
fn mentions(text: &str) -> u8 {
    if text.is_ascii() {
        text.as_bytes()
            .split(|b| !b.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|word| kind_bit(|kind| kind.as_bytes().eq_ignore_ascii_case(word)))
            .fold(0, |set, bit| set | bit)
    } else {
        Words::of(text)
            .0
            .iter()
            .map(|word| kind_bit(|kind| kind == word))
            .fold(0, |set, bit| set | bit)
    }
}

/// The bit of the first of [`KIND_WORDS`] that `is` accepts, or 0.
// Inlined: the two calls stay the loops they replaced (one per word, metered in the guest).
#[inline(always)]
fn kind_bit(is: impl Fn(&str) -> bool) -> u8 {
    KIND_WORDS
        .iter()
        .find(|(kind, _)| is(kind))
        .map_or(0, |&(_, bit)| bit)
}

impl DocKind {
    /// Classifies a task; `path` is the output path chosen for it.
    pub fn of(task: &Task, path: &str) -> DocKind {
        let in_id = mentions(&task.id);
        let in_id_title = in_id | mentions(&task.title);
        let under_templates = task
            .allowed_paths
            .iter()
            .map(String::as_str)
            .chain([path])
            .any(|p| p.split('/').any(|c| c == "templates"));
        if in_id_title & TEMPLATE != 0 || under_templates {
            let pr = in_id & PR != 0
                || task.acceptance_criteria.iter().any(|c| {
                    let words = Words::of(c);
                    words.has("pr") || words.has_phrase(&["pull", "request"])
                });
            return if pr {
                DocKind::PullRequestTemplate
            } else {
                DocKind::Template
            };
        }
        // "operating rules" counts through its word "rules".
        if in_id_title & RULES != 0 {
            return DocKind::OperatingRules;
        }
        if in_id_title & RUNBOOK != 0 {
            return DocKind::Runbook;
        }
        DocKind::Generic
    }
}

/// Collapses any run of whitespace (including newlines) into one space, and trims
/// the ends, so a field can sit on one Markdown line.
fn one_line(text: &str) -> Cow<'_, str> {
    if is_one_line(text) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Whether `text` is already what [`one_line`] makes of it: words separated by
/// single spaces, no other whitespace, nothing at either end (no allocation: most
/// fields are like this). ASCII is judged eight bytes at a time ([`Spacing`]); text
/// that is not ASCII is judged by its characters.
fn is_one_line(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut spacing = Spacing { after_space: true };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        match spacing.word(u64::from_le_bytes(word)) {
            Some(true) => {}
            Some(false) => return false,
            None => return single_spaced(text.chars(), text.is_empty()),
        }
    }
    for &b in chunks.remainder() {
        match spacing.byte(b) {
            Some(true) => {}
            Some(false) => return false,
            None => return single_spaced(text.chars(), text.is_empty()),
        }
    }
    !spacing.after_space || text.is_empty()
}

/// The state of [`is_one_line`]'s scan of ASCII text: whether the last byte was a
/// space (true at the start, so that a leading space counts as a doubled one).
struct Spacing {
    after_space: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

impl Spacing {
    /// Eight bytes (the first in the low byte): `Some(false)` when they hold a space
    /// after a space or other ASCII whitespace, `None` when they are not all ASCII.
    fn word(&mut self, w: u64) -> Option<bool> {
        if w & HIGH != 0 {
            return None;
        }
        // For bytes below 0x80: the high bit of `b + 0x77` is set from 9 (`\t`) up,
        // that of `b + 0x72` from 14 up, and neither sum carries into the next byte.
        let other_whitespace = w.wrapping_add(0x77 * ONES) & !w.wrapping_add(0x72 * ONES) & HIGH;
        let spaces = zero_bytes(w ^ (0x20 * ONES));
        let doubled = spaces & ((spaces << 8) | u64::from(self.after_space) << 7);
        self.after_space = spaces >> 63 != 0;
        Some(other_whitespace == 0 && doubled == 0)
    }

    /// One byte: as [`Spacing::word`].
    fn byte(&mut self, b: u8) -> Option<bool> {
        match b {
            b' ' if self.after_space => Some(false),
            b' ' => {
                self.after_space = true;
                Some(true)
            }
            // The ASCII characters `char::is_whitespace` counts, besides the space.
            b'\t'..=b'\r' => Some(false),
            0x80.. => None,
            _ => {
                self.after_space = false;
                Some(true)
            }
        }
    }
}

/// 0x80 in each byte of `x` that is zero, and nothing in the others.
fn zero_bytes(x: u64) -> u64 {
    !(((x & !HIGH) + !HIGH) | x) & HIGH
}

fn single_spaced(chars: impl Iterator<Item = char>, empty: bool) -> bool {
    let mut after_space = true;
    for c in chars {
        if c == ' ' {
            if after_space {
                return false;
            }
            after_space = true;
        } else if c.is_whitespace() {
            return false;
        } else {
            after_space = false;
        }
    }
    !after_space || empty
}

/// Room for a document: its fixed text and the task's fields, so it is not
/// re-allocated as it grows.
fn capacity_for(task: &Task) -> usize {
    let fields = [&task.id, &task.title, &task.description, &task.scope]
        .into_iter()
        .chain(&task.acceptance_criteria)
        .chain(&task.labels)
        .chain(&task.dependencies)
        .map(|f| f.len())
        .sum::<usize>();
    1024 + 2 * fields + 48 * task.acceptance_criteria.len()
}

/// Renders the document for `task`, written at `path`.
pub fn render(task: &Task, path: &str) -> String {
    let kind = DocKind::of(task, path);
    let criteria: Vec<Cow<str>> = task
        .acceptance_criteria
        .iter()
        .map(|c| one_line(c))
        .collect();
    let mut md = String::with_capacity(capacity_for(task));
    let title = one_line(&task.title);
    let title = if title.is_empty() {
        Cow::Borrowed(task.id.as_str())
    } else {
        title
    };
    line(&mut md, &["# ", &title, "\n"]);
    metadata(&mut md, task);
    overview(&mut md, task, &criteria);
    match kind {
        DocKind::PullRequestTemplate => pr_template(&mut md, &criteria),
        DocKind::Template => template(&mut md, &criteria),
        DocKind::OperatingRules => operating_rules(&mut md, &criteria),
        DocKind::Runbook => runbook(&mut md, &criteria),
        DocKind::Generic => generic(&mut md, &criteria),
    }
    line(&mut md, &["---\n"]);
    line(
        &mut md,
        &[
            "_Generated by Leviathan from task `",
            &task.id,
            "`. Edit the task in `.leviathan/backlog.yaml`, not this file's structure._",
        ],
    );
    md
}

/// Appends `parts` and a newline: what `writeln!` would, without the formatting
/// machinery (in the sandbox each `writeln!` cost hundreds of units of fuel).
fn line(md: &mut String, parts: &[&str]) {
    for part in parts {
        md.push_str(part);
    }
    md.push('\n');
}

/// Appends `n` in decimal.
fn number(md: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    md.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// Appends `items`, each between `before` and `after`, separated by `, `, and a newline.
fn list_line(md: &mut String, items: &[String], before: &str, after: &str) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            md.push_str(", ");
        }
        md.push_str(before);
        md.push_str(item);
        md.push_str(after);
    }
    md.push('\n');
}

fn metadata(md: &mut String, task: &Task) {
    line(md, &["## Metadata\n"]);
    line(md, &["- **Task ID:** `", &task.id, "`"]);
    line(md, &["- **Scope:** ", &one_line(&task.scope)]);
    if let Some(p) = &task.priority {
        line(md, &["- **Priority:** ", &one_line(p)]);
    }
    if let Some(s) = &task.estimated_size {
        line(md, &["- **Estimated size:** ", &one_line(s)]);
    }
    if !task.labels.is_empty() {
        md.push_str("- **Labels:** ");
        list_line(md, &task.labels, "", "");
    }
    if !task.dependencies.is_empty() {
        md.push_str("- **Depends on:** ");
        list_line(md, &task.dependencies, "`", "`");
    }
    md.push('\n');
}

fn overview(md: &mut String, task: &Task, criteria: &[Cow<str>]) {
    line(md, &["## Overview\n"]);
    let description = task.description.trim();
    if !description.is_empty() {
        line(md, &[description, "\n"]);
    }
    if criteria.is_empty() {
        line(md, &["This task lists no acceptance criteria.\n"]);
        return;
    }
    line(
        md,
        &["This document satisfies these acceptance criteria:\n"],
    );
    for c in criteria {
        line(md, &["- ", c]);
    }
    md.push('\n');
}

fn pr_template(md: &mut String, criteria: &[Cow<str>]) {
    line(md, &["## Pull Request Template\n"]);
    line(
        md,
        &["### Summary\n\n<!-- What does this change do, and why? -->\n"],
    );
    line(
        md,
        &["### Changes\n\n- <!-- one line per notable change -->\n"],
    );
    line(md, &["### Checklist\n"]);
    if criteria.is_empty() {
        line(md, &["- [ ] The change does what its task asks"]);
    }
    for c in criteria {
        line(md, &["- [ ] ", c]);
    }
    line(md, &["\n### Testing\n\n<!-- How was this verified? -->\n"]);
}

fn template(md: &mut String, criteria: &[Cow<str>]) {
    line(md, &["## Template\n"]);
    line(
        md,
        &["Copy the sections below and fill in every placeholder.\n"],
    );
    for (i, c) in criteria.iter().enumerate() {
        md.push_str("### ");
        number(md, i + 1);
        line(md, &[". ", c, "\n\n<!-- fill in -->\n"]);
    }
    if criteria.is_empty() {
        line(md, &["### Content\n\n<!-- fill in -->\n"]);
    }
}

fn operating_rules(md: &mut String, criteria: &[Cow<str>]) {
    line(md, &["## Rules\n"]);
    line(
        md,
        &["Every change made under these rules must respect each of them:\n"],
    );
    for (i, c) in criteria.iter().enumerate() {
        number(md, i + 1);
        md.push_str(". **Rule ");
        number(md, i + 1);
        line(md, &[":** ", c]);
    }
    if criteria.is_empty() {
        line(md, &["_No rules were listed for this task._"]);
    }
    line(md, &["\n## Enforcement\n"]);
    line(
        md,
        &[
            "A change that breaks a rule is not merged. Raise exceptions with the owners of this document.\n",
        ],
    );
}

fn runbook(md: &mut String, criteria: &[Cow<str>]) {
    line(md, &["## When to use this runbook\n"]);
    line(
        md,
        &["<!-- Describe the symptom or alert that leads here. -->\n"],
    );
    line(md, &["## Procedure\n"]);
    for (i, c) in criteria.iter().enumerate() {
        number(md, i + 1);
        line(md, &[". ", c]);
    }
    if criteria.is_empty() {
        line(md, &["1. <!-- first step -->"]);
    }
    line(md, &["\n## Verification\n"]);
    line(
        md,
        &["Confirm each step above had its intended effect before closing the incident.\n"],
    );
    line(md, &["## Rollback\n"]);
    line(md, &["<!-- How to undo these steps safely. -->\n"]);
}

fn generic(md: &mut String, criteria: &[Cow<str>]) {
    line(md, &["## Details\n"]);
    for (i, c) in criteria.iter().enumerate() {
        md.push_str("### ");
        number(md, i + 1);
        line(md, &[". ", c, "\n"]);
        line(md, &["<!-- Explain how this criterion is met. -->\n"]);
    }
    if criteria.is_empty() {
        line(md, &["<!-- Document the task here. -->\n"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, title: &str, paths: &[&str], criteria: &[&str]) -> Task {
        Task {
            id: id.into(),
            title: title.into(),
            scope: "docs".into(),
            allowed_paths: paths.iter().map(|s| s.to_string()).collect(),
            acceptance_criteria: criteria.iter().map(|s| s.to_string()).collect(),
            ..Task::default()
        }
    }

    #[test]
    fn directory_path_uses_upper_cased_id() {
        let t = task("docs-api-guide", "API guide", &["docs/"], &[]);
        assert_eq!(output_path(&t).unwrap(), "docs/DOCS_API_GUIDE.md");
    }

    #[test]
    fn classification() {
        let pr = task(
            "pr-template",
            "PR template",
            &["docs/"],
            &["Has a checklist"],
        );
        assert_eq!(DocKind::of(&pr, "docs/X.md"), DocKind::PullRequestTemplate);
        let tpl = task(
            "issue-tpl",
            "Issue template",
            &["docs/"],
            &["Has a summary"],
        );
        assert_eq!(DocKind::of(&tpl, "docs/X.md"), DocKind::Template);
        let under = task(
            "x",
            "Bug report",
            &[".github/templates/"],
            &["Prepare steps"],
        );
        assert_eq!(
            DocKind::of(&under, ".github/templates/X.md"),
            DocKind::Template
        );
        let pr_by_criterion = task(
            "x",
            "Review template",
            &["docs/"],
            &["Links the pull request"],
        );
        assert_eq!(
            DocKind::of(&pr_by_criterion, "d"),
            DocKind::PullRequestTemplate
        );
        let rules = task("ops-rules", "Operating rules", &["docs/"], &[]);
        assert_eq!(DocKind::of(&rules, "d"), DocKind::OperatingRules);
        let rb = task("db-failover", "Database failover runbook", &["docs/"], &[]);
        assert_eq!(DocKind::of(&rb, "d"), DocKind::Runbook);
        // "improve" and "prepare" contain "pr" but do not mention it.
        let generic = task(
            "improve-docs",
            "Improve the guide",
            &["docs/"],
            &["Prepare examples"],
        );
        assert_eq!(DocKind::of(&generic, "d"), DocKind::Generic);
    }

    #[test]
    fn document_shape() {
        let t = task(
            "docs-guide",
            "Contributor\nguide",
            &["docs/"],
            &["Explains setup", "Explains review"],
        );
        let md = render(&t, "docs/DOCS_GUIDE.md");
        assert!(md.starts_with("# Contributor guide\n"), "{md}");
        assert!(md.contains("- **Task ID:** `docs-guide`"));
        assert!(md.contains("- **Scope:** docs"));
        assert!(md.contains("- Explains setup\n- Explains review\n"));
        assert!(md.contains("### 1. Explains setup"));
        assert!(md.contains("### 2. Explains review"));
        assert!(md.contains("task `docs-guide`"));
    }

    /// The classification as first written (every question re-tokenises its text),
    /// kept as the definition the tokenise-once version must agree with.
    fn reference_kind(task: &Task, path: &str) -> DocKind {
        let words = |text: &str| -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| w.to_lowercase())
                .collect()
        };
        let mentions = |text: &str, word: &str| words(text).iter().any(|w| w == word);
        let phrase = |text: &str, p: &[&str]| {
            words(text)
                .windows(p.len())
                .any(|win| win.iter().zip(p).all(|(a, b)| a == b))
        };
        let id_title = format!("{} {}", task.id, task.title);
        let under = task
            .allowed_paths
            .iter()
            .map(String::as_str)
            .chain([path])
            .any(|p| p.split('/').any(|c| c == "templates"));
        if mentions(&id_title, "template") || mentions(&id_title, "templates") || under {
            let pr = mentions(&task.id, "pr")
                || task
                    .acceptance_criteria
                    .iter()
                    .any(|c| mentions(c, "pr") || phrase(c, &["pull", "request"]));
            return if pr {
                DocKind::PullRequestTemplate
            } else {
                DocKind::Template
            };
        }
        if phrase(&id_title, &["operating", "rules"])
            || mentions(&id_title, "rules")
            || mentions(&id_title, "guardrails")
        {
            return DocKind::OperatingRules;
        }
        if mentions(&id_title, "runbook") || mentions(&id_title, "playbook") {
            return DocKind::Runbook;
        }
        DocKind::Generic
    }

    /// A small deterministic generator (xorshift), so the cases are the same on
    /// every run without a dependency.
    struct Gen(u64);

    impl Gen {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn text(&mut self) -> String {
            const WORDS: &[&str] = &[
                "template",
                "Templates",
                "TEMPLATE",
                "PR",
                "pr",
                "Pull",
                "request",
                "pull-request",
                "operating",
                "Rules",
                "rules",
                "guardrails",
                "runbook",
                "Playbook",
                "RUNBOO\u{212A}",
                "prepare",
                "improve",
                "docs",
                "İstanbul",
                "naïve",
                "straße",
                "ǅx",
                "ﬁle",
                "ΣΑΣ",
                "",
                "x1",
                "a_b",
            ];
            const GAPS: &[&str] = &[
                " ", "  ", "\n", "\t", "-", "_", "/", " \u{a0}", "\r\n", "", "\u{b}", "\u{85}",
                "\u{2028}",
            ];
            let mut text = String::new();
            for _ in 0..self.below(6) {
                text.push_str(GAPS[self.below(GAPS.len())]);
                text.push_str(WORDS[self.below(WORDS.len())]);
            }
            if self.below(3) == 0 {
                text.push_str(GAPS[self.below(GAPS.len())]);
            }
            text
        }
    }

    #[test]
    fn one_line_finds_every_gap_at_every_position() {
        // Each kind of gap at each position of texts of 0 to 40 bytes, across the
        // eight-byte steps of the ASCII scan, against the definition.
        for len in 0..40 {
            for at in 0..=len {
                for gap in [
                    " ", "  ", "\t", "\n", "\u{b}", "\u{c}", "\r", "\u{1f}", "é", "\u{85}",
                ] {
                    let text = format!("{}{gap}{}", "a".repeat(at), "b".repeat(len - at));
                    let reference = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    assert_eq!(one_line(&text), reference, "{text:?}");
                    let spaced = text.replace('a', "a ");
                    let reference = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
                    assert_eq!(one_line(&spaced), reference, "{spaced:?}");
                }
            }
        }
    }

    #[test]
    fn classification_one_line_and_file_name_agree_with_their_definitions() {
        let mut generator = Gen(0x9e37_79b9_7f4a_7c15);
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            let criteria: Vec<String> = (0..generator.below(3)).map(|_| generator.text()).collect();
            let paths = [["docs/"], [".github/templates/"], ["templates"]][generator.below(3)];
            let t = Task {
                id: generator.text(),
                title: generator.text(),
                scope: "docs".into(),
                allowed_paths: paths.iter().map(|s| s.to_string()).collect(),
                acceptance_criteria: criteria.clone(),
                ..Task::default()
            };
            let kind = DocKind::of(&t, "docs/X.md");
            assert_eq!(kind, reference_kind(&t, "docs/X.md"), "{t:?}");
            let reference_name = format!("{}.md", t.id.to_uppercase().replace('-', "_"));
            assert_eq!(file_name(&t.id), reference_name, "{:?}", t.id);
            kinds.insert(format!("{kind:?}"));
            for text in criteria.iter().chain([&t.id, &t.title]) {
                let reference = text.split_whitespace().collect::<Vec<_>>().join(" ");
                assert_eq!(one_line(text), reference, "{text:?}");
            }
        }
        assert_eq!(
            kinds.len(),
            5,
            "the generated tasks reach every kind: {kinds:?}"
        );
    }

    /// FNV-1a over bytes: a digest without a dependency.
    fn fnv1a(hash: &mut u64, bytes: &[u8]) {
        for b in bytes {
            *hash ^= u64::from(*b);
            *hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }

    #[test]
    fn generated_tasks_render_to_the_recorded_bytes() {
        // Same task, same bytes: recorded attempts are replayed and compared byte for
        // byte, so a change of the rendering code must not change what it writes. The
        // digest was taken from the rendering as first written (`writeln!` per line).
        let mut generator = Gen(0x2545_f491_4f6c_dd1d);
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        for _ in 0..5_000 {
            let some = |g: &mut Gen| (g.below(2) == 0).then(|| g.text());
            let list = |g: &mut Gen, n: usize| (0..g.below(n)).map(|_| g.text()).collect();
            let paths = [["docs/"], [".github/templates/"], ["templates"]][generator.below(3)];
            let t = Task {
                id: generator.text(),
                title: generator.text(),
                description: generator.text(),
                scope: generator.text(),
                priority: some(&mut generator),
                estimated_size: some(&mut generator),
                labels: list(&mut generator, 3),
                dependencies: list(&mut generator, 3),
                allowed_paths: paths.iter().map(|s| s.to_string()).collect(),
                acceptance_criteria: list(&mut generator, 13),
                ..Task::default()
            };
            fnv1a(&mut hash, render(&t, "docs/X.md").as_bytes());
        }
        assert_eq!(
            hash, 8_679_354_796_502_113_500,
            "the rendered bytes changed"
        );
    }

    #[test]
    fn pr_template_uses_checkboxes() {
        let t = task(
            "pr-template",
            "PR template",
            &["docs/"],
            &["Tests pass", "Docs updated"],
        );
        let md = render(&t, "docs/PR_TEMPLATE.md");
        assert!(
            md.contains("- [ ] Tests pass\n- [ ] Docs updated\n"),
            "{md}"
        );
    }
}
