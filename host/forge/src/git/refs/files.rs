//! The clone's remote-tracking branches read from git's own ref files, without a git
//! process: the loose refs below `.git/refs/remotes/origin/`, then `.git/packed-refs`
//! for the names no loose ref holds (a loose ref is newer than its packed line). A
//! pass over a fleet whose targets are all waiting makes this read once per target,
//! where a `git for-each-ref` cost a process (about 1.4 ms).
//!
//! The clone is the host's, but its ref names are the remote's: every file is read
//! through [`RepoDir`] (no link followed, regular files only, bounded). Whatever is not
//! exactly as git's files backend writes it (a reftable repository, a symbolic ref
//! other than `HEAD`, a lock file of an interrupted update, a name or value that does
//! not read as one) answers `None`, and the caller asks git instead: this reader may
//! decline, never disagree.

use super::Branches;
use leviathan_domain::paths::RepoPath;
use leviathan_domain::repofs::{Kind, Limit, RepoDir};
use std::collections::BTreeMap;
use std::path::Path;

/// The most bytes of `packed-refs` read (the bound on what `for-each-ref` may print).
const MAX_PACKED: Limit = Limit::new(crate::git::capture::MAX_STDOUT as u64, "packed-refs limit");
/// The most bytes of one loose ref (a hash of either format and a newline, or a
/// symbolic ref).
const MAX_LOOSE: Limit = Limit::new(4 << 10, "loose ref limit");
/// The deepest branch name read (`a/b/c` is 3): deeper, git is asked.
const MAX_DEPTH: usize = 32;
/// The most loose refs read (a few system calls each); past that, one git process
/// reading them is cheaper, and git is asked.
const MAX_LOOSE_REFS: usize = 256;

/// The remote-tracking branches of the clone whose git directory is `git_dir`, by
/// name without `refs/remotes/origin/` (its `HEAD` left out), as `for-each-ref` would
/// list them; `None` when git should be asked.
pub(in crate::git) fn tracking(git_dir: &Path) -> Option<Branches> {
    let git = RepoDir::open(git_dir, "a clone's git directory").ok()?;
    if git.stat(&path("reftable")?).ok()?.is_some() {
        return None;
    }
    let mut branches = BTreeMap::new();
    if let Some(packed) = git.read(&path("packed-refs")?, MAX_PACKED).ok()? {
        for line in std::str::from_utf8(&packed).ok()?.lines() {
            if line.starts_with('#') || line.starts_with('^') {
                continue;
            }
            let (commit, name) = line.split_once(' ')?;
            if let Some(name) = name.strip_prefix(super::TRACKING) {
                branches.insert(name.to_string(), hash(commit)?);
            }
        }
    }
    if let Some(loose) = git.open_dir(&path("refs/remotes/origin")?).ok()? {
        let mut budget = MAX_LOOSE_REFS;
        read_loose(&loose, "", 0, &mut budget, &mut branches)?;
    }
    branches.remove("HEAD");
    Some(branches.into_iter().collect())
}

/// Adds the loose refs below `dir` (whose names start with `prefix`) to `branches`,
/// reading at most `budget` more entries.
fn read_loose(
    dir: &RepoDir,
    prefix: &str,
    depth: usize,
    budget: &mut usize,
    branches: &mut BTreeMap<String, String>,
) -> Option<()> {
    if depth >= MAX_DEPTH {
        return None;
    }
    for (name, kind) in dir.entries().ok()? {
        *budget = budget.checked_sub(1)?;
        let name = name.to_str()?;
        if name.ends_with(".lock") {
            return None;
        }
        let full = format!("{prefix}{name}");
        let rel = path(name)?;
        match kind {
            Kind::Dir => {
                let sub = dir.open_dir(&rel).ok()??;
                read_loose(&sub, &format!("{full}/"), depth + 1, budget, branches)?;
            }
            Kind::File => {
                let content = dir.read(&rel, MAX_LOOSE).ok()??;
                let value = std::str::from_utf8(&content).ok()?;
                let value = value.strip_suffix('\n').unwrap_or(value);
                if full == "HEAD" && value.starts_with("ref: ") {
                    // The remote's default branch, which the listing leaves out.
                    continue;
                }
                branches.insert(full, hash(value)?);
            }
            _ => return None,
        }
    }
    Some(())
}

/// `text` when it is an object name of either hash format, in lower-case hex.
fn hash(text: &str) -> Option<String> {
    let hex = text.len() == 40 || text.len() == 64;
    (hex && text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| text.to_string())
}

