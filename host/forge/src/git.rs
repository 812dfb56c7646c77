//! Git through the `git` command: the operations an attempt needs on the host's own
//! clone of a target (issue #4): fetch, branch from the base, commit the change, push,
//! list and delete agent branches.
//! A forge token reaches git through the child's environment (`GIT_CONFIG_*`), never
//! through a URL, an argument or a log line.
//!
//! A clone heals what an interrupted or reconfigured host leaves: it is made aside and
//! moved into place (a killed clone never looks finished), git's stale lock files are
//! removed under the clone's claim ([`claim`]), its `origin` follows the configured
//! remote, and every command that talks to the remote runs under a deadline
//! ([`deadline`]). A fetch runs only when the remote's branches differ from what the
//! clone last saw of them ([`refs`]).

mod capture;
mod claim;
mod deadline;
mod leftover;
mod prune;
mod refs;

pub use claim::stop_left_running_in;
pub use deadline::stop_all as stop_remote_commands;
pub use prune::prune as prune_clones;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where a clone fetches from and pushes to, and how.
#[derive(Debug, Clone, Copy)]
pub struct Remote<'a> {
    /// The URL (or absolute path) git clones, fetches and pushes.
    pub url: &'a str,
    /// A token git sends as an HTTP header, if the remote needs one.
    pub token: Option<&'a str>,
    /// The longest a clone, fetch or push may take before it is stopped.
    pub timeout: Duration,
    /// The most bytes the clone's packs may hold, and the most its checkout may.
    pub max_bytes: u64,
}

impl<'a> Remote<'a> {
    /// A remote without a token, under the default bounds.
    pub fn local(url: &'a str) -> Remote<'a> {
        use leviathan_domain::config::{DEFAULT_GIT_TIMEOUT_SECONDS, DEFAULT_MAX_CLONE_MIB};
        Remote {
            url,
            token: None,
            timeout: Duration::from_secs(DEFAULT_GIT_TIMEOUT_SECONDS),
            max_bytes: DEFAULT_MAX_CLONE_MIB << 20,
        }
    }

    /// A remote under the bounds `config` sets (`git_timeout_seconds`, `max_clone_mib`).
    pub fn configured(
        url: &'a str,
        token: Option<&'a str>,
        config: &leviathan_domain::config::Config,
    ) -> Remote<'a> {
        Remote {
            url,
            token,
            timeout: Duration::from_secs(config.git_timeout_seconds),
            max_bytes: config.max_clone_mib << 20,
        }
    }
}

/// A failed git command: what ran (without secrets) and what git said.
#[derive(Debug, thiserror::Error)]
#[error("git {args} in {dir}: {message}")]
pub struct GitError {
    pub dir: PathBuf,
    pub args: String,
    pub message: String,
}

/// The most files the host checks out of a target (empty files take no bytes, but
/// each takes an inode of the disk the host's clones and event log share): several
/// times the largest monorepos'.
pub const MAX_CHECKOUT_FILES: u64 = 2_000_000;

/// The identity of the host's commits.
pub const AUTHOR_NAME: &str = "leviathan-host";
pub const AUTHOR_EMAIL: &str = "leviathan-host@localhost";

/// The host's working clone of one target.
pub struct Clone {
    dir: PathBuf,
    /// An HTTP `Authorization` header value for fetch and push, if the remote needs one.
    auth_header: Option<String>,
    /// Who commits are by: the host ([`AUTHOR_NAME`]) unless set (an App's bot).
    author: Option<(String, String)>,
    /// The deadline of each command that talks to the remote.
    timeout: Duration,
    /// The most bytes the clone's packs, and its checkout, may hold.
    max_bytes: u64,
    /// The clone's lock, held while this value lives (none for a replay's checkout).
    _claim: Option<claim::Claim>,
    /// The remote-tracking branches, when read since the last command that talked to
    /// the remote (which may have changed them).
    tracking: std::sync::Mutex<Option<refs::Branches>>,
}

impl Clone {
    /// Clones `remote` into `dir`, or fetches into an existing clone, and leaves a
    /// clean detached checkout of `origin/<base>`.
    pub fn prepare(remote: &Remote, dir: &Path, base: &str) -> Result<Clone, GitError> {
        let clone = Clone::fetched(remote, dir)?;
        clone.checkout_base(base)?;
        Ok(clone)
    }

