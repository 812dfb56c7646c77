//! One attempt: branch, run the executor in the sandbox, write the completion back,
//! commit, push and open the pull request; or record why it failed and leave nothing
//! half done (the remote branch is deleted when the PR could not be opened).

use crate::attempt_events::{self as attempts, task_event as draft};
use crate::pr_text;
use leviathan_domain::backlog::{BACKLOG_PATH, Task, backlog_path};
use leviathan_domain::branches::branch_name;
use leviathan_domain::config::Target;
use leviathan_domain::repofs::RepoDir;
use leviathan_domain::writeback::{Completion, write_back};
use leviathan_events::{EventLog, StoreError};
use leviathan_forge::git::Clone;
use leviathan_forge::pull_requests::{PullRequest, TargetForge};
use leviathan_sandbox::Sandbox;
use leviathan_sandbox::exec::{ExecReport, ExecRequest, exec_with_plugins};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What happened to an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A pull request is open.
    Opened { pr: String, branch: String },
    /// The worktree already held the executor's output: the task is complete.
    NoChange,
    /// The attempt failed; the cause is in the log.
    Failed { kind: String, message: String },
}

/// The attempt id: 8 hex digits, unique per target, task and moment.
pub fn attempt_id(target: &str, task: &str, seq: u64) -> String {
    let nanos = leviathan_domain::clock::now_nanos();
    let mut h = Sha256::new();
    for part in [
        target.as_bytes(),
        task.as_bytes(),
        &seq.to_be_bytes(),
        &nanos.to_be_bytes(),
    ] {
        h.update(part);
        h.update([0]);
    }
    hex::encode(h.finalize())[..8].to_string()
}

/// The commit message: deterministic for a task, executor and change.
pub fn commit_message(task: &Task, report: &ExecReport, attempt: &str) -> String {
    format!(
        "leviathan: {}: {}\n\nExecutor: {}\nChange digest: {}\nAttempt: {attempt}\n",
        task.id,
        task.title.trim(),
        report.executor,
        report.digest
    )
}

/// Everything an attempt needs.
pub struct AttemptContext<'a> {
    pub target: &'a Target,
    pub clone: &'a Clone,
    pub log: &'a EventLog,
    pub sandbox: &'a Sandbox,
    pub registry_dir: &'a Path,
    /// The plugin set to route with; `None` scans `registry_dir`.
    pub plugins: Option<&'a leviathan_sandbox::plugins::set::PluginSet>,
    /// Where the PR is opened.
    pub forge: &'a TargetForge,
}

/// Runs `task` of the target once.
pub fn run(ctx: &AttemptContext, task: &Task) -> Result<Outcome, StoreError> {
    let target = &ctx.target.id;
    let attempt = attempt_id(target, &task.id, ctx.log.last_seq());
    let branch = branch_name(&task.id, &attempt);
    let mut started = attempts::started(target, &task.id, &attempt);
    started.payload = json!({"via": "scheduler", "branch": branch});
    ctx.log.append(vec![
        draft(
            "task.selected",
            target,
            &task.id,
            None,
            json!({"attempt": attempt}),
        ),
        started,
    ])?;
    let mut used = None;
    let mut refused = Vec::new();
    let outcome = deliver(ctx, task, &attempt, &branch, &mut used, &mut refused);
    let drafts = match &outcome {
        Ok((report, pr)) => {
            let mut done = vec![attempts::finished(
                target,
                &task.id,
                &attempt,
                &Ok(report.clone()),
            )];
            match pr {
                Some(pr) => done.push(pr_opened(ctx.target, &task.id, &attempt, &branch, pr)),
                None => done.push(draft(
                    "task.completed",
                    target,
                    &task.id,
                    Some(&attempt),
                    json!({"reason": "no change: the worktree already holds the output"}),
                )),
            }
            done
        }
        Err((kind, message)) => {
            let mut failed = Vec::with_capacity(2);
            if kind == leviathan_sandbox::exec::ErrorKind::PolicyDenied.as_str() {
                failed.push(draft(
                    "policy.violation",
                    target,
                    &task.id,
                    Some(&attempt),
                    json!({"message": message}),
                ));
            }
            let mut payload = attempts::failed_payload(kind, message, used.as_ref(), &refused);
            payload["branch"] = json!(branch);
            failed.push(draft(
                "attempt.failed",
                target,
                &task.id,
                Some(&attempt),
                payload,
            ));
            failed
        }
    };
    ctx.log.append(drafts)?;
    Ok(match outcome {
        Ok((_, Some(pr))) => Outcome::Opened { pr: pr.id, branch },
        Ok((_, None)) => Outcome::NoChange,
        Err((kind, message)) => Outcome::Failed { kind, message },
    })
}

type Failure = (String, String);

