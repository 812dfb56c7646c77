//! The host's own GitHub rate-limit policy (octocrab's retry layer is off): what to
//! do with each response, how long to wait, and the request budget the scheduler
//! paces itself by. Pure: the caller sleeps and retries.

use http::HeaderMap;
use std::time::Duration;

/// Limits on waiting and retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try, for rate limits and server errors alike.
    pub max_retries: u32,
    /// The first back-off after a server error; doubled on each retry.
    pub base_delay: Duration,
    /// The longest single wait. A limit that resets later than this fails the request
    /// with [`Verdict::Exhausted`] instead of holding the scheduler.
    pub max_wait: Duration,
    /// Below this many requests left, a target's pass is not started (pacing).
    pub reserve: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
            reserve: 20,
        }
    }
}

/// The primary budget as last reported by `x-ratelimit-remaining` / `-reset`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Requests left in the window; `None` until a response said.
    pub remaining: Option<u64>,
    /// When the window resets, in seconds since the epoch.
    pub reset_epoch: Option<u64>,
    /// The window's size (`x-ratelimit-limit`), when a response said.
    pub limit: Option<u64>,
}

impl Budget {
    /// Takes what a response's headers say; absent headers leave the value alone.
    pub fn update(&mut self, headers: &HeaderMap) {
        if let Some(v) = number(headers, "x-ratelimit-remaining") {
            self.remaining = Some(v);
        }
        if let Some(v) = number(headers, "x-ratelimit-reset") {
            self.reset_epoch = Some(v);
        }
        if let Some(v) = number(headers, "x-ratelimit-limit") {
            self.limit = Some(v);
        }
    }

    /// Whether fewer than `reserve` requests are left and the window has not reset
    /// yet at `now_epoch`: the time until it does.
    pub fn low(&self, reserve: u64, now_epoch: u64) -> Option<Duration> {
        let remaining = self.remaining?;
        let reset = self.reset_epoch?;
        (remaining < reserve && reset > now_epoch).then(|| Duration::from_secs(reset - now_epoch))
    }
}

/// What to do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the response to the caller (success, or an error retrying won't fix).
    Done,
    /// Wait this long, then send the request again.
    RetryAfter(Duration),
    /// Rate-limited for longer than the policy waits: give up until then.
    Exhausted(Duration),
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Classifies a response to try `attempt` (0 = first) by its status and headers at
/// `now_epoch`. `jitter` is a number in `[0, 1)` that spreads retries out.
///
/// - 403/429 with `retry-after` (a secondary limit): wait that many seconds.
/// - 403/429 with `x-ratelimit-remaining: 0` (the primary limit): wait until
///   `x-ratelimit-reset`.
/// - 500, 502, 503, 504: back off exponentially from `base_delay`, jittered.
/// - Anything else: done.
///
/// Waits longer than `max_wait` are `Exhausted`; after `max_retries` retries every
/// retryable answer is `Exhausted` too (with the wait it asked for).
pub fn classify(
    policy: &RetryPolicy,
    status: u16,
    headers: &HeaderMap,
    attempt: u32,
    now_epoch: u64,
    jitter: f64,
) -> Verdict {
    let wait = match status {
        403 | 429 => {
            if let Some(secs) = number(headers, "retry-after") {
                Duration::from_secs(secs)
            } else if number(headers, "x-ratelimit-remaining") == Some(0) {
                let reset = number(headers, "x-ratelimit-reset").unwrap_or(now_epoch);
                // One second past the reset: GitHub's clock and ours differ a little.
                Duration::from_secs(reset.saturating_sub(now_epoch) + 1)
            } else {
                return Verdict::Done;
            }
        }
        500 | 502 | 503 | 504 => {
            let exp = policy
                .base_delay
                .saturating_mul(2u32.saturating_pow(attempt));
            // "Full jitter" between half and all of the exponential delay.
            exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
        }
        _ => return Verdict::Done,
    };
    if wait > policy.max_wait || attempt >= policy.max_retries {
        Verdict::Exhausted(wait)
    } else if matches!(status, 403 | 429) {
        // Rate-limit waits are spread a little too, so clients don't return at once.
        Verdict::RetryAfter(wait + Duration::from_millis((jitter.clamp(0.0, 1.0) * 250.0) as u64))
    } else {
        Verdict::RetryAfter(wait)
    }
}

/// A cheap jitter source in `[0, 1)`: not for secrets, only to spread retries.
pub fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = leviathan_domain::clock::now_nanos() as u64;
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    // splitmix64
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn secondary_limits_wait_for_retry_after() {
        let p = RetryPolicy::default();
        let v = classify(&p, 403, &headers(&[("retry-after", "2")]), 0, 1000, 0.0);
        assert_eq!(v, Verdict::RetryAfter(Duration::from_secs(2)));
        let v = classify(&p, 429, &headers(&[("retry-after", "600")]), 0, 1000, 0.0);
        assert_eq!(v, Verdict::Exhausted(Duration::from_secs(600)));
    }

    #[test]
    fn the_primary_limit_waits_for_the_reset() {
        let p = RetryPolicy::default();
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1010"),
        ]);
        assert_eq!(
            classify(&p, 403, &h, 0, 1000, 0.0),
            Verdict::RetryAfter(Duration::from_secs(11))
        );
        assert_eq!(
            classify(&p, 403, &h, 0, 900, 0.0),
            Verdict::Exhausted(Duration::from_secs(111))
        );
        // A 403 that is not a rate limit (no token scope, say) is not retried.
        let forbidden = headers(&[("x-ratelimit-remaining", "4999")]);
        assert_eq!(classify(&p, 403, &forbidden, 0, 1000, 0.0), Verdict::Done);
    }

    #[test]
    fn server_errors_back_off_exponentially_with_jitter_and_a_bound() {
        let p = RetryPolicy::default();
        let none = HeaderMap::new();
        let low = classify(&p, 502, &none, 2, 0, 0.0);
        let high = classify(&p, 502, &none, 2, 0, 0.999);
        assert_eq!(low, Verdict::RetryAfter(Duration::from_millis(1000)));
        let Verdict::RetryAfter(high) = high else {
            panic!("{high:?}")
        };
        assert!(high > Duration::from_millis(1990) && high <= Duration::from_secs(2));
        assert!(matches!(
            classify(&p, 502, &none, 3, 0, 0.0),
            Verdict::Exhausted(_)
        ));
        assert_eq!(classify(&p, 422, &none, 0, 0, 0.0), Verdict::Done);
        assert_eq!(classify(&p, 201, &none, 0, 0, 0.0), Verdict::Done);
    }

    #[test]
    fn the_budget_follows_the_headers_and_reports_a_low_one() {
        let mut b = Budget::default();
        assert_eq!(b.low(20, 0), None);
        b.update(&headers(&[
            ("x-ratelimit-remaining", "5"),
            ("x-ratelimit-reset", "1300"),
        ]));
        assert_eq!(b.low(20, 1000), Some(Duration::from_secs(300)));
        assert_eq!(b.low(5, 1000), None);
        assert_eq!(b.low(20, 1300), None, "the window has reset");
        b.update(&HeaderMap::new());
        assert_eq!(b.remaining, Some(5));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
