//! `leviathan-host replay ATTEMPT`: runs a recorded attempt again, in a fresh sandbox
//! on a fresh checkout of the commit it saw, with the exact component and the rules
//! it ran under, and compares the bytes with what the event log recorded.
//!
//! Exit codes: 0 identical, 1 the bytes differ (the first differing file is named),
//! 2 the attempt cannot be replayed (unknown, not succeeded, recorded without what a
//! replay needs, the commit or the component no longer available).

use leviathan_domain::config::{Config, work_dir_for};
use leviathan_domain::registry::Registry;
use leviathan_events::{Event, EventLog, Origin};
use leviathan_sandbox::exec::{ExecReport, ExecRequest, exec_pinned};
use leviathan_sandbox::record::RunRecord;
use leviathan_sandbox::{ArtifactCache, Sandbox};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// What `replay` is asked.
pub struct ReplayArgs {
    pub attempt: String,
    pub data_dir: PathBuf,
    /// The targets file, to find a scheduler attempt's clone.
    pub config: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
    /// The repository holding the base commit (default: the host's clone of the
    /// target, or the worktree an `exec` ran in).
    pub repo: Option<PathBuf>,
    pub plugin_dir: Option<PathBuf>,
    pub json: bool,
}

/// Why an attempt cannot be replayed (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CannotReplay(String);

fn cannot(message: impl Into<String>) -> CannotReplay {
    CannotReplay(message.into())
}

/// One file as recorded or as replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    pub path: String,
    pub sha256: String,
}

/// What the log holds of a succeeded attempt.
#[derive(Debug)]
pub struct Recorded {
    pub target: String,
    pub task: String,
    pub digest: String,
    pub files: Vec<FileHash>,
    pub record: RunRecord,
}

/// The first difference between the recorded and the replayed files, if any.
pub fn first_difference(recorded: &[FileHash], replayed: &[FileHash]) -> Option<String> {
    let mut paths: Vec<&str> = recorded
        .iter()
        .chain(replayed)
        .map(|f| f.path.as_str())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let find = |files: &[FileHash], path: &str| {
        files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.sha256.clone())
    };
    paths
        .into_iter()
        .find_map(|path| match (find(recorded, path), find(replayed, path)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(a), Some(b)) => Some(format!("{path}: recorded sha256 {a}, replayed sha256 {b}")),
            (Some(_), None) => Some(format!("{path}: recorded, not written by the replay")),
            (None, _) => Some(format!("{path}: written by the replay, not recorded")),
        })
}

