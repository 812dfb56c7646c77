//! The commands of `leviathan-host` other than `serve` (which the binary wires to the
//! server and the scheduler): `exec`, `replay`, `backlog validate`, `tick`, `prs`, `events`, `plugins`, the API
//! client of `events tail --api`, and the exit-code and logging rules every command
//! shares. A crate below the binary, so a change in the server recompiles none of it.

mod api;
pub mod backlog;
pub mod check;
mod custody;
pub mod events;
pub mod plugins;
pub mod replay;
mod scaffold;
pub mod sched;
pub mod shards;

use leviathan_domain::registry::Registry;
use leviathan_sandbox::exec::{ErrorKind, ExecFailure, ExecReport, ExecRequest, exec};
use leviathan_sandbox::{ArtifactCache, Sandbox};
use std::path::PathBuf;

/// A command's exit code: its own on success; on an error, the error (with its
/// causes) on stderr and 1.
pub fn exit_code(result: anyhow::Result<i32>) -> i32 {
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", error_text(&e));
        1
    })
}

/// An error and its causes on one line, `: ` between them, each cause said once: most
/// of the host's errors already end with their cause's message, which `{:#}` would
/// repeat ("cannot read: No such file or directory: No such file or directory").
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text
}

/// `exec`: runs one task of the worktree `repo` and prints the report (JSON with
/// `json`); returns the exit code of its outcome.
pub fn exec_task(
    repo: PathBuf,
    task: String,
    policy: Option<PathBuf>,
    plugin_dir: Option<PathBuf>,
    json: bool,
    data_dir: Option<PathBuf>,
) -> i32 {
    let request = ExecRequest {
        repo,
        task_id: task,
        policy,
        registry_dir: plugin_dir.unwrap_or_else(Registry::default_dir),
    };
    let result = recorded(data_dir.as_deref(), &request, |request| {
        Sandbox::new(ArtifactCache::new(ArtifactCache::default_dir()))
            .map_err(|e| ExecFailure::new(ErrorKind::ExecutorFailed, e))
            .and_then(|sandbox| exec(&sandbox, request))
    });
    print_exec(&result, json);
    match result {
        Ok(_) => 0,
        Err(e) => e.kind.exit_code(),
    }
}

/// Runs `run`, recording `attempt.started` and its outcome in the event log at
/// `data_dir` when one is given. A log that cannot be opened fails the attempt before
/// it starts; one that cannot record the outcome is reported on stderr.
fn recorded(
    data_dir: Option<&std::path::Path>,
    request: &ExecRequest,
    run: impl FnOnce(&ExecRequest) -> Result<ExecReport, ExecFailure>,
) -> Result<ExecReport, ExecFailure> {
    use leviathan_events::EventLog;
    use leviathan_scheduler::attempt_events as attempts;
    let Some(dir) = data_dir else {
        return run(request);
    };
    let target = std::fs::canonicalize(&request.repo)
        .unwrap_or_else(|_| request.repo.clone())
        .to_string_lossy()
        .into_owned();
    let attempt = attempts::new_attempt_id(&request.task_id);
    let log = EventLog::open(dir)
        .and_then(|log| {
            log.append(vec![attempts::started(&target, &request.task_id, &attempt)])?;
            Ok(log)
        })
        .map_err(|e| {
            ExecFailure::new(
                ErrorKind::ExecutorFailed,
                format!("cannot record the attempt: {e}"),
            )
        })?;
    let result = run(request);
    let outcome = attempts::finished(&target, &request.task_id, &attempt, &result);
    if let Err(e) = log.append(vec![outcome]) {
        eprintln!("warning: attempt {attempt}: outcome not recorded: {e}");
    }
    result
}

/// Logs go to stderr, filtered by `LEVIATHAN_LOG` (default `default_level`), as JSON
/// lines when `LEVIATHAN_LOG_FORMAT=json`.
pub fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEVIATHAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    if std::env::var("LEVIATHAN_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}

fn print_exec(result: &Result<ExecReport, ExecFailure>, json: bool) {
    match (result, json) {
        (Ok(report), true) => {
            let files: Vec<_> = report
                .files
                .iter()
                .map(|f| serde_json::json!({"path": f.path.as_string(), "sha256": f.sha256, "bytes": f.bytes}))
                .collect();
            let denied: Vec<_> = report.denials.iter().map(|d| d.to_json()).collect();
            let value = serde_json::json!({
                "task": report.task, "executor": report.executor, "files": files, "digest": report.digest,
                "staged_bytes": report.staged_bytes, "denied": denied,
            });
            println!("{value}");
        }
        (Err(e), true) => {
            println!(
                "{}",
                serde_json::json!({"error": {"kind": e.kind.as_str(), "message": e.message}})
            );
        }
        (Ok(report), false) => {
            println!(
                "task {}: {} ({})",
                report.task, report.summary, report.executor
            );
            if report.files.is_empty() {
                println!("  no changes: the worktree already holds the output");
            }
            for f in &report.files {
                println!(
                    "  wrote {}  ({} bytes, sha256 {})",
                    f.path.as_string(),
                    f.bytes,
                    f.sha256
                );
            }
            for d in &report.denials {
                println!("  the sandbox {d}");
            }
            println!("  change digest {}", report.digest);
        }
        (Err(e), false) => {
            eprintln!("error ({}): {}", e.kind.as_str(), e.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    /// An error that says its cause in its own message, as most of the host's do.
    #[derive(Debug)]
    struct Says(std::io::Error);

    impl std::fmt::Display for Says {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "data/config.yaml: cannot read: {}", self.0)
        }
    }

    impl std::error::Error for Says {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(Says(io)).context("loading the configuration");
        assert_eq!(
            error_text(&e),
            "loading the configuration: data/config.yaml: cannot read: disk on fire"
        );
        // A cause its error does not say is still shown.
        let e = anyhow::Error::new(std::io::Error::other("denied")).context("opening the log");
        assert_eq!(error_text(&e), "opening the log: denied");
    }
}
