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

/// Why a local PR could not be merged or closed.
#[derive(Debug, thiserror::Error)]
pub enum LocalPrError {
    #[error("no target `{0}` in the configuration")]
    NoTarget(String),
    #[error("no open PR {pr} of target `{target}` in the event log")]
    NoPr { target: String, pr: String },
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Store(#[from] crate::events::StoreError),
}

/// What a merge or close did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPrOutcome {
    pub task: String,
    pub branch: String,
    /// The merge commit, for a merge.
    pub commit: Option<String>,
}

/// Merges (`merge`) or closes PR `pr` of a local-forge target: the branch is merged
/// into the base with a merge commit and the base pushed, or just deleted; then
/// `pr.merged` / `pr.closed`. Works in `<work_dir>/<target>-forge`, a clone of its
/// own, so it never disturbs a scheduler pass working in `<work_dir>/<target>`.
pub fn merge_or_close_local(
    config: &crate::config::Config,
    log: &EventLog,
    work_dir: &std::path::Path,
    target_id: &str,
    pr: &str,
    merge: bool,
) -> Result<LocalPrOutcome, LocalPrError> {
    let target = config
        .targets
        .iter()
        .find(|t| t.id == target_id)
        .ok_or_else(|| LocalPrError::NoTarget(target_id.into()))?;
    let found = log.with_projection(|p| {
        p.targets.get(target_id).and_then(|t| {
            t.tasks.iter().find_map(|(task, view)| {
                view.prs
                    .iter()
                    .find(|x| x.pr == pr && x.state == crate::events::projection::PrState::Open)
                    .map(|x| (task.clone(), x.branch.clone().unwrap_or_default()))
            })
        })
    })?;
    let (task, branch) = found.ok_or_else(|| LocalPrError::NoPr {
        target: target_id.into(),
        pr: pr.into(),
    })?;
    let clone = crate::git::Clone::prepare(
        &super::remote_url(config, target),
        &work_dir.join(format!("{target_id}-forge")),
        &target.base_branch,
        None,
    )?;
    let commit = if merge {
        Some(clone.merge_to_base(
            &branch,
            &target.base_branch,
            &format!("Merge PR {pr}: {branch}"),
        )?)
    } else {
        None
    };
    clone.delete_remote(&branch)?;
    let mut d = crate::events::EventDraft::new(if merge { "pr.merged" } else { "pr.closed" });
    d.target = Some(target_id.into());
    d.task = Some(task.clone());
    d.payload = serde_json::json!({"pr": pr, "branch": branch, "commit": commit});
    log.append(vec![d])?;
    Ok(LocalPrOutcome {
        task,
        branch,
        commit,
    })
}
