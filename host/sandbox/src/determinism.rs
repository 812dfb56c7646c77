//! Deterministic replacements for the host's clocks and randomness.

use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The fixed wall-clock time every executor sees: 2000-01-01T00:00:00Z.
pub const FIXED_WALL_CLOCK: Duration = Duration::from_secs(946_684_800);

/// A wall clock that always reads [`FIXED_WALL_CLOCK`].
pub struct FixedWallClock;

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

/// A monotonic clock that starts at zero and only moves when the guest sleeps, by
/// exactly the time slept; sleeps themselves return at once.
#[derive(Clone, Default)]
pub struct VirtualMonotonicClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualMonotonicClock {
    /// Advances the clock by `nanos`.
    pub fn advance(&self, nanos: u64) {
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(nanos))
            });
    }

    /// Advances the clock to `instant` if it lies in the future.
    pub fn advance_to(&self, instant: u64) {
        self.nanos.fetch_max(instant, Ordering::Relaxed);
    }

    /// The current reading in nanoseconds.
    pub fn read(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

impl wasmtime_wasi::HostMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.read()
    }
}

/// A portable, seeded random stream: SHA-256 in counter mode. Its output is fixed for a
/// given seed forever, unlike library PRNGs whose algorithms may change.
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// A stream for `seed`, separated by `domain` so the secure and insecure
    /// interfaces do not return the same bytes.
    pub fn new(seed: [u8; 32], domain: &str) -> SeededRng {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(domain.as_bytes());
        SeededRng {
            seed: h.finalize().into(),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(self.counter.to_le_bytes());
        self.block = h.finalize().into();
        self.counter += 1;
        self.used = 0;
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.used == self.block.len() {
                self.refill();
            }
            *b = self.block[self.used];
            self.used += 1;
        }
    }
}

impl rand_core::TryRng for SeededRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

/// The `insecure-seed` value derived from `seed`.
pub fn insecure_seed(seed: [u8; 32]) -> u128 {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(b"insecure-seed");
    let d: [u8; 32] = h.finalize().into();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::TryRng;

    #[test]
    fn same_seed_same_stream_and_domains_differ() {
        let mut a = SeededRng::new([7; 32], "secure");
        let mut b = SeededRng::new([7; 32], "secure");
        let mut c = SeededRng::new([7; 32], "insecure");
        let (mut x, mut y, mut z) = ([0u8; 100], [0u8; 100], [0u8; 100]);
        a.try_fill_bytes(&mut x).unwrap();
        b.try_fill_bytes(&mut y).unwrap();
        c.try_fill_bytes(&mut z).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_ne!(x[..32], x[32..64]);
    }

    #[test]
    fn virtual_clock_moves_only_when_told() {
        let c = VirtualMonotonicClock::default();
        assert_eq!(c.read(), 0);
        c.advance(5);
        c.advance_to(3);
        assert_eq!(c.read(), 5);
        c.advance_to(9);
        assert_eq!(c.read(), 9);
    }
}
