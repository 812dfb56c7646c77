//! The catalogue of event types: what each one means, which references it must carry,
//! and how types from clients and from the original Leviathan are named.
//!
//! Versioning rules (see docs/ARCHITECTURE.md): the envelope carries `v`
//! ([`super::SCHEMA_VERSION`]); payloads only ever gain fields, readers ignore fields
//! they do not know, and a renamed type keeps its old name readable through
//! [`canonical_kind`]. Stored events are never rewritten, because that would break
//! the hash chain.

/// The references a type requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refs {
    /// No reference is required.
    None,
    /// `target`.
    Target,
    /// `target` and `task`.
    Task,
    /// `target`, `task` and `attempt`.
    Attempt,
}

/// Who may write a type: the namespace the log enforces on every append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Only the host's own code (the scheduler, the registry watcher, `exec`): the
    /// types the scheduler and the projection act on.
    Host,
    /// An operator's action through its own endpoint or command (pause, resume,
    /// breaker reset), and the host itself (a breaker's cool-down).
    Operator,
    /// Anyone allowed to append: the client namespace, and any name the catalogue
    /// does not know (a human's `operator.note`). Never acted on.
    Client,
}

/// One known event type.
#[derive(Debug, Clone, Copy)]
pub struct EventType {
    pub name: &'static str,
    pub refs: Refs,
    pub writer: Writer,
    /// The envelope version that introduced the type.
    pub since: u32,
    pub meaning: &'static str,
}

const fn ty(name: &'static str, refs: Refs, meaning: &'static str) -> EventType {
    EventType {
        name,
        refs,
        writer: Writer::Host,
        since: 1,
        meaning,
    }
}

const fn operator(name: &'static str, refs: Refs, meaning: &'static str) -> EventType {
    EventType {
        writer: Writer::Operator,
        ..ty(name, refs, meaning)
    }
}

/// Every type the host writes or understands, in loop order.
pub const CATALOG: &[EventType] = &[
    ty(
        "scheduler.tick",
        Refs::None,
        "a scheduler pass began (logs before passes noted their end in the projection instead); payload: targets",
    ),
    ty(
        "shards.configured",
        Refs::None,
        "this log belongs to shard `index` of `count` (recorded at the first sharded start, and by `shards migrate`); payload: index, count, previous_count",
    ),
    ty(
        "target.skipped",
        Refs::Target,
        "the scheduler passed a whole target over (recorded when the reason changes, not every pass); payload: reason (disabled, paused, max_open_prs, circuit_open, fetch_failed, backlog_invalid), message",
    ),
    ty(
        "task.selected",
        Refs::Task,
        "the scheduler picked the task to run",
    ),
    ty(
        "task.skipped",
        Refs::Task,
        "the scheduler passed the task over (recorded when the reason changes, not every pass); payload: reason (not_ready, status, deps, scope, inflight, attempts)",
    ),
    ty(
        "task.blocked",
        Refs::Task,
        "the task reached max_attempts_per_task",
    ),
    ty(
        "task.completed",
        Refs::Task,
        "the task is done (merged, or an empty change)",
    ),
    ty("attempt.started", Refs::Attempt, "an executor run began"),
    ty(
        "attempt.succeeded",
        Refs::Attempt,
        "the run produced a change set that passed policy; payload: executor, digest, files, fuel_used, instantiate_us, execute_us",
    ),
    ty(
        "attempt.failed",
        Refs::Attempt,
        "the run failed; payload: kind, message",
    ),
    ty(
        "attempt.pushed",
        Refs::Attempt,
        "the attempt's branch is pushed and its PR about to be opened; payload: branch, title, body, result (the attempt.succeeded payload)",
    ),
    ty(
        "policy.violation",
        Refs::Attempt,
        "a write outside the allowed paths was refused; payload: path, rule",
    ),
    ty(
        "pr.opened",
        Refs::Attempt,
        "a pull request was opened; payload: pr, branch, url",
    ),
    ty(
        "pr.merged",
        Refs::Task,
        "a pull request was merged; payload: pr",
    ),
    ty(
        "pr.closed",
        Refs::Task,
        "a pull request was closed unmerged; payload: pr",
    ),
    ty(
        "circuit_breaker.opened",
        Refs::Target,
        "consecutive failures opened the target's breaker; payload: failures",
    ),
    operator(
        "circuit_breaker.closed",
        Refs::Target,
        "the breaker closed; payload: reason (reset, cooldown)",
    ),
    operator(
        "autonomy.paused",
        Refs::None,
        "runs stopped (for one target when `target` is set); payload: by",
    ),
    operator(
        "autonomy.resumed",
        Refs::None,
        "runs resumed (for one target when `target` is set); payload: by",
    ),
    ty(
        "plugin.loaded",
        Refs::None,
        "a registry entry loaded (new or changed); payload: entry (name/version), plugin, sha256, signed",
    ),
    ty(
        "plugin.rejected",
        Refs::None,
        "a registry entry was refused; payload: entry, reason",
    ),
    ty(
        "plugin.removed",
        Refs::None,
        "a registry entry went away; payload: entry",
    ),
    ty(
        "import.completed",
        Refs::None,
        "closes a segment imported from the original's journal (the `events` before it); payload: file, events, chain (verified or broken), verified_events, original_head, first_break, report",
    ),
];

