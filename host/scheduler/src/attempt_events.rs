//! Event drafts for one `exec` attempt: `attempt.started`, then `attempt.succeeded`
//! or `attempt.failed` with the report or the error.

use leviathan_events::EventDraft;
use leviathan_sandbox::exec::{ExecFailure, ExecReport};
use sha2::{Digest, Sha256};

/// A fresh attempt id: `exec-` and 8 hex digits, unique per process and moment.
pub fn new_attempt_id(task: &str) -> String {
    let nanos = leviathan_domain::clock::now_nanos();
    let mut h = Sha256::new();
    h.update(task.as_bytes());
    h.update(std::process::id().to_be_bytes());
    h.update(nanos.to_be_bytes());
    format!("exec-{}", &hex::encode(h.finalize())[..8])
}

/// An event about `task` of `target`, and about `attempt` when given.
pub fn task_event(
    kind: &str,
    target: &str,
    task: &str,
    attempt: Option<&str>,
    payload: serde_json::Value,
) -> EventDraft {
    EventDraft {
        kind: kind.into(),
        target: Some(target.into()),
        task: Some(task.into()),
        attempt: attempt.map(String::from),
        payload,
    }
}

fn draft(
    kind: &str,
    target: &str,
    task: &str,
    attempt: &str,
    payload: serde_json::Value,
) -> EventDraft {
    task_event(kind, target, task, Some(attempt), payload)
}

/// `attempt.started` for `task` of `target`.
pub fn started(target: &str, task: &str, attempt: &str) -> EventDraft {
    draft(
        "attempt.started",
        target,
        task,
        attempt,
        serde_json::json!({"via": "exec"}),
    )
}

/// `attempt.succeeded` with the change set, or `attempt.failed` with the error kind.
pub fn finished(
    target: &str,
    task: &str,
    attempt: &str,
    result: &Result<ExecReport, ExecFailure>,
) -> EventDraft {
    match result {
        Ok(r) => draft(
            "attempt.succeeded",
            target,
            task,
            attempt,
            serde_json::json!({
                "executor": r.executor,
                "digest": r.digest,
                "files": r.files.iter().map(|f| serde_json::json!({
                    "path": f.path.as_string(), "sha256": f.sha256, "bytes": f.bytes,
                })).collect::<Vec<_>>(),
                "fuel_used": r.stats.fuel_used,
                "memory_peak_bytes": r.stats.memory_peak,
                "instantiate_us": r.stats.instantiate.as_micros() as u64,
                "execute_us": r.stats.execute.as_micros() as u64,
                "stderr_tail": r.stderr_tail,
                "denied": denied(&r.denials),
                // What `leviathan-host replay` runs again.
                "record": r.record,
            }),
        ),
        Err(e) => draft(
            "attempt.failed",
            target,
            task,
            attempt,
            failed_payload(e.kind.as_str(), &e.message, e.stats.as_deref(), &e.denials),
        ),
    }
}

/// The filesystem calls the sandbox refused, as recorded: action, path and rule.
fn denied(denials: &[leviathan_sandbox::guard::Denial]) -> serde_json::Value {
    denials.iter().map(|d| d.to_json()).collect()
}

/// The `attempt.failed` payload: the kind and message, and what the run used and
/// which of its filesystem calls the sandbox refused, when the executor ran before
/// the failure.
pub fn failed_payload(
    kind: &str,
    message: &str,
    stats: Option<&leviathan_sandbox::RunStats>,
    refused: &[leviathan_sandbox::guard::Denial],
) -> serde_json::Value {
    let mut payload = serde_json::json!({"kind": kind, "message": message});
    if !refused.is_empty() {
        payload["denied"] = denied(refused);
    }
    if let Some(s) = stats {
        payload["fuel_used"] = serde_json::json!(s.fuel_used);
        payload["memory_peak_bytes"] = serde_json::json!(s.memory_peak);
        payload["instantiate_us"] = serde_json::json!(s.instantiate.as_micros() as u64);
        payload["execute_us"] = serde_json::json!(s.execute.as_micros() as u64);
    }
    payload
}
