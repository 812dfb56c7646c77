//! Opening the pull request of an attempt. The local forge (the embedded default)
//! keeps PRs as records in the event log next to the pushed branch; `prs merge` and
//! `prs close` act on them. The GitHub forge is not built yet.

use crate::backlog::Task;
use crate::config::{Forge, Target};
use crate::events::EventLog;
use crate::exec::ExecReport;

/// A pull request as opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The forge's id: a number.
    pub id: String,
    pub url: Option<String>,
    pub title: String,
    pub body: String,
}

/// The PR title.
pub fn title(task: &Task) -> String {
    format!("leviathan: {}: {}", task.id, task.title.trim())
}

/// The PR body: the task, its acceptance criteria as a checklist, the executor and
/// its version, the change digest and the attempt id.
pub fn body(task: &Task, report: &ExecReport, attempt: &str) -> String {
    let mut out = format!("Task `{}`: {}\n\n", task.id, task.title.trim());
    if !task.description.trim().is_empty() {
        out.push_str(task.description.trim());
        out.push_str("\n\n");
    }
    if !task.acceptance_criteria.is_empty() {
        out.push_str("## Acceptance criteria\n\n");
        for c in &task.acceptance_criteria {
            out.push_str(&format!("- [ ] {}\n", c.trim()));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Executor: {}\nChange digest: {}\nAttempt: {attempt}\nFiles:\n",
        report.executor, report.digest
    ));
    for f in &report.files {
        out.push_str(&format!("- `{}`\n", f.path.as_string()));
    }
    out
}

/// Whether this host can open PRs on the target's forge.
pub fn available(target: &Target) -> Result<(), String> {
    match target.forge {
        Forge::Local => Ok(()),
        Forge::GitHub { .. } => Err("the GitHub forge is not built yet".into()),
    }
}

/// Opens the PR of a pushed branch.
pub fn open(
    target: &Target,
    log: &EventLog,
    task: &Task,
    report: &ExecReport,
    attempt: &str,
    _branch: &str,
) -> Result<PullRequest, String> {
    available(target)?;
    // Local PR numbers count up per target, from the log.
    let number = log
        .with_projection(|p| {
            p.targets
                .get(&target.id)
                .map(|t| t.tasks.values().map(|k| k.prs.len()).sum::<usize>())
                .unwrap_or(0)
        })
        .map_err(|e| e.to_string())?
        + 1;
    Ok(PullRequest {
        id: number.to_string(),
        url: None,
        title: title(task),
        body: body(task, report, attempt),
    })
}
