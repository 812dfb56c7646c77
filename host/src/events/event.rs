//! One event and its canonical, hashed encoding.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The encoding version written into every event; older versions stay readable.
pub const SCHEMA_VERSION: u32 = 1;

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
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// Builds event `seq` from a draft, chaining it to `prev_hash`.
    pub fn seal(draft: EventDraft, seq: u64, ts_ms: u64, prev_hash: &str) -> Event {
        let mut event = Event {
            seq,
            ts_ms,
            v: SCHEMA_VERSION,
            kind: draft.kind,
            target: draft.target,
            task: draft.task,
            attempt: draft.attempt,
            payload: draft.payload,
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
    /// except `hash`, keys sorted, absent references as `null`.
    pub fn compute_hash(&self) -> String {
        let canonical = Canonical {
            attempt: &self.attempt,
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
    attempt: &'a Option<String>,
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
        let e = Event::seal(draft, 7, 9, GENESIS_HASH);
        let sorted = serde_json::json!({
            "seq": e.seq, "ts_ms": e.ts_ms, "v": e.v, "type": e.kind, "target": e.target,
            "task": e.task, "attempt": e.attempt, "payload": e.payload, "prev_hash": e.prev_hash,
        });
        let expected = hex::encode(Sha256::digest(sorted.to_string().as_bytes()));
        assert_eq!(e.hash, expected);
    }

    #[test]
    fn hash_covers_every_field() {
        let mut draft = EventDraft::new("attempt.started");
        draft.task = Some("t1".into());
        draft.payload = serde_json::json!({"b": 1, "a": [1, 2]});
        let e = Event::seal(draft, 1, 5, GENESIS_HASH);
        assert_eq!(e.hash, e.compute_hash());
        let mut changed = e.clone();
        changed.payload = serde_json::json!({"b": 2, "a": [1, 2]});
        assert_ne!(changed.compute_hash(), e.hash);
        let mut changed = e.clone();
        changed.prev_hash = "x".into();
        assert_ne!(changed.compute_hash(), e.hash);
    }
}
