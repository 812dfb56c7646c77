//! One change to a target's pull requests at a time, within this process.
//!
//! A scheduler pass reads a target's forge (its agent branches) and the event log,
//! then decides what to run; a local merge or close changes both, one after the
//! other. Without an order between them a pass could see the merged PR's branch
//! already gone while the log still held the PR open, and run the merged task a
//! second time (or adopt the branch as a new PR). Each holds the target's
//! [`lock`] over that work, so a pass sees a PR wholly open or wholly settled.
//! Only one process holds the event log, so a lock in this process is enough.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, OnceLock};

/// The targets whose PRs are being read or changed, and the wake-up for waiters.
struct Busy {
    targets: Mutex<HashSet<String>>,
    freed: Condvar,
}

fn busy() -> &'static Busy {
    static BUSY: OnceLock<Busy> = OnceLock::new();
    BUSY.get_or_init(|| Busy {
        targets: Mutex::new(HashSet::new()),
        freed: Condvar::new(),
    })
}

/// Holds a target's PRs still until dropped.
#[must_use = "the target is free again as soon as the guard is dropped"]
pub struct TargetGuard {
    target: String,
}

impl Drop for TargetGuard {
    fn drop(&mut self) {
        let busy = busy();
        let mut targets = busy.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets.remove(&self.target);
        drop(targets);
        busy.freed.notify_all();
    }
}

/// Waits until no one else holds `target`, then holds it.
pub fn lock(target: &str) -> TargetGuard {
    let busy = busy();
    let mut targets = busy.targets.lock().unwrap_or_else(|e| e.into_inner());
    while targets.contains(target) {
        targets = busy.freed.wait(targets).unwrap_or_else(|e| e.into_inner());
    }
    targets.insert(target.to_string());
    TargetGuard {
        target: target.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_target_is_held_by_one_at_a_time_and_others_stay_free() {
        let held = lock("serial-test-a");
        // Another target is not held up.
        drop(lock("serial-test-b"));
        let got = Arc::new(AtomicBool::new(false));
        let waiter = {
            let got = got.clone();
            std::thread::spawn(move || {
                let _g = lock("serial-test-a");
                got.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!got.load(Ordering::SeqCst), "the second holder waited");
        drop(held);
        waiter.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        // Free again once the waiter dropped it.
        drop(lock("serial-test-a"));
    }
}
