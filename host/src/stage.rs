//! Staging: the directories an executor run sees. `repo/` is a snapshot of the
//! worktree (no `.git`, no symlinks, fixed mtimes) mounted read-only at `/repo`;
//! `out/` holds copies of the task's allowed paths, mounted read-write under `/out`.
//! The worktree itself is never mounted, so nothing the guest does reaches it before
//! the change set has been checked.

use crate::paths::{RepoPath, outermost};
use crate::sandbox::Mount;
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Why a worktree cannot be staged for a task.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// An allowed path would be written through a link; refused.
    #[error("{0}")]
    Denied(String),
    #[error("cannot stage {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StageError + '_ {
    move |source| StageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The staged directories of one run.
pub struct Stage {
    _dir: tempfile::TempDir,
    /// Snapshot of the worktree.
    pub repo: PathBuf,
    /// Root of the writable copies, by repository-relative path.
    pub out: PathBuf,
    /// Writable mounts (`/out/<root>`), one per outermost allowed root.
    pub mounts: Vec<Mount>,
    /// Files copied into `out/` before the run.
    pub seeded: BTreeSet<RepoPath>,
}

/// The fixed modification time of every staged file (the Unix epoch).
const FIXED_MTIME: SystemTime = SystemTime::UNIX_EPOCH;

