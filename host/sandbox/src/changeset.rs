//! The change set of a run: what differs between the staged outputs and the worktree,
//! checked file by file against the task's allowed paths and the write caps, then
//! applied all-or-nothing.

use crate::stage::{MAX_DEPTH, Stage};
use leviathan_domain::digest::sha256_hex;
use leviathan_domain::paths::{RepoPath, covered_by_any};
use leviathan_domain::repofs::{Kind, Limit, RepoDir, RepoFsError};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read};
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

/// What [`ChangeSet::collect`] compares and keeps.
struct Walk<'a> {
    tree: RepoDir,
    allowed: &'a [RepoPath],
    /// The largest staged file that may be an unchanged copy (the staging limit).
    seed_limit: u64,
    max_bytes: u64,
    present: BTreeSet<RepoPath>,
    files: Vec<FileChange>,
    total_bytes: u64,
}

fn read_error(path: &str, e: RepoFsError) -> ChangeError {
    match e {
        RepoFsError::Io { source, .. } => ChangeError::Io {
            path: path.into(),
            source,
        },
        RepoFsError::Link { .. } => {
            ChangeError::Violation(format!("created a symbolic link at `{path}`"))
        }
        RepoFsError::NotRegular { kind, .. } => {
            ChangeError::Violation(format!("created {} at `{path}`", kind.described()))
        }
        other => ChangeError::Violation(other.to_string()),
    }
}

