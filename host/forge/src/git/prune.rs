//! Removing the clones of targets the configuration no longer has: a removed target's
//! clone (up to `max_clone_mib` of objects, and its checkout) would otherwise stay on
//! the disk the other targets and the event log share for as long as the host runs.
//!
//! Only a clone the host made is ever removed: it carries [`MARKER`] in its `.git`
//! (written when the host clones, and by every fetch into a clone made before the
//! marker existed), which no checkout of a target can write. A work directory pointed
//! at someone's own repositories loses nothing.

use super::claim;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The file in a clone's `.git` that says the host made the clone.
pub const MARKER: &str = "leviathan-host-clone";

/// Marks the clone whose git directory is `git_dir` as the host's.
pub fn mark(git_dir: &Path) -> std::io::Result<()> {
    let marker = git_dir.join(MARKER);
    if std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    std::fs::write(
        marker,
        "This clone is leviathan-host's: it is removed when its target leaves the configuration.\n",
    )
}

/// Removes every clone in `work_dir` the host made whose name is not in `keep`, and
/// returns the removed clones' directories. A clone in use (its claim held) is left
/// for a later call; so is anything without the marker, and every name starting with
/// `.` (claims and clones being made) or holding `@` (the host's own files).
pub fn prune(work_dir: &Path, keep: &HashSet<String>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') || name.contains('@') || keep.contains(name) {
            continue;
        }
        if !entry.file_type().is_ok_and(|k| k.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let marked =
            std::fs::symlink_metadata(dir.join(".git").join(MARKER)).is_ok_and(|m| m.is_file());
        if !marked {
            continue;
        }
        let Ok(held) = claim::Claim::take(&dir) else {
            continue;
        };
        let gone = std::fs::remove_dir_all(&dir).is_ok();
        let _ = std::fs::remove_dir_all(claim::staging_path(&dir));
        drop(held);
        if gone {
            let _ = std::fs::remove_file(claim::lock_path(&dir));
            removed.push(dir);
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clone_at(work: &Path, name: &str, marked: bool) -> PathBuf {
        let dir = work.join(name);
        std::fs::create_dir_all(dir.join(".git/objects")).unwrap();
        std::fs::write(dir.join("README.md"), "x").unwrap();
        if marked {
            mark(&dir.join(".git")).unwrap();
        }
        dir
    }

    #[test]
    fn only_the_hosts_clones_of_removed_targets_go() {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("work");
        let kept = clone_at(&work, "kept", true);
        let removed = clone_at(&work, "removed", true);
        let foreign = clone_at(&work, "operators-own", false);
        let busy = clone_at(&work, "busy", true);
        let hidden = clone_at(&work, ".hidden", true);
        std::fs::write(work.join("@github-identities.json"), "{}").unwrap();
        // A marker that is a link is not the host's.
        let linked = clone_at(&work, "linked", false);
        let elsewhere = root.path().join("marker");
        std::fs::write(&elsewhere, "x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, linked.join(".git").join(MARKER)).unwrap();
        let claim_of_busy = claim::Claim::take(&busy).unwrap();
        let keep: HashSet<String> = ["kept".to_string()].into();
        assert_eq!(prune(&work, &keep), vec![removed.clone()]);
        assert!(!removed.exists() && !claim::lock_path(&removed).exists());
        for dir in [&kept, &foreign, &busy, &hidden, &linked] {
            assert!(dir.join("README.md").exists(), "{}", dir.display());
        }
        assert!(work.join("@github-identities.json").exists());
        drop(claim_of_busy);
        assert_eq!(prune(&work, &keep), vec![busy.clone()], "once it is free");
    }

    #[test]
    fn marking_twice_keeps_one_marker() {
        let root = tempfile::tempdir().unwrap();
        let git = root.path().join(".git");
        std::fs::create_dir_all(&git).unwrap();
        mark(&git).unwrap();
        mark(&git).unwrap();
        assert!(git.join(MARKER).is_file());
    }
}
