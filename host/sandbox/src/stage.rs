//! Staging: the directories an executor run sees. `repo/` is a snapshot of what the
//! run may read of the worktree (its read scope and its allowed paths; no `.git`, no
//! symlinks, fixed mtimes) mounted read-only at `/repo`, so staging costs what the
//! task touches, not the repository's size; `out/` holds copies of the task's allowed
//! paths, mounted read-write under `/out`.
//! The worktree itself is never mounted, so nothing the guest does reaches it before
//! the change set has been checked.

use crate::guard::OUT_GUEST;
use crate::{Mount, WriteRoot};
use leviathan_domain::paths::{RepoPath, covered_by_any, outermost};
use leviathan_domain::policy::StagingLimits;
use leviathan_domain::repofs::{self, Kind, Limit, RepoDir, RepoFsError};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Why a worktree cannot be staged for a task.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// An allowed path would be written through a link, or the target holds what the
    /// policy's staging limits refuse.
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

impl From<RepoFsError> for StageError {
    fn from(e: RepoFsError) -> StageError {
        match e {
            RepoFsError::Io { path, source } => StageError::Io {
                path: path.into(),
                source,
            },
            refused => StageError::Denied(refused.to_string()),
        }
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
    /// How many files, and bytes, `out/` held before the run (the write caps' baseline).
    pub seeded_files: u64,
    pub seeded_bytes: u64,
    /// Files left out of the snapshot for their size, with it.
    pub omitted: Vec<(RepoPath, u64)>,
    /// Bytes read from the worktree into the snapshot.
    pub staged_bytes: u64,
}

impl Stage {
    /// The writable tree as the run's write caps watch it.
    pub fn write_root(&self) -> WriteRoot {
        WriteRoot {
            dir: self.out.clone(),
            files_before: self.seeded_files,
            bytes_before: self.seeded_bytes,
        }
    }
}

/// The fixed modification time of every staged file (the Unix epoch).
const FIXED_MTIME: SystemTime = SystemTime::UNIX_EPOCH;

/// The deepest directory nesting staged (each level holds one open handle).
pub const MAX_DEPTH: usize = 256;

fn with_allowed(e: StageError, path: &RepoPath) -> StageError {
    match e {
        StageError::Denied(m) => StageError::Denied(format!("{m} (allowed path `{path}`)")),
        other => other,
    }
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

/// What staging may still read, and what it left out.
struct Budget {
    file_limit: Limit,
    total_limit: u64,
    used: u64,
    omitted: Vec<(RepoPath, u64)>,
}

/// Stages `worktree` for a run allowed to write `allowed` (already checked against
/// the policy) and to read `reads` besides, within `limits`; nothing else of the
/// worktree is read. The worktree is read through a capability handle:
/// links are never followed (and are left out of the snapshot), special files are
/// left out by type, and a file over `limits.max_file_bytes` is left out of the
/// snapshot; such a file under an allowed path, a link on an allowed path, or more
/// than `limits.max_total_bytes` in all is refused.
pub fn prepare(
    worktree: &Path,
    allowed: &[RepoPath],
    reads: &[RepoPath],
    limits: &StagingLimits,
) -> Result<Stage, StageError> {
    let source = RepoDir::open(worktree, "a target repository").map_err(io_err(worktree))?;
    for path in allowed {
        source
            .check_writable(path)
            .map_err(|e| with_allowed(e.into(), path))?;
    }
    let dir = tempfile::Builder::new()
        .prefix("leviathan-stage-")
        .tempdir()
        .map_err(io_err(worktree))?;
    let repo = dir.path().join("repo");
    let out = dir.path().join("out");
    fs::create_dir(&repo).map_err(io_err(&repo))?;
    fs::create_dir(&out).map_err(io_err(&out))?;
    let mut budget = Budget {
        file_limit: Limit::new(
            limits.max_file_bytes,
            "executor_limits.max_staged_file_bytes",
        ),
        total_limit: limits.max_total_bytes,
        used: 0,
        omitted: Vec::new(),
    };
    let mut visible: Vec<RepoPath> = reads.to_vec();
    visible.extend(allowed.iter().cloned());
    for root in outermost(&visible) {
        stage_root(&source, &root, &repo, &mut budget)?;
    }
    fix_dir_mtimes(&repo, &visible);
    if let Some((path, size)) = budget
        .omitted
        .iter()
        .find(|(path, _)| covered_by_any(allowed, path))
    {
        return Err(StageError::Denied(format!(
            "`{path}` is {size} bytes, over the policy's executor_limits.max_staged_file_bytes ({}); an executor cannot be given it to edit",
            limits.max_file_bytes
        )));
    }

    // The writable copies come from the snapshot, so they match what `/repo` shows
    // and the worktree is walked only once.
    let mut seeded = Seeded::default();
    for path in allowed {
        let source = path.under(&repo);
        let target = path.under(&out);
        match fs::symlink_metadata(&source) {
            Ok(meta) if meta.is_dir() => {
                fs::create_dir_all(&target).map_err(io_err(&target))?;
                copy_snapshot(&source, &target, &path.as_string(), &mut seeded)?;
            }
            Ok(meta) if meta.is_file() => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let len = copy_snapshot_file(&source, &target)?;
                seeded.add(Some(path.clone()), len);
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
            guest: OUT_GUEST.into(),
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
                    guest: format!("{OUT_GUEST}/{}", root.as_string()),
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
        seeded: seeded.paths,
        seeded_files: seeded.files,
        seeded_bytes: seeded.bytes,
        omitted: budget.omitted,
        staged_bytes: budget.used,
    })
}

/// Copies one root of the visible part of the worktree (a directory with what is
/// below it, or a file) into the snapshot, creating its parents. A root that does
/// not exist, is or lies under a link, or is `.git` is left out.
fn stage_root(
    source: &RepoDir,
    root: &RepoPath,
    repo: &Path,
    budget: &mut Budget,
) -> Result<(), StageError> {
    if root.components().is_empty() {
        return copy_tree(source, "", repo, budget, 0);
    }
    if root
        .components()
        .iter()
        .any(|c| c.eq_ignore_ascii_case(".git"))
    {
        return Ok(());
    }
    let meta = match source.stat(root) {
        Ok(Some(meta)) => meta,
        Ok(None) | Err(RepoFsError::Link { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let target = root.under(repo);
    match meta.kind {
        Kind::Dir => {
            let Some(sub) = source.open_dir(root)? else {
                return Ok(());
            };
            fs::create_dir_all(&target).map_err(io_err(&target))?;
            copy_tree(
                &sub,
                &root.as_string(),
                &target,
                budget,
                root.components().len(),
            )
        }
        Kind::File => {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            stage_file(source, root, root.clone(), &target, budget)
        }
        _ => Ok(()),
    }
}

/// Copies regular file `rel` of `dir` (repository path `path`) to `target` within
/// the budget (`target`'s directory exists). A file over the per-file limit is left
/// out and noted; one that is (or became) a link or special file is left out.
fn stage_file(
    dir: &RepoDir,
    rel: &RepoPath,
    path: RepoPath,
    target: &Path,
    budget: &mut Budget,
) -> Result<(), StageError> {
    let (file, meta) = match dir.open_file(rel, budget.file_limit) {
        Ok(Some(opened)) => opened,
        Ok(None) => return Ok(()),
        Err(RepoFsError::TooLarge { size, .. }) => {
            budget.omitted.push((path, size));
            return Ok(());
        }
        // Swapped for a link or special file meanwhile: left out like one.
        Err(RepoFsError::Link { .. } | RepoFsError::NotRegular { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if budget.used + meta.len > budget.total_limit {
        return Err(StageError::Denied(format!(
            "staging `{path}` would take the run past the policy's executor_limits.max_staged_bytes ({})",
            budget.total_limit
        )));
    }
    budget.used += repofs::copy_sparse(file, target, meta.len).map_err(io_err(target))?;
    set_mtime(target);
    Ok(())
}

/// Fixes the mtimes of the directories above the staged roots and of the snapshot's
/// top, deepest first (creating a child changes its parent's).
fn fix_dir_mtimes(repo: &Path, roots: &[RepoPath]) {
    let mut dirs: BTreeSet<RepoPath> = BTreeSet::new();
    for root in roots {
        let mut at = root.parent();
        while let Some(dir) = at {
            at = dir.parent();
            dirs.insert(dir);
        }
        if root.looks_like_dir() {
            dirs.insert(root.clone());
        }
    }
    let mut dirs: Vec<RepoPath> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().len()));
    for dir in dirs {
        let path = dir.under(repo);
        if path.is_dir() {
            set_mtime(&path);
        }
    }
    set_mtime(repo);
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

/// Copies the regular files and directories below `dir` (the worktree handle, at
/// repository path `rel`) into `to`, skipping `.git`, links and special files, fixing
/// mtimes and keeping sparse files sparse.
fn copy_tree(
    dir: &RepoDir,
    rel: &str,
    to: &Path,
    budget: &mut Budget,
    depth: usize,
) -> Result<(), StageError> {
    if depth > MAX_DEPTH {
        return Err(StageError::Denied(format!(
            "`{rel}` is nested deeper than {MAX_DEPTH} directories; refusing to stage it"
        )));
    }
    for (name, kind) in dir.entries()? {
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.eq_ignore_ascii_case(".git") {
            continue;
        }
        // A name no repository path can hold (a backslash, a control character) is
        // not staged.
        let Ok(child) = RepoPath::parse(name) else {
            continue;
        };
        let target = to.join(name);
        match kind {
            Kind::Dir => {
                let Some(sub) = dir.open_dir(&child)? else {
                    continue;
                };
                fs::create_dir(&target).map_err(io_err(&target))?;
                copy_tree(&sub, &join(rel, name), &target, budget, depth + 1)?;
                set_mtime(&target);
            }
            Kind::File => {
                let path = RepoPath::parse(&join(rel, name))
                    .map_err(|e| StageError::Denied(e.to_string()))?;
                stage_file(dir, &child, path, &target, budget)?;
            }
            // Links, FIFOs, devices and sockets are not part of the snapshot.
            _ => {}
        }
    }
    Ok(())
}

/// What staging copied into `out/` before a run.
#[derive(Default)]
struct Seeded {
    paths: BTreeSet<RepoPath>,
    files: u64,
    bytes: u64,
}

impl Seeded {
    fn add(&mut self, path: Option<RepoPath>, len: u64) {
        self.paths.extend(path);
        self.files += 1;
        self.bytes += len;
    }
}

/// Copies the snapshot's (host-made) tree at `from` to `to`; `seeded` gets each file's
/// repository path (`rel` is `from`'s) and size.
fn copy_snapshot(from: &Path, to: &Path, rel: &str, seeded: &mut Seeded) -> Result<(), StageError> {
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(io_err(from))?
        .collect::<Result<_, _>>()
        .map_err(io_err(from))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let file_type = entry.file_type().map_err(io_err(from))?;
        let target = to.join(name);
        let child = join(rel, name);
        if file_type.is_dir() {
            fs::create_dir(&target).map_err(io_err(&target))?;
            copy_snapshot(&entry.path(), &target, &child, seeded)?;
            set_mtime(&target);
        } else if file_type.is_file() {
            let len = copy_snapshot_file(&entry.path(), &target)?;
            seeded.add(RepoPath::parse(&child).ok(), len);
        }
    }
    Ok(())
}

/// Copies one snapshot file; returns its size.
fn copy_snapshot_file(from: &Path, to: &Path) -> Result<u64, StageError> {
    let file = fs::File::open(from).map_err(io_err(from))?;
    let len = file.metadata().map_err(io_err(from))?.len();
    repofs::copy_sparse(file, to, len).map_err(io_err(to))?;
    set_mtime(to);
    Ok(len)
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

    fn limits() -> StagingLimits {
        leviathan_domain::policy::Policy::default_policy().staging
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
        let stage = prepare(
            w.path(),
            &[p("docs/"), p("tests/test_x.py")],
            &[p("README.md")],
            &limits(),
        )
        .unwrap();
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

    #[test]
    fn only_the_read_scope_and_the_allowed_paths_are_staged() {
        let w = tempfile::tempdir().unwrap();
        for file in [
            "docs/a.md",
            "src/lib/x.rs",
            "src/main.rs",
            "README.md",
            "big/0.bin",
        ] {
            let path = w.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, file).unwrap();
        }
        let stage = prepare(
            w.path(),
            &[p("docs/")],
            &[p("src/lib/"), p("README.md")],
            &limits(),
        )
        .unwrap();
        assert!(stage.repo.join("docs/a.md").is_file());
        assert!(stage.repo.join("src/lib/x.rs").is_file());
        assert!(stage.repo.join("README.md").is_file());
        assert!(!stage.repo.join("src/main.rs").exists());
        assert!(!stage.repo.join("big").exists());
        assert_eq!(
            stage.staged_bytes,
            ("docs/a.md".len() + "src/lib/x.rs".len() + "README.md".len()) as u64
        );
        for dir in ["", "src", "src/lib", "docs"] {
            let mtime = fs::metadata(stage.repo.join(dir))
                .unwrap()
                .modified()
                .unwrap();
            assert_eq!(mtime, SystemTime::UNIX_EPOCH, "`{dir}`");
        }
        // Nothing to read and nothing allowed that exists: an empty snapshot.
        let stage = prepare(w.path(), &[p("notes/")], &[], &limits()).unwrap();
        assert_eq!(fs::read_dir(&stage.repo).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_allowed_directory_is_refused() {
        let w = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), w.path().join("docs")).unwrap();
        let err = prepare(w.path(), &[p("docs/")], &[], &limits())
            .err()
            .unwrap();
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
        let err = prepare(w.path(), &[p("docs/a.md")], &[], &limits())
            .err()
            .unwrap();
        assert!(
            matches!(err, StageError::Denied(ref m) if m.contains("hard links")),
            "{err}"
        );
    }

    #[test]
    fn top_level_file_mounts_whole_out() {
        let w = tempfile::tempdir().unwrap();
        let stage = prepare(w.path(), &[p("CHANGELOG.md")], &[], &limits()).unwrap();
        assert_eq!(stage.mounts.len(), 1);
        assert_eq!(stage.mounts[0].guest, "/out");
    }

    #[test]
    fn oversized_files_are_left_out_or_refused_under_an_allowed_path() {
        let w = tempfile::tempdir().unwrap();
        fs::create_dir_all(w.path().join("docs")).unwrap();
        fs::create_dir_all(w.path().join("assets")).unwrap();
        fs::write(w.path().join("assets/big.bin"), vec![1u8; 4096]).unwrap();
        fs::write(w.path().join("docs/a.md"), "A").unwrap();
        let small = StagingLimits {
            max_file_bytes: 1024,
            max_total_bytes: 1 << 20,
        };
        let stage = prepare(w.path(), &[p("docs/")], &[p("assets/")], &small).unwrap();
        assert!(!stage.repo.join("assets/big.bin").exists());
        assert_eq!(stage.omitted, vec![(p("assets/big.bin"), 4096)]);
        let err = prepare(w.path(), &[p("assets/")], &[], &small)
            .err()
            .unwrap();
        assert!(err.to_string().contains("max_staged_file_bytes"), "{err}");
        let tight = StagingLimits {
            max_file_bytes: 1 << 20,
            max_total_bytes: 100,
        };
        let err = prepare(w.path(), &[p("docs/")], &[p("assets/")], &tight)
            .err()
            .unwrap();
        assert!(err.to_string().contains("max_staged_bytes"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_links_to_devices_are_never_opened() {
        let w = tempfile::tempdir().unwrap();
        fs::create_dir_all(w.path().join("docs")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", w.path().join("docs/zero.md")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            w.path().join("docs/pipe.md"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let stage = prepare(w.path(), &[p("docs/guide.md")], &[], &limits()).unwrap();
        assert!(!stage.repo.join("docs/zero.md").exists());
        assert!(!stage.repo.join("docs/pipe.md").exists());
        let err = prepare(w.path(), &[p("docs/zero.md")], &[], &limits())
            .err()
            .unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = prepare(w.path(), &[p("docs/pipe.md")], &[], &limits())
            .err()
            .unwrap();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
