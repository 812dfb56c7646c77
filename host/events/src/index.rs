//! Secondary indexes (target, target + task, attempt) kept in memory: rebuilt from the
//! log when it is opened and updated on every append, so sled stores one key per
//! event and lookups never scan the log. Lookups borrow the names, so replay
//! allocates a name only the first time it is seen.

use std::collections::HashMap;

/// What an index entry is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexKey {
    Target(String),
    Task(String, String),
    Attempt(String),
}

#[derive(Debug, Default)]
struct TargetIndex {
    seqs: Vec<u64>,
    tasks: HashMap<String, Vec<u64>>,
}

/// Sequence numbers by index key, each list ascending.
#[derive(Debug, Default)]
pub struct Indexes {
    targets: HashMap<String, TargetIndex>,
    attempts: HashMap<String, Vec<u64>>,
}

/// The list under `key`, created on first use without allocating on later ones.
fn list<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl Indexes {
    /// Records event `seq` under each of its references.
    pub fn add(
        &mut self,
        seq: u64,
        target: Option<&str>,
        task: Option<&str>,
        attempt: Option<&str>,
    ) {
        if let Some(t) = target {
            let index = list(&mut self.targets, t);
            index.seqs.push(seq);
            if let Some(k) = task {
                list(&mut index.tasks, k).push(seq);
            }
        }
        if let Some(a) = attempt {
            list(&mut self.attempts, a).push(seq);
        }
    }

    /// Appends `later`'s entries, all of whose sequence numbers follow this one's,
    /// after this one's (each list stays ascending).
    pub fn absorb(&mut self, later: Indexes) {
        for (name, index) in later.targets {
            let mine = list(&mut self.targets, &name);
            mine.seqs.extend(index.seqs);
            for (task, seqs) in index.tasks {
                list(&mut mine.tasks, &task).extend(seqs);
            }
        }
        for (attempt, seqs) in later.attempts {
            list(&mut self.attempts, &attempt).extend(seqs);
        }
    }

    fn seqs(&self, key: &IndexKey) -> &[u64] {
        let seqs = match key {
            IndexKey::Target(t) => self.targets.get(t).map(|i| &i.seqs),
            IndexKey::Task(t, k) => self.targets.get(t).and_then(|i| i.tasks.get(k)),
            IndexKey::Attempt(a) => self.attempts.get(a),
        };
        seqs.map(Vec::as_slice).unwrap_or_default()
    }

    /// Up to `limit` sequence numbers under `key` above `after`.
    pub fn after(&self, key: &IndexKey, after: u64, limit: usize) -> Vec<u64> {
        let seqs = self.seqs(key);
        let start = seqs.partition_point(|s| *s <= after);
        seqs[start..].iter().take(limit).copied().collect()
    }

    /// The newest `n` sequence numbers under `key`, oldest first.
    pub fn last(&self, key: &IndexKey, n: usize) -> Vec<u64> {
        let seqs = self.seqs(key);
        seqs[seqs.len().saturating_sub(n)..].to_vec()
    }

    /// Up to `limit` sequence numbers under `key` below `before`, newest first.
    pub fn before(&self, key: &IndexKey, before: u64, limit: usize) -> Vec<u64> {
        let seqs = self.seqs(key);
        let end = seqs.partition_point(|s| *s < before);
        seqs[..end].iter().rev().take(limit).copied().collect()
    }
}
