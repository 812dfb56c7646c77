//! One GitHub identity's budget, shared by every target that uses it (issue #17).
//!
//! GitHub limits an identity, not a repository: besides the primary budget its
//! responses report (`x-ratelimit-*`, kept in [`super::ratelimit::Budget`]), it
//! enforces *secondary* limits it does not report until they are crossed: content-
//! creating requests per minute (80) and per hour (500), and concurrent requests
//! (100); its best practices ask for at least a second between content-creating
//! requests. The host plans for these instead of reacting to a 403:
//!
//! - **Pacing** ([`IdentityBudget::claim_slot`]): every content-creating request takes
//!   the next free slot of its identity: at least `spacing` after the previous one,
//!   and never more than `per_minute` / `per_hour` in any window (with a small
//!   `margin` for the clocks and the network). Slots are handed out first come, first
//!   served, so concurrent workers queue rather than race.
//! - **Fair admission** ([`IdentityBudget::reserve`]): before a target's pass sends
//!   anything, the target reserves what an attempt would send (content-creating and
//!   total requests). A target refused for want of budget sends nothing and joins a
//!   queue, and the budget that frees up goes to the queue in order before any
//!   newcomer: no target sharing an identity is starved, however the pass orders
//!   them. A reservation is released when the target's pass ends; requests it sent
//!   stay counted in the windows.
//! - **Concurrency**: at most `concurrent` requests of the identity in flight.
//!
//! The primary budget and the count of content-creating requests live here too, so
//! they carry over when an identity's token changes (an App's, hourly).
//!
//! Times are [`Instant`]s passed in, so the rules are tested without sleeping.

use super::ratelimit::Budget;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// GitHub's secondary limits, as the host plans for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryLimits {
    /// Content-creating requests in any `minute` window.
    pub per_minute: u32,
    /// Content-creating requests in any `hour` window.
    pub per_hour: u32,
    /// The least time between two content-creating requests.
    pub spacing: Duration,
    /// Requests in flight at once.
    pub concurrent: u32,
    /// The short window's length (60 s on GitHub; shorter only in tests).
    pub minute: Duration,
    /// The long window's length (3600 s on GitHub; shorter only in tests).
    pub hour: Duration,
    /// Added to each window, for the difference between the host's clock and
    /// GitHub's and for the network.
    pub margin: Duration,
}

impl Default for SecondaryLimits {
    /// GitHub's documented limits and best practice.
    fn default() -> Self {
        SecondaryLimits {
            per_minute: 80,
            per_hour: 500,
            spacing: Duration::from_secs(1),
            concurrent: 100,
            minute: Duration::from_secs(60),
            hour: Duration::from_secs(3600),
            margin: Duration::from_secs(1),
        }
    }
}

impl SecondaryLimits {
    /// The configuration's `github_limits`, with GitHub's windows.
    pub fn from_config(c: &leviathan_domain::config::GitHubLimits) -> SecondaryLimits {
        SecondaryLimits {
            per_minute: c.content_per_minute,
            per_hour: c.content_per_hour,
            spacing: Duration::from_millis(c.content_spacing_ms),
            concurrent: c.concurrent_requests,
            ..SecondaryLimits::default()
        }
    }
}

/// What a target's pass (with an attempt) may ask of its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Need {
    /// Content-creating requests (opening the PR, labelling it, auto-merge).
    pub content: u32,
    /// All requests, reads included (counted against the primary budget).
    pub total: u32,
}

/// Why a reservation was refused, and when to ask again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The target's place in the identity's queue (0 = next to be served).
    pub place: usize,
    /// How long until the budget the target waits for frees up, when known.
    pub wait: Option<Duration>,
    /// Which budget is short, for the operator.
    pub reason: String,
}

/// What an identity has used and left, for metrics and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SecondaryUsage {
    /// Content-creating requests left in the current minute and hour windows.
    pub minute_remaining: u32,
    pub hour_remaining: u32,
    pub per_minute: u32,
    pub per_hour: u32,
    /// Requests in flight.
    pub in_flight: u32,
    pub concurrent: u32,
    /// Content-creating requests held by targets being served.
    pub reserved: u32,
    /// Targets waiting for budget, first served first.
    pub waiting: Vec<String>,
}

