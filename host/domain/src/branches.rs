//! The host's branch names: every attempt pushes `agent/task-exec-attempt-<task>-<8
//! hex>` (the original Leviathan's naming, kept), and only such a branch is ever
//! deleted, merged or counted as one of the host's open pull requests. The name is
//! always computed from the task and the attempt, never taken from an event.

/// The prefix of every branch the host pushes.
pub const BRANCH_PREFIX: &str = "agent/";

const ATTEMPT_PREFIX: &str = "agent/task-exec-attempt-";

/// The branch of an attempt.
pub fn branch_name(task: &str, attempt: &str) -> String {
    format!("{ATTEMPT_PREFIX}{task}-{attempt}")
}

/// True for a scheduler attempt id: 8 lower-case hex digits.
pub fn is_attempt_id(attempt: &str) -> bool {
    attempt.len() == 8 && attempt.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The task id an agent branch belongs to: `agent/task-exec-attempt-<id>-<8 hex>`.
pub fn branch_task(branch: &str) -> Option<&str> {
    let rest = branch.strip_prefix(ATTEMPT_PREFIX)?;
    let (task, suffix) = rest.rsplit_once('-')?;
    (is_attempt_id(suffix) && !task.is_empty()).then_some(task)
}

/// The attempt id at the end of an agent branch.
pub fn branch_attempt(branch: &str) -> Option<&str> {
    branch_task(branch)?;
    branch.rsplit('-').next()
}

/// True when `branch` is the agent branch of `task` (any attempt).
pub fn is_branch_of(branch: &str, task: &str) -> bool {
    branch_task(branch) == Some(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_agent_branches_match() {
        let branch = branch_name("docs-1", "1a2b3c4d");
        assert_eq!(branch, "agent/task-exec-attempt-docs-1-1a2b3c4d");
        assert_eq!(branch_task(&branch), Some("docs-1"));
        assert_eq!(branch_attempt(&branch), Some("1a2b3c4d"));
        assert!(is_branch_of(&branch, "docs-1"));
        assert!(!is_branch_of(&branch, "docs"));
        assert_eq!(branch_task("agent/task-exec-attempt-docs-1-xyz"), None);
        assert_eq!(branch_task("release"), None);
        assert_eq!(branch_task("feature/x"), None);
        assert_eq!(branch_attempt("main"), None);
    }
}