/// The namespace for types a client sends that the catalogue does not know.
pub const CLIENT_NAMESPACE: &str = "client.";

/// The namespace for imported types of the original Leviathan that have no equivalent.
pub const LEGACY_NAMESPACE: &str = "legacy.";

/// Renamed types: (old name, current name). Empty while the catalogue is at v1.
const ALIASES: &[(&str, &str)] = &[];

/// The catalogue entry for `name`, if known.
pub fn lookup(name: &str) -> Option<&'static EventType> {
    CATALOG.iter().find(|t| t.name == name)
}

/// The current name of a type (an old name maps to its replacement).
pub fn canonical_kind(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(old, _)| *old == name)
        .map(|(_, new)| *new)
        .unwrap_or(name)
}

/// The type under which a client's event is stored: known types and types already in
/// the client namespace as they are, anything else under `client.` (an empty name is
/// refused by the log's validation, never stored as a bare `client.`).
pub fn client_kind(name: &str) -> String {
    if name.is_empty()
        || lookup(canonical_kind(name)).is_some()
        || name.starts_with(CLIENT_NAMESPACE)
    {
        name.to_string()
    } else {
        format!("{CLIENT_NAMESPACE}{name}")
    }
}

/// Who may write `name`: a catalogue type's writer; the legacy namespace only comes
/// from an import (`None`); the client namespace and every name the catalogue does
/// not know are the clients' (the projection acts on catalogue types only, and never
/// on a client's event). The API stores unknown names under `client.`
/// ([`client_kind`]); the command line keeps them as given.
pub fn writer_of(name: &str) -> Option<Writer> {
    if let Some(t) = lookup(canonical_kind(name)) {
        return Some(t.writer);
    }
    if name.starts_with(LEGACY_NAMESPACE) {
        return None;
    }
    Some(Writer::Client)
}

/// Whether an append by `origin` may write type `name`; the error says why not.
pub fn check_writer(origin: super::Origin, name: &str) -> Result<(), String> {
    use super::Origin;
    let writer = writer_of(name);
    let allowed = match origin {
        Origin::Host => writer.is_some(),
        Origin::Import => true,
        Origin::Operator => matches!(writer, Some(Writer::Operator | Writer::Client)),
        Origin::Client => writer == Some(Writer::Client),
    };
    if allowed {
        return Ok(());
    }
    Err(match writer {
        Some(Writer::Host) | None if name.starts_with(LEGACY_NAMESPACE) => format!(
            "`{name}` is in the `{LEGACY_NAMESPACE}*` namespace, which only `events import` writes"
        ),
        Some(Writer::Operator) => format!(
            "`{name}` is an operator action: use its own endpoint (POST /api/v1/autonomy/pause|resume, /api/v1/targets/{{id}}/circuit-breaker/reset)"
        ),
        _ => format!(
            "`{name}` is written only by the host; clients write their own types (stored as `{CLIENT_NAMESPACE}*`)"
        ),
    })
}

/// The reference a known type lacks, if any: `target`, `task` or `attempt`.
pub fn missing_ref(name: &str, target: bool, task: bool, attempt: bool) -> Option<&'static str> {
    let refs = lookup(canonical_kind(name)).map(|t| t.refs)?;
    let needs = match refs {
        Refs::None => [false, false, false],
        Refs::Target => [true, false, false],
        Refs::Task => [true, true, false],
        Refs::Attempt => [true, true, true],
    };
    [("target", target), ("task", task), ("attempt", attempt)]
        .into_iter()
        .zip(needs)
        .find(|((_, has), need)| *need && !*has)
        .map(|((field, _), _)| field)
}

