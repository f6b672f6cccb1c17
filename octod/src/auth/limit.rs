//! The login rate limit: a sliding window of attempts per client address and per user name,
//! in memory (a restart forgets it, which costs an attacker a restart of octod per window).
//!
//! Every attempt counts, whether its password is right or not, and is recorded before the
//! password is checked, so parallel guesses cannot overtake the count. A successful login
//! clears its user name's window (not the client's), so the owner of an account is not locked
//! out by their own typos once they get it right.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Limits on login attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Attempts per client address within `window`.
    pub per_client: u32,
    /// Attempts per user name within `window`.
    pub per_user: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_client: 30,
            per_user: 10,
            window: Duration::from_secs(10 * 60),
        }
    }
}

/// Above this many keys in one map, a new attempt first drops the keys with no attempt left in
/// the window; it keeps memory bounded by the attempts of one window.
const PRUNE_ABOVE: usize = 10_000;

/// Sliding windows of attempt times, per client and per user name.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    windows: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    clients: HashMap<String, VecDeque<Instant>>,
    users: HashMap<String, VecDeque<Instant>>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            windows: Mutex::new(Windows::default()),
        }
    }

    /// Records an attempt by `client` for `user` at `now`, or refuses it with how long until
    /// both windows have room again. A refused attempt is not recorded.
    pub fn attempt(&self, client: &str, user: &str, now: Instant) -> Result<(), Duration> {
        let window = self.limits.window;
        // A panic elsewhere leaves at worst a half-trimmed deque: still a valid window.
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let Windows { clients, users } = &mut *w;
        for map in [&mut *clients, &mut *users] {
            if map.len() > PRUNE_ABOVE {
                map.retain(|_, times| {
                    trim(times, now, window);
                    !times.is_empty()
                });
            }
        }
        let c = clients.entry(client.to_owned()).or_default();
        let u = users.entry(user.to_owned()).or_default();
        let wait_c = wait(c, now, window, self.limits.per_client);
        let wait_u = wait(u, now, window, self.limits.per_user);
        match wait_c.max(wait_u) {
            Some(d) => Err(d),
            None => {
                c.push_back(now);
                u.push_back(now);
                Ok(())
            }
        }
    }

    /// Forgets the attempts for `user` (after a successful login).
    pub fn clear_user(&self, user: &str) {
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        w.users.remove(user);
    }
}

fn trim(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|&t| now.saturating_duration_since(t) >= window)
    {
        times.pop_front();
    }
}

/// `None` if there is room for one more attempt, else how long until there is.
fn wait(
    times: &mut VecDeque<Instant>,
    now: Instant,
    window: Duration,
    limit: u32,
) -> Option<Duration> {
    trim(times, now, window);
    if times.len() < limit as usize {
        return None;
    }
    // The attempt that must leave the window for the count to drop below the limit.
    let index = times.len() - limit as usize;
    times
        .get(index)
        .map(|&t| (t + window).saturating_duration_since(now))
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_client: u32, per_user: u32) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            per_client,
            per_user,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn per_user_limit_slides() {
        let l = limiter(100, 3);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(l.attempt("ip1", "ada", t0), Ok(()));
        assert_eq!(l.attempt("ip2", "ada", t0 + s(10)), Ok(()));
        assert_eq!(l.attempt("ip3", "ada", t0 + s(20)), Ok(()));
        // Full: the first attempt leaves the window at t0+60.
        assert_eq!(l.attempt("ip4", "ada", t0 + s(30)), Err(s(30)));
        // Other names are not affected.
        assert_eq!(l.attempt("ip4", "bob", t0 + s(30)), Ok(()));
        assert_eq!(l.attempt("ip4", "ada", t0 + s(60)), Ok(()));
        assert_eq!(l.attempt("ip4", "ada", t0 + s(61)), Err(s(9)));
    }

    #[test]
    fn per_client_limit_spans_names_and_refusals_are_not_counted() {
        let l = limiter(2, 100);
        let t0 = Instant::now();
        assert_eq!(l.attempt("ip", "a", t0), Ok(()));
        assert_eq!(l.attempt("ip", "b", t0), Ok(()));
        for _ in 0..5 {
            assert_eq!(l.attempt("ip", "c", t0), Err(Duration::from_secs(60)));
        }
        assert_eq!(l.attempt("ip", "c", t0 + Duration::from_secs(60)), Ok(()));
        assert_eq!(l.attempt("other", "c", t0), Ok(()));
    }

    #[test]
    fn clearing_a_user_keeps_the_client_count() {
        let l = limiter(3, 1);
        let t0 = Instant::now();
        assert_eq!(l.attempt("ip", "ada", t0), Ok(()));
        assert!(l.attempt("ip", "ada", t0).is_err());
        l.clear_user("ada");
        assert_eq!(l.attempt("ip", "ada", t0), Ok(()));
        l.clear_user("ada");
        assert_eq!(l.attempt("ip", "ada", t0), Ok(()));
        l.clear_user("ada");
        assert!(l.attempt("ip", "ada", t0).is_err(), "client limit of 3");
    }

    #[test]
    fn stale_keys_are_pruned() {
        let l = limiter(100, 100);
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            l.attempt(&format!("ip{i}"), &format!("u{i}"), t0)
                .expect("room");
        }
        l.attempt("late", "x", t0 + Duration::from_secs(61))
            .expect("room");
        let w = l.windows.lock().expect("lock");
        assert_eq!(w.clients.len(), 1, "only the late client is left");
        assert_eq!(w.users.len(), 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