/// Reads a succeeded attempt's record from the host's own events (a client's events
/// are never taken for the host's).
pub fn recorded(log: &EventLog, attempt: &str) -> Result<Recorded, CannotReplay> {
    let events: Vec<Event> = log
        .by_attempt(attempt, 0, 10_000)
        .map_err(|e| cannot(format!("the event log cannot be read: {e}")))?
        .into_iter()
        .filter(|e| e.origin != Some(Origin::Client))
        .collect();
    if events.is_empty() {
        return Err(cannot(format!("no attempt `{attempt}` in the event log")));
    }
    let outcome = events
        .iter()
        .rev()
        .find(|e| e.kind == "attempt.succeeded" || e.kind == "attempt.failed");
    let event = match outcome {
        None => {
            return Err(cannot(format!(
                "attempt `{attempt}` has no outcome yet (still running, or interrupted)"
            )));
        }
        Some(e) if e.kind == "attempt.failed" => {
            let kind = e.payload["kind"].as_str().unwrap_or("no kind recorded");
            return Err(cannot(format!(
                "attempt `{attempt}` failed ({kind}); replay compares the bytes of a succeeded attempt"
            )));
        }
        Some(e) => e,
    };
    let (Some(target), Some(task)) = (event.target.clone(), event.task.clone()) else {
        return Err(cannot(format!(
            "attempt `{attempt}`: its outcome names no target or task"
        )));
    };
    let record: RunRecord = serde_json::from_value(event.payload["record"].clone()).map_err(|_| {
        cannot(format!(
            "attempt `{attempt}` was recorded by a host version that did not record what a replay needs (payload field `record`, event {})",
            event.seq
        ))
    })?;
    let files = event.payload["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|f| FileHash {
                    path: f["path"].as_str().unwrap_or_default().to_string(),
                    sha256: f["sha256"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Recorded {
        target,
        task,
        digest: event.payload["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        files,
        record,
    })
}

/// The repository holding the attempt's base commit.
fn repository(args: &ReplayArgs, target: &str) -> Result<PathBuf, CannotReplay> {
    if let Some(repo) = &args.repo {
        return Ok(repo.clone());
    }
    if let Some(file) = &args.config {
        let config = Config::load(file).map_err(|e| cannot(e.to_string()))?;
        if config.targets.iter().any(|t| t.id == target) {
            return Ok(work_dir_for(&args.data_dir, args.work_dir.clone()).join(target));
        }
        return Err(cannot(format!(
            "target `{target}` is not in {}; pass --repo",
            file.display()
        )));
    }
    // `exec --data-dir` records the worktree's absolute path as the target.
    let path = Path::new(target);
    if path.is_absolute() && path.is_dir() {
        return Ok(path.to_path_buf());
    }
    Err(cannot(format!(
        "where is target `{target}`'s repository? pass --config (the host's clone) or --repo"
    )))
}

/// Checks that the registry still holds the recorded component, for a clear error.
fn component_present(dir: &Path, record: &RunRecord) -> Result<(), CannotReplay> {
    let registry = Registry::scan(dir).map_err(|e| cannot(e.to_string()))?;
    let present = registry.entries.iter().any(|e| {
        e.manifest
            .sha256
            .eq_ignore_ascii_case(&record.component_sha256)
    });
    if present {
        return Ok(());
    }
    Err(cannot(format!(
        "the recorded component of {} (sha256 {}) is no longer in the registry at {}",
        record.executor,
        record.component_sha256,
        dir.display()
    )))
}

/// Runs the attempt again; the replayed report.
fn rerun(args: &ReplayArgs, rec: &Recorded) -> Result<ExecReport, CannotReplay> {
    let Some(commit) = &rec.record.base_commit else {
        return Err(cannot(
            "the attempt ran in a repository without commits; there is no state to check out",
        ));
    };
    let repo = repository(args, &rec.target)?;
    let registry_dir = args
        .plugin_dir
        .clone()
        .unwrap_or_else(Registry::default_dir);
    component_present(&registry_dir, &rec.record)?;
    let scratch = tempfile::tempdir().map_err(|e| cannot(format!("no scratch directory: {e}")))?;
    let checkout = scratch.path().join("repo");
    leviathan_forge::git::checkout_commit(&repo, commit, &checkout).map_err(|e| {
        cannot(format!(
            "base commit {commit}: {e} (fetch it, or pass --repo with a repository that has it)"
        ))
    })?;
    let policy = rec.record.policy().map_err(|e| cannot(e.to_string()))?;
    let sandbox = Sandbox::new(ArtifactCache::new(ArtifactCache::default_dir()))
        .map_err(|e| cannot(e.to_string()))?;
    let request = ExecRequest {
        repo: checkout,
        task_id: rec.task.clone(),
        policy: None,
        registry_dir,
    };
    exec_pinned(&sandbox, &request, &policy, &rec.record.component_sha256).map_err(|e| {
        cannot(format!(
            "the replay failed ({}): {}",
            e.kind.as_str(),
            e.message
        ))
    })
}

/// `replay`: prints the verdict; returns the exit code.
pub fn run(args: &ReplayArgs) -> i32 {
    let outcome = EventLog::open(&args.data_dir)
        .map_err(|e| cannot(format!("{}: {e}", args.data_dir.display())))
        .and_then(|log| recorded(&log, &args.attempt))
        .and_then(|rec| rerun(args, &rec).map(|report| (rec, report)));
    let (rec, report) = match outcome {
        Ok(done) => done,
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    json!({"attempt": args.attempt, "ok": false, "error": e.0})
                );
            } else {
                eprintln!("error: attempt {}: {e}", args.attempt);
            }
            return 2;
        }
    };
    let replayed: Vec<FileHash> = report
        .files
        .iter()
        .map(|f| FileHash {
            path: f.path.as_string(),
            sha256: f.sha256.clone(),
        })
        .collect();
    let difference = first_difference(&rec.files, &replayed).or_else(|| {
        (report.digest != rec.digest).then(|| {
            format!(
                "change digest: recorded {}, replayed {}",
                rec.digest, report.digest
            )
        })
    });
    if args.json {
        let v: Value = json!({
            "attempt": args.attempt, "target": rec.target, "task": rec.task,
            "executor": rec.record.executor, "component_sha256": rec.record.component_sha256,
            "base_commit": rec.record.base_commit, "digest": report.digest,
            "files": replayed.len(), "identical": difference.is_none(), "difference": difference,
        });
        println!("{v}");
    } else {
        match &difference {
            None => println!(
                "attempt {}: identical: {} file(s), change digest {} ({} at {})",
                args.attempt,
                replayed.len(),
                report.digest,
                rec.record.executor,
                rec.record.base_commit.as_deref().unwrap_or("-")
            ),
            Some(d) => eprintln!("attempt {}: differs: {d}", args.attempt),
        }
    }
    if difference.is_none() { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, sha: &str) -> FileHash {
        FileHash {
            path: path.into(),
            sha256: sha.into(),
        }
    }

    #[test]
    fn the_first_difference_is_named_in_path_order() {
        let recorded = [f("docs/b.md", "2"), f("docs/a.md", "1")];
        assert_eq!(
            first_difference(&recorded, &[f("docs/a.md", "1"), f("docs/b.md", "2")]),
            None
        );
        assert_eq!(
            first_difference(&recorded, &[f("docs/a.md", "1"), f("docs/b.md", "9")]).unwrap(),
            "docs/b.md: recorded sha256 2, replayed sha256 9"
        );
        assert_eq!(
            first_difference(&recorded, &[f("docs/b.md", "2")]).unwrap(),
            "docs/a.md: recorded, not written by the replay"
        );
        assert_eq!(
            first_difference(
                &recorded,
                &[
                    f("docs/a.md", "1"),
                    f("docs/b.md", "2"),
                    f("docs/0.md", "0")
                ]
            )
            .unwrap(),
            "docs/0.md: written by the replay, not recorded"
        );
    }
}
