//! Secondary indexes (target, target + task, attempt): which events carry a name.
//!
//! The entries of the newest events live in memory ("tails"). Every [`RUN_EVENTS`]
//! events they are written to sled's `index` tree as one *run*: every name with its
//! sequence numbers, sorted by name, packed into blocks of about [`BLOCK_BYTES`],
//! each under `c`, the run (its last event), and the name and sequence number its
//! first entry starts with; plus the run's mark under `r`; in one atomic batch
//! written by a background thread while the entries stay readable in memory. Each
//! run's keys sort after every earlier run's and are few, so storing appends a
//! little at the tree's end (a key per event, or per attempt, scattered over the
//! tree cost the appends half their throughput: docs/PERFORMANCE.md). Memory holds
//! only the entries since the last run or two; a lookup visits the runs in order,
//! one range seek and a block or two each (a few hundred runs after 20 million
//! events), then memory; an open indexes only the events after the last run. Runs
//! are only ever added, never rewritten.

use std::collections::HashMap;

/// What an index entry is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexKey {
    Target(String),
    Task(String, String),
    Attempt(String),
}

/// The sled tree that holds the runs.
pub(super) const TREE: &str = "index";
/// Events per run: the entries in memory are stored once they cover this many
/// events past the last run (and when the log is flushed or closed).
pub const RUN_EVENTS: u64 = 100_000;
/// The first byte of a chunk's key and of a run's mark.
const CHUNK_TAG: u8 = b'c';
const RUN_TAG: u8 = b'r';
/// The size a block of a run is filled to (one entry may pass it).
const BLOCK_BYTES: usize = 4096;

/// Appends `name` with its length; `None` when it is too long to index (the log
/// refuses such names, so only a damaged log holds one).
fn push_name(key: &mut Vec<u8>, name: &str) -> Option<()> {
    let len = u16::try_from(name.len()).ok()?;
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    Some(())
}

/// The name of an index as bytes: a tag and the length-prefixed names, so no two
/// indexes' names are prefixes of each other.
fn name_into(out: &mut Vec<u8>, tag: u8, names: &[&str]) -> Option<()> {
    out.clear();
    out.push(tag);
    for n in names {
        push_name(out, n)?;
    }
    Some(())
}

fn name_of(key: &IndexKey) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match key {
        IndexKey::Target(t) => name_into(&mut out, b't', &[t])?,
        IndexKey::Task(t, k) => name_into(&mut out, b'k', &[t, k])?,
        IndexKey::Attempt(a) => name_into(&mut out, b'a', &[a])?,
    }
    Some(out)
}

fn chunk_key(run: u64, name: &[u8], first: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 17);
    key.push(CHUNK_TAG);
    key.extend_from_slice(&run.to_be_bytes());
    key.extend_from_slice(name);
    key.extend_from_slice(&first.to_be_bytes());
    key
}

fn run_key(run: u64) -> [u8; 9] {
    let mut key = [RUN_TAG; 9];
    key[1..].copy_from_slice(&run.to_be_bytes());
    key
}

/// The first key of run `run`'s blocks.
fn run_start(run: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(CHUNK_TAG);
    key.extend_from_slice(&run.to_be_bytes());
    key
}

