//! Finishing attempts a stopped process left open: the log shows `attempt.started`
//! and no outcome. Only one process holds the event log, so at the start of a pass
//! any such attempt was interrupted.
//!
//! - Pushed (`attempt.pushed` is in the log): its PR is opened from what that event
//!   recorded. GitHub answers 422 when the PR was already opened before the stop, and
//!   the existing PR is taken, so a restart never opens a second PR for the task. If
//!   GitHub cannot be reached (rate limit, 5xx, connection), the attempt stays open
//!   and the target waits for the next pass: deleting the branch would close a PR
//!   that may exist.
//! - Not pushed: the attempt failed (`interrupted`) and a branch that may have reached
//!   the remote is deleted, so nothing half done is left.

use super::attempt::pr_opened;
use crate::attempt_events::task_event as draft;
use leviathan_domain::branches::{branch_name, is_attempt_id};
use leviathan_domain::config::Target;
use leviathan_events::projection::AttemptOutcome;
use leviathan_events::{EventDraft, EventLog, Origin, StoreError};
use leviathan_forge::git::Clone;
use leviathan_forge::pull_requests::TargetForge;
use serde_json::json;

/// An attempt with no outcome in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    pub task: String,
    pub attempt: String,
}

/// The target's attempts with no outcome, oldest first.
pub fn interrupted(log: &EventLog, target: &str) -> Result<Vec<Interrupted>, StoreError> {
    log.with_projection(|p| {
        let Some(view) = p.targets.get(target) else {
            return Vec::new();
        };
        let mut open: Vec<(u64, Interrupted)> = view
            .tasks
            .iter()
            .flat_map(|(task, t)| {
                t.attempts
                    .iter()
                    .filter(|a| a.outcome == AttemptOutcome::Running)
                    .map(move |a| {
                        (
                            a.started_ms,
                            Interrupted {
                                task: task.clone(),
                                attempt: a.id.clone(),
                            },
                        )
                    })
            })
            .collect();
        open.sort_by_key(|(started, _)| *started);
        open.into_iter().map(|(_, i)| i).collect()
    })
}

/// Finishes every interrupted attempt of the target; returns one line per attempt,
/// or (inner `Err`) why the forge could not be reached: that attempt stays open for
/// the next pass, rather than being given up and its PR closed with its branch.
pub fn resume(
    log: &EventLog,
    target: &Target,
    forge: &TargetForge,
    clone: &Clone,
) -> Result<Result<Vec<String>, String>, StoreError> {
    let mut lines = Vec::new();
    for Interrupted { task, attempt } in interrupted(log, &target.id)? {
        // The attempt's branch is computed from its task and id, never read from an
        // event: only the host's own agent branch of this attempt is ever touched.
        let started_branch = is_attempt_id(&attempt).then(|| branch_name(&task, &attempt));
        let events = log.by_attempt(&attempt, 0, 1000)?;
        let pushed = events.iter().find(|e| {
            e.kind == "attempt.pushed"
                && e.origin != Some(Origin::Client)
                && e.target.as_deref() == Some(target.id.as_str())
                && e.task.as_deref() == Some(task.as_str())
                && started_branch.is_some()
                && e.payload["branch"].as_str() == started_branch.as_deref()
        });
        let (drafts, line) = match (pushed, &started_branch) {
            (Some(p), Some(branch)) => {
                match finish_pushed(
                    log, target, forge, clone, &task, &attempt, branch, &p.payload,
                ) {
                    Ok(finished) => finished,
                    Err(message) => {
                        tracing::warn!(target_id = %target.id, %task, %attempt, %message, "an interrupted attempt waits for the forge");
                        return Ok(Err(message));
                    }
                }
            }
            _ => {
                if let Some(branch) = &started_branch {
                    delete_if_present(clone, branch);
                }
                let message = "the host stopped during the attempt, before its branch was pushed";
                (
                    vec![draft(
                        "attempt.failed",
                        &target.id,
                        &task,
                        Some(&attempt),
                        json!({"kind": "interrupted", "message": message,
                               "branch": started_branch}),
                    )],
                    format!("{task}: attempt {attempt} interrupted before its push: failed"),
                )
            }
        };
        tracing::info!(target_id = %target.id, %task, %attempt, outcome = %line, "resumed an interrupted attempt");
        log.append(drafts)?;
        lines.push(line);
    }
    Ok(Ok(lines))
}

#[allow(clippy::too_many_arguments)]
fn finish_pushed(
    log: &EventLog,
    target: &Target,
    forge: &TargetForge,
    clone: &Clone,
    task: &str,
    attempt: &str,
    branch: &str,
    pushed: &serde_json::Value,
) -> Result<(Vec<EventDraft>, String), String> {
    let text = |k: &str| pushed[k].as_str().unwrap_or_default().to_string();
    let (title, body) = (text("title"), text("body"));
    match forge.open(target, log, branch, &title, &body, attempt) {
        Ok(pr) => {
            let mut result = pushed["result"].clone();
            if result.is_object() {
                result["resumed"] = json!(true);
            }
            let line = format!(
                "{task}: attempt {attempt} resumed: PR {} for {branch}",
                pr.id
            );
            Ok((
                vec![
                    draft("attempt.succeeded", &target.id, task, Some(attempt), result),
                    pr_opened(target, task, attempt, branch, &pr),
                ],
                line,
            ))
        }
        Err(e) if e.transient => Err(e.message),
        Err(e) => {
            delete_if_present(clone, branch);
            Ok((
                vec![draft(
                    "attempt.failed",
                    &target.id,
                    task,
                    Some(attempt),
                    json!({"kind": "forge", "message": e.message, "branch": branch, "resumed": true}),
                )],
                format!("{task}: attempt {attempt} could not open its PR after a restart: failed"),
            ))
        }
    }
}

fn delete_if_present(clone: &Clone, branch: &str) {
    let present = clone
        .remote_branches(branch)
        .map(|b| b.iter().any(|x| x == branch))
        .unwrap_or(false);
    if present && let Err(e) = clone.delete_remote(branch) {
        tracing::warn!(error = %e, %branch, "could not delete an interrupted attempt's branch");
    }
}
