//! `exec`: run one backlog task against a worktree, end to end. Parse inputs, check
//! the task against the policy, stage, run the executor in the sandbox, check the
//! change set and apply it. Any failure leaves the worktree untouched.

use crate::changeset::{ChangeError, ChangeSet, FileChange};
use crate::guard::Denial;
use crate::plugins::set::PluginSet;
use crate::record::RunRecord;
use crate::run::Mount;
use crate::stage::{self, StageError};
use crate::{RunFailure, RunRequest, RunStats, Sandbox};
use leviathan_domain::backlog::{Backlog, Task};
use leviathan_domain::paths::{RepoPath, covered_by_any};
use leviathan_domain::policy::Policy;
use leviathan_domain::registry::RegistryError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The class of a failed `exec`, as reported in JSON and by the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad backlog, policy or task; unknown task or scope. Exit code 2.
    InvalidTask,
    /// The task or the executor's output breaks the policy. Exit code 3.
    PolicyDenied,
    /// The executor trapped, hit a limit or timed out, or the host failed. Exit code 4.
    ExecutorFailed,
}

impl ErrorKind {
    /// The name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidTask => "invalid-task",
            ErrorKind::PolicyDenied => "policy-denied",
            ErrorKind::ExecutorFailed => "executor-failed",
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::InvalidTask => 2,
            ErrorKind::PolicyDenied => 3,
            ErrorKind::ExecutorFailed => 4,
        }
    }
}

/// A failed `exec`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExecFailure {
    pub kind: ErrorKind,
    pub message: String,
    /// What the run used, when the executor ran before the failure (boxed: most
    /// failures carry none).
    pub stats: Option<Box<RunStats>>,
    /// Filesystem calls the sandbox refused during the run.
    pub denials: Vec<Denial>,
}

fn fail(kind: ErrorKind, message: impl std::fmt::Display) -> ExecFailure {
    ExecFailure {
        kind,
        message: message.to_string(),
        stats: None,
        denials: Vec::new(),
    }
}

impl ExecFailure {
    /// A failure before the executor ran.
    pub fn new(kind: ErrorKind, message: impl std::fmt::Display) -> ExecFailure {
        fail(kind, message)
    }

    /// The failure with what the run used and what the sandbox refused during it.
    fn with_run(mut self, stats: &RunStats, denials: &[Denial]) -> ExecFailure {
        self.stats = Some(Box::new(stats.clone()));
        self.denials = denials.to_vec();
        self
    }
}

