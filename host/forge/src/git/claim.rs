//! The host's hold on one of its clones, and what it repairs when it takes it.
//!
//! A clone is used by one git command at a time, all from the worker serving its
//! target: [`Claim`] makes that a rule across processes (an exclusive lock on a file
//! beside the clone, held while the clone is in use). Under the claim, git's lock
//! files in the clone (`index.lock`, `HEAD.lock`, `refs/…/*.lock`) can only have
//! been left by a git that was killed (a pod evicted, the host restarted, a command
//! stopped at its deadline; automatic maintenance never outlives the command that
//! starts it, see `PINNED_CONFIG`; a command a host killed outright left running is
//! stopped when the claim is taken, see [`super::leftover`]), and git would refuse
//! every later command until someone removed them by hand; [`remove_stale_locks`]
//! removes them (and a killed fetch's partial packs).

use super::leftover;
use std::fs::{File, TryLockError};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// An exclusive hold on a clone directory, released when dropped.
#[derive(Debug)]
pub struct Claim {
    file: File,
}

impl Claim {
    /// Takes the clone at `dir` (which need not exist yet); refused while another
    /// holder has it. A command the last holder recorded as running and left behind
    /// when it died is stopped first.
    pub fn take(dir: &Path) -> io::Result<Claim> {
        let path = lock_path(dir);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                if let Some(group) = leftover::stop_left_running(&leftover::record_path(dir)) {
                    tracing::warn!(clone = %dir.display(), process_group = group, "stopped a git command a host that died left running in the clone");
                }
                Ok(Claim { file })
            }
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "the clone is in use by another leviathan-host process or worker ({} is locked)",
                    path.display()
                ),
            )),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl Drop for Claim {
    /// Unlocks before the file is closed: a process another thread is starting holds
    /// a copy of every descriptor until it executes its program, and a lock left to
    /// the close would last as long as that copy, refusing the clone to the next
    /// taker (seen in tests that take a clone again at once while others start git).
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Stops, in every clone of `work_dir` not in use, what a host that died left running
/// there (see [`leftover`]), as taking each clone's claim would, and returns the clones
/// whose records were looked at. A pass calls this first, so that a killed host's
/// orphaned clone or fetch (no deadline, no bound on what it writes) ends when the next
/// pass starts, not when the pass reaches its target.
pub fn stop_left_running_in(work_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return Vec::new();
    };
    let mut looked_at = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(clone) = name
            .to_str()
            .and_then(|n| n.strip_prefix('.')?.strip_suffix(".running"))
            .filter(|n| !n.is_empty() && !n.starts_with('.'))
        else {
            continue;
        };
        let dir = work_dir.join(clone);
        // A clone in use is left alone: its record is its holder's running command.
        if Claim::take(&dir).is_ok() {
            looked_at.push(dir);
        }
    }
    looked_at.sort();
    looked_at
}

/// The lock file of the clone at `dir`: `.<name>.lock` beside it.
pub fn lock_path(dir: &Path) -> PathBuf {
    beside(dir, "lock")
}

/// Where a fresh clone of `dir` is made before it is moved into place, so that an
/// interrupted clone never looks like a finished one.
pub fn staging_path(dir: &Path) -> PathBuf {
    beside(dir, "cloning")
}

/// The host's file `.<name>.<kind>` beside the clone at `dir` (hidden, and so never
/// taken for a clone).
pub fn beside(dir: &Path, kind: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    dir.with_file_name(format!(".{name}.{kind}"))
}

/// Removes every lock file git left in `git_dir` (a clone's `.git`), and the partial
/// packs (`objects/pack/tmp_*`) of a fetch that was killed (at its deadline, or past
/// `max_clone_mib`), and returns them. Only call it under the clone's [`Claim`].
/// Loose-object directories are not walked (git takes no locks there); links are
/// never followed.
pub fn remove_stale_locks(git_dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut pending = vec![git_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let in_objects = dir == git_dir.join("objects");
        let in_packs = dir == git_dir.join("objects/pack");
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if kind.is_dir() {
                let loose =
                    in_objects && name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
                if !loose {
                    pending.push(entry.path());
                }
            } else if kind.is_file()
                && (name.ends_with(".lock") || (in_packs && name.starts_with("tmp_")))
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed.push(entry.path());
            }
        }
    }
    removed.sort();
    removed
}

/// The first `url` of `[remote "origin"]` in the clone's `.git/config`, as git wrote
/// it (`None` when it is not there or not plainly written; the caller then sets it).
pub fn origin_url(git_dir: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(git_dir.join("config"))
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    let mut in_origin = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_origin = line == "[remote \"origin\"]";
            continue;
        }
        if !in_origin {
            continue;
        }
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == "url"
        {
            let value = value.trim();
            // Quoted or escaped values (and comments) are left to git.
            let plain = !value.contains(['"', '\\', '#', ';']);
            return plain.then(|| value.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_clone_is_refused_to_a_second_holder_until_released() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("work/target-a");
        let first = Claim::take(&dir).unwrap();
        let refused = Claim::take(&dir).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        assert!(refused.to_string().contains("in use"), "{refused}");
        drop(first);
        Claim::take(&dir).unwrap();
        assert!(!dir.exists(), "taking a claim does not make the clone");
    }

    #[test]
    fn stale_locks_are_removed_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let git = root.path().join(".git");
        for dir in ["refs/heads/agent", "objects/ab", "objects/pack", "logs"] {
            std::fs::create_dir_all(git.join(dir)).unwrap();
        }
        let stale = [
            "index.lock",
            "HEAD.lock",
            "refs/heads/agent/task-1.lock",
            "objects/pack/multi-pack-index.lock",
            "objects/pack/tmp_pack_Xc9Ab2",
            "objects/pack/tmp_idx_Xc9Ab2",
        ];
        let kept = [
            "index",
            "HEAD",
            "config",
            "refs/heads/main",
            "objects/ab/cdef",
            "objects/pack/pack-0123abcd.pack",
            "objects/pack/pack-0123abcd.idx",
            "logs/HEAD",
            "logs/tmp_not_a_pack",
        ];
        for file in stale.iter().chain(&kept) {
            std::fs::write(git.join(file), "x").unwrap();
        }
        // A link named like a lock is not followed and not touched.
        let outside = root.path().join("outside.lock");
        std::fs::write(&outside, "x").unwrap();
        std::os::unix::fs::symlink(&outside, git.join("packed-refs.lock")).unwrap();
        let removed = remove_stale_locks(&git);
        let mut expected: Vec<PathBuf> = stale.iter().map(|f| git.join(f)).collect();
        expected.sort();
        assert_eq!(removed, expected);
        for file in kept {
            assert!(git.join(file).exists(), "{file} removed");
        }
        assert!(outside.exists());
    }

    #[test]
    fn the_origin_url_is_read_as_git_wrote_it() {
        let root = tempfile::tempdir().unwrap();
        let config = "[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = /elsewhere\n\
                      [remote \"origin\"]\n\turl = /srv/repos/one.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n";
        std::fs::write(root.path().join("config"), config).unwrap();
        assert_eq!(
            origin_url(root.path()).as_deref(),
            Some("/srv/repos/one.git")
        );
        std::fs::write(
            root.path().join("config"),
            "[remote \"origin\"]\n\turl = \"/a b\"\n",
        )
        .unwrap();
        assert_eq!(origin_url(root.path()), None, "quoted: left to git");
        std::fs::write(root.path().join("config"), "[core]\n").unwrap();
        assert_eq!(origin_url(root.path()), None);
    }
}
