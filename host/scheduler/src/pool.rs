//! A bounded pool for one pass: `workers` threads take the targets in order, each
//! target exactly once, so no target is served by two workers at once and one
//! target's slow fetch or GitHub wait holds only its own worker.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `serve` on every item with at most `workers` at once and returns the
/// results in the items' order. Every item is served even when some fail; the
/// first error (in item order) is returned.
pub fn serve_all<T, R, E>(
    items: &[T],
    workers: usize,
    serve: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        // No threads for a sequential pass: the same order, the same thread.
        let results: Vec<Result<R, E>> = items.iter().map(&serve).collect();
        return results.into_iter().collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<R, E>>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let result = serve(item);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    #[test]
    fn every_item_is_served_once_in_order_with_at_most_the_workers_at_once() {
        let items: Vec<u32> = (0..40).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let seen = Mutex::new(HashSet::new());
        let out = serve_all(&items, 3, |n| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            assert!(seen.lock().unwrap().insert(*n), "{n} served twice");
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, String>(n * 2)
        })
        .expect("no errors");
        assert_eq!(out, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(seen.lock().unwrap().len(), 40);
        let peak = peak.load(Ordering::SeqCst);
        assert!((2..=3).contains(&peak), "peak {peak}");
    }

    #[test]
    fn a_slow_item_holds_only_its_worker_and_errors_do_not_stop_the_rest() {
        let items: Vec<u32> = (0..10).collect();
        let served = AtomicUsize::new(0);
        let started = Instant::now();
        let slow_done = Mutex::new(None);
        let err = serve_all(&items, 2, |n| {
            if *n == 0 {
                // Item 0 waits until the other worker has served every other item.
                while served.load(Ordering::SeqCst) < 9 {
                    assert!(started.elapsed() < Duration::from_secs(20), "held up");
                    std::thread::sleep(Duration::from_millis(1));
                }
                *slow_done.lock().unwrap() = Some(());
            } else {
                served.fetch_add(1, Ordering::SeqCst);
            }
            if *n == 5 {
                Err(format!("item {n}"))
            } else {
                Ok(*n)
            }
        })
        .expect_err("item 5 fails");
        assert_eq!(err, "item 5");
        assert!(slow_done.lock().unwrap().is_some());
        assert_eq!(served.load(Ordering::SeqCst), 9);
    }
}