/// The pure state: sent slots, reservations, the queue.
#[derive(Debug, Default)]
struct Ledger {
    /// Slots of content-creating requests within the last hour (+ margin), ascending.
    sent: VecDeque<Instant>,
    /// The earliest the next content-creating request may go.
    next_free: Option<Instant>,
    reservations: HashMap<u64, (String, Need)>,
    next_ticket: u64,
    /// Refused targets, in the order they were first refused.
    queue: Vec<(String, Need)>,
    /// Targets that asked since the last [`IdentityBudget::end_pass`].
    asked: HashSet<String>,
}

impl Ledger {
    fn prune(&mut self, limits: &SecondaryLimits, now: Instant) {
        let horizon = limits.hour + limits.margin;
        while let Some(first) = self.sent.front() {
            if now.saturating_duration_since(*first) >= horizon {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Slots within `window` (+ margin) before `at`.
    fn used(&self, limits: &SecondaryLimits, window: Duration, at: Instant) -> u32 {
        let span = window + limits.margin;
        self.sent
            .iter()
            .rev()
            .take_while(|s| at.saturating_duration_since(**s) < span)
            .count() as u32
    }

    /// The earliest instant at or after `t` where one more slot fits `window`.
    fn fit(&self, window: Duration, limit: u32, margin: Duration, t: Instant) -> Instant {
        let limit = limit.max(1) as usize;
        if self.sent.len() < limit {
            return t;
        }
        // The slot `limit` back from the end must have left the window.
        let oldest_counted = self.sent[self.sent.len() - limit];
        t.max(oldest_counted + window + margin)
    }

    fn reserved_content(&self) -> u32 {
        self.reservations.values().map(|(_, n)| n.content).sum()
    }

    fn reserved_total(&self) -> u32 {
        self.reservations.values().map(|(_, n)| n.total).sum()
    }
}

/// One identity's secondary budget and admission queue. Shared (`Arc`) by the
/// client of the identity and every reservation taken from it.
#[derive(Debug)]
pub struct IdentityBudget {
    limits: SecondaryLimits,
    ledger: Mutex<Ledger>,
    /// The concurrency gate: `limits.concurrent` permits (at least one).
    gate: Arc<tokio::sync::Semaphore>,
    /// The primary budget as the identity's responses last reported it.
    primary: Mutex<Budget>,
    /// Content-creating requests sent since start.
    content_sent: AtomicU64,
}

impl IdentityBudget {
    /// A fresh budget under `limits`.
    pub fn new(limits: SecondaryLimits) -> IdentityBudget {
        IdentityBudget {
            gate: Arc::new(tokio::sync::Semaphore::new(
                limits.concurrent.max(1) as usize
            )),
            limits,
            ledger: Mutex::new(Ledger::default()),
            primary: Mutex::new(Budget::default()),
            content_sent: AtomicU64::new(0),
        }
    }

    /// The primary budget as last reported.
    pub fn primary(&self) -> Budget {
        *self.primary.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what a response's `x-ratelimit-*` headers say.
    pub fn update_primary(&self, headers: &http::HeaderMap) {
        self.primary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(headers);
    }

    /// Forgets the remaining count (after waiting out a reset).
    pub fn forget_remaining(&self) {
        self.primary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remaining = None;
    }

    /// Content-creating requests sent since start.
    pub fn content_requests(&self) -> u64 {
        self.content_sent.load(Ordering::Relaxed)
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the next slot for a content-creating request at or after `now`: the
    /// caller sends at the returned instant. A slot further away than `max_wait` is
    /// not claimed; the wait is returned instead.
    pub fn claim_slot(&self, now: Instant, max_wait: Duration) -> Result<Instant, Duration> {
        let limits = &self.limits;
        let mut l = self.ledger();
        l.prune(limits, now);
        let mut t = l.next_free.map_or(now, |f| f.max(now));
        t = l.fit(limits.minute, limits.per_minute, limits.margin, t);
        t = l.fit(limits.hour, limits.per_hour, limits.margin, t);
        let wait = t.saturating_duration_since(now);
        if wait > max_wait {
            return Err(wait);
        }
        l.sent.push_back(t);
        l.next_free = Some(t + limits.spacing);
        self.content_sent.fetch_add(1, Ordering::Relaxed);
        Ok(t)
    }

    /// Reserves what `target`'s pass needs, fairly: the targets refused before it
    /// are served first. `primary_left` is the primary budget's remaining requests
    /// (when a response has said) less the floor the client keeps.
    pub fn reserve(
        self: &Arc<Self>,
        target: &str,
        need: Need,
        primary_left: Option<u64>,
        now: Instant,
    ) -> Result<Reservation, Refused> {
        let limits = &self.limits;
        let mut l = self.ledger();
        l.prune(limits, now);
        l.asked.insert(target.to_string());
        let place = l.queue.iter().position(|(t, _)| t == target);
        let ahead: Vec<Need> = match place {
            Some(i) => l.queue[..i].iter().map(|(_, n)| *n).collect(),
            None => l.queue.iter().map(|(_, n)| *n).collect(),
        };
        let content_wanted: u32 = ahead.iter().map(|n| n.content).sum::<u32>() + need.content;
        let total_wanted: u64 =
            ahead.iter().map(|n| u64::from(n.total)).sum::<u64>() + u64::from(need.total);
        let hour_used = l.used(limits, limits.hour, now) + l.reserved_content();
        let hour_free = limits.per_hour.saturating_sub(hour_used);
        let primary_free =
            primary_left.map(|left| left.saturating_sub(u64::from(l.reserved_total())));
        let refusal = if hour_free < content_wanted {
            // The slots that must leave the hour window before enough is free.
            let short = (content_wanted - hour_free) as usize;
            let wait = l
                .sent
                .get(short.saturating_sub(1))
                .map(|s| (*s + limits.hour + limits.margin).saturating_duration_since(now));
            Some((
                wait,
                format!(
                    "{hour_used} of {} content-creating requests this hour are used or held",
                    limits.per_hour
                ),
            ))
        } else if primary_free.is_some_and(|free| free < total_wanted) {
            Some((
                None,
                format!(
                    "API requests left in the window: {}, wanted: {total_wanted}",
                    primary_free.unwrap_or(0)
                ),
            ))
        } else {
            None
        };
        if let Some((wait, reason)) = refusal {
            let place = match place {
                Some(i) => {
                    l.queue[i].1 = need;
                    i
                }
                None => {
                    l.queue.push((target.to_string(), need));
                    l.queue.len() - 1
                }
            };
            return Err(Refused {
                place,
                wait,
                reason,
            });
        }
        if let Some(i) = place {
            l.queue.remove(i);
        }
        let ticket = l.next_ticket;
        l.next_ticket += 1;
        l.reservations.insert(ticket, (target.to_string(), need));
        Ok(Reservation {
            budget: self.clone(),
            ticket,
        })
    }

    /// Ends a pass: a queued target that did not ask during it (it has no task to
    /// run, or left the configuration) leaves the queue.
    pub fn end_pass(&self) {
        let mut l = self.ledger();
        let asked = std::mem::take(&mut l.asked);
        l.queue.retain(|(t, _)| asked.contains(t));
    }

    /// Waits for a place among the identity's requests in flight.
    pub async fn in_flight(&self) -> InFlight {
        // The semaphore is never closed, so acquiring only waits.
        InFlight {
            _permit: self.gate.clone().acquire_owned().await.ok(),
        }
    }

    /// The content-creating slots still inside the hour window, as milliseconds
    /// since the epoch (for [`IdentityBudget::restore`] by the next process).
    pub fn recent_slots_ms(&self) -> Vec<u64> {
        let now = Instant::now();
        let now_ms = leviathan_domain::clock::now_ms();
        let mut l = self.ledger();
        l.prune(&self.limits, now);
        l.sent
            .iter()
            .map(|s| {
                if *s >= now {
                    now_ms + (*s - now).as_millis() as u64
                } else {
                    now_ms.saturating_sub((now - *s).as_millis() as u64)
                }
            })
            .collect()
    }

    /// Takes the slots an earlier process recorded (ms since the epoch) into the
    /// windows, so a restart (or the next `tick`) does not spend the same hour
    /// twice. Slots older than the hour window are dropped.
    pub fn restore(&self, slots_ms: &[u64]) {
        let now = Instant::now();
        let now_ms = leviathan_domain::clock::now_ms();
        let mut restored: Vec<Instant> = slots_ms
            .iter()
            .filter_map(|ms| {
                if *ms >= now_ms {
                    Some(now + Duration::from_millis(ms - now_ms))
                } else {
                    now.checked_sub(Duration::from_millis(now_ms - ms))
                }
            })
            .collect();
        let mut l = self.ledger();
        restored.extend(l.sent.iter().copied());
        restored.sort();
        restored.dedup();
        l.sent = restored.into();
        if let Some(last) = l.sent.back().copied() {
            let next = last + self.limits.spacing;
            l.next_free = Some(l.next_free.map_or(next, |f| f.max(next)));
        }
        l.prune(&self.limits, now);
    }

    /// The targets waiting for budget, first served first, with what each asked
    /// for (for [`IdentityBudget::restore_queue`] by the next process).
    pub fn queue(&self) -> Vec<(String, Need)> {
        self.ledger().queue.clone()
    }

    /// Takes the queue an earlier process left: those targets keep their places
    /// ahead of any this process has refused so far, so a restart (or the next
    /// `tick`) does not send a target that waited back behind newcomers. A target
    /// that no longer asks leaves at the end of the next pass, as usual.
    pub fn restore_queue(&self, earlier: &[(String, Need)]) {
        let mut l = self.ledger();
        let mut queue: Vec<(String, Need)> = Vec::with_capacity(earlier.len() + l.queue.len());
        for (target, need) in earlier.iter().chain(l.queue.iter()) {
            if !queue.iter().any(|(t, _)| t == target) {
                queue.push((target.clone(), *need));
            }
        }
        l.queue = queue;
    }

    /// What is used and left at `now`.
    pub fn usage(&self, now: Instant) -> SecondaryUsage {
        let limits = &self.limits;
        let concurrent = limits.concurrent.max(1);
        let mut l = self.ledger();
        l.prune(limits, now);
        SecondaryUsage {
            minute_remaining: limits
                .per_minute
                .saturating_sub(l.used(limits, limits.minute, now)),
            hour_remaining: limits
                .per_hour
                .saturating_sub(l.used(limits, limits.hour, now)),
            per_minute: limits.per_minute,
            per_hour: limits.per_hour,
            in_flight: (concurrent as usize).saturating_sub(self.gate.available_permits()) as u32,
            concurrent,
            reserved: l.reserved_content(),
            waiting: l.queue.iter().map(|(t, _)| t.clone()).collect(),
        }
    }
}

/// Budget held for one target's pass; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<IdentityBudget>,
    ticket: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.ledger().reservations.remove(&self.ticket);
    }
}

/// A request in flight; its place frees when dropped.
pub struct InFlight {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SecondaryLimits {
        SecondaryLimits {
            per_minute: 3,
            per_hour: 5,
            spacing: Duration::from_millis(100),
            concurrent: 2,
            minute: Duration::from_secs(1),
            hour: Duration::from_secs(10),
            margin: Duration::from_millis(10),
        }
    }

    const NEED: Need = Need {
        content: 2,
        total: 3,
    };

    #[test]
    fn slots_are_spaced_and_no_window_holds_more_than_its_limit() {
        let b = IdentityBudget::new(limits());
        let t0 = Instant::now();
        let max = Duration::from_secs(60);
        let slots: Vec<Instant> = (0..5)
            .map(|_| b.claim_slot(t0, max).expect("slot"))
            .collect();
        let ms: Vec<u128> = slots.iter().map(|s| (*s - t0).as_millis()).collect();
        // Three at the spacing, the fourth when the first leaves the minute window
        // (+ margin), the fifth spaced after it.
        assert_eq!(ms, vec![0, 100, 200, 1010, 1110]);
        // The hour holds five: the sixth waits for the first to leave it.
        let sixth = b.claim_slot(t0, max).expect("slot");
        assert_eq!((sixth - t0).as_millis(), 10_010);
        // Every window of the minute's length holds at most three.
        let all: Vec<Instant> = slots.iter().copied().chain([sixth]).collect();
        for s in &all {
            let n = all
                .iter()
                .filter(|x| **x >= *s && **x - *s < Duration::from_secs(1))
                .count();
            assert!(n <= 3, "{n} slots in one minute window");
        }
    }

    #[test]
    fn a_slot_beyond_the_longest_wait_is_not_claimed() {
        let b = IdentityBudget::new(limits());
        let t0 = Instant::now();
        for _ in 0..5 {
            b.claim_slot(t0, Duration::from_secs(60)).expect("slot");
        }
        let wait = b
            .claim_slot(t0, Duration::from_secs(2))
            .expect_err("too far");
        assert_eq!(wait.as_millis(), 10_010);
        // Nothing was claimed by the refusal.
        assert_eq!(b.usage(t0).hour_remaining, 0);
        assert_eq!(
            b.claim_slot(t0, Duration::from_secs(60))
                .map(|s| (s - t0).as_millis()),
            Ok(10_010)
        );
    }

    #[test]
    fn reservations_hold_budget_until_dropped() {
        let b = Arc::new(IdentityBudget::new(limits()));
        let t0 = Instant::now();
        let a = b.reserve("a", NEED, None, t0).expect("a");
        let c = b.reserve("c", NEED, None, t0).expect("c");
        let refused = b.reserve("d", NEED, None, t0).expect_err("only 5 an hour");
        assert_eq!(refused.place, 0);
        assert!(refused.reason.contains("4 of 5"), "{}", refused.reason);
        assert_eq!(b.usage(t0).reserved, 4);
        drop(a);
        drop(c);
        assert_eq!(b.usage(t0).reserved, 0);
        b.reserve("d", NEED, None, t0).expect("freed");
    }

    #[test]
    fn refused_targets_are_served_before_newcomers() {
        let b = Arc::new(IdentityBudget::new(limits()));
        let t0 = Instant::now();
        // Spend four of the hour's five.
        for _ in 0..4 {
            b.claim_slot(t0, Duration::from_secs(60)).expect("slot");
        }
        let first = b.reserve("first", NEED, None, t0).expect_err("short");
        let second = b.reserve("second", NEED, None, t0).expect_err("short");
        assert_eq!((first.place, second.place), (0, 1));
        // The first slot leaves the hour window at 10.01 s: two free, which the
        // queue's head takes; a newcomer does not jump the queue.
        let t1 = t0 + Duration::from_millis(10_010);
        assert_eq!(first.wait, Some(Duration::from_millis(10_010)));
        let late = b.reserve("late", NEED, None, t1).expect_err("queue first");
        assert_eq!(late.place, 2);
        let second_again = b.reserve("second", NEED, None, t1).expect_err("not yet");
        assert_eq!(second_again.place, 1);
        let held = b
            .reserve("first", NEED, None, t1)
            .expect("head of the queue");
        assert_eq!(b.usage(t1).waiting, vec!["second", "late"]);
        drop(held);
    }

    #[test]
    fn the_primary_budget_is_shared_the_same_way() {
        let b = Arc::new(IdentityBudget::new(limits()));
        let t0 = Instant::now();
        let a = b.reserve("a", NEED, Some(5), t0).expect("3 of 5");
        let refused = b.reserve("b", NEED, Some(5), t0).expect_err("2 left");
        assert!(
            refused.reason.contains("left in the window: 2, wanted: 3"),
            "{}",
            refused.reason
        );
        assert_eq!(refused.wait, None);
        drop(a);
        b.reserve("b", NEED, Some(5), t0).expect("freed");
    }

    #[test]
    fn a_pass_drops_queued_targets_that_no_longer_ask() {
        let b = Arc::new(IdentityBudget::new(limits()));
        let t0 = Instant::now();
        for _ in 0..5 {
            b.claim_slot(t0, Duration::from_secs(60)).expect("slot");
        }
        b.reserve("gone", NEED, None, t0).expect_err("short");
        b.reserve("stays", NEED, None, t0).expect_err("short");
        b.end_pass();
        assert_eq!(b.usage(t0).waiting, vec!["gone", "stays"]);
        b.reserve("stays", NEED, None, t0).expect_err("short");
        b.end_pass();
        assert_eq!(b.usage(t0).waiting, vec!["stays"]);
    }

    #[test]
    fn the_queue_carries_over_to_the_next_process() {
        let first = Arc::new(IdentityBudget::new(limits()));
        let t0 = Instant::now();
        let held = [
            first.reserve("holder", NEED, None, t0).expect("room"),
            first.reserve("holder", NEED, None, t0).expect("room"),
        ];
        first
            .reserve("waited-first", NEED, None, t0)
            .expect_err("short");
        first
            .reserve("waited-second", NEED, None, t0)
            .expect_err("short");
        let saved = first.queue();
        assert_eq!(
            saved.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
            ["waited-first", "waited-second"]
        );
        drop(held);
        // The next process refuses a newcomer before it reads the file.
        let next = Arc::new(IdentityBudget::new(limits()));
        let _full = [
            next.reserve("holder", NEED, None, t0).expect("room"),
            next.reserve("holder", NEED, None, t0).expect("room"),
        ];
        next.reserve("newcomer", NEED, None, t0).expect_err("short");
        next.reserve("waited-second", NEED, None, t0)
            .expect_err("short");
        next.restore_queue(&saved);
        assert_eq!(
            next.usage(t0).waiting,
            ["waited-first", "waited-second", "newcomer"],
            "the earlier queue keeps its order, ahead of the newcomer, each target once"
        );
    }

    #[test]
    fn the_windows_carry_over_to_the_next_process() {
        let first = IdentityBudget::new(limits());
        let now = Instant::now();
        for _ in 0..4 {
            first
                .claim_slot(now, Duration::from_secs(60))
                .expect("slot");
        }
        let saved = first.recent_slots_ms();
        assert_eq!(saved.len(), 4);
        let next = IdentityBudget::new(limits());
        next.restore(&saved);
        // Stale slots (older than the hour) are dropped.
        next.restore(&[1]);
        let u = next.usage(Instant::now());
        assert_eq!(u.hour_remaining, 1, "{u:?}");
        // The fifth slot comes after the restored ones, not at once.
        let fifth = next
            .claim_slot(Instant::now(), Duration::from_secs(60))
            .expect("slot");
        assert!(
            fifth >= Instant::now() + Duration::from_millis(900),
            "spaced after the restored"
        );
    }

    #[test]
    fn requests_in_flight_are_counted_and_capped() {
        let b = IdentityBudget::new(limits());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let first = b.in_flight().await;
            let second = b.in_flight().await;
            assert_eq!(b.usage(Instant::now()).in_flight, 2);
            // A third waits for a place (the limit is two).
            let third = tokio::time::timeout(Duration::from_millis(50), b.in_flight()).await;
            assert!(third.is_err(), "a third request waited");
            drop(first);
            assert_eq!(b.usage(Instant::now()).in_flight, 1);
            drop(second);
        });
        assert_eq!(b.usage(Instant::now()).in_flight, 0);
        assert_eq!(b.usage(Instant::now()).concurrent, 2);
    }

    #[test]
    fn usage_counts_the_windows() {
        let b = IdentityBudget::new(limits());
        let t0 = Instant::now();
        b.claim_slot(t0, Duration::from_secs(60)).expect("slot");
        b.claim_slot(t0, Duration::from_secs(60)).expect("slot");
        let u = b.usage(t0 + Duration::from_millis(150));
        assert_eq!((u.minute_remaining, u.hour_remaining), (1, 3));
        let later = b.usage(t0 + Duration::from_secs(2));
        assert_eq!((later.minute_remaining, later.hour_remaining), (3, 3));
        assert_eq!(b.usage(t0 + Duration::from_secs(11)).hour_remaining, 5);
    }
}