    /// Takes the clone at `dir` and clones `remote` into it, or fetches (pruning) into
    /// the existing clone after repairing it (stale locks removed, `origin` pointed at
    /// `remote`); the worktree is left as it was (see [`Clone::checkout_base`]). The
    /// remote's branches are then known locally ([`Clone::remote_branches`]). Refused
    /// while another process or worker holds the clone.
    pub fn fetched(remote: &Remote, dir: &Path) -> Result<Clone, GitError> {
        let error = |args: &str, message: String| GitError {
            dir: dir.to_path_buf(),
            args: args.into(),
            message,
        };
        let claim = claim::Claim::take(dir).map_err(|e| error("clone", e.to_string()))?;
        let clone = Clone {
            dir: dir.to_path_buf(),
            auth_header: remote.token.map(basic_auth),
            author: None,
            timeout: remote.timeout,
            max_bytes: remote.max_bytes,
            _claim: Some(claim),
            tracking: std::sync::Mutex::new(None),
        };
        let git_dir = dir.join(".git");
        if !git_dir.is_dir() {
            clone.clone_fresh(remote.url)?;
            return Ok(clone);
        }
        // A clone made before clones were marked is marked now (see `prune`).
        if let Err(e) = prune::mark(&git_dir) {
            return Err(error(
                "clone",
                format!("cannot mark the clone as the host's: {e}"),
            ));
        }
        let removed = claim::remove_stale_locks(&git_dir);
        if !removed.is_empty() {
            tracing::warn!(clone = %dir.display(), removed = ?removed, "removed git lock files and partial packs an interrupted git left in the clone");
        }
        if claim::origin_url(&git_dir).as_deref() != Some(remote.url) {
            // The configured remote changed (or the work directory was moved):
            // fetch and push where the configuration says, never where it said.
            clone.run(&["remote", "set-url", "origin", remote.url])?;
        }
        // Most passes find the remote as the clone last saw it: its branches are
        // listed first (one connection and no connectivity check), and the fetch runs
        // only when they differ from the remote-tracking refs.
        let listed = refs::parse(
            &clone.run_remote(&["ls-remote", "--heads", "origin"])?,
            refs::HEADS,
        );
        let tracking = clone.tracking_branches()?;
        if listed != tracking {
            // No tags (the host never reads them) and no automatic maintenance after
            // every fetch (a further git process each time; commits still trigger it).
            clone
                .run_remote_watched(
                    dir,
                    &[
                        "fetch",
                        "--quiet",
                        "--prune",
                        "--no-tags",
                        "--no-auto-maintenance",
                        "origin",
                    ],
                    Some(clone.objects_growth(&git_dir)),
                )
                .and_then(|_| clone.check_objects(&git_dir, "fetch"))
                .inspect_err(|_| {
                    // A fetch past the bound (stopped, or finished between two checks)
                    // takes the clone with it: no clone over the bound stays on disk, and
                    // the next pass clones afresh under the bound.
                    if deadline::objects_bytes(&git_dir.join("objects")) > clone.max_bytes {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                })?;
        }
        Ok(clone)
    }

    /// The bound on what a clone or fetch receives into `git_dir`'s objects.
    fn objects_growth(&self, git_dir: &Path) -> deadline::Growth {
        deadline::Growth {
            dir: git_dir.join("objects"),
            max_bytes: self.max_bytes,
        }
    }

    /// Refuses a clone whose git objects hold more than the bound after `command`.
    fn check_objects(&self, git_dir: &Path, command: &str) -> Result<(), GitError> {
        let held = deadline::objects_bytes(&git_dir.join("objects"));
        if held > self.max_bytes {
            return Err(self.error(&[command], self.too_large("its git objects hold", held)));
        }
        Ok(())
    }

    /// What a clone past its bound fails with.
    fn too_large(&self, what: &str, bytes: u64) -> String {
        format!(
            "{what} {} MiB, more than max_clone_mib ({} MiB); raise it in the configuration for a repository this large",
            bytes.div_ceil(1 << 20),
            self.max_bytes >> 20
        )
    }

    /// The remote-tracking branches, as last read or read now (and kept until a
    /// command talks to the remote).
    fn tracking_branches(&self) -> Result<refs::Branches, GitError> {
        let mut known = self.tracking.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(branches) = known.as_ref() {
            return Ok(branches.clone());
        }
        // Read from the ref files when they are as git writes them; git is asked
        // otherwise.
        let branches = match refs::files::tracking(&self.dir.join(".git")) {
            Some(branches) => branches,
            None => refs::parse(&self.run(refs::FOR_EACH_REF)?, refs::TRACKING),
        };
        *known = Some(branches.clone());
        Ok(branches)
    }

    /// Clones `url` beside the clone's directory and moves it into place: a clone
    /// that is interrupted leaves only its staging directory, removed on the next try.
    /// A fresh clone already holds every branch of the remote: no fetch after it.
    fn clone_fresh(&self, url: &str) -> Result<(), GitError> {
        let staging = claim::staging_path(&self.dir);
        let fail = |message: String| self.error(&["clone"], message);
        if std::fs::symlink_metadata(&staging).is_ok() {
            std::fs::remove_dir_all(&staging)
                .map_err(|e| fail(format!("cannot remove {}: {e}", staging.display())))?;
        }
        let parent = staging.parent().unwrap_or(Path::new("."));
        let name = staging
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(".clone.cloning");
        let objects = self.objects_growth(&staging.join(".git"));
        let cloned = self
            .run_remote_watched(
                parent,
                &[
                    "clone",
                    "--quiet",
                    "--no-checkout",
                    "--no-tags",
                    "--",
                    url,
                    name,
                ],
                Some(objects),
            )
            .and_then(|_| self.check_objects(&staging.join(".git"), "clone"))
            .and_then(|_| {
                prune::mark(&staging.join(".git"))
                    .map_err(|e| fail(format!("cannot mark the new clone as the host's: {e}")))
            });
        if let Err(e) = cloned {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        std::fs::rename(&staging, &self.dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            fail(format!(
                "cannot move the new clone into {}: {e} (a directory there that is not a git clone is never replaced; remove it)",
                self.dir.display()
            ))
        })
    }

    /// Leaves a clean detached checkout of `origin/<base>` as last fetched; refused,
    /// before anything is written, when its files would hold more than the bound (git
    /// compresses: a small pack can hold a checkout of any size).
    pub fn checkout_base(&self, base: &str) -> Result<(), GitError> {
        let tip = format!("origin/{base}");
        let sizes = self.run(&["ls-tree", "-r", "-z", "--format=%(objectsize)", &tip])?;
        let (files, bytes) = checkout_size(&sizes);
        if bytes > self.max_bytes {
            return Err(self.error(
                &["checkout", &tip],
                self.too_large("its files would hold", bytes),
            ));
        }
        if files > MAX_CHECKOUT_FILES {
            return Err(self.error(
                &["checkout", &tip],
                format!(
                    "it would hold {files} files, more than the host checks out ({MAX_CHECKOUT_FILES})"
                ),
            ));
        }
        self.run(&[
            "checkout",
            "--quiet",
            "--force",
            "--detach",
            &format!("origin/{base}"),
        ])?;
        self.run(&["clean", "--quiet", "-fdx"])?;
        Ok(())
    }

    /// Commits from now on are by `name <email>` (an App's bot user) instead of the
    /// host.
    pub fn authored_by(mut self, name: &str, email: &str) -> Clone {
        self.author = Some((name.to_string(), email.to_string()));
        self
    }

    /// The clone's directory (the worktree executors read).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn error(&self, args: &[&str], message: String) -> GitError {
        GitError {
            dir: self.dir.clone(),
            args: args.join(" "),
            message,
        }
    }

    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.arg("-C").arg(dir).args(args);
        let (name, email) = self
            .author
            .as_ref()
            .map_or((AUTHOR_NAME, AUTHOR_EMAIL), |(n, e)| {
                (n.as_str(), e.as_str())
            });
        c.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email);
        let header = self.auth_header.as_deref().map(|h| ("http.extraHeader", h));
        pin_config(&mut c, header);
        c
    }

    /// Runs a command that talks to the remote in `dir`, under the clone's deadline.
    fn run_remote_in(&self, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        self.run_remote_watched(dir, args, None)
    }

    /// [`Clone::run_remote_in`], stopping the command if it grows `growth` past its
    /// bound.
    fn run_remote_watched(
        &self,
        dir: &Path,
        args: &[&str],
        growth: Option<deadline::Growth>,
    ) -> Result<String, GitError> {
        // A fetch, push or deletion updates the remote-tracking refs, even one that fails.
        *self.tracking.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let done = deadline::run_bounded(
            &mut self.command(dir, args),
            self.timeout,
            deadline::Bounds::GIT,
            growth,
            Some(&leftover::record_path(&self.dir)),
        )
        .map_err(|e| self.error(args, format!("cannot run git: {e}")))?;
        if done.outgrew {
            return Err(self.error(
                args,
                format!(
                    "stopped: it received more than max_clone_mib ({} MiB) of git objects; raise it in the configuration for a repository this large",
                    self.max_bytes >> 20
                ),
            ));
        }
        if done.timed_out {
            return Err(self.error(
                args,
                format!(
                    "stopped after {} s without finishing (git_timeout_seconds); the remote may not be answering",
                    self.timeout.as_secs()
                ),
            ));
        }
        if done.stdout_overflowed {
            return Err(self.error(args, printed_too_much()));
        }
        self.outcome(args, done.status, &done.stdout, &done.stderr)
    }

    fn run_remote(&self, args: &[&str]) -> Result<String, GitError> {
        self.run_remote_in(&self.dir, args)
    }

    /// Runs a command that stays in the clone, its output read within
    /// [`capture::MAX_STDOUT`] (past that it is killed and fails).
    fn run_in(&self, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        let done = capture::collect(&mut self.command(dir, args), capture::MAX_STDOUT)
            .map_err(|e| self.error(args, format!("cannot run git: {e}")))?;
        if done.stdout.overflowed {
            return Err(self.error(args, printed_too_much()));
        }
        self.outcome(args, done.status, &done.stdout.bytes, &done.stderr)
    }

    /// A finished command's output, or its error with what git said.
    fn outcome(
        &self,
        args: &[&str],
        status: std::process::ExitStatus,
        stdout: &[u8],
        stderr: &[u8],
    ) -> Result<String, GitError> {
        if !status.success() {
            let said = String::from_utf8_lossy(stderr).trim().to_string();
            return Err(self.error(args, said));
        }
        Ok(String::from_utf8_lossy(stdout).into_owned())
    }

    fn run(&self, args: &[&str]) -> Result<String, GitError> {
        self.run_in(&self.dir, args)
    }

    /// Starts `branch` at `origin/<base>` and checks it out.
    pub fn start_branch(&self, branch: &str, base: &str) -> Result<(), GitError> {
        self.run(&[
            "checkout",
            "--quiet",
            "-B",
            branch,
            &format!("origin/{base}"),
        ])?;
        Ok(())
    }

    /// Commits `paths` (repository-relative) with `message`; returns the commit id,
    /// or `None` when they hold no change.
    pub fn commit(&self, paths: &[String], message: &str) -> Result<Option<String>, GitError> {
        let mut add = vec!["add", "--"];
        add.extend(paths.iter().map(String::as_str));
        self.run(&add)?;
        let staged = self.run(&["diff", "--cached", "--name-only"])?;
        if staged.trim().is_empty() {
            return Ok(None);
        }
        self.run(&["commit", "--quiet", "--no-verify", "-m", message])?;
        Ok(Some(self.run(&["rev-parse", "HEAD"])?.trim().to_string()))
    }

    /// Pushes `branch` to origin.
    pub fn push(&self, branch: &str) -> Result<(), GitError> {
        self.run_remote(&[
            "push",
            "--quiet",
            "origin",
            &format!("{branch}:refs/heads/{branch}"),
        ])?;
        Ok(())
    }

    /// Merges `origin/<branch>` into `base` with a merge commit and pushes `base`
    /// (the local forge's merge); returns the merge commit.
    pub fn merge_to_base(
        &self,
        branch: &str,
        base: &str,
        message: &str,
    ) -> Result<String, GitError> {
        self.run(&["checkout", "--quiet", "-B", base, &format!("origin/{base}")])?;
        self.run(&[
            "merge",
            "--quiet",
            "--no-ff",
            "--no-edit",
            "-m",
            message,
            &format!("origin/{branch}"),
        ])?;
        self.run_remote(&[
            "push",
            "--quiet",
            "origin",
            &format!("{base}:refs/heads/{base}"),
        ])?;
        Ok(self.run(&["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Deletes `branch` on origin (a cleanup after a failed attempt).
    pub fn delete_remote(&self, branch: &str) -> Result<(), GitError> {
        self.run_remote(&["push", "--quiet", "origin", "--delete", branch])?;
        Ok(())
    }

    /// The branches on origin whose names start with `prefix`, sorted.
    pub fn remote_branches(&self, prefix: &str) -> Result<Vec<String>, GitError> {
        // The remote-tracking refs as the last fetch (with --prune) left them, or as
        // the listing found them when it skipped the fetch, and as this clone's own
        // pushes and deletions updated them: no second connection to the remote.
        Ok(self
            .tracking_branches()?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with(prefix))
            .collect())
    }
}

/// Settings of the operator's own git configuration (`~/.gitconfig`, `/etc/gitconfig`)
/// that must not reach the host's clones, overridden on every command: signing would
/// fail (or prompt) for the host's commits, the operator's hooks would run in them,
/// line-ending conversion and a file-system monitor would change what the host reads
/// from the worktree, and submodule recursion would fetch whatever URLs a target's
/// `.gitmodules` names. Git LFS's filters (installed in the global configuration by
/// `git lfs install`) would download from the server a target's `.lfsconfig` names at
/// every checkout, and store the host's own writes as pointers whose objects no push
/// uploads (hooks are off): the host reads and writes files as they are in the
/// repository, pointers included. Automatic maintenance (`gc --auto` after a commit or
/// a merge; the host's fetches skip it) runs within the command, under the clone's
/// claim, instead of detached: a detached gc outlives the claim, and its lock files
/// would be taken for a killed git's. Credentials, proxies, `url.*.insteadOf` and `core.sshCommand`
/// are the operator's to set and stay in force.
const PINNED_CONFIG: &[(&str, &str)] = &[
    ("commit.gpgSign", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.autocrlf", "false"),
    ("core.fsmonitor", "false"),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("advice.detachedHead", "false"),
    ("filter.lfs.smudge", ""),
    ("filter.lfs.clean", ""),
    ("filter.lfs.process", ""),
    ("filter.lfs.required", "false"),
    ("gc.autoDetach", "false"),
    ("maintenance.autoDetach", "false"),
];

/// Clears the variables that would point git elsewhere than the clone
/// ([`leviathan_domain::git_env::only_this_repository`]) and sets [`PINNED_CONFIG`], and
/// `extra`, as command-line-level configuration (through the environment:
/// `GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_n`, `GIT_CONFIG_VALUE_n`, which outrank every
/// configuration file and never show in a process list).
fn pin_config(c: &mut Command, extra: Option<(&str, &str)>) {
    leviathan_domain::git_env::only_this_repository(c);
    let entries: Vec<(&str, &str)> = PINNED_CONFIG.iter().copied().chain(extra).collect();
    c.env("GIT_CONFIG_COUNT", entries.len().to_string());
    for (i, (key, value)) in entries.into_iter().enumerate() {
        c.env(format!("GIT_CONFIG_KEY_{i}"), key)
            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
}

/// The files and bytes of a checkout, from `ls-tree -r -z --format=%(objectsize)`
/// (a submodule's entry, `-`, is no file of the checkout).
fn checkout_size(listing: &str) -> (u64, u64) {
    listing
        .split('\0')
        .filter_map(|size| size.parse::<u64>().ok())
        .fold((0, 0), |(files, bytes), size| {
            (files + 1, u64::saturating_add(bytes, size))
        })
}

/// What a command that printed past [`capture::MAX_STDOUT`] fails with.
fn printed_too_much() -> String {
    format!(
        "printed more than {} MiB and was stopped",
        capture::MAX_STDOUT >> 20
    )
}

/// A git command for reading a repository at `dir`, without a pager, external diff
/// drivers or text conversion, and without asking for credentials.
fn reader(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .args(["-c", "core.pager=cat"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    pin_config(&mut c, None);
    c
}

/// Runs a read command and returns at most `max` bytes of its output, and whether
/// there was more (the command is stopped then).
fn read_bounded(dir: &Path, args: &[&str], max: usize) -> Result<(Vec<u8>, bool), GitError> {
    let error = |message: String| GitError {
        dir: dir.to_path_buf(),
        args: args.join(" "),
        message,
    };
    let done = capture::collect(&mut reader(dir, args), max)
        .map_err(|e| error(format!("cannot run git: {e}")))?;
    if done.stdout.overflowed {
        return Ok((done.stdout.bytes, true));
    }
    if !done.status.success() {
        return Err(error(
            String::from_utf8_lossy(&done.stderr).trim().to_string(),
        ));
    }
    Ok((done.stdout.bytes, false))
}

/// The file at `path` in commit `rev` of the repository at `dir`, read from git's
/// objects (the worktree is never touched): `None` when there is none; refused when
/// it is not a regular file (a symlink, a submodule) or holds more than `max` bytes.
pub fn read_blob(
    dir: &Path,
    rev: &str,
    path: &str,
    max: usize,
) -> Result<Option<Vec<u8>>, GitError> {
    let refused = |message: &str| GitError {
        dir: dir.to_path_buf(),
        args: format!("ls-tree {rev} -- {path}"),
        message: message.into(),
    };
    let spec = format!("{rev}^{{commit}}");
    let (listing, _) = read_bounded(dir, &["ls-tree", "-z", "-l", &spec, "--", path], 4096)?;
    let Some(entry) = listing.split(|b| *b == 0).find(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let entry = String::from_utf8_lossy(entry);
    let mut fields = entry.split_whitespace();
    let (mode, kind, oid, size) = (fields.next(), fields.next(), fields.next(), fields.next());
    if !matches!(mode, Some("100644" | "100755")) || kind != Some("blob") {
        return Err(refused("not a regular file"));
    }
    let size: usize = size.and_then(|s| s.parse().ok()).unwrap_or(usize::MAX);
    if size > max {
        return Err(refused(&format!("larger than {max} bytes")));
    }
    let oid = oid.ok_or_else(|| refused("no object id"))?;
    let (bytes, truncated) = read_bounded(dir, &["cat-file", "blob", oid], max)?;
    if truncated {
        return Err(refused(&format!("larger than {max} bytes")));
    }
    Ok(Some(bytes))
}

/// A unified diff, and whether it was cut at its byte bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub text: String,
    pub truncated: bool,
}

/// The unified diff of `branch` against its merge base with `base` in the repository
/// at `dir` (no external diff or text conversion), at most `max` bytes of it.
pub fn diff(dir: &Path, base: &str, branch: &str, max: usize) -> Result<Diff, GitError> {
    let range = format!("{base}...{branch}");
    let (bytes, truncated) = read_bounded(
        dir,
        &[
            "diff",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "--no-renames",
            &range,
            "--",
        ],
        max,
    )?;
    Ok(Diff {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        truncated,
    })
}

/// The commit id `rev` names in the repository at `dir`, or `None` when it names no
/// commit (one git process).
pub fn commit_of(dir: &Path, rev: &str) -> Option<String> {
    let spec = format!("{rev}^{{commit}}");
    let (out, _) = read_bounded(dir, &["rev-parse", "--verify", "--quiet", &spec], 128).ok()?;
    let id = String::from_utf8(out).ok()?.trim().to_string();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// A fresh checkout of `commit` (a full hex id) of the repository at `repo`, in
/// `dir` (which must not exist yet): a local clone sharing `repo`'s objects, detached
/// at the commit, with nothing else in its worktree. What a replay runs on.
pub fn checkout_commit(repo: &Path, commit: &str, dir: &Path) -> Result<(), GitError> {
    let error = |args: &str, message: String| GitError {
        dir: dir.to_path_buf(),
        args: args.into(),
        message,
    };
    let full_id = matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
    if !full_id {
        return Err(error(
            "checkout",
            format!("`{commit}` is not a full commit id"),
        ));
    }
    if !has_commit(repo, commit) {
        return Err(GitError {
            dir: repo.to_path_buf(),
            args: "rev-parse".into(),
            message: format!("commit {commit} is not in this repository"),
        });
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    let clone = Clone {
        dir: dir.to_path_buf(),
        auth_header: None,
        author: None,
        timeout: Duration::from_secs(leviathan_domain::config::DEFAULT_GIT_TIMEOUT_SECONDS),
        max_bytes: leviathan_domain::config::DEFAULT_MAX_CLONE_MIB << 20,
        _claim: None,
        tracking: std::sync::Mutex::new(None),
    };
    // The clone runs in `dir`'s parent: a relative `repo` would be read from there.
    let repo = std::fs::canonicalize(repo).map_err(|e| GitError {
        dir: repo.to_path_buf(),
        args: "clone".into(),
        message: e.to_string(),
    })?;
    let source = repo.to_string_lossy();
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkout");
    clone.run_in(
        parent,
        &[
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            "--",
            &source,
            name,
        ],
    )?;
    clone.run(&["checkout", "--quiet", "--detach", commit])?;
    Ok(())
}

/// Whether `rev` names a commit in the repository at `dir`.
pub fn has_commit(dir: &Path, rev: &str) -> bool {
    commit_of(dir, rev).is_some()
}

/// `Basic base64("x-access-token:" + token)`, the header GitHub accepts for pushes.
fn basic_auth(token: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("x-access-token:{token}").into_bytes();
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(TABLE[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Authorization: Basic {out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs git in `dir`, asserting it succeeds; what it printed.
    pub(in crate::git) fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Commits what is staged in `dir` as a tester (no identity configured here).
    pub(in crate::git) fn commit_as_tester(dir: &Path, message: &str) {
        git(
            dir,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "--quiet",
                "-m",
                message,
            ],
        );
    }

    /// A bare "remote" with one commit on `main`.
    fn remote(root: &Path) -> PathBuf {
        let seed = root.join("seed");
        std::fs::create_dir_all(seed.join("docs")).unwrap();
        std::fs::write(seed.join("docs/index.md"), "# Index\n").unwrap();
        git(&seed, &["init", "--quiet", "-b", "main"]);
        git(&seed, &["add", "."]);
        commit_as_tester(&seed, "seed");
        let bare = root.join("remote.git");
        git(
            root,
            &[
                "clone",
                "--quiet",
                "--bare",
                seed.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        bare
    }

    #[test]
    fn branch_commit_push_list_and_delete_on_a_real_remote() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        let work = root.path().join("work/target-a");
        let clone = Clone::prepare(&Remote::local(bare.to_str().unwrap()), &work, "main").unwrap();
        let branch = "agent/task-exec-attempt-docs-1-0badcafe";
        clone.start_branch(branch, "main").unwrap();
        std::fs::write(work.join("docs/new.md"), "new\n").unwrap();
        let commit = clone
            .commit(&["docs/new.md".into()], "leviathan: docs-1")
            .unwrap();
        assert!(commit.is_some());
        assert_eq!(
            clone.commit(&["docs/new.md".into()], "again").unwrap(),
            None,
            "no change, no commit"
        );
        clone.push(branch).unwrap();
        assert_eq!(clone.remote_branches("agent/").unwrap(), [branch]);
        // A second prepare resets to the base, dropping stray files.
        std::fs::write(work.join("stray.txt"), "x").unwrap();
        drop(clone);
        let again = Clone::prepare(&Remote::local(bare.to_str().unwrap()), &work, "main").unwrap();
        assert!(!work.join("stray.txt").exists() && !work.join("docs/new.md").exists());
        again.delete_remote(branch).unwrap();
        assert!(again.remote_branches("agent/").unwrap().is_empty());
    }

    /// `git rev-parse rev` in `dir`.
    fn commit_at(dir: &Path, rev: &str) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", rev])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn a_fetch_runs_only_when_the_remote_has_changed() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        let remote = Remote::local(bare.to_str().unwrap());
        let work = root.path().join("work/target-a");
        drop(Clone::fetched(&remote, &work).unwrap());
        let fetch_head = work.join(".git/FETCH_HEAD");

        // Nothing changed: the listing agrees with the tracking refs, no fetch.
        let clone = Clone::fetched(&remote, &work).unwrap();
        assert!(!fetch_head.exists(), "a fetch ran though nothing changed");
        assert_eq!(clone.remote_branches("").unwrap(), ["main"]);
        // The host's own push updates what the clone knows, without a fetch.
        clone.start_branch("agent/own", "main").unwrap();
        clone.push("agent/own").unwrap();
        assert_eq!(clone.remote_branches("").unwrap(), ["agent/own", "main"]);
        drop(clone);
        drop(Clone::fetched(&remote, &work).unwrap());
        assert!(
            !fetch_head.exists(),
            "a fetch ran after the host's own push"
        );

        // Someone else pushes a commit to main and a new branch: fetched.
        let other = root.path().join("other");
        git(
            root.path(),
            &[
                "clone",
                "--quiet",
                bare.to_str().unwrap(),
                other.to_str().unwrap(),
            ],
        );
        std::fs::write(other.join("docs/more.md"), "more\n").unwrap();
        git(&other, &["add", "."]);
        commit_as_tester(&other, "more");
        git(
            &other,
            &[
                "push",
                "--quiet",
                "origin",
                "main",
                "main:refs/heads/agent/theirs",
            ],
        );
        let clone = Clone::fetched(&remote, &work).unwrap();
        assert!(fetch_head.exists(), "the remote changed and no fetch ran");
        assert_eq!(commit_at(&work, "origin/main"), commit_at(&other, "main"));
        assert_eq!(
            clone.remote_branches("").unwrap(),
            ["agent/own", "agent/theirs", "main"]
        );
        drop(clone);

        // A branch deleted on the remote: the fetch prunes it.
        std::fs::remove_file(&fetch_head).unwrap();
        git(
            &other,
            &["push", "--quiet", "origin", "--delete", "agent/theirs"],
        );
        let clone = Clone::fetched(&remote, &work).unwrap();
        assert!(fetch_head.exists(), "a branch was deleted and no fetch ran");
        assert_eq!(clone.remote_branches("").unwrap(), ["agent/own", "main"]);
        drop(clone);

        // A branch moved, the names all the same.
        std::fs::remove_file(&fetch_head).unwrap();
        assert_ne!(
            commit_at(&work, "origin/agent/own"),
            commit_at(&other, "main")
        );
        git(
            &other,
            &[
                "push",
                "--quiet",
                "--force",
                "origin",
                "main:refs/heads/agent/own",
            ],
        );
        drop(Clone::fetched(&remote, &work).unwrap());
        assert!(fetch_head.exists(), "a branch moved and no fetch ran");
        assert_eq!(
            commit_at(&work, "origin/agent/own"),
            commit_at(&other, "main")
        );
    }

    #[test]
    fn a_clone_left_locked_by_a_killed_git_is_repaired() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        let work = root.path().join("work/target-a");
        let remote = Remote::local(bare.to_str().unwrap());
        drop(Clone::prepare(&remote, &work, "main").unwrap());
        // What a git killed in a checkout, a commit or a fetch leaves behind.
        std::fs::write(work.join(".git/index.lock"), "").unwrap();
        std::fs::create_dir_all(work.join(".git/refs/heads/agent")).unwrap();
        std::fs::write(work.join(".git/refs/heads/agent/x.lock"), "").unwrap();
        std::fs::write(work.join("half-written.md"), "x").unwrap();
        let clone = Clone::prepare(&remote, &work, "main").unwrap();
        assert!(!work.join(".git/index.lock").exists());
        assert!(!work.join("half-written.md").exists());
        clone
            .start_branch("agent/task-exec-attempt-a-0badcafe", "main")
            .unwrap();
    }

    #[test]
    fn an_interrupted_first_clone_is_made_again_and_never_taken_for_a_clone() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        let work = root.path().join("work/target-a");
        // A clone killed half way: only its staging directory.
        let staging = claim::staging_path(&work);
        std::fs::create_dir_all(staging.join(".git/objects")).unwrap();
        let clone = Clone::prepare(&Remote::local(bare.to_str().unwrap()), &work, "main").unwrap();
        assert!(work.join("docs/index.md").is_file());
        assert!(!staging.exists());
        drop(clone);
        // A directory of someone else's is never cloned over or removed.
        let other = root.path().join("work/target-b");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        let err = Clone::prepare(&Remote::local(bare.to_str().unwrap()), &other, "main")
            .err()
            .unwrap();
        assert!(err.to_string().contains("never replaced"), "{err}");
        assert_eq!(
            std::fs::read_to_string(other.join("notes.txt")).unwrap(),
            "mine"
        );
        assert!(!claim::staging_path(&other).exists());
    }

    #[test]
    fn a_clone_follows_its_remote_when_the_configuration_changes_it() {
        let root = tempfile::tempdir().unwrap();
        let old = remote(root.path());
        let moved = root.path().join("moved.git");
        git(
            root.path(),
            &[
                "clone",
                "--quiet",
                "--bare",
                old.to_str().unwrap(),
                moved.to_str().unwrap(),
            ],
        );
        let work = root.path().join("work/target-a");
        drop(Clone::prepare(&Remote::local(old.to_str().unwrap()), &work, "main").unwrap());
        let clone = Clone::prepare(&Remote::local(moved.to_str().unwrap()), &work, "main").unwrap();
        let branch = "agent/task-exec-attempt-docs-1-0badcafe";
        clone.start_branch(branch, "main").unwrap();
        std::fs::write(work.join("docs/new.md"), "new\n").unwrap();
        clone.commit(&["docs/new.md".into()], "docs-1").unwrap();
        clone.push(branch).unwrap();
        let on = |bare: &Path| {
            Command::new("git")
                .arg("-C")
                .arg(bare)
                .args(["branch", "--list", "agent/*"])
                .output()
                .unwrap()
                .stdout
        };
        assert!(!on(&moved).is_empty(), "pushed to the configured remote");
        assert!(on(&old).is_empty(), "nothing pushed to the old one");
    }

    /// The URL of a remote that accepts connections and never answers.
    fn silent_remote() -> String {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in silent.incoming() {
                held.push(stream);
            }
        });
        format!("http://127.0.0.1:{port}/acme/widgets.git")
    }

    #[test]
    fn a_remote_that_stops_answering_is_given_up_at_the_deadline() {
        let root = tempfile::tempdir().unwrap();
        let url = silent_remote();
        let remote = Remote {
            timeout: Duration::from_millis(500),
            ..Remote::local(&url)
        };
        let work = root.path().join("work/target-a");
        let err = Clone::prepare(&remote, &work, "main")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("git_timeout_seconds"), "{err}");
        assert!(!work.exists() && !claim::staging_path(&work).exists());
        // The clone is free again for the next pass.
        drop(claim::Claim::take(&work).unwrap());
    }

    /// Set for the process [`clone_left_running_by_a_killed_host_is_stopped_by`]
    /// runs its stand-in host in: the URL of the remote that never answers.
    const KILLED_HOST_REMOTE: &str = "LEVIATHAN_GIT_KILLED_HOST_REMOTE";
    /// ... and the work directory it clones into.
    const KILLED_HOST_WORK: &str = "LEVIATHAN_GIT_KILLED_HOST_WORK";

    #[test]
    fn a_clone_a_killed_host_left_running_is_stopped_by_the_next_taker() {
        clone_left_running_by_a_killed_host_is_stopped_by(|work| {
            drop(claim::Claim::take(work).unwrap());
        });
    }

    #[test]
    fn a_clone_a_killed_host_left_running_is_stopped_when_the_next_pass_starts() {
        clone_left_running_by_a_killed_host_is_stopped_by(|work| {
            let work_dir = work.parent().unwrap();
            // A clone in use beside it is not touched: its record is a live command's.
            let busy = work_dir.join("target-b");
            let held = claim::Claim::take(&busy).unwrap();
            std::fs::write(leftover::record_path(&busy), "not a record\n").unwrap();
            assert_eq!(stop_left_running_in(work_dir), vec![work.to_path_buf()]);
            assert!(leftover::record_path(&busy).exists());
            drop(held);
        });
    }

    /// Runs a stand-in host cloning into `work/target-a` from a remote that never
    /// answers, kills it outright, checks its clone runs on, calls `stop` with the
    /// clone's directory and checks the clone and its record are gone.
    fn clone_left_running_by_a_killed_host_is_stopped_by(stop: impl FnOnce(&Path)) {
        let root = tempfile::tempdir().unwrap();
        let url = silent_remote(); // the clone waits for ever
        let work = root.path().join("work/target-a");
        let mut host = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "git::tests::stand_in_host_killed_while_cloning",
                "--test-threads=1",
            ])
            .env(KILLED_HOST_REMOTE, url)
            .env(KILLED_HOST_WORK, &work)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let record = leftover::record_path(&work);
        let started = std::time::Instant::now();
        let (group, started): (i32, u64) = loop {
            let text = std::fs::read_to_string(&record).unwrap_or_default();
            let mut fields = text.split_whitespace().map(str::parse::<u64>);
            if text.ends_with('\n')
                && let (Some(Ok(group)), Some(Ok(started))) = (fields.next(), fields.next())
            {
                break (group as i32, started);
            }
            assert!(
                host.try_wait().unwrap().is_none(),
                "the stand-in host ended"
            );
            assert!(started.elapsed() < Duration::from_secs(30), "never cloned");
            std::thread::sleep(Duration::from_millis(10));
        };
        host.kill().unwrap(); // SIGKILL: the host runs nothing more
        host.wait().unwrap();
        let in_group = || leftover::group_alive(group, started);
        assert!(
            in_group(),
            "the clone outlived its host, as a killed host's does"
        );
        stop(&work);
        assert!(!in_group(), "the clone the dead host left still runs");
        assert!(!record.exists());
    }

    /// The stand-in host of
    /// [`clone_left_running_by_a_killed_host_is_stopped_by`]: clones
    /// from a remote that never answers, far from its deadline, and waits to be
    /// killed; a plain test run passes over it.
    #[test]
    fn stand_in_host_killed_while_cloning() {
        let (Some(url), Some(work)) = (
            std::env::var_os(KILLED_HOST_REMOTE),
            std::env::var_os(KILLED_HOST_WORK),
        ) else {
            return;
        };
        let url = url.to_string_lossy().into_owned();
        let remote = Remote {
            timeout: Duration::from_secs(300),
            ..Remote::local(&url)
        };
        let _ = Clone::prepare(&remote, Path::new(&work), "main");
        panic!("the clone ended before its host was killed");
    }

    #[test]
    fn a_remote_that_floods_its_messages_costs_the_host_only_their_end() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        // The remote's own hook says 16 MiB of `remote: ...` lines, then refuses.
        let hook = bare.join("hooks/pre-receive");
        std::fs::write(
            &hook,
            "#!/bin/sh\nhead -c 16777216 /dev/zero | tr '\\0' x | fold -w 1000 >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let work = root.path().join("work/target-a");
        let clone = Clone::prepare(&Remote::local(bare.to_str().unwrap()), &work, "main").unwrap();
        let branch = "agent/task-exec-attempt-docs-1-0badcafe";
        clone.start_branch(branch, "main").unwrap();
        std::fs::write(work.join("docs/new.md"), "new\n").unwrap();
        clone.commit(&["docs/new.md".into()], "docs-1").unwrap();
        let err = clone.push(branch).unwrap_err().to_string();
        assert!(err.len() < 8 << 10, "{} bytes of error", err.len());
        assert!(
            err.contains("earlier bytes of messages left out"),
            "{}",
            &err[..200]
        );
        assert!(
            err.contains("pre-receive hook declined"),
            "git's own word is kept"
        );
    }

    /// Commits `bytes` as `docs/<name>` on the remote's `main`, through a clone of
    /// its own in `root`.
    fn push_file(root: &Path, bare: &Path, name: &str, bytes: &[u8]) {
        let pusher = root.join(format!("pusher-{name}"));
        git(
            root,
            &[
                "clone",
                "--quiet",
                bare.to_str().unwrap(),
                pusher.to_str().unwrap(),
            ],
        );
        std::fs::write(pusher.join("docs").join(name), bytes).unwrap();
        git(&pusher, &["add", "."]);
        commit_as_tester(&pusher, name);
        git(&pusher, &["push", "--quiet", "origin", "main"]);
    }

    /// `n` bytes that do not compress.
    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn a_repository_past_the_clone_bound_is_refused_and_leaves_no_clone() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        push_file(root.path(), &bare, "big.bin", &noise(24 << 20));
        let url = bare.to_str().unwrap();
        let work = root.path().join("work/target-a");
        let bounded = Remote {
            max_bytes: 4 << 20,
            ..Remote::local(url)
        };
        let err = Clone::prepare(&bounded, &work, "main")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("more than max_clone_mib (4 MiB)"), "{err}");
        assert!(!work.exists(), "{err}");
        assert!(!claim::staging_path(&work).exists(), "{err}");
        // Within a bound that holds it, the same repository clones.
        let roomy = Remote {
            max_bytes: 64 << 20,
            ..Remote::local(url)
        };
        drop(Clone::prepare(&roomy, &work, "main").unwrap());
        assert!(work.join("docs/big.bin").is_file());
    }

    #[test]
    fn a_fetch_past_the_clone_bound_is_refused_until_the_bound_is_raised() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        let url = bare.to_str().unwrap();
        let work = root.path().join("work/target-a");
        let bounded = Remote {
            max_bytes: 4 << 20,
            ..Remote::local(url)
        };
        drop(Clone::prepare(&bounded, &work, "main").unwrap());
        push_file(root.path(), &bare, "big.bin", &noise(24 << 20));
        for _ in 0..2 {
            // Refused on the pass that fetches, which takes the clone with it, and on
            // the next, which clones afresh.
            let err = Clone::prepare(&bounded, &work, "main")
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("max_clone_mib (4 MiB)"), "{err}");
            assert!(
                !work.exists() && !claim::staging_path(&work).exists(),
                "{err}"
            );
        }
        let roomy = Remote {
            max_bytes: 64 << 20,
            ..Remote::local(url)
        };
        drop(Clone::prepare(&roomy, &work, "main").unwrap());
        assert!(work.join("docs/big.bin").is_file());
        let objects = deadline::objects_bytes(&work.join(".git/objects"));
        assert!(objects < 40 << 20, "{objects} bytes");
    }

    #[test]
    fn a_checkout_is_sized_by_its_files() {
        assert_eq!(checkout_size(""), (0, 0));
        assert_eq!(
            checkout_size(&["12", "0", "-", "7", ""].join("\0")),
            (3, 19)
        );
        let huge = format!("{}\0{}\0", u64::MAX, u64::MAX);
        assert_eq!(checkout_size(&huge), (2, u64::MAX), "saturates");
    }

    #[test]
    fn a_checkout_larger_than_the_bound_is_refused_before_it_is_written() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        // 32 MiB of zeros: a pack of some kilobytes, a checkout of 32 MiB.
        push_file(root.path(), &bare, "bomb.bin", &vec![0u8; 32 << 20]);
        let work = root.path().join("work/target-a");
        let bounded = Remote {
            max_bytes: 4 << 20,
            ..Remote::local(bare.to_str().unwrap())
        };
        let err = Clone::prepare(&bounded, &work, "main")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("its files would hold 33 MiB, more than max_clone_mib (4 MiB)"),
            "{err}"
        );
        assert!(!work.join("docs/bomb.bin").exists());
        assert!(deadline::objects_bytes(&work.join(".git/objects")) < 1 << 20);
    }

    #[test]
    fn automatic_maintenance_finishes_within_the_command_that_starts_it() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        let work = root.path().join("work/target-a");
        let clone = Clone::prepare(&Remote::local(bare.to_str().unwrap()), &work, "main").unwrap();
        // Two packs, and settings (the operator's, here the clone's own) under which
        // the next commit's `gc --auto` repacks them, detached as git does by default.
        git(&work, &["repack", "-d", "-q"]);
        std::fs::write(work.join("docs/extra.md"), "extra\n").unwrap();
        git(&work, &["add", "docs/extra.md"]);
        commit_as_tester(&work, "extra");
        git(&work, &["repack", "-d", "-q"]);
        for (key, value) in [
            ("gc.autoPackLimit", "1"),
            ("gc.autoDetach", "true"),
            ("maintenance.autoDetach", "true"),
        ] {
            git(&work, &["config", key, value]);
        }
        let packs = || {
            std::fs::read_dir(work.join(".git/objects/pack"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension() == Some("pack".as_ref()))
                .count()
        };
        assert_eq!(packs(), 2);
        clone
            .start_branch("agent/task-exec-attempt-docs-1-0badcafe", "main")
            .unwrap();
        std::fs::write(work.join("docs/new.md"), "new\n").unwrap();
        clone.commit(&["docs/new.md".into()], "docs-1").unwrap();
        // Repacked by the time the commit returned: no gc left running under the claim.
        assert_eq!(packs(), 1);
        assert!(!work.join(".git/gc.pid").exists());
    }

    #[test]
    fn a_clone_in_use_is_refused_to_a_second_user() {
        let root = tempfile::tempdir().unwrap();
        let bare = remote(root.path());
        let work = root.path().join("work/target-a");
        let remote = Remote::local(bare.to_str().unwrap());
        let _first = Clone::prepare(&remote, &work, "main").unwrap();
        let err = Clone::prepare(&remote, &work, "main").err().unwrap();
        assert!(err.to_string().contains("in use"), "{err}");
    }

    #[test]
    fn the_token_header_is_basic_auth_and_stays_out_of_errors() {
        assert_eq!(
            basic_auth("abc"),
            "Authorization: Basic eC1hY2Nlc3MtdG9rZW46YWJj"
        );
        assert_eq!(
            basic_auth("ab"),
            "Authorization: Basic eC1hY2Nlc3MtdG9rZW46YWI="
        );
        assert_eq!(
            basic_auth("abcd"),
            "Authorization: Basic eC1hY2Nlc3MtdG9rZW46YWJjZA=="
        );
        let root = tempfile::tempdir().unwrap();
        let remote = Remote {
            token: Some("s3cr3t-token"),
            ..Remote::local("/nonexistent/repo.git")
        };
        let err = Clone::prepare(&remote, &root.path().join("w"), "main")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("s3cr3t-token"), "{err}");
        assert!(err.contains("clone"), "{err}");
    }
}