/// Packs a run's entries, sorted by name, into blocks: `(key, bytes)`. A block is
/// a list of entries, each the name's length (`u16`), the name, the count (`u32`)
/// and that many big-endian sequence numbers; one name's numbers may continue in
/// the next block.
fn blocks(run: u64, entries: &[(&Vec<u8>, &Vec<u64>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK_BYTES + 64);
    let mut key = None;
    for (name, seqs) in entries {
        let Ok(name_len) = u16::try_from(name.len()) else {
            continue;
        };
        let mut rest = seqs.as_slice();
        while !rest.is_empty() {
            let head = 2 + name.len() + 4;
            let room = BLOCK_BYTES.saturating_sub(block.len() + head) / 8;
            // An empty block always takes at least one number (an overlong name).
            let take = if block.is_empty() { room.max(1) } else { room }.min(rest.len());
            if take == 0 {
                out.extend(key.take().map(|k| (k, std::mem::take(&mut block))));
                continue;
            }
            key.get_or_insert_with(|| chunk_key(run, name, rest[0]));
            block.extend_from_slice(&name_len.to_be_bytes());
            block.extend_from_slice(name);
            block.extend_from_slice(&(take as u32).to_be_bytes());
            for s in &rest[..take] {
                block.extend_from_slice(&s.to_be_bytes());
            }
            rest = &rest[take..];
        }
    }
    out.extend(key.map(|k| (k, block)));
    out
}

/// The entries of a block: `(name, sequence numbers as big-endian bytes)`; stops
/// at the first that does not decode.
fn block_entries(block: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_be_bytes(block.get(at..at + 2)?.try_into().ok()?));
        let name = block.get(at + 2..at + 2 + len)?;
        let at_count = at + 2 + len;
        let count = u32::from_be_bytes(block.get(at_count..at_count + 4)?.try_into().ok()?);
        let bytes = usize::try_from(count).ok()?.checked_mul(8)?;
        let seqs = block.get(at_count + 4..at_count + 4 + bytes)?;
        at = at_count + 4 + bytes;
        Some((name, seqs))
    })
}

fn decode_seqs(bytes: &[u8]) -> impl DoubleEndedIterator<Item = u64> + '_ {
    bytes.chunks_exact(8).map(|b| {
        let mut be = [0u8; 8];
        be.copy_from_slice(b);
        u64::from_be_bytes(be)
    })
}

/// Entries taken out of memory to be stored as a run (see [`Indexes::next_to_store`]);
/// readable while a background thread writes them.
pub(super) struct Frozen {
    through: u64,
    tails: HashMap<Vec<u8>, Vec<u64>>,
}

impl Frozen {
    /// Writes these entries as the run ending at their last event, in one batch.
    pub fn write(&self, tree: &sled::Tree) -> sled::Result<()> {
        let mut entries: Vec<_> = self.tails.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut batch = sled::Batch::default();
        for (key, block) in blocks(self.through, &entries) {
            batch.insert(key, block);
        }
        batch.insert(&run_key(self.through), &[]);
        tree.apply_batch(batch)
    }

    /// The last event these entries cover.
    pub fn through(&self) -> u64 {
        self.through
    }
}

/// The indexes: stored runs, entries being stored, and those added since.
pub(super) struct Indexes {
    tree: sled::Tree,
    /// The stored runs by their last event, ascending; run `i` covers the events
    /// after run `i - 1`'s. Chunks of a run not listed yet (being written) are
    /// never read.
    runs: Vec<u64>,
    /// Entries being written as a run (all after the last listed run).
    frozen: Option<std::sync::Arc<Frozen>>,
    /// The last event added.
    added_through: u64,
    /// Entries after `frozen`'s, ascending, by index name.
    tails: HashMap<Vec<u8>, Vec<u64>>,
    /// Reused to build names without allocating.
    scratch: Vec<u8>,
}

impl Indexes {
    /// The indexes stored in `db`'s index tree.
    pub fn open(db: &sled::Db) -> sled::Result<Indexes> {
        let tree = db.open_tree(TREE)?;
        let runs = tree
            .scan_prefix([RUN_TAG])
            .keys()
            .map(|k| k.map(|k| super::store::seq_of_key(&k)))
            .collect::<sled::Result<Vec<u64>>>()?;
        Ok(Indexes {
            tree,
            added_through: runs.last().copied().unwrap_or(0),
            runs,
            frozen: None,
            tails: HashMap::new(),
            scratch: Vec::new(),
        })
    }

    /// Forgets every stored entry (to index the log again from its start).
    pub fn reset(&mut self) -> sled::Result<()> {
        self.tree.clear()?;
        self.runs.clear();
        self.frozen = None;
        self.added_through = 0;
        self.tails.clear();
        Ok(())
    }

    /// Every event up to this one has its entries stored.
    pub fn stored_through(&self) -> u64 {
        self.runs.last().copied().unwrap_or(0)
    }

