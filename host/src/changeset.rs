//! The change set of a run: what differs between the staged outputs and the worktree,
//! checked file by file against the task's allowed paths and the write caps, then
//! applied all-or-nothing.

use crate::digest::sha256_hex;
use crate::paths::{RepoPath, covered_by_any};
use crate::stage::{Stage, StageError, check_no_links};
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One file the run changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: RepoPath,
    pub sha256: String,
    pub bytes: u64,
    /// The checked content, written as is by [`ChangeSet::apply`].
    content: Vec<u8>,
}

/// Every file a run changed, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub files: Vec<FileChange>,
}

/// Why a change set is refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The executor did something its grant does not allow.
    #[error("{0}")]
    Violation(String),
    /// More files or bytes than the policy's caps.
    #[error("{0}")]
    OverLimit(String),
    #[error("cannot read the change set at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl ChangeSet {
    /// `sha256:` digest over the sorted `path`, NUL, file SHA-256, newline lines.
    pub fn digest(&self) -> String {
        let mut text = String::new();
        for f in &self.files {
            text.push_str(&f.path.as_string());
            text.push('\0');
            text.push_str(&f.sha256);
            text.push('\n');
        }
        format!("sha256:{}", sha256_hex(text.as_bytes()))
    }

    /// Compares the staged outputs with `worktree`. Every changed file must lie
    /// inside `allowed`; deletions and links are violations; the caps bound the number
    /// of changed files and their total size.
    pub fn collect(
        stage: &Stage,
        worktree: &Path,
        allowed: &[RepoPath],
        max_files: u64,
        max_bytes: u64,
    ) -> Result<ChangeSet, ChangeError> {
        let mut present = BTreeSet::new();
        let mut files = Vec::new();
        let mut stack = vec![(stage.out.clone(), Vec::<String>::new())];
        let mut total_bytes = 0u64;
        while let Some((dir, rel)) = stack.pop() {
            let entries = fs::read_dir(&dir).map_err(|source| ChangeError::Io {
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| ChangeError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let name = entry.file_name();
                let shown_rel = |rel: &[String]| {
                    let mut parts = rel.to_vec();
                    parts.push(name.to_string_lossy().into_owned());
                    parts.join("/")
                };
                let Some(name) = name.to_str().map(str::to_string) else {
                    return Err(ChangeError::Violation(format!(
                        "wrote a file whose name is not UTF-8: `{}`",
                        shown_rel(&rel)
                    )));
                };
                let mut child = rel.clone();
                child.push(name);
                let text = child.join("/");
                let file_type = entry.file_type().map_err(|source| ChangeError::Io {
                    path: entry.path(),
                    source,
                })?;
                if file_type.is_symlink() {
                    return Err(ChangeError::Violation(format!(
                        "created a symbolic link at `{text}`"
                    )));
                }
                if file_type.is_dir() {
                    stack.push((entry.path(), child));
                    continue;
                }
                if !file_type.is_file() {
                    return Err(ChangeError::Violation(format!(
                        "created a special file at `{text}`"
                    )));
                }
                let path = RepoPath::parse(&text).map_err(|e| {
                    ChangeError::Violation(format!("wrote an unacceptable path: {e}"))
                })?;
                let bytes = fs::read(entry.path()).map_err(|source| ChangeError::Io {
                    path: entry.path(),
                    source,
                })?;
                present.insert(path.clone());
                let unchanged = match fs::read(path.under(worktree)) {
                    Ok(current) => current == bytes,
                    Err(_) => false,
                };
                if unchanged {
                    continue;
                }
                if !covered_by_any(allowed, &path) {
                    return Err(ChangeError::Violation(format!(
                        "wrote `{path}`, which is outside the task's allowed paths"
                    )));
                }
                total_bytes += bytes.len() as u64;
                files.push(FileChange {
                    sha256: sha256_hex(&bytes),
                    bytes: bytes.len() as u64,
                    path,
                    content: bytes,
                });
            }
        }
        if let Some(deleted) = stage.seeded.iter().find(|p| !present.contains(*p)) {
            return Err(ChangeError::Violation(format!(
                "deleted `{deleted}`; executors may not delete files"
            )));
        }
        if files.len() as u64 > max_files {
            return Err(ChangeError::OverLimit(format!(
                "changed {} files; the policy allows at most {max_files}",
                files.len()
            )));
        }
        if total_bytes > max_bytes {
            return Err(ChangeError::OverLimit(format!(
                "wrote {total_bytes} bytes; the policy allows at most {max_bytes}"
            )));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(ChangeSet { files })
    }

    /// Writes the change set into `worktree`: every target is checked again for links,
    /// the content checked by [`ChangeSet::collect`] (not re-read from the staging
    /// area) is written to a temporary sibling first, and only then are they all
    /// renamed into place. A failure before the renames leaves the worktree untouched.
    pub fn apply(&self, worktree: &Path) -> Result<(), ApplyError> {
        for change in &self.files {
            check_no_links(worktree, &change.path).map_err(|e| match e {
                StageError::Denied(message) => ApplyError::Refused(message),
                StageError::Io { path, source } => ApplyError::Io { path, source },
            })?;
        }
        let mut pending = Vec::new();
        for change in &self.files {
            let target = change.path.under(worktree);
            let parent = target.parent().unwrap_or(worktree).to_path_buf();
            fs::create_dir_all(&parent).map_err(|source| ApplyError::Io {
                path: parent.clone(),
                source,
            })?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".leviathan-")
                .tempfile_in(&parent)
                .map_err(|source| ApplyError::Io {
                    path: parent.clone(),
                    source,
                })?;
            tmp.write_all(&change.content)
                .and_then(|_| tmp.as_file().sync_all())
                .map_err(|source| ApplyError::Io {
                    path: target.clone(),
                    source,
                })?;
            if let Ok(meta) = fs::metadata(&target) {
                let _ = fs::set_permissions(tmp.path(), meta.permissions());
            }
            pending.push((tmp, target));
        }
        for (tmp, target) in pending {
            tmp.persist(&target).map_err(|e| ApplyError::Io {
                path: target.clone(),
                source: e.error,
            })?;
        }
        Ok(())
    }
}

/// Why a checked change set could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A target became a symlink or hard link since staging.
    #[error("{0}")]
    Refused(String),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}
