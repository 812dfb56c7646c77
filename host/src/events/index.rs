//! Secondary indexes (target, target + task, attempt) kept in memory: rebuilt from the
//! log when it is opened and updated on every append, so sled stores one key per
//! event and lookups never scan the log.

use std::collections::HashMap;

/// What an index entry is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexKey {
    Target(String),
    Task(String, String),
    Attempt(String),
}

/// Sequence numbers by index key, each list ascending.
#[derive(Debug, Default)]
pub struct Indexes {
    map: HashMap<IndexKey, Vec<u64>>,
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
        let mut keys = Vec::with_capacity(3);
        if let Some(t) = target {
            keys.push(IndexKey::Target(t.to_string()));
            if let Some(k) = task {
                keys.push(IndexKey::Task(t.to_string(), k.to_string()));
            }
        }
        if let Some(a) = attempt {
            keys.push(IndexKey::Attempt(a.to_string()));
        }
        for key in keys {
            self.map.entry(key).or_default().push(seq);
        }
    }

    /// Up to `limit` sequence numbers under `key` above `after`.
    pub fn after(&self, key: &IndexKey, after: u64, limit: usize) -> Vec<u64> {
        let Some(seqs) = self.map.get(key) else {
            return Vec::new();
        };
        let start = seqs.partition_point(|s| *s <= after);
        seqs[start..].iter().take(limit).copied().collect()
    }
}