/// `text` as a path below a handle; `None` for a name a path cannot hold.
fn path(text: &str) -> Option<RepoPath> {
    RepoPath::parse(text).ok().filter(|p| p.as_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::tests::{commit_as_tester, git};

    /// What `git for-each-ref` says, the way the host reads it.
    fn asked(clone: &Path) -> Branches {
        super::super::parse(
            &git(clone, super::super::FOR_EACH_REF),
            super::super::TRACKING,
        )
    }

    /// Commits a change on a new or existing branch of `seed` and pushes it.
    fn push(seed: &Path, branch: &str) {
        git(seed, &["checkout", "--quiet", "-B", branch]);
        std::fs::write(seed.join("f"), branch.repeat(3) + &commit_count(seed)).unwrap();
        git(seed, &["add", "f"]);
        commit_as_tester(seed, branch);
        git(seed, &["push", "--quiet", "--force", "origin", branch]);
    }

    fn commit_count(seed: &Path) -> String {
        git(seed, &["rev-list", "--count", "--all"])
    }

    #[test]
    fn the_ref_files_read_as_for_each_ref_lists_them() {
        let root = tempfile::tempdir().unwrap();
        let (bare, seed, clone) = (
            root.path().join("remote.git"),
            root.path().join("seed"),
            root.path().join("clone"),
        );
        git(
            root.path(),
            &["init", "--quiet", "--bare", "-b", "main", "remote.git"],
        );
        git(
            root.path(),
            &["clone", "--quiet", bare.to_str().unwrap(), "seed"],
        );
        push(&seed, "main");
        push(&seed, "agent/t-1");
        git(
            root.path(),
            &[
                "clone",
                "--quiet",
                "--no-tags",
                bare.to_str().unwrap(),
                "clone",
            ],
        );
        let git_dir = clone.join(".git");
        let agree = |state: &str| {
            let read = tracking(&git_dir);
            assert_eq!(read, Some(asked(&clone)), "{state}");
            read.unwrap().len()
        };
        // Fresh: packed-refs, and the loose `HEAD` pointing at the default branch.
        assert_eq!(agree("after the clone"), 2);
        // New branches arrive as loose refs, some nested.
        push(&seed, "agent/deep/x/y");
        push(&seed, "release");
        git(&clone, &["fetch", "--quiet", "--prune", "origin"]);
        assert_eq!(agree("after a fetch of new branches"), 4);
        git(&clone, &["pack-refs", "--all"]);
        assert_eq!(agree("all packed"), 4);
        // A packed branch moved on: its loose ref is newer than its packed line.
        push(&seed, "agent/t-1");
        git(&clone, &["fetch", "--quiet", "--prune", "origin"]);
        assert_eq!(agree("a loose ref over a packed line"), 4);
        // Pruned branches leave both places.
        git(
            &seed,
            &[
                "push",
                "--quiet",
                "origin",
                "--delete",
                "agent/deep/x/y",
                "agent/t-1",
            ],
        );
        git(&clone, &["fetch", "--quiet", "--prune", "origin"]);
        assert_eq!(agree("after a pruning fetch"), 2);
    }

    #[test]
    fn anything_git_did_not_write_as_expected_is_left_to_git() {
        let root = tempfile::tempdir().unwrap();
        let git_dir = root.path().join(".git");
        let origin = git_dir.join("refs/remotes/origin");
        let reset = || {
            let _ = std::fs::remove_dir_all(&git_dir);
            std::fs::create_dir_all(origin.join("agent")).unwrap();
            std::fs::write(origin.join("HEAD"), "ref: refs/remotes/origin/main\n").unwrap();
            std::fs::write(origin.join("agent/t-1"), format!("{}\n", "a".repeat(40))).unwrap();
            std::fs::write(
                git_dir.join("packed-refs"),
                format!(
                    "# pack-refs with: peeled fully-peeled sorted \n{} refs/remotes/origin/main\n^{}\n{} refs/tags/v1\n",
                    "b".repeat(64),
                    "c".repeat(64),
                    "d".repeat(40)
                ),
            )
            .unwrap();
        };
        reset();
        assert_eq!(
            tracking(&git_dir),
            Some(vec![
                ("agent/t-1".to_string(), "a".repeat(40)),
                ("main".to_string(), "b".repeat(64)),
            ]),
            "the well-formed layout is read"
        );
        let declined: [(&str, &dyn Fn()); 8] = [
            ("more loose refs than are worth reading one by one", &|| {
                for i in 0..MAX_LOOSE_REFS {
                    let name = origin.join(format!("agent/b{i}"));
                    std::fs::write(name, format!("{}\n", "e".repeat(40))).unwrap();
                }
            }),
            ("a value that is not a hash", &|| {
                std::fs::write(origin.join("agent/t-1"), "not a hash\n").unwrap()
            }),
            ("an upper-case hash", &|| {
                std::fs::write(origin.join("agent/t-1"), "A".repeat(40)).unwrap()
            }),
            ("a lock file of an interrupted update", &|| {
                std::fs::write(origin.join("main.lock"), "").unwrap()
            }),
            ("a symbolic ref besides HEAD", &|| {
                std::fs::write(origin.join("alias"), "ref: refs/remotes/origin/main\n").unwrap()
            }),
            ("a link among the refs", &|| {
                std::os::unix::fs::symlink("/etc/passwd", origin.join("evil")).unwrap()
            }),
            ("a reftable repository", &|| {
                std::fs::create_dir_all(git_dir.join("reftable")).unwrap()
            }),
            ("a packed line without its name", &|| {
                std::fs::write(git_dir.join("packed-refs"), "b".repeat(40)).unwrap()
            }),
        ];
        for (case, make) in declined {
            reset();
            make();
            assert_eq!(tracking(&git_dir), None, "{case}");
        }
    }
}