    /// How many runs are stored.
    #[cfg(test)]
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// How many events the entries in memory (not being stored) cover.
    pub fn pending_events(&self) -> u64 {
        let base = self
            .frozen
            .as_ref()
            .map(|f| f.through)
            .unwrap_or_else(|| self.stored_through());
        self.added_through - base
    }

    fn push(&mut self, tag: u8, names: &[&str], seq: u64) {
        if name_into(&mut self.scratch, tag, names).is_none() {
            return;
        }
        match self.tails.get_mut(self.scratch.as_slice()) {
            Some(tail) => tail.push(seq),
            None => {
                self.tails.insert(self.scratch.clone(), vec![seq]);
            }
        }
    }

    /// Records event `seq` under each of its references. Events must come in
    /// sequence order; one already stored is ignored.
    pub fn add(
        &mut self,
        seq: u64,
        target: Option<&str>,
        task: Option<&str>,
        attempt: Option<&str>,
    ) {
        if seq <= self.added_through {
            return;
        }
        self.added_through = seq;
        if let Some(t) = target {
            self.push(b't', &[t], seq);
            if let Some(k) = task {
                self.push(b'k', &[t, k], seq);
            }
        }
        if let Some(a) = attempt {
            self.push(b'a', &[a], seq);
        }
    }

    /// The entries to store next with [`Frozen::write`] and then [`Indexes::stored`]:
    /// a set taken out before and not stored yet, else the entries in memory now
    /// (they stay readable meanwhile); `None` when there is nothing to store.
    pub fn next_to_store(&mut self) -> Option<std::sync::Arc<Frozen>> {
        if let Some(frozen) = &self.frozen {
            return Some(frozen.clone());
        }
        if self.added_through == self.stored_through() {
            return None;
        }
        let frozen = std::sync::Arc::new(Frozen {
            through: self.added_through,
            tails: std::mem::take(&mut self.tails),
        });
        self.frozen = Some(frozen.clone());
        Some(frozen)
    }

    /// Lists the run through `through` once [`Frozen::write`] has stored it.
    pub fn stored(&mut self, through: u64) {
        if through > self.stored_through() {
            self.runs.push(through);
        }
        if self.frozen.as_ref().is_some_and(|f| f.through <= through) {
            self.frozen = None;
        }
    }

    /// Stores the entries in memory now (on the calling thread) when they cover at
    /// least `min_events` events (or a set taken out before was not stored yet);
    /// fewer are left to be indexed again from the log by the next open, so that
    /// runs stay large.
    pub fn store(&mut self, min_events: u64) -> sled::Result<()> {
        if self.frozen.is_none() && self.pending_events() < min_events.max(1) {
            return Ok(());
        }
        while let Some(frozen) = self.next_to_store() {
            frozen.write(&self.tree)?;
            self.stored(frozen.through);
        }
        Ok(())
    }

