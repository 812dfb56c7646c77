//! The little of git the foundation needs: the worktree's HEAD commit.

use std::path::Path;
use std::process::Command;

/// The commit id HEAD points to, or `None` outside a repository or before the first
/// commit.
pub fn head_commit(worktree: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(worktree)
        .args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let id = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!id.is_empty()).then_some(id)
}