/// The `pr.opened` event of an attempt's PR.
pub fn pr_opened(
    target: &Target,
    task: &str,
    attempt: &str,
    branch: &str,
    pr: &PullRequest,
) -> leviathan_events::EventDraft {
    let mut payload = json!({"pr": pr.id, "branch": branch, "url": pr.url, "title": pr.title,
                             "body": pr.body, "labels": target.labels});
    if pr.existed {
        payload["existed"] = json!(true);
    }
    if let Some(auto_merge) = &pr.auto_merge {
        payload["auto_merge"] = json!(auto_merge);
    }
    draft("pr.opened", &target.id, task, Some(attempt), payload)
}

/// The `attempt.pushed` event: the branch is on the remote and the PR about to be
/// opened; it carries what opening it takes, so a restart can finish the attempt.
fn pushed(
    target: &str,
    task: &str,
    attempt: &str,
    branch: &str,
    report: &ExecReport,
    title: &str,
    body: &str,
) -> leviathan_events::EventDraft {
    let finished = attempts::finished(target, task, attempt, &Ok(report.clone()));
    draft(
        "attempt.pushed",
        target,
        task,
        Some(attempt),
        json!({"branch": branch, "title": title, "body": body, "result": finished.payload}),
    )
}

/// The backlog write-back on the attempt's branch, through a capability handle on the
/// clone: the backlog is read and replaced without following a link (a committed
/// `.leviathan` link is refused, never written through), and the result must read
/// back as the task's completion alone before it is written.
fn write_completion(clone: &Path, task: &Task, attempt: &str, branch: &str) -> Result<(), Failure> {
    let backlog_file = clone.join(BACKLOG_PATH);
    let failed = |message: String| ("writeback".to_string(), message);
    let text = leviathan_domain::backlog::read_text(clone).map_err(|e| failed(e.to_string()))?;
    let completion = Completion {
        attempt_id: attempt.into(),
        branch_name: branch.into(),
        completed_at: leviathan_domain::clock::rfc3339(leviathan_domain::clock::now_ms()),
    };
    // `write_back` parses its result again: it reads as this backlog with only the
    // task's completion set, and within the backlog's size limit.
    let updated = write_back(&text, &task.id, &completion)
        .map_err(|e| failed(format!("{}: {e}", backlog_file.display())))?;
    let dir = RepoDir::open(clone, "a target repository")
        .map_err(|e| failed(format!("{}: {e}", clone.display())))?;
    dir.write(&backlog_path(), updated.as_bytes())
        .map_err(|e| failed(format!("{}: {e}", backlog_file.display())))
}

/// The attempt's work after `attempt.started`; an error is (kind, message), and
/// `used` and `refused` get what the executor used and which of its calls the sandbox
/// refused, when it ran before failing.
fn deliver(
    ctx: &AttemptContext,
    task: &Task,
    attempt: &str,
    branch: &str,
    used: &mut Option<leviathan_sandbox::RunStats>,
    refused: &mut Vec<leviathan_sandbox::guard::Denial>,
) -> Result<(ExecReport, Option<PullRequest>), Failure> {
    let base = &ctx.target.base_branch;
    let git_failed = |e: leviathan_forge::git::GitError| ("git".to_string(), e.to_string());
    ctx.clone.start_branch(branch, base).map_err(git_failed)?;
    let request = ExecRequest {
        repo: ctx.clone.dir().to_path_buf(),
        task_id: task.id.clone(),
        policy: None,
        registry_dir: ctx.registry_dir.to_path_buf(),
    };
    let report = exec_with_plugins(ctx.sandbox, &request, &ctx.target.policy, ctx.plugins)
        .map_err(|e| {
            *used = e.stats.map(|stats| *stats);
            *refused = e.denials;
            (e.kind.as_str().to_string(), e.message)
        })?;
    if report.files.is_empty() {
        return Ok((report, None));
    }
    write_completion(ctx.clone.dir(), task, attempt, branch)?;
    let mut paths: Vec<String> = report.files.iter().map(|f| f.path.as_string()).collect();
    paths.push(BACKLOG_PATH.into());
    ctx.clone
        .commit(&paths, &commit_message(task, &report, attempt))
        .map_err(git_failed)?;
    ctx.clone.push(branch).map_err(git_failed)?;
    let (title, body) = (pr_text::title(task), pr_text::body(task, &report, attempt));
    ctx.log
        .append(vec![pushed(
            &ctx.target.id,
            &task.id,
            attempt,
            branch,
            &report,
            &title,
            &body,
        )])
        .map_err(|e| ("store".to_string(), e.to_string()))?;
    let pr = ctx
        .forge
        .open(ctx.target, ctx.log, branch, &title, &body, attempt);
    match pr {
        Ok(pr) => Ok((report, Some(pr))),
        Err(e) => {
            // Nothing half done: the branch goes when its PR could not be opened.
            if let Err(e) = ctx.clone.delete_remote(branch) {
                tracing::warn!(error = %e, %branch, "could not delete the branch of a failed attempt");
            }
            Err(("forge".into(), e.message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_round_trip_through_selection() {
        let id = attempt_id("t", "docs-1", 7);
        assert_eq!(id.len(), 8);
        let branch = branch_name("docs-1", &id);
        assert_eq!(
            leviathan_domain::branches::branch_task(&branch),
            Some("docs-1")
        );
    }
}