    /// The tree the runs are stored in.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The entries held in memory under `name`, oldest first.
    fn in_memory<'s>(&'s self, name: &[u8]) -> impl DoubleEndedIterator<Item = u64> + 's {
        let frozen = self.frozen.as_ref().and_then(|f| f.tails.get(name));
        let tail = self.tails.get(name);
        frozen
            .into_iter()
            .chain(tail)
            .flat_map(|v| v.iter().copied())
    }

    /// The sequence numbers under `name` in run `run`, ascending: from the block
    /// its entries start in (the last block starting at or before it) onwards, until
    /// an entry of a later name.
    fn run_seqs(&self, run: u64, name: &[u8]) -> sled::Result<Vec<u64>> {
        let start = run_start(run);
        let from = self
            .tree
            .range(start.clone()..=chunk_key(run, name, 0))
            .next_back()
            .transpose()?
            .map(|(k, _)| k.to_vec())
            .unwrap_or_else(|| start.clone());
        let mut out = Vec::new();
        for item in self.tree.range(from..run_start(run + 1)) {
            let (_, block) = item?;
            for (entry, seqs) in block_entries(&block) {
                match entry.cmp(name) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => out.extend(decode_seqs(seqs)),
                    std::cmp::Ordering::Greater => return Ok(out),
                }
            }
        }
        Ok(out)
    }

    /// Up to `limit` sequence numbers under `key` above `after` and at most `last`,
    /// ascending.
    pub fn after(
        &self,
        key: &IndexKey,
        after: u64,
        last: u64,
        limit: usize,
    ) -> sled::Result<Vec<u64>> {
        let mut out = Vec::new();
        let Some(name) = name_of(key) else {
            return Ok(out);
        };
        let wanted = |s: &u64| *s > after && *s <= last;
        // The runs holding events after `after`.
        let first = self.runs.partition_point(|r| *r <= after);
        for (i, run) in self.runs.iter().enumerate().skip(first) {
            let run_first = if i == 0 { 1 } else { self.runs[i - 1] + 1 };
            if run_first > last {
                break;
            }
            out.extend(self.run_seqs(*run, &name)?.into_iter().filter(wanted));
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
        out.extend(
            self.in_memory(&name)
                .filter(wanted)
                .take(limit.saturating_sub(out.len())),
        );
        Ok(out)
    }

    /// Up to `limit` sequence numbers under `key` below `before` and at most `last`,
    /// newest first.
    pub fn before(
        &self,
        key: &IndexKey,
        before: u64,
        last: u64,
        limit: usize,
    ) -> sled::Result<Vec<u64>> {
        let mut out = Vec::new();
        let Some(name) = name_of(key) else {
            return Ok(out);
        };
        let end = before.min(last.saturating_add(1));
        let wanted = |s: &u64| *s < end;
        out.extend(self.in_memory(&name).rev().filter(wanted).take(limit));
        // The runs holding events before `end`, newest first.
        let upto = self.runs.partition_point(|r| *r < end).saturating_add(1);
        for run in self.runs.iter().take(upto).rev() {
            if out.len() >= limit {
                break;
            }
            out.extend(self.run_seqs(*run, &name)?.into_iter().rev().filter(wanted));
        }
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs_of(ix: &Indexes, key: &IndexKey) -> (Vec<u64>, Vec<u64>) {
        (
            ix.after(key, 0, u64::MAX, usize::MAX).unwrap(),
            ix.before(key, u64::MAX, u64::MAX, usize::MAX).unwrap(),
        )
    }

    #[test]
    fn lookups_read_stored_runs_and_memory_alike() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let mut ix = Indexes::open(&db).unwrap();
        let t = IndexKey::Target("t".into());
        let ta = IndexKey::Target("ta".into());
        let task = IndexKey::Task("t".into(), "ab".into());
        let mut expected = Vec::new();
        for seq in 1..=3000u64 {
            let target = if seq % 3 == 0 { "ta" } else { "t" };
            ix.add(
                seq,
                Some(target),
                Some("ab"),
                Some(&format!("a{}", seq / 5)),
            );
            if target == "t" {
                expected.push(seq);
            }
            // Runs of uneven lengths (one longer than a chunk), and memory after them.
            if [7, 1500, 2999].contains(&seq) {
                ix.store(1).unwrap();
            }
            // One set stays in memory while being stored, as on the background writer.
            if seq == 2000 {
                let frozen = ix.next_to_store().unwrap();
                frozen.write(ix.tree()).unwrap();
                assert_eq!(seqs_of(&ix, &t).0.len(), expected.len(), "no entry twice");
                ix.stored(frozen.through());
            }
        }
        assert_eq!(ix.runs(), 4);
        assert_eq!(ix.stored_through(), 2999);
        assert_eq!(ix.pending_events(), 1);
        let (up, down) = seqs_of(&ix, &t);
        assert_eq!(up, expected);
        assert_eq!(down, expected.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(seqs_of(&ix, &ta).0.len(), 1000);
        // Names that would run together ("t" + "ab" and "ta" + "b") stay apart.
        assert!(
            seqs_of(&ix, &IndexKey::Task("ta".into(), "b".into()))
                .0
                .is_empty()
        );
        assert_eq!(seqs_of(&ix, &task).0.len(), 2000);
        // Windows inside a run, across runs and into memory.
        assert_eq!(ix.after(&t, 1000, u64::MAX, 3).unwrap(), [1001, 1003, 1004]);
        assert_eq!(ix.after(&t, 1498, u64::MAX, 3).unwrap(), [1499, 1501, 1502]);
        assert_eq!(ix.after(&t, 2996, u64::MAX, 9).unwrap(), [2998, 2999]);
        assert_eq!(ix.after(&t, 2996, 2998, 9).unwrap(), [2998]);
        assert_eq!(
            ix.after(&ta, 2990, u64::MAX, 9).unwrap(),
            [2991, 2994, 2997, 3000]
        );
        assert_eq!(ix.before(&ta, u64::MAX, 2999, 2).unwrap(), [2997, 2994]);
        assert_eq!(ix.before(&ta, u64::MAX, u64::MAX, 2).unwrap(), [3000, 2997]);
        assert_eq!(
            ix.before(&t, 1501, u64::MAX, 3).unwrap(),
            [1499, 1498, 1496]
        );
        assert_eq!(ix.before(&t, 3, u64::MAX, 9).unwrap(), [2, 1]);
        assert_eq!(
            ix.after(&IndexKey::Attempt("a7".into()), 0, u64::MAX, 9)
                .unwrap(),
            [35, 36, 37, 38, 39]
        );
        // Too few events for a run of their own: left to the next open.
        ix.store(2).unwrap();
        assert_eq!(ix.runs(), 4);
        drop(ix);
        let mut ix = Indexes::open(&db).unwrap();
        assert_eq!((ix.runs(), ix.stored_through()), (4, 2999));
        assert_eq!(seqs_of(&ix, &t).0, expected);
        assert!(
            seqs_of(&ix, &ta).0.len() == 999,
            "event 3000 is indexed again by the open"
        );
        ix.add(2999, Some("t"), None, None);
        assert_eq!(
            ix.pending_events(),
            0,
            "an event already stored is not added twice"
        );
        let too_long = "x".repeat(70_000);
        ix.add(3000, Some(&too_long), None, Some("z"));
        assert_eq!(ix.pending_events(), 1);
        assert_eq!(seqs_of(&ix, &IndexKey::Attempt("z".into())).0, [3000]);
    }

    #[test]
    fn blocks_hold_every_entry_in_order_whatever_their_sizes() {
        let long = vec![b'n'; 5000];
        let names: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec(), long, b"z".to_vec()];
        let seqs: Vec<Vec<u64>> = vec![
            (1..=1000).collect(),
            vec![7],
            vec![8, 9],
            (10..600).collect(),
        ];
        let entries: Vec<_> = names.iter().zip(&seqs).collect();
        let packed = blocks(42, &entries);
        assert!(packed.len() > 3, "{}", packed.len());
        assert!(packed.windows(2).all(|w| w[0].0 < w[1].0), "keys ascend");
        assert!(packed.iter().all(|(k, _)| k.starts_with(&run_start(42))));
        let mut seen: Vec<(Vec<u8>, Vec<u64>)> = Vec::new();
        for (_, block) in &packed {
            let mut decoded = 0;
            for (name, s) in block_entries(block) {
                decoded += 2 + name.len() + 4 + s.len();
                match seen.last_mut() {
                    Some((n, v)) if n.as_slice() == name => v.extend(decode_seqs(s)),
                    _ => seen.push((name.to_vec(), decode_seqs(s).collect())),
                }
            }
            assert_eq!(decoded, block.len(), "a block decodes whole");
        }
        let expected: Vec<(Vec<u8>, Vec<u64>)> = names.into_iter().zip(seqs).collect();
        assert_eq!(seen, expected);
        // A damaged block yields what decodes, and nothing past it.
        let (_, first) = &packed[0];
        assert!(
            block_entries(&first[..first.len() - 3]).count() < block_entries(first).count() + 1
        );
        assert_eq!(block_entries(&[0, 9, b'x']).count(), 0);
    }
}
