//! A checkpoint of the projection, kept in sled beside the log and tied to the
//! chain: the sequence number and hash of the last event it folded in. On open it
//! is used only when that event is still in the log with that hash and the format
//! matches; otherwise the projection is rebuilt from the whole log. Start-up then
//! replays only the events after it. Written by the commit thread every [`EVERY`]
//! events or, when fewer came, [`INTERVAL_MS`] after the last one, and when the log
//! is flushed or closed. The projection is bounded (see [`super::projection`]), so
//! a checkpoint's size does not grow with the history.

use super::epochs::Epochs;
use super::projection::Projection;
use serde::{Deserialize, Serialize};

/// The sled tree that holds the checkpoint.
pub(super) const TREE: &str = "checkpoint";
const KEY: &[u8] = b"projection";
/// The checkpoint's format. Bump it whenever the projection's fields or how
/// `Projection::apply` folds an event change: an older checkpoint is then rebuilt.
pub const FORMAT: u32 = 3;
/// Events between two checkpoints written by the commit thread.
pub const EVERY: u64 = 100_000;
/// The longest the commit thread lets new events go without a checkpoint
/// (checked when it commits), so a quiet host's next start replays little.
pub const INTERVAL_MS: u64 = 5 * 60 * 1000;

/// Whether a checkpoint is due after committing event `last`, the previous one
/// being at `checkpointed`, written `since_ms` ago.
pub(super) fn due(last: u64, checkpointed: u64, since_ms: u64) -> bool {
    let new = last.saturating_sub(checkpointed);
    new >= EVERY || (new > 0 && since_ms >= INTERVAL_MS)
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    seq: u64,
    hash: String,
    projection: Projection,
}

#[derive(Deserialize)]
struct HashOnly {
    hash: String,
}

/// The hash of stored event `seq`, if present and readable.
pub(super) fn stored_hash(events: &Epochs, seq: u64) -> Option<String> {
    let bytes = events.get(seq).ok()??;
    serde_json::from_slice::<HashOnly>(&bytes)
        .ok()
        .map(|h| h.hash)
}

/// The checkpoint, when it is present, of this format and still on the chain:
/// `(seq, hash, projection)`.
pub(super) fn load(db: &sled::Db, events: &Epochs) -> Option<(u64, String, Projection)> {
    let tree = db.open_tree(TREE).ok()?;
    let bytes = tree.get(KEY).ok()??;
    let stored: Stored = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "projection checkpoint unreadable: rebuilding from the log");
            return None;
        }
    };
    if stored.format != FORMAT {
        tracing::info!(
            format = stored.format,
            "projection checkpoint of another format: rebuilding from the log"
        );
        return None;
    }
    if stored.projection.last_seq != stored.seq
        || stored_hash(events, stored.seq).as_deref() != Some(stored.hash.as_str())
    {
        tracing::warn!(
            seq = stored.seq,
            "projection checkpoint does not match the log: rebuilding from the log"
        );
        return None;
    }
    let mut projection = stored.projection;
    projection.rebuild_slots();
    Some((stored.seq, stored.hash, projection))
}

/// Stores `projection` as the checkpoint at its last event, whose hash is `hash`.
pub(super) fn save(db: &sled::Db, projection: &Projection, hash: &str) -> Result<(), String> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        format: u32,
        seq: u64,
        hash: &'a str,
        projection: &'a Projection,
    }
    let bytes = serde_json::to_vec(&Borrowed {
        format: FORMAT,
        seq: projection.last_seq,
        hash,
        projection,
    })
    .map_err(|e| e.to_string())?;
    let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
    tree.insert(KEY, bytes).map_err(|e| e.to_string())?;
    Ok(())
}

/// Removes the checkpoint of the closed log in `dir`: its next open rebuilds the
/// projection from the whole log (a repair, and the benchmark's baseline).
pub fn remove(dir: &std::path::Path) -> Result<(), String> {
    let db = super::store::open_db(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
    tree.remove(KEY).map_err(|e| e.to_string())?;
    db.flush().map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_many_events_or_a_quiet_while_with_some() {
        assert!(!due(10, 10, INTERVAL_MS * 2), "nothing new");
        assert!(!due(11, 10, INTERVAL_MS - 1));
        assert!(due(11, 10, INTERVAL_MS));
        assert!(due(10 + EVERY, 10, 0));
        assert!(!due(9 + EVERY, 10, 0));
    }
}
