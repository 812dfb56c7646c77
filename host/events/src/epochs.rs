//! The events in epochs: sled databases of about [`EPOCH_EVENTS`] events each, so
//! that opening the log and its memory do not grow with the history's length (sled
//! 0.34 reads and keeps per-page state of its whole database when opened: 823 MiB
//! and 1.1–1.7 s for 20 million events in one database, docs/PERFORMANCE.md).
//!
//! The first epoch is the store's own database (`DIR`), which also holds the
//! checkpoint, the indexes and the list of later epochs (tree `epochs`, keyed by
//! each one's first sequence number). Each later epoch is a database of its own
//! under `DIR/epochs/`, named by its first sequence number. The commit thread
//! starts a new epoch when the newest holds [`EPOCH_EVENTS`] events (listing it
//! in the root, durably, before any event goes into it); only the root and the
//! newest are open, and one older epoch at a time is opened when a read needs it.
//! A group of appends never spans two epochs, so every append stays one atomic
//! batch.

use super::store::{event_key, open_db, seq_of_key};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Events per epoch: the commit thread starts a new epoch once the newest holds
/// this many.
pub const EPOCH_EVENTS: u64 = 1_000_000;
/// The root's tree listing the later epochs.
const LIST: &str = "epochs";
/// The events' tree in every epoch's database.
const EVENTS: &str = "events";

/// One epoch's database and its events.
pub(crate) struct Epoch {
    pub first: u64,
    pub db: sled::Db,
    pub tree: sled::Tree,
}

/// The epochs of one store.
pub(crate) struct Epochs {
    dir: PathBuf,
    /// Events per epoch (a parameter for tests).
    per_epoch: u64,
    root: Arc<Epoch>,
    /// Every epoch's first sequence number, ascending (the root's is 1).
    firsts: RwLock<Vec<u64>>,
    newest: RwLock<Arc<Epoch>>,
    /// Older epochs opened for reads: the last one used (kept open), and every
    /// one still in use, so that two readers share one handle (sled refuses a
    /// second open of a database).
    opened: Mutex<Opened>,
}

#[derive(Default)]
struct Opened {
    last: Option<Arc<Epoch>>,
    in_use: Vec<std::sync::Weak<Epoch>>,
}

fn epoch_dir(dir: &Path, first: u64) -> PathBuf {
    dir.join("epochs").join(format!("{first:020}"))
}

fn open_epoch(dir: &Path, first: u64) -> sled::Result<Arc<Epoch>> {
    let db = open_db(&epoch_dir(dir, first))?;
    let tree = db.open_tree(EVENTS)?;
    Ok(Arc::new(Epoch { first, db, tree }))
}

impl Epochs {
    /// The epochs of the store in `dir`, whose root database is `root`.
    pub fn open(dir: &Path, root: sled::Db, per_epoch: u64) -> sled::Result<Epochs> {
        let tree = root.open_tree(EVENTS)?;
        let mut firsts = vec![1];
        for key in root.open_tree(LIST)?.iter().keys() {
            let first = seq_of_key(&key?);
            if first > *firsts.last().unwrap_or(&1) {
                firsts.push(first);
            }
        }
        let root = Arc::new(Epoch {
            first: 1,
            db: root,
            tree,
        });
        let newest = match firsts.last() {
            Some(&first) if first > 1 => open_epoch(dir, first)?,
            _ => root.clone(),
        };
        Ok(Epochs {
            dir: dir.to_path_buf(),
            per_epoch: per_epoch.max(1),
            root,
            firsts: RwLock::new(firsts),
            newest: RwLock::new(newest),
            opened: Mutex::new(Opened::default()),
        })
    }

    /// The root database (checkpoint, indexes, the list of epochs).
    pub fn root_db(&self) -> &sled::Db {
        &self.root.db
    }

    /// The epoch appends go to.
    pub fn newest(&self) -> Arc<Epoch> {
        self.newest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many epochs the store has.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.firsts.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The epoch holding `seq` and the last sequence number it can hold.
    fn holding(&self, seq: u64) -> sled::Result<(Arc<Epoch>, u64)> {
        let (first, end) = {
            let firsts = self.firsts.read().unwrap_or_else(|p| p.into_inner());
            let at = firsts.partition_point(|f| *f <= seq).saturating_sub(1);
            let end = firsts.get(at + 1).map_or(u64::MAX, |next| next - 1);
            (firsts.get(at).copied().unwrap_or(1), end)
        };
        if first == 1 {
            return Ok((self.root.clone(), end));
        }
        let newest = self.newest();
        if newest.first == first {
            return Ok((newest, end));
        }
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        opened.in_use.retain(|e| e.strong_count() > 0);
        let in_use = opened
            .in_use
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .find(|e| e.first == first);
        let epoch = match in_use {
            Some(epoch) => epoch,
            None => {
                // The last one used is closed first, unless a reader still holds it.
                opened.last = None;
                let epoch = open_epoch(&self.dir, first)?;
                opened.in_use.push(Arc::downgrade(&epoch));
                epoch
            }
        };
        opened.last = Some(epoch.clone());
        Ok((epoch, end))
    }

    /// The stored bytes of event `seq`.
    pub fn get(&self, seq: u64) -> sled::Result<Option<sled::IVec>> {
        self.holding(seq)?.0.tree.get(event_key(seq))
    }

    /// The stored events from `from` through `to`, in order, epoch after epoch.
    pub fn rows(&self, from: u64, to: u64) -> Rows<'_> {
        Rows {
            epochs: self,
            next: from,
            to,
            within: None,
        }
    }

