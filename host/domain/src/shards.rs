//! Shards: several `serve` processes over one configuration, each owning a stable
//! subset of the targets. Ownership is a pure function of the target's id and the
//! shard count over a fixed hash (the first 8 bytes of the id's SHA-256), never
//! Rust's `DefaultHasher`, whose output may change between releases and runs.

use sha2::{Digest, Sha256};

/// Which shard of how many this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole configuration: one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether this shard serves `target`.
    pub fn owns(&self, target: &str) -> bool {
        owns(target, self.index, self.count)
    }
}

/// The shard (`0..count`) that serves `target`.
pub fn shard_of(target: &str, count: u32) -> u32 {
    let digest = Sha256::digest(target.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
}

/// Whether shard `index` of `count` serves `target`. Every target belongs to
/// exactly one shard of a given count; a count of 0 is taken as 1.
pub fn owns(target: &str, index: u32, count: u32) -> bool {
    shard_of(target, count) == index
}

/// The ordinal a StatefulSet gives its pod: the number after the hostname's last
/// `-` (`leviathan-host-2` is 2).
pub fn ordinal_of_hostname(hostname: &str) -> Option<u32> {
    let (_, tail) = hostname.trim().rsplit_once('-')?;
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tail.parse().ok()
}

/// This machine's hostname: `$HOSTNAME`, else the kernel's (a pod's is its name).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Why a shard could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error(
        "shard index {index} is outside the configuration's {count} shard(s) (0 to {})",
        count - 1
    )]
    OutOfRange { index: u32, count: u32 },
    #[error(
        "the configuration has {count} shards: give --shard-index, or run as a StatefulSet pod whose hostname ends in its ordinal (hostname `{hostname}`)"
    )]
    NoIndex { count: u32, hostname: String },
}

/// This process's shard: `flag` when given, else the hostname's ordinal when the
/// configuration has more than one shard, else the only one.
pub fn choose(flag: Option<u32>, hostname: &str, count: u32) -> Result<Shard, ShardError> {
    let count = count.max(1);
    let index = match flag {
        Some(i) => i,
        None if count == 1 => 0,
        None => ordinal_of_hostname(hostname).ok_or_else(|| ShardError::NoIndex {
            count,
            hostname: hostname.to_string(),
        })?,
    };
    if index >= count {
        return Err(ShardError::OutOfRange { index, count });
    }
    Ok(Shard { index, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_exactly_one_owner_for_every_count() {
        for count in 1..=9 {
            for n in 0..500 {
                let id = format!("target-{n}");
                let owners = (0..count).filter(|i| owns(&id, *i, count)).count();
                assert_eq!(owners, 1, "{id} of {count}");
            }
        }
    }

    #[test]
    fn the_hash_is_fixed_and_spreads_targets() {
        // Pinned (computed independently with Python's hashlib): a change of hash would move every target to another shard.
        assert_eq!(shard_of("widgets", 1_000_003), 704_748);
        assert_eq!(shard_of("gadgets", 1_000_003), 822_484);
        let mut per = [0u32; 4];
        for n in 0..4000 {
            per[shard_of(&format!("repo-{n}"), 4) as usize] += 1;
        }
        assert!(per.iter().all(|c| (850..=1150).contains(c)), "{per:?}");
    }

    #[test]
    fn the_index_comes_from_the_flag_or_the_pod_ordinal() {
        assert_eq!(ordinal_of_hostname("leviathan-host-2"), Some(2));
        assert_eq!(ordinal_of_hostname("leviathan-host-"), None);
        assert_eq!(ordinal_of_hostname("leviathan-host-x2"), None);
        assert_eq!(ordinal_of_hostname("laptop"), None);
        assert_eq!(choose(None, "laptop", 1), Ok(Shard::ALL));
        assert_eq!(
            choose(None, "leviathan-host-1", 3),
            Ok(Shard { index: 1, count: 3 })
        );
        assert_eq!(
            choose(Some(2), "leviathan-host-1", 3),
            Ok(Shard { index: 2, count: 3 })
        );
        let err = choose(None, "leviathan-host-3", 3).expect_err("out of range");
        assert!(err.to_string().contains("outside"), "{err}");
        let err = choose(None, "laptop", 2).expect_err("no index");
        assert!(err.to_string().contains("--shard-index"), "{err}");
    }
}