/// Maps an event type of the original Leviathan's NDJSON store to ours; types
/// without an equivalent go under `legacy.`.
pub fn map_legacy_kind(name: &str) -> String {
    let mapped = match name {
        "scheduler_tick" | "scheduler.tick" | "autonomy.tick" => "scheduler.tick",
        "task_selected" | "task.selected" => "task.selected",
        "task_skipped" | "task.skipped" => "task.skipped",
        "task_completed" | "task.completed" => "task.completed",
        "task_blocked" | "task.blocked" => "task.blocked",
        "attempt_created" | "attempt.created" | "attempt_started" | "attempt.started" => {
            "attempt.started"
        }
        "attempt_succeeded" | "attempt.succeeded" => "attempt.succeeded",
        "attempt_failed" | "attempt.failed" => "attempt.failed",
        "policy_violation" | "policy.violation" | "scope_violation" => "policy.violation",
        "pr_created" | "pr.created" | "pr_opened" | "pr.opened" => "pr.opened",
        "pr_merged" | "pr.merged" => "pr.merged",
        "pr_closed" | "pr.closed" => "pr.closed",
        "circuit_breaker_open" | "circuit_breaker.opened" | "circuit_breaker_tripped" => {
            "circuit_breaker.opened"
        }
        "circuit_breaker_reset" | "circuit_breaker.closed" => "circuit_breaker.closed",
        "autonomy_paused" | "autonomy.paused" => "autonomy.paused",
        "autonomy_resumed" | "autonomy.resumed" => "autonomy.resumed",
        _ => "",
    };
    if mapped.is_empty() {
        legacy_kind(name)
    } else {
        mapped.to_string()
    }
}

/// `name` under the legacy namespace, lower-cased, with any character outside
/// `[a-z0-9._-]` replaced by `_`.
pub fn legacy_kind(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{LEGACY_NAMESPACE}{cleaned}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_are_unique_and_valid() {
        let mut names: Vec<_> = CATALOG.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        for t in CATALOG {
            assert!(
                t.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn client_types_are_namespaced_unless_known() {
        assert_eq!(client_kind("pr.opened"), "pr.opened");
        assert_eq!(client_kind("deploy.done"), "client.deploy.done");
        assert_eq!(client_kind("client.x"), "client.x");
        assert_eq!(client_kind(""), "", "never a bare `client.`");
    }

    #[test]
    fn only_the_host_writes_what_the_scheduler_acts_on() {
        use crate::Origin;
        for t in CATALOG.iter().filter(|t| t.writer == Writer::Host) {
            assert!(check_writer(Origin::Client, t.name).is_err(), "{}", t.name);
            assert!(
                check_writer(Origin::Operator, t.name).is_err(),
                "{}",
                t.name
            );
            assert!(check_writer(Origin::Host, t.name).is_ok(), "{}", t.name);
        }
        for name in [
            "autonomy.paused",
            "autonomy.resumed",
            "circuit_breaker.closed",
        ] {
            assert!(check_writer(Origin::Client, name).is_err(), "{name}");
            assert!(check_writer(Origin::Operator, name).is_ok(), "{name}");
        }
        for name in ["client.deploy.done", "operator.note"] {
            assert!(check_writer(Origin::Client, name).is_ok(), "{name}");
            assert!(check_writer(Origin::Operator, name).is_ok(), "{name}");
        }
        assert!(check_writer(Origin::Client, "legacy.x").is_err());
        assert!(check_writer(Origin::Import, "legacy.x").is_ok());
        assert!(check_writer(Origin::Host, "legacy.x").is_err());
        let err = check_writer(Origin::Client, "attempt.started").unwrap_err();
        assert!(err.contains("written only by the host"), "{err}");
    }

    #[test]
    fn required_references_are_named() {
        assert_eq!(
            missing_ref("attempt.failed", true, true, false),
            Some("attempt")
        );
        assert_eq!(
            missing_ref("task.skipped", false, true, false),
            Some("target")
        );
        assert_eq!(missing_ref("scheduler.tick", false, false, false), None);
        assert_eq!(missing_ref("client.x", false, false, false), None);
    }

    #[test]
    fn legacy_types_map_or_fall_into_the_legacy_namespace() {
        assert_eq!(map_legacy_kind("attempt.created"), "attempt.started");
        assert_eq!(map_legacy_kind("pr_created"), "pr.opened");
        assert_eq!(
            map_legacy_kind("Graph Node Added"),
            "legacy.graph_node_added"
        );
    }
}