/// True when two open files hold the same bytes (compared a block at a time).
fn same_content(mut a: File, mut b: File) -> io::Result<bool> {
    const BLOCK: usize = 64 * 1024;
    let (mut x, mut y) = (vec![0u8; BLOCK], vec![0u8; BLOCK]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        let m = read_full(&mut b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

impl Walk<'_> {
    /// Whether the worktree already holds exactly `staged` at `path`. A link, special
    /// file or larger file there is a difference (and [`ChangeSet::apply`] refuses to
    /// write over a link or a special file).
    fn unchanged(&self, path: &RepoPath, staged: File, len: u64) -> Result<bool, ChangeError> {
        let shown = path.as_string();
        match self
            .tree
            .open_file(path, Limit::new(len, "the staged file's size"))
        {
            Ok(Some((current, meta))) if meta.len == len => {
                same_content(staged, current).map_err(|source| ChangeError::Io {
                    path: shown.into(),
                    source,
                })
            }
            Ok(_) => Ok(false),
            Err(RepoFsError::Io { source, .. }) => Err(ChangeError::Io {
                path: shown.into(),
                source,
            }),
            Err(_) => Ok(false),
        }
    }

    fn dir(&mut self, dir: &RepoDir, rel: &[String], depth: usize) -> Result<(), ChangeError> {
        if depth > MAX_DEPTH {
            return Err(ChangeError::Violation(format!(
                "nested directories deeper than {MAX_DEPTH} at `{}`",
                rel.join("/")
            )));
        }
        let entries = dir.entries().map_err(|e| read_error(&rel.join("/"), e))?;
        for (name, kind) in entries {
            let Some(name) = name.to_str().map(str::to_string) else {
                let mut parts = rel.to_vec();
                parts.push(name.to_string_lossy().into_owned());
                return Err(ChangeError::Violation(format!(
                    "wrote a file whose name is not UTF-8: `{}`",
                    parts.join("/")
                )));
            };
            let mut child = rel.to_vec();
            child.push(name.clone());
            let text = child.join("/");
            let single = RepoPath::parse(&name)
                .map_err(|e| ChangeError::Violation(format!("wrote an unacceptable path: {e}")))?;
            match kind {
                Kind::Symlink => {
                    return Err(ChangeError::Violation(format!(
                        "created a symbolic link at `{text}`"
                    )));
                }
                Kind::Dir => {
                    let sub = dir
                        .open_dir(&single)
                        .map_err(|e| read_error(&text, e))?
                        .ok_or_else(|| ChangeError::Violation(format!("`{text}` vanished")))?;
                    self.dir(&sub, &child, depth + 1)?;
                }
                Kind::File => self.file(dir, &single, &text)?,
                other => {
                    return Err(ChangeError::Violation(format!(
                        "created {} at `{text}`",
                        other.described()
                    )));
                }
            }
        }
        Ok(())
    }

    fn file(&mut self, dir: &RepoDir, name: &RepoPath, text: &str) -> Result<(), ChangeError> {
        let path = RepoPath::parse(text)
            .map_err(|e| ChangeError::Violation(format!("wrote an unacceptable path: {e}")))?;
        // No staged file larger than both a seed and a write can be either: refused by
        // its size before a byte of it is read (a sparse file's holes count).
        let limit = self.seed_limit.max(self.max_bytes);
        let (staged, meta) = match dir.open_file(name, Limit::new(limit, "the write cap")) {
            Ok(Some(opened)) => opened,
            Ok(None) => return Ok(()),
            Err(RepoFsError::TooLarge { size, .. }) => {
                return Err(ChangeError::OverLimit(format!(
                    "wrote {size} bytes to `{path}`; the policy allows at most {}",
                    self.max_bytes
                )));
            }
            Err(e) => return Err(read_error(text, e)),
        };
        self.present.insert(path.clone());
        let again = staged.try_clone().map_err(|source| ChangeError::Io {
            path: text.into(),
            source,
        })?;
        if self.unchanged(&path, staged, meta.len)? {
            return Ok(());
        }
        if !covered_by_any(self.allowed, &path) {
            return Err(ChangeError::Violation(format!(
                "wrote `{path}`, which is outside the task's allowed paths"
            )));
        }
        if self.total_bytes + meta.len > self.max_bytes {
            return Err(ChangeError::OverLimit(format!(
                "wrote {} bytes; the policy allows at most {}",
                self.total_bytes + meta.len,
                self.max_bytes
            )));
        }
        let mut content = Vec::with_capacity(meta.len as usize);
        let mut reader = again;
        use std::io::Seek;
        reader
            .seek(io::SeekFrom::Start(0))
            .and_then(|_| reader.take(meta.len + 1).read_to_end(&mut content))
            .map_err(|source| ChangeError::Io {
                path: text.into(),
                source,
            })?;
        if content.len() as u64 != meta.len {
            return Err(ChangeError::Violation(format!(
                "`{path}` changed size while it was read"
            )));
        }
        self.total_bytes += meta.len;
        self.files.push(FileChange {
            sha256: sha256_hex(&content),
            bytes: meta.len,
            path,
            content,
        });
        Ok(())
    }
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
    /// inside `allowed`; deletions, links and special files are violations; the caps
    /// bound the number of changed files and their total size. Both trees are read
    /// through capability handles (no link is followed, no special file opened), and
    /// no file is read past the larger of the write cap and the staging limit.
    pub fn collect(
        stage: &Stage,
        worktree: &Path,
        allowed: &[RepoPath],
        max_files: u64,
        max_bytes: u64,
        seed_limit: u64,
    ) -> Result<ChangeSet, ChangeError> {
        let io_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ChangeError::Io { path, source }
        };
        let out = RepoDir::open(&stage.out, "the staged outputs").map_err(io_at(&stage.out))?;
        let mut walk = Walk {
            tree: RepoDir::open(worktree, "a target repository").map_err(io_at(worktree))?,
            allowed,
            seed_limit,
            max_bytes,
            present: BTreeSet::new(),
            files: Vec::new(),
            total_bytes: 0,
        };
        walk.dir(&out, &[], 0)?;
        if let Some(deleted) = stage.seeded.iter().find(|p| !walk.present.contains(*p)) {
            return Err(ChangeError::Violation(format!(
                "deleted `{deleted}`; executors may not delete files"
            )));
        }
        let mut files = walk.files;
        if files.len() as u64 > max_files {
            return Err(ChangeError::OverLimit(format!(
                "changed {} files; the policy allows at most {max_files}",
                files.len()
            )));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(ChangeSet { files })
    }

    /// Writes the change set into `worktree` through a capability handle: every
    /// target is checked again for links and special files, the content checked by
    /// [`ChangeSet::collect`] (not re-read from the staging area) is written to a
    /// temporary sibling first, and only then are they all renamed into place. A
    /// failure before the renames leaves the worktree untouched.
    pub fn apply(&self, worktree: &Path) -> Result<(), ApplyError> {
        let tree =
            RepoDir::open(worktree, "a target repository").map_err(|source| ApplyError::Io {
                path: worktree.to_path_buf(),
                source,
            })?;
        let refused = |e: RepoFsError| match e {
            RepoFsError::Io { path, source } => ApplyError::Io {
                path: path.into(),
                source,
            },
            other => ApplyError::Refused(other.to_string()),
        };
        for change in &self.files {
            tree.check_writable(&change.path).map_err(refused)?;
        }
        let mut pending = Vec::with_capacity(self.files.len());
        for change in &self.files {
            pending.push(
                tree.prepare_write(&change.path, &change.content)
                    .map_err(refused)?,
            );
        }
        for write in pending {
            write.commit().map_err(refused)?;
        }
        Ok(())
    }
}

/// Why a checked change set could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A target became a symlink, hard link or special file since staging.
    #[error("{0}")]
    Refused(String),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}