    /// The sequence number of the newest stored event (0 when there is none).
    pub fn newest_seq(&self) -> sled::Result<u64> {
        let firsts = self
            .firsts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // An epoch is empty only when a crash came right after it was started.
        for first in firsts.iter().rev() {
            let (epoch, _) = self.holding(*first)?;
            if let Some((key, _)) = epoch.tree.range(..vec![b'f']).next_back().transpose()? {
                return Ok(seq_of_key(&key));
            }
        }
        Ok(0)
    }

    /// Starts a new epoch at `next` when the newest holds [`EPOCH_EVENTS`] events
    /// or more: creates its database, lists it in the root (durably), then sends
    /// appends to it. Called by the commit thread before it writes event `next`.
    pub fn roll_if_full(&self, next: u64) -> sled::Result<()> {
        let newest = self.newest();
        if next.saturating_sub(newest.first) < self.per_epoch {
            return Ok(());
        }
        let epoch = open_epoch(&self.dir, next)?;
        let list = self.root.db.open_tree(LIST)?;
        list.insert(next.to_be_bytes(), &[])?;
        self.root.db.flush()?;
        self.firsts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(next);
        *self.newest.write().unwrap_or_else(|p| p.into_inner()) = epoch;
        tracing::info!(first = next, "event log: a new epoch");
        Ok(())
    }

    /// Flushes the newest epoch and the root.
    pub fn flush(&self) -> sled::Result<()> {
        self.newest().db.flush()?;
        self.root.db.flush()?;
        Ok(())
    }
}

/// Stored events in order across epochs: `(seq, bytes)`.
pub(crate) struct Rows<'e> {
    epochs: &'e Epochs,
    next: u64,
    to: u64,
    /// The epoch being read, the last sequence read from it, and the range.
    within: Option<(Arc<Epoch>, u64, sled::Iter)>,
}

impl Iterator for Rows<'_> {
    type Item = sled::Result<(u64, sled::IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.next > self.to {
                return None;
            }
            if self.within.is_none() {
                let (epoch, end) = match self.epochs.holding(self.next) {
                    Ok(found) => found,
                    Err(e) => {
                        self.to = 0;
                        self.next = 1;
                        return Some(Err(e));
                    }
                };
                let last = end.min(self.to);
                let range = epoch.tree.range(event_key(self.next)..=event_key(last));
                self.within = Some((epoch, last, range));
            }
            let (_, last, range) = self.within.as_mut()?;
            match range.next() {
                Some(Ok((key, value))) => {
                    let seq = seq_of_key(&key);
                    self.next = seq.saturating_add(1);
                    return Some(Ok((seq, value)));
                }
                Some(Err(e)) => {
                    (self.to, self.next) = (0, 1);
                    return Some(Err(e));
                }
                None => {
                    if *last == u64::MAX {
                        return None;
                    }
                    self.next = *last + 1;
                    self.within = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_roll_into_epochs_and_read_back_in_order_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let put = |epochs: &Epochs, seq: u64| {
            epochs.roll_if_full(seq).unwrap();
            let newest = epochs.newest();
            newest
                .tree
                .insert(event_key(seq), &seq.to_be_bytes())
                .unwrap();
        };
        {
            let epochs = Epochs::open(dir.path(), open_db(dir.path()).unwrap(), 10).unwrap();
            assert_eq!(epochs.newest_seq().unwrap(), 0);
            for seq in 1..=35 {
                put(&epochs, seq);
            }
            assert_eq!(epochs.count(), 4);
            epochs.flush().unwrap();
        }
        let epochs = Epochs::open(dir.path(), open_db(dir.path()).unwrap(), 10).unwrap();
        assert_eq!(epochs.count(), 4);
        assert_eq!(epochs.newest().first, 31);
        assert_eq!(epochs.newest_seq().unwrap(), 35);
        let seqs = |from, to| {
            epochs
                .rows(from, to)
                .map(|r| r.unwrap().0)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(1, u64::MAX), (1..=35).collect::<Vec<_>>());
        assert_eq!(seqs(9, 22), (9..=22).collect::<Vec<_>>());
        assert_eq!(seqs(36, u64::MAX), Vec::<u64>::new());
        for seq in [1, 10, 11, 20, 21, 35, 12, 2] {
            let bytes = epochs.get(seq).unwrap().unwrap();
            assert_eq!(seq_of_key(&bytes), seq);
        }
        assert!(epochs.get(36).unwrap().is_none());
        // A reader still in an old epoch while others open other ones: one handle
        // per epoch, shared (sled would refuse to open it twice).
        let mut held = epochs.rows(12, 14);
        assert_eq!(held.next().unwrap().unwrap().0, 12);
        assert!(epochs.get(25).unwrap().is_some());
        assert!(epochs.get(13).unwrap().is_some());
        assert!(epochs.get(5).unwrap().is_some());
        assert_eq!(held.map(|r| r.unwrap().0).collect::<Vec<_>>(), [13, 14]);
        // A new epoch listed but empty (a crash right after starting it).
        for seq in 36..=40 {
            put(&epochs, seq);
        }
        epochs.roll_if_full(41).unwrap();
        drop(epochs);
        let epochs = Epochs::open(dir.path(), open_db(dir.path()).unwrap(), 10).unwrap();
        assert_eq!(epochs.count(), 5);
        assert_eq!(epochs.newest_seq().unwrap(), 40);
        assert_eq!(epochs.rows(1, u64::MAX).count(), 40);
    }
}
