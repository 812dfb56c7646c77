//! The title and body of an attempt's pull request.

use leviathan_domain::backlog::Task;
use leviathan_sandbox::exec::ExecReport;

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
