//! Console sessions: a random id in the cookie, everything else on the server (the
//! caller, the token's digest, the CSRF token, idle and absolute expiry), and the
//! rate limit on failed logins.

use leviathan_domain::tokens::{Principal, Tokens};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    pub absolute: Duration,
}

/// Default session limits: 30 minutes idle, 12 hours in all.
pub const DEFAULT_SESSIONS: SessionLimits = SessionLimits {
    idle: Duration::from_secs(30 * 60),
    absolute: Duration::from_secs(12 * 3600),
};

/// Most sessions held at once; the oldest goes when a new one would exceed it.
const MAX_SESSIONS: usize = 10_000;

/// A logged-in caller.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// The per-session token every console form carries.
    pub csrf: String,
    token_digest: [u8; 32],
    created: Instant,
    last_seen: Instant,
}

/// The live sessions, keyed by the SHA-256 of their id (the id itself is only in
/// the cookie).
pub struct Sessions {
    limits: SessionLimits,
    live: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes as hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator failing is not something a request can recover from; an
    // all-zero id would be guessable, so refuse to make one.
    getrandom::getrandom(&mut bytes).expect("the OS random generator is unavailable");
    hex::encode(bytes)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions {
            limits,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `principal` (who presented a token with `token_digest`);
    /// returns its id for the cookie.
    pub fn create(&self, principal: Principal, token_digest: [u8; 32]) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut live = self.lock();
        self.expire(&mut live, now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(
            key(&id),
            Session {
                principal,
                csrf: random_hex(),
                token_digest,
                created: now,
                last_seen: now,
            },
        );
        id
    }

    fn expire(&self, live: &mut HashMap<[u8; 32], Session>, now: Instant) {
        let limits = self.limits;
        live.retain(|_, s| {
            now.duration_since(s.last_seen) < limits.idle
                && now.duration_since(s.created) < limits.absolute
        });
    }

    /// The session with cookie id `id`, if it is live; using it renews its idle time.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut live = self.lock();
        let k = key(id);
        let session = live.get_mut(&k)?;
        let expired = now.duration_since(session.last_seen) >= self.limits.idle
            || now.duration_since(session.created) >= self.limits.absolute;
        if expired {
            live.remove(&k);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session with cookie id `id`.
    pub fn end(&self, id: &str) {
        self.lock().remove(&key(id));
    }

    /// Ends every session whose token `tokens` no longer holds (for the same caller
    /// and role); returns how many ended.
    pub fn retain_valid(&self, tokens: &Tokens) -> usize {
        let mut live = self.lock();
        let before = live.len();
        live.retain(|_, s| tokens.check_digest(&s.token_digest).as_ref() == Some(&s.principal));
        before - live.len()
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        let mut live = self.lock();
        self.expire(&mut live, Instant::now());
        live.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Failed logins allowed per address, and in all, per window.
const PER_ADDRESS: u32 = 5;
const IN_ALL: u32 = 100;
const WINDOW: Duration = Duration::from_secs(60);

/// Counts failed logins per address and in all over a one-minute window.
#[derive(Default)]
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    window_start: Option<Instant>,
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

impl LoginLimiter {
    fn with_window<R>(&self, f: impl FnOnce(&mut LimiterState) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if s.window_start
            .is_none_or(|t| now.duration_since(t) >= WINDOW)
        {
            *s = LimiterState {
                window_start: Some(now),
                ..LimiterState::default()
            };
        }
        f(&mut s)
    }

    /// Whether `address` may try to log in now.
    pub fn allows(&self, address: IpAddr) -> bool {
        self.with_window(|s| {
            s.total < IN_ALL && s.by_address.get(&address).copied().unwrap_or(0) < PER_ADDRESS
        })
    }

    /// Counts a failed login from `address`.
    pub fn failed(&self, address: IpAddr) {
        self.with_window(|s| {
            s.total = s.total.saturating_add(1);
            if s.by_address.len() < 10_000 || s.by_address.contains_key(&address) {
                *s.by_address.entry(address).or_default() += 1;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leviathan_domain::tokens::Role;

    fn principal(name: &str) -> Principal {
        Principal {
            name: name.into(),
            role: Role::Operator,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_end_on_logout() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_millis(50),
            absolute: Duration::from_secs(60),
        });
        let id = sessions.create(principal("ops"), [1; 32]);
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.get(&id).unwrap().principal.name, "ops");
        assert!(sessions.get("not-a-session").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&id).is_none(), "idle expiry");
        let id = sessions.create(principal("ops"), [1; 32]);
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn sessions_end_at_their_absolute_limit_even_when_used() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_millis(60),
        });
        let id = sessions.create(principal("ops"), [1; 32]);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(10));
            assert!(sessions.get(&id).is_some());
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let limiter = LoginLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..PER_ADDRESS {
            assert!(limiter.allows(a));
            limiter.failed(a);
        }
        assert!(!limiter.allows(a));
        assert!(limiter.allows(b));
    }
}