/// What a failure message adds about the calls the sandbox refused: the first one
/// (its rule and path) and how many more.
fn refused_note(denials: &[Denial]) -> String {
    match denials {
        [] => String::new(),
        [only] => format!("; the sandbox {only}"),
        [first, rest @ ..] => format!("; the sandbox {first} (and {} more)", rest.len()),
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub repo: PathBuf,
    pub task_id: String,
    /// Policy file; `None` means the embedded `policies/dev.yaml`.
    pub policy: Option<PathBuf>,
    pub registry_dir: PathBuf,
}

/// A successful `exec`.
#[derive(Debug, Clone)]
pub struct ExecReport {
    pub task: String,
    /// `name@version` of the executor that ran.
    pub executor: String,
    /// Files changed in the worktree (empty when it was already up to date).
    pub files: Vec<FileChange>,
    pub digest: String,
    pub summary: String,
    pub stats: RunStats,
    /// What a replay needs to run it again.
    pub record: RunRecord,
    /// The last lines the executor printed to stderr, if any.
    pub stderr_tail: Option<String>,
    /// Filesystem calls the sandbox refused (the executor carried on without them).
    pub denials: Vec<Denial>,
    /// Bytes of the worktree staged for the run (its read scope and allowed paths).
    pub staged_bytes: u64,
}

/// The seed of every random source a run sees: SHA-256 over a version tag, the
/// repository's HEAD commit and the task's canonical JSON encoding.
pub fn run_seed(task: &Task, head: Option<&str>) -> [u8; 32] {
    let canonical = serde_json::json!({
        "id": task.id, "title": task.title, "description": task.description, "scope": task.scope,
        "priority": task.priority, "estimated_size": task.estimated_size,
        "allowed_paths": task.allowed_paths, "acceptance_criteria": task.acceptance_criteria,
        "labels": task.labels, "dependencies": task.dependencies, "parameters": task.parameters(),
    });
    let mut h = Sha256::new();
    h.update(b"leviathan-seed-v1\0");
    h.update(head.unwrap_or("unborn").as_bytes());
    h.update(b"\0");
    h.update(canonical.to_string().as_bytes());
    h.finalize().into()
}

/// The task as the executor sees it: its allowed paths in the normalised form the host
/// enforces (`docs/**` and `docs/*` are `docs/`), so host and executor read them alike.
fn guest_task(task: &Task, allowed: &[RepoPath]) -> Task {
    let mut task = task.clone();
    task.allowed_paths = allowed.iter().map(RepoPath::to_string).collect();
    task
}

/// The commit id HEAD points to, or `None` outside a repository or before the first
/// commit.
fn head_commit(worktree: &Path) -> Option<String> {
    let out =
        leviathan_domain::git_env::only_this_repository(&mut std::process::Command::new("git"))
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

/// Checks a task's allowed paths against the path rules and the policy's prefixes.
pub fn checked_allowed_paths(
    backlog: &Path,
    task: &Task,
    policy: &Policy,
) -> Result<Vec<RepoPath>, ExecFailure> {
    let mut paths = Vec::new();
    for raw in &task.allowed_paths {
        let path = RepoPath::parse_allowed(raw).map_err(|e| {
            fail(
                ErrorKind::PolicyDenied,
                format!(
                    "{}: task `{}`: field `allowed_paths`: {e}",
                    backlog.display(),
                    task.id
                ),
            )
        })?;
        if !covered_by_any(&policy.allowed_path_prefixes, &path) {
            let prefixes: Vec<String> = policy
                .allowed_path_prefixes
                .iter()
                .map(|p| p.to_string())
                .collect();
            return Err(fail(
                ErrorKind::PolicyDenied,
                format!(
                    "{}: task `{}`: field `allowed_paths`: `{raw}` is outside the policy's allowed_path_prefixes [{}] ({})",
                    backlog.display(),
                    task.id,
                    prefixes.join(", "),
                    policy.source.display()
                ),
            ));
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Runs `request` with the plugins of its registry.
pub fn exec(sandbox: &Sandbox, request: &ExecRequest) -> Result<ExecReport, ExecFailure> {
    let policy = match &request.policy {
        Some(file) => Policy::load(file),
        None => Ok(Policy::default_policy()),
    }
    .map_err(|e| fail(ErrorKind::InvalidTask, e))?;
    exec_with_policy(sandbox, request, &policy)
}

/// [`exec`] under an already loaded policy (`request.policy` is not read).
pub fn exec_with_policy(
    sandbox: &Sandbox,
    request: &ExecRequest,
    policy: &Policy,
) -> Result<ExecReport, ExecFailure> {
    exec_with_plugins(sandbox, request, policy, None)
}

/// [`exec_with_policy`] with the plugin taken from a loaded set (`serve`'s
/// hot-reloaded one) instead of a scan of `request.registry_dir`; the attempt keeps
/// the component it started with whatever happens to the registry meanwhile.
pub fn exec_with_plugins(
    sandbox: &Sandbox,
    request: &ExecRequest,
    policy: &Policy,
    plugins: Option<&PluginSet>,
) -> Result<ExecReport, ExecFailure> {
    exec_chosen(sandbox, request, policy, Choice::Route(plugins))
}

/// [`exec_with_policy`] with the component whose SHA-256 is `component_sha256`,
/// whatever the routing rules say (a replay runs exactly what an attempt ran). The
/// registry entry's bytes are checked against that digest before they load.
pub fn exec_pinned(
    sandbox: &Sandbox,
    request: &ExecRequest,
    policy: &Policy,
    component_sha256: &str,
) -> Result<ExecReport, ExecFailure> {
    exec_chosen(sandbox, request, policy, Choice::Pinned(component_sha256))
}

/// Which plugin runs the task.
enum Choice<'a> {
    /// Routed by scope, in a loaded set or a scan of the registry.
    Route(Option<&'a PluginSet>),
    /// The registry entry with this component digest.
    Pinned(&'a str),
}

fn exec_chosen(
    sandbox: &Sandbox,
    request: &ExecRequest,
    policy: &Policy,
    choice: Choice,
) -> Result<ExecReport, ExecFailure> {
    let backlog =
        Backlog::load_from_repo(&request.repo).map_err(|e| fail(ErrorKind::InvalidTask, e))?;
    let task = backlog.task(&request.task_id).ok_or_else(|| {
        fail(
            ErrorKind::InvalidTask,
            format!(
                "{}: no task with id `{}`",
                backlog.source.display(),
                request.task_id
            ),
        )
    })?;
    if !task.ready {
        return Err(fail(
            ErrorKind::InvalidTask,
            format!(
                "{}: task `{}` is not `ready: true`; only ready tasks run",
                backlog.source.display(),
                task.id
            ),
        ));
    }
    let allowed = checked_allowed_paths(&backlog.source, task, policy)?;

    let route_failed = |e: RegistryError| match e {
        RegistryError::NoExecutor { .. }
        | RegistryError::NoMatch { .. }
        | RegistryError::BadExecutorField(_)
        | RegistryError::Ambiguous { .. } => {
            fail(ErrorKind::InvalidTask, format!("task `{}`: {e}", task.id))
        }
        other => fail(ErrorKind::ExecutorFailed, other),
    };
    let scanned;
    let set = match choice {
        Choice::Route(Some(set)) => set,
        Choice::Pinned(digest) => {
            scanned = PluginSet::load_matching(
                &request.registry_dir,
                &policy.plugins,
                sandbox,
                None,
                |entry| entry.manifest.sha256.eq_ignore_ascii_case(digest),
            )
            .map_err(|e| fail(ErrorKind::ExecutorFailed, e))?;
            if let Some(rejected) = scanned.registry.rejected.first() {
                return Err(fail(
                    ErrorKind::ExecutorFailed,
                    format!(
                        "the component sha256 {digest} in {}: {}",
                        rejected.dir.display(),
                        rejected.reason
                    ),
                ));
            }
            &scanned
        }
        Choice::Route(None) => {
            // Only the task's candidates are loaded.
            scanned = PluginSet::load_matching(
                &request.registry_dir,
                &policy.plugins,
                sandbox,
                None,
                |entry| leviathan_domain::registry::is_candidate(entry, task),
            )
            .map_err(|e| fail(ErrorKind::ExecutorFailed, e))?;
            for rejected in &scanned.registry.rejected {
                tracing::warn!(dir = %rejected.dir.display(), "plugin rejected: {}", rejected.reason);
            }
            &scanned
        }
    };
    let plugin = match choice {
        Choice::Route(_) => set.route(task).map_err(route_failed)?,
        Choice::Pinned(digest) => set.loaded.values().next().ok_or_else(|| {
            fail(
                ErrorKind::ExecutorFailed,
                format!(
                    "no plugin in {} has the component sha256 {digest}",
                    request.registry_dir.display()
                ),
            )
        })?,
    };
    let (entry, component) = (plugin.entry.clone(), plugin.component.clone());

    // The plugin may ask for less than the policy allows, never more.
    let limits = entry.manifest.limits.effective(&policy.limits);
    // What the plugin reads besides its allowed paths: its manifest's ask, narrowed
    // by the policy.
    let asked = entry.manifest.read_paths();
    let reads = match &policy.plugins.read_paths {
        Some(prefixes) => leviathan_domain::paths::narrow(&asked, prefixes),
        None => leviathan_domain::paths::outermost(&asked),
    };
    let stage =
        stage::prepare(&request.repo, &allowed, &reads, &policy.staging).map_err(|e| match e {
            StageError::Denied(m) => {
                fail(ErrorKind::PolicyDenied, format!("task `{}`: {m}", task.id))
            }
            other => fail(ErrorKind::ExecutorFailed, other),
        })?;
    let head = head_commit(&request.repo);
    let run_request = RunRequest {
        task: guest_task(task, &allowed),
        read_only: vec![Mount {
            guest: "/repo".into(),
            host: stage.repo.clone(),
        }],
        read_write: stage.mounts.clone(),
        write_root: Some(stage.write_root()),
        allowed: allowed.clone(),
        seed: run_seed(task, head.as_deref()),
        limits: limits.clone(),
        timeout: policy.attempt_timeout,
    };
    tracing::info!(task = %task.id, executor = %entry.id(), "running executor");
    let outcome = sandbox.run(&component, &run_request);
    for line in &outcome.logs {
        tracing::info!(target: "plugin", plugin = %entry.id(), level = %line.level, "{}", line.message);
    }
    let report = outcome.result.map_err(|e| {
        let kind = match e {
            RunFailure::InvalidTask(_) => ErrorKind::InvalidTask,
            RunFailure::Denied(_) => ErrorKind::PolicyDenied,
            _ => ErrorKind::ExecutorFailed,
        };
        let detail = crate::run::stderr_tail(&outcome.stderr).map(|t| format!(" (stderr: {t})"));
        fail(
            kind,
            format!(
                "task `{}`: {} {e}{}{}",
                task.id,
                entry.id(),
                detail.unwrap_or_default(),
                refused_note(&outcome.denials)
            ),
        )
        .with_run(&outcome.stats, &outcome.denials)
    })?;

    let changes = ChangeSet::collect(
        &stage,
        &request.repo,
        &allowed,
        limits.max_files_written,
        limits.max_bytes_written,
        policy.staging.max_file_bytes,
    )
    .map_err(|e| match e {
        ChangeError::Violation(m) => fail(
            ErrorKind::PolicyDenied,
            format!(
                "task `{}`: {} {m}; nothing was written",
                task.id,
                entry.id()
            ),
        ),
        ChangeError::OverLimit(m) => fail(
            ErrorKind::ExecutorFailed,
            format!(
                "task `{}`: {} {m}; nothing was written",
                task.id,
                entry.id()
            ),
        ),
        other => fail(ErrorKind::ExecutorFailed, other),
    })
    .map_err(|e| e.with_run(&outcome.stats, &outcome.denials))?;
    changes.apply(&request.repo).map_err(|e| match e {
        crate::changeset::ApplyError::Refused(m) => {
            fail(ErrorKind::PolicyDenied, format!("task `{}`: {m}", task.id))
        }
        other => fail(ErrorKind::ExecutorFailed, other),
    })?;
    Ok(ExecReport {
        task: task.id.clone(),
        executor: entry.id(),
        digest: changes.digest(),
        files: changes.files,
        summary: report.summary,
        stats: outcome.stats,
        record: RunRecord::new(
            head,
            entry.id(),
            entry.manifest.sha256.to_ascii_lowercase(),
            &allowed,
            &reads,
            &limits,
            policy,
        ),
        stderr_tail: crate::run::stderr_tail(&outcome.stderr),
        denials: outcome.denials,
        staged_bytes: stage.staged_bytes,
    })
}
