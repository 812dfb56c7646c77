//! Ties an event log to the shard that writes it. Each shard keeps its own log;
//! the shard count is recorded in it at the first sharded start, and a start with
//! another count (or another index) is refused until the operator migrates: with a
//! new count targets move between shards, and their history stays in the log of
//! the shard that served them.

use leviathan_domain::shards::Shard;
use leviathan_events::{EventDraft, EventLog, StoreError};
use serde_json::json;

/// Why this process may not serve as `shard` with this log.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "this data directory belongs to shard {recorded_index} of {recorded_count}, but this process is shard {index} of {count} (the configuration's `shards`, the --shard-index flag or the pod's ordinal changed). Targets would change shards and leave their history behind: stop every shard, then run `leviathan-host shards migrate --data-dir DIR --count {count} --index {index}` for each data directory"
    )]
    Changed {
        recorded_index: u32,
        recorded_count: u32,
        index: u32,
        count: u32,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn configured(shard: Shard, previous: Option<(u32, u32)>) -> EventDraft {
    let mut d = EventDraft::new("shards.configured");
    d.payload = json!({
        "index": shard.index,
        "count": shard.count,
        "previous_count": previous.map(|(_, c)| c),
    });
    d
}

/// Checks `shard` against what the log recorded, recording it on the first
/// sharded start. An unsharded log (nothing recorded) serves as shard 0 of 1.
pub fn claim(log: &EventLog, shard: Shard) -> Result<(), ClaimError> {
    let recorded = log.with_projection(|p| p.shard)?;
    match recorded {
        Some((index, count)) if (index, count) == (shard.index, shard.count) => Ok(()),
        None if shard == Shard::ALL => Ok(()),
        None if log.last_seq() > 0 => {
            // An unsharded log with history: sharding it moves targets away from
            // their history, which is a migration.
            Err(ClaimError::Changed {
                recorded_index: 0,
                recorded_count: 1,
                index: shard.index,
                count: shard.count,
            })
        }
        None => {
            log.append(vec![configured(shard, None)])?;
            Ok(())
        }
        Some((recorded_index, recorded_count)) => Err(ClaimError::Changed {
            recorded_index,
            recorded_count,
            index: shard.index,
            count: shard.count,
        }),
    }
}

/// Records that the log now belongs to `shard` (the operator's migration).
pub fn migrate(log: &EventLog, shard: Shard) -> Result<Option<(u32, u32)>, StoreError> {
    let previous = log.with_projection(|p| p.shard)?;
    log.append(vec![configured(shard, previous.or(Some((0, 1))))])?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_recorded_once_and_a_change_is_refused_until_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EventLog::open(dir.path()).expect("log");
        let one_of_three = Shard { index: 1, count: 3 };
        claim(&log, one_of_three).expect("first start");
        claim(&log, one_of_three).expect("same again");
        assert_eq!(log.last_seq(), 1, "recorded once");
        let two = Shard { index: 1, count: 2 };
        let err = claim(&log, two).expect_err("count changed").to_string();
        assert!(err.contains("shard 1 of 3"), "{err}");
        assert!(err.contains("shards migrate"), "{err}");
        assert!(
            claim(&log, Shard::ALL).is_err(),
            "unsharding is a change too"
        );
        migrate(&log, two).expect("migrate");
        claim(&log, two).expect("after the migration");
        assert_eq!(log.with_projection(|p| p.shard).expect("p"), Some((1, 2)));
        // Replayed from the stored bytes, the record holds.
        drop(log);
        let log = EventLog::open(dir.path()).expect("reopened");
        assert_eq!(log.with_projection(|p| p.shard).expect("p"), Some((1, 2)));
        claim(&log, two).expect("after a restart");
        assert!(claim(&log, one_of_three).is_err());
    }

    #[test]
    fn an_unsharded_log_with_history_is_not_silently_taken_as_shard_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EventLog::open(dir.path()).expect("log");
        claim(&log, Shard::ALL).expect("unsharded");
        assert_eq!(log.last_seq(), 0, "nothing recorded for one shard");
        log.append(vec![{
            let mut d = EventDraft::new("autonomy.resumed");
            d.target = Some("t".into());
            d
        }])
        .expect("an event");
        assert!(claim(&log, Shard { index: 0, count: 2 }).is_err());
        assert!(claim(&log, Shard { index: 1, count: 2 }).is_err());
        // A fresh shard with an empty log records itself.
        let fresh = tempfile::tempdir().expect("tempdir");
        let log = EventLog::open(fresh.path()).expect("log");
        claim(&log, Shard { index: 0, count: 2 }).expect("fresh");
        assert_eq!(log.with_projection(|p| p.shard).expect("p"), Some((0, 2)));
    }
}
