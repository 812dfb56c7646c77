//! One event and its canonical, hashed encoding.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The encoding version written into every event; older versions stay readable.
/// Version 2 added `origin` and `actor`: who wrote the event.
pub const SCHEMA_VERSION: u32 = 2;

/// Who wrote an event (envelope version 2; absent in version 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The host's own code: the scheduler, the registry watcher, `exec`.
    Host,
    /// An operator's action the host carried out (pause, resume, breaker reset),
    /// through the API's dedicated endpoints or the CLI; `actor` names the operator.
    Operator,
    /// A client's own event (`POST /api/v1/events`, `events append`): only the client
    /// namespace and client-writable types; never acted on by the scheduler.
    Client,
    /// `events import` of the original Leviathan's journal.
    Import,
}

impl Origin {
    /// The name in the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Host => "host",
            Origin::Operator => "operator",
            Origin::Client => "client",
            Origin::Import => "import",
        }
    }
}

/// The origin and actor an append is sealed with. The actor of an operator or client
/// event is the authenticated token's name (or `cli`), never something a body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub origin: Origin,
    pub actor: Option<String>,
}

impl Provenance {
    /// The host's own events.
    pub fn host() -> Provenance {
        Provenance {
            origin: Origin::Host,
            actor: None,
        }
    }

    /// The host's own events for an action an operator asked for (a local PR's merge
    /// or close), by `actor`.
    pub fn host_for(actor: impl Into<String>) -> Provenance {
        Provenance {
            origin: Origin::Host,
            actor: Some(actor.into()),
        }
    }

    /// An operator's action, by `actor`.
    pub fn operator(actor: impl Into<String>) -> Provenance {
        Provenance {
            origin: Origin::Operator,
            actor: Some(actor.into()),
        }
    }

    /// A client's event, by `actor`.
    pub fn client(actor: impl Into<String>) -> Provenance {
        Provenance {
            origin: Origin::Client,
            actor: Some(actor.into()),
        }
    }

    /// An imported journal.
    pub fn import() -> Provenance {
        Provenance {
            origin: Origin::Import,
            actor: None,
        }
    }
}

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller appends: the log assigns sequence, time and hashes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventDraft {
    /// Dotted event type, e.g. `attempt.started`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    #[serde(default)]
    pub payload: serde_json::Value,
}

impl EventDraft {
    /// A draft of type `kind` with an empty payload.
    pub fn new(kind: impl Into<String>) -> EventDraft {
        EventDraft {
            kind: kind.into(),
            payload: serde_json::Value::Null,
            ..EventDraft::default()
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonic sequence number, starting at 1, without gaps.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the event was appended.
    pub ts_ms: u64,
    /// Encoding version ([`SCHEMA_VERSION`]).
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Who wrote it (version 2 on; `None` in version 1 logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The operator or client that wrote it, as authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// Builds event `seq` from a draft written by `by`, chaining it to `prev_hash`.
    pub fn seal(
        draft: EventDraft,
        by: &Provenance,
        seq: u64,
        ts_ms: u64,
        prev_hash: &str,
    ) -> Event {
        let mut event = Event {
            seq,
            ts_ms,
            v: SCHEMA_VERSION,
            kind: draft.kind,
            target: draft.target,
            task: draft.task,
            attempt: draft.attempt,
            payload: draft.payload,
            origin: Some(by.origin),
            actor: by.actor.clone(),
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        event
    }

    /// The target, task and attempt references.
    pub fn refs(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        (
            self.target.as_deref(),
            self.task.as_deref(),
            self.attempt.as_deref(),
        )
    }

    /// SHA-256 (hex) over the canonical encoding: the JSON object of every field
    /// except `hash`, keys sorted, absent references as `null`; `origin` and `actor`
    /// only when present (so version 1 events hash as they always did).
    pub fn compute_hash(&self) -> String {
        let canonical = Canonical {
            actor: &self.actor,
            attempt: &self.attempt,
            origin: self.origin,
            payload: &self.payload,
            prev_hash: &self.prev_hash,
            seq: self.seq,
            target: &self.target,
            task: &self.task,
            ts_ms: self.ts_ms,
            kind: &self.kind,
            v: self.v,
        };
        let mut hasher = Sha256::new();
        // Writing JSON into the hasher cannot fail: Sha256 never returns an I/O error
        // and every field serialises.
        let _ = serde_json::to_writer(HashWriter(&mut hasher), &canonical);
        hex::encode(hasher.finalize())
    }
}

/// The hashed view of an event. Field order is the sorted key order, so the bytes
/// equal a key-sorted JSON object; serde_json sorts the payload's own keys.
#[derive(Serialize)]
struct Canonical<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: &'a Option<String>,
    attempt: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    payload: &'a serde_json::Value,
    prev_hash: &'a str,
    seq: u64,
    target: &'a Option<String>,
    task: &'a Option<String>,
    ts_ms: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    v: u32,
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_is_the_key_sorted_json_object() {
        let mut draft = EventDraft::new("pr.opened");
        draft.target = Some("t".into());
        draft.payload = serde_json::json!({"z": 1, "a": {"y": 2, "b": 3}});
        let e = Event::seal(draft, &Provenance::client("ops"), 7, 9, GENESIS_HASH);
        let sorted = serde_json::json!({
            "seq": e.seq, "ts_ms": e.ts_ms, "v": e.v, "type": e.kind, "target": e.target,
            "task": e.task, "attempt": e.attempt, "payload": e.payload, "prev_hash": e.prev_hash,
            "origin": "client", "actor": "ops",
        });
        let expected = hex::encode(Sha256::digest(sorted.to_string().as_bytes()));
        assert_eq!(e.hash, expected);
        assert_eq!(e.v, 2);
    }

    #[test]
    fn version_1_events_hash_without_origin_and_actor() {
        let mut draft = EventDraft::new("attempt.started");
        draft.target = Some("t".into());
        let mut e = Event::seal(draft, &Provenance::host(), 1, 5, GENESIS_HASH);
        e.v = 1;
        e.origin = None;
        e.actor = None;
        let sorted = serde_json::json!({
            "seq": 1, "ts_ms": 5, "v": 1, "type": "attempt.started", "target": "t",
            "task": null, "attempt": null, "payload": null, "prev_hash": GENESIS_HASH,
        });
        assert_eq!(
            e.compute_hash(),
            hex::encode(Sha256::digest(sorted.to_string().as_bytes()))
        );
        let json = serde_json::to_value(&e).unwrap();
        assert!(json.get("origin").is_none() && json.get("actor").is_none());
    }

    #[test]
    fn hash_covers_every_field() {
        let mut draft = EventDraft::new("attempt.started");
        draft.task = Some("t1".into());
        draft.payload = serde_json::json!({"b": 1, "a": [1, 2]});
        let e = Event::seal(draft, &Provenance::host(), 1, 5, GENESIS_HASH);
        assert_eq!(e.hash, e.compute_hash());
        let mut changed = e.clone();
        changed.payload = serde_json::json!({"b": 2, "a": [1, 2]});
        assert_ne!(changed.compute_hash(), e.hash);
        let mut changed = e.clone();
        changed.prev_hash = "x".into();
        assert_ne!(changed.compute_hash(), e.hash);
        let mut changed = e.clone();
        changed.origin = Some(Origin::Client);
        assert_ne!(changed.compute_hash(), e.hash, "the origin is hashed");
        let mut changed = e.clone();
        changed.actor = Some("someone".into());
        assert_ne!(changed.compute_hash(), e.hash, "the actor is hashed");
    }
}