/// Refuses `path` if any existing component of it below `worktree` is a symlink, or
/// if it is an existing file with more than one hard link.
pub fn check_no_links(worktree: &Path, path: &RepoPath) -> Result<(), StageError> {
    let mut current = worktree.to_path_buf();
    let count = path.components().len();
    for (i, component) in path.components().iter().enumerate() {
        current.push(component);
        let meta = match fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(StageError::Io {
                    path: current,
                    source: e,
                });
            }
        };
        let shown = path.components()[..=i].join("/");
        if meta.file_type().is_symlink() {
            return Err(StageError::Denied(format!(
                "`{shown}` is a symbolic link; refusing to write through it (allowed path `{path}`)"
            )));
        }
        if i + 1 < count && !meta.is_dir() {
            return Err(StageError::Denied(format!(
                "`{shown}` is not a directory (allowed path `{path}`)"
            )));
        }
        if meta.is_file() && hard_links(&meta) > 1 {
            return Err(StageError::Denied(format!(
                "`{shown}` has several hard links; refusing to write through it (allowed path `{path}`)"
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn hard_links(meta: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.nlink()
}

#[cfg(not(unix))]
fn hard_links(_meta: &fs::Metadata) -> u64 {
    1
}

/// The directory mounted for an allowed path: the path itself for a directory, its
/// parent for a file (`None` for a top-level file: the whole `/out`).
fn mount_root(path: &RepoPath) -> Option<RepoPath> {
    if path.looks_like_dir() {
        Some(path.clone())
    } else {
        path.parent()
    }
}

/// Stages `worktree` for a run allowed to write `allowed` (already checked against
/// the policy). Symlinked or hard-linked allowed paths are refused.
pub fn prepare(worktree: &Path, allowed: &[RepoPath]) -> Result<Stage, StageError> {
    for path in allowed {
        check_no_links(worktree, path)?;
    }
    let dir = tempfile::Builder::new()
        .prefix("leviathan-stage-")
        .tempdir()
        .map_err(io_err(worktree))?;
    let repo = dir.path().join("repo");
    let out = dir.path().join("out");
    fs::create_dir(&repo).map_err(io_err(&repo))?;
    fs::create_dir(&out).map_err(io_err(&out))?;
    copy_tree(worktree, &repo, &mut |_| {})?;

    // The writable copies come from the snapshot, so they match what `/repo` shows
    // and the worktree is walked only once.
    let mut seeded = BTreeSet::new();
    for path in allowed {
        let source = path.under(&repo);
        let target = path.under(&out);
        match fs::symlink_metadata(&source) {
            Ok(meta) if meta.is_dir() => {
                fs::create_dir_all(&target).map_err(io_err(&target))?;
                copy_tree(&source, &target, &mut |rel| {
                    let full = format!("{}/{}", path.as_string(), rel);
                    if let Ok(p) = RepoPath::parse(&full) {
                        seeded.insert(p);
                    }
                })?;
            }
            Ok(meta) if meta.is_file() => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                copy_file(&source, &target)?;
                seeded.insert(path.clone());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StageError::Io {
                    path: source,
                    source: e,
                });
            }
        }
    }

    let roots: Vec<Option<RepoPath>> = allowed.iter().map(mount_root).collect();
    let mounts = if roots.iter().any(Option::is_none) {
        vec![Mount {
            guest: "/out".into(),
            host: out.clone(),
        }]
    } else {
        let roots: Vec<RepoPath> = roots.into_iter().flatten().collect();
        outermost(&roots)
            .into_iter()
            .map(|root| {
                let host = root.under(&out);
                fs::create_dir_all(&host).map_err(io_err(&host))?;
                Ok(Mount {
                    guest: format!("/out/{}", root.as_string()),
                    host,
                })
            })
            .collect::<Result<_, StageError>>()?
    };
    Ok(Stage {
        _dir: dir,
        repo,
        out,
        mounts,
        seeded,
    })
}

/// Copies the regular files and directories of `from` into `to`, skipping `.git`
/// and symlinks and fixing mtimes. `seen` gets each copied file's relative path.
fn copy_tree(from: &Path, to: &Path, seen: &mut dyn FnMut(&str)) -> Result<(), StageError> {
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf(), String::new())];
    let mut dirs = Vec::new();
    while let Some((src, dst, rel)) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&src)
            .map_err(io_err(&src))?
            .collect::<Result<_, _>>()
            .map_err(io_err(&src))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let Some(name_str) = name.to_str() else {
                continue;
            };
            if name_str.eq_ignore_ascii_case(".git") {
                continue;
            }
            let file_type = entry.file_type().map_err(io_err(&src))?;
            let child_rel = if rel.is_empty() {
                name_str.to_string()
            } else {
                format!("{rel}/{name_str}")
            };
            let target = dst.join(&name);
            if file_type.is_dir() {
                fs::create_dir(&target).map_err(io_err(&target))?;
                stack.push((entry.path(), target.clone(), child_rel));
                dirs.push(target);
            } else if file_type.is_file() {
                copy_file(&entry.path(), &target)?;
                seen(&child_rel);
            }
        }
    }
    for dir in dirs.iter().rev() {
        set_mtime(dir);
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<(), StageError> {
    fs::copy(from, to).map_err(io_err(from))?;
    set_mtime(to);
    Ok(())
}

/// Best effort: a staged entry whose mtime cannot be fixed still has valid content.
fn set_mtime(path: &Path) {
    if let Ok(file) = fs::File::open(path) {
        let _ = file.set_modified(FIXED_MTIME + Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RepoPath {
        RepoPath::parse(s).unwrap()
    }

    #[test]
    fn snapshot_skips_git_and_symlinks_and_mounts_roots() {
        let w = tempfile::tempdir().unwrap();
        fs::create_dir_all(w.path().join(".git/objects")).unwrap();
        fs::write(w.path().join(".git/config"), "secret").unwrap();
        fs::create_dir_all(w.path().join("docs/sub")).unwrap();
        fs::write(w.path().join("docs/sub/a.md"), "A").unwrap();
        fs::write(w.path().join("README.md"), "R").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", w.path().join("docs/passwd")).unwrap();
        let stage = prepare(w.path(), &[p("docs/"), p("tests/test_x.py")]).unwrap();
        assert!(stage.repo.join("README.md").is_file());
        assert!(!stage.repo.join(".git").exists());
        assert!(!stage.repo.join("docs/passwd").exists());
        assert!(stage.out.join("docs/sub/a.md").is_file());
        assert!(!stage.out.join("README.md").exists());
        let guests: Vec<_> = stage.mounts.iter().map(|m| m.guest.as_str()).collect();
        assert_eq!(guests, ["/out/docs", "/out/tests"]);
        assert_eq!(
            stage
                .seeded
                .iter()
                .map(|k| k.as_string())
                .collect::<Vec<_>>(),
            ["docs/sub/a.md"]
        );
        let mtime = fs::metadata(stage.repo.join("README.md"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(mtime, SystemTime::UNIX_EPOCH);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_allowed_directory_is_refused() {
        let w = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), w.path().join("docs")).unwrap();
        let err = prepare(w.path(), &[p("docs/")]).err().unwrap();
        assert!(
            matches!(err, StageError::Denied(ref m) if m.contains("`docs` is a symbolic link")),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn hard_linked_file_is_refused() {
        let w = tempfile::tempdir().unwrap();
        fs::create_dir(w.path().join("docs")).unwrap();
        fs::write(w.path().join("secret"), "x").unwrap();
        fs::hard_link(w.path().join("secret"), w.path().join("docs/a.md")).unwrap();
        let err = prepare(w.path(), &[p("docs/a.md")]).err().unwrap();
        assert!(
            matches!(err, StageError::Denied(ref m) if m.contains("hard links")),
            "{err}"
        );
    }

    #[test]
    fn top_level_file_mounts_whole_out() {
        let w = tempfile::tempdir().unwrap();
        let stage = prepare(w.path(), &[p("CHANGELOG.md")]).unwrap();
        assert_eq!(stage.mounts.len(), 1);
        assert_eq!(stage.mounts[0].guest, "/out");
    }
}
