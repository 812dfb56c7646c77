//! The original Leviathan's journal and its hash chain, recomputed exactly as the
//! original computed it, so an import can prove the history it brings in was not
//! altered.
//!
//! The original's store wrote one JSON object per line with `event_id`, `event_type`,
//! `timestamp`, `actor_id`, `payload`, `prev_hash` and `hash`, where
//! `hash = sha256(json.dumps({event_id, event_type, timestamp.isoformat(), actor_id,
//! payload, prev_hash}, sort_keys=True, separators=(",", ":")))` and `prev_hash` is
//! the previous line's `hash` (null on the first). `tests/fixtures/original/` holds a
//! journal the original's model wrote, and the script that wrote it.

mod isoformat;
pub mod pyjson;

use pyjson::PyValue;
use sha2::{Digest, Sha256};

/// Where a journal's chain first fails to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// 1-based line in the file.
    pub line: usize,
    /// The event's `event_id` as the line gives it (shortened), or `(none)`.
    pub event_id: String,
    /// Which field fails and how.
    pub field: &'static str,
    pub reason: String,
}

/// How far a journal's chain verified.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainCheck {
    /// Events whose hash and link verified, from the first line on.
    pub verified: usize,
    /// The `hash` of the last of them: the head the original's chain vouches for.
    pub head: Option<String>,
    /// The first line that does not verify, if any.
    pub first_break: Option<ChainBreak>,
}

/// The longest `event_id` quoted in a message.
const ID_SHOWN: usize = 80;

fn shown_id(event: &PyValue) -> String {
    match event.get("event_id").and_then(PyValue::as_string) {
        Some(id) if id.chars().count() > ID_SHOWN => {
            format!("{}…", id.chars().take(ID_SHOWN).collect::<String>())
        }
        Some(id) => id,
        None => "(none)".into(),
    }
}

/// The hash the original computed for one journal line, or which field it could
/// not have been computed from.
pub fn chain_hash(event: &PyValue) -> Result<String, (&'static str, String)> {
    let timestamp = event
        .get("timestamp")
        .ok_or(("timestamp", "is missing".to_string()))
        .and_then(|t| isoformat::isoformat(t).map_err(|e| ("timestamp", e)))?;
    let field = |name: &str| event.get(name).cloned().unwrap_or(PyValue::Null);
    let key = |name: &str| name.encode_utf16().collect::<Vec<u16>>();
    let body = PyValue::Dict(vec![
        (key("event_id"), field("event_id")),
        (key("event_type"), field("event_type")),
        (key("timestamp"), PyValue::Str(key(&timestamp))),
        (key("actor_id"), field("actor_id")),
        (key("payload"), field("payload")),
        (key("prev_hash"), field("prev_hash")),
    ]);
    Ok(hex::encode(Sha256::digest(body.canonical().as_bytes())))
}

/// Verifies the chain over `events` (each with its 1-based line number), in order:
/// every line's stored `hash` must equal the recomputed one and its `prev_hash` the
/// previous line's `hash` (null on the first). Stops at the first break.
pub fn verify_chain(events: &[(usize, PyValue)]) -> ChainCheck {
    let mut check = ChainCheck::default();
    for (line, event) in events {
        let broken = |field: &'static str, reason: String| ChainBreak {
            line: *line,
            event_id: shown_id(event),
            field,
            reason,
        };
        let stored = event.get("hash").and_then(PyValue::as_string);
        let prev = match event.get("prev_hash") {
            None | Some(PyValue::Null) => None,
            Some(other) => Some(other.as_string().unwrap_or_default()),
        };
        let found = match (&stored, &check.head) {
            (None, _) => Some(broken(
                "hash",
                "is missing: the original's store wrote one on every line".into(),
            )),
            (_, expected) if prev != *expected => Some(broken(
                "prev_hash",
                match expected {
                    None => "must be null on the first line (lines before it are missing)"
                        .into(),
                    Some(_) => "does not link to the previous line's hash (a line was dropped, inserted or moved)".into(),
                },
            )),
            (Some(stored), _) => match chain_hash(event) {
                Err((field, e)) => Some(broken(field, format!("{e}, so its hash cannot be recomputed"))),
                Ok(hash) if hash != *stored => Some(broken(
                    "hash",
                    format!("does not match the line's content (recomputed {hash}): the event was altered"),
                )),
                Ok(_) => None,
            },
        };
        if let Some(b) = found {
            check.first_break = Some(b);
            return check;
        }
        check.verified += 1;
        check.head = stored;
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOURNAL: &str = include_str!("../../../../tests/fixtures/original/journal.ndjson");
    const HEAD: &str = include_str!("../../../../tests/fixtures/original/journal.head");

    fn events(text: &str) -> Vec<(usize, PyValue)> {
        text.lines()
            .enumerate()
            .map(|(n, l)| (n + 1, PyValue::parse(l).unwrap()))
            .collect()
    }

    #[test]
    fn the_originals_own_journal_verifies_to_its_head() {
        let check = verify_chain(&events(JOURNAL));
        assert_eq!(check.first_break, None);
        let (count, head) = HEAD.trim().split_once(' ').unwrap();
        assert_eq!(check.verified.to_string(), count);
        assert_eq!(check.head.as_deref(), Some(head));
    }

    #[test]
    fn an_edit_a_drop_and_a_swap_each_break_where_they_happen() {
        let lines: Vec<&str> = JOURNAL.lines().collect();
        let edited = lines[3].replace("worker-radix-1", "worker-radix-2");
        let mut text = lines.clone();
        text[3] = &edited;
        let b = verify_chain(&events(&text.join("\n"))).first_break.unwrap();
        assert_eq!(
            (b.line, b.field, b.event_id.as_str()),
            (4, "hash", "5b0c1d2e-0004")
        );

        let mut dropped = lines.clone();
        dropped.remove(5);
        let check = verify_chain(&events(&dropped.join("\n")));
        let b = check.first_break.unwrap();
        assert_eq!((b.line, b.field), (6, "prev_hash"));
        assert_eq!(check.verified, 5);

        let mut swapped = lines.clone();
        swapped.swap(6, 7);
        let b = verify_chain(&events(&swapped.join("\n")))
            .first_break
            .unwrap();
        assert_eq!(
            (b.line, b.field, b.event_id.as_str()),
            (7, "prev_hash", "5b0c1d2e-0008")
        );

        let b = verify_chain(&events(&lines[1..].join("\n")))
            .first_break
            .unwrap();
        assert_eq!(
            (b.line, b.field),
            (1, "prev_hash"),
            "a journal missing its start"
        );
    }
}
