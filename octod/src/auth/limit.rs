//! The login throttle: token buckets of failed attempts, in memory (a restart forgets them,
//! which costs an attacker a restart of octod).
//!
//! Three buckets decide, and all must have a token for an attempt to go ahead:
//! - per (name, client address): the tightest, so guessing one account from one place is slow;
//! - per client address (an IPv6 client by its /64, which one host usually holds whole): one
//!   place cannot spread its guesses over many names;
//! - per name, slower to refill and spared to the addresses the name last signed in from:
//!   guesses from many places are bounded too, and still cannot lock the owner out of their
//!   account from where they usually sign in.
//!
//! Only failures cost: an attempt takes its tokens before its password is checked (so parallel
//! guesses cannot overtake the count), and a successful one gives them back. A refused attempt
//! takes nothing.
//!
//! Each bucket is one instant (GCRA: the time at which it is full again), and each table is
//! bounded: a full one first drops its full buckets (the same as absent), then the bucket
//! nearest to full.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One token bucket's shape: `burst` failures at once, then one more every `refill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub burst: u32,
    pub refill: Duration,
}

/// Limits on failed sign-ins (and password changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Per (user name, client address).
    pub pair: Bucket,
    /// Per client address (IPv6: per /64).
    pub client: Bucket,
    /// Per user name, except from the name's last `known_addresses` successful addresses.
    pub name: Bucket,
    pub known_addresses: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            pair: Bucket {
                burst: 10,
                refill: Duration::from_secs(60),
            },
            client: Bucket {
                burst: 30,
                refill: Duration::from_secs(10),
            },
            name: Bucket {
                burst: 100,
                refill: Duration::from_secs(5 * 60),
            },
            known_addresses: 8,
        }
    }
}

impl LoginLimits {
    /// Limits no test reaches by accident: each bucket holds `burst` and refills slowly.
    #[cfg(test)]
    pub fn uniform(burst: u32) -> Self {
        let bucket = Bucket {
            burst,
            refill: Duration::from_secs(300),
        };
        Self {
            pair: bucket,
            client: bucket,
            name: bucket,
            known_addresses: 8,
        }
    }
}

/// Entries per table before the oldest give way.
const TABLE_CAP: usize = 16_384;

/// The throttle's state; see the module documentation.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    pairs: HashMap<(String, String), Instant>,
    clients: HashMap<String, Instant>,
    names: HashMap<String, Instant>,
    /// Per name, the client keys of its last successful sign-ins, newest first.
    known: HashMap<String, VecDeque<String>>,
}

/// The tokens an attempt took; give them back with [`LoginLimiter::succeeded`].
#[derive(Debug)]
#[must_use = "a successful attempt gives its tokens back"]
pub struct Reservation {
    client: String,
    name: String,
    name_charged: bool,
    at: Instant,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            tables: Mutex::new(Tables::default()),
        }
    }

    /// Takes a token from each bucket of an attempt by `client` (an address, or `unknown`) for
    /// `name`, or refuses it with how long until every bucket has one again. A refused attempt
    /// takes nothing.
    pub fn attempt(&self, client: &str, name: &str, now: Instant) -> Result<Reservation, Duration> {
        let client = client_key(client);
        let l = self.limits;
        // A panic elsewhere leaves at worst one bucket not updated: still a valid state.
        let mut t = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let pair_key = (name.to_owned(), client.clone());
        let known = t.known.get(name).is_some_and(|k| k.contains(&client));
        let waits = [
            wait(t.pairs.get(&pair_key), l.pair, now),
            wait(t.clients.get(&client), l.client, now),
            if known {
                None
            } else {
                wait(t.names.get(name), l.name, now)
            },
        ];
        if let Some(longest) = waits.into_iter().flatten().max() {
            return Err(longest);
        }
        take(&mut t.pairs, pair_key, l.pair, now);
        take(&mut t.clients, client.clone(), l.client, now);
        if !known {
            take(&mut t.names, name.to_owned(), l.name, now);
        }
        Ok(Reservation {
            client,
            name: name.to_owned(),
            name_charged: !known,
            at: now,
        })
    }

    /// The attempt succeeded: its tokens go back, and its address becomes one the name's
    /// bucket spares.
    pub fn succeeded(&self, reservation: Reservation) {
        let Reservation {
            client,
            name,
            name_charged,
            at,
        } = reservation;
        let l = self.limits;
        let mut t = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        give_back(&mut t.pairs, &(name.clone(), client.clone()), l.pair, at);
        give_back(&mut t.clients, &client, l.client, at);
        if name_charged {
            give_back(&mut t.names, &name, l.name, at);
        }
        if !t.known.contains_key(&name) && t.known.len() >= TABLE_CAP {
            // No instant to go by: any one name's memory gives way.
            if let Some(any) = t.known.keys().next().cloned() {
                t.known.remove(&any);
            }
        }
        let known = t.known.entry(name).or_default();
        known.retain(|c| *c != client);
        known.push_front(client);
        known.truncate(l.known_addresses);
    }
}

/// What the client is counted as: its address, an IPv6 address by its /64.
fn client_key(client: &str) -> String {
    match client.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => client.to_owned(),
    }
}

/// `None` if the bucket (full again at `full_at`) has a token at `now`, else how long until it
/// has one.
fn wait(full_at: Option<&Instant>, bucket: Bucket, now: Instant) -> Option<Duration> {
    let full_at = *full_at?;
    let after = full_at.max(now) + bucket.refill;
    let span = bucket.refill * bucket.burst;
    let earliest = after.checked_sub(span)?;
    (earliest > now).then(|| earliest - now)
}

fn take<K: Hash + Eq + Clone>(
    table: &mut HashMap<K, Instant>,
    key: K,
    bucket: Bucket,
    now: Instant,
) {
    if !table.contains_key(&key) && table.len() >= TABLE_CAP {
        table.retain(|_, full_at| *full_at > now);
        if table.len() >= TABLE_CAP {
            let nearest = table
                .iter()
                .min_by_key(|(_, full_at)| **full_at)
                .map(|(k, _)| k.clone());
            if let Some(nearest) = nearest {
                table.remove(&nearest);
            }
        }
    }
    let full_at = table.entry(key).or_insert(now);
    *full_at = (*full_at).max(now) + bucket.refill;
}

/// Gives back the token taken at `at` (never more than full).
fn give_back<K: Hash + Eq>(table: &mut HashMap<K, Instant>, key: &K, bucket: Bucket, at: Instant) {
    if let Some(full_at) = table.get_mut(key) {
        *full_at = full_at.checked_sub(bucket.refill).unwrap_or(at).max(at);
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn limits(pair: u32, client: u32, name: u32) -> LoginLimits {
        LoginLimits {
            pair: Bucket {
                burst: pair,
                refill: 60 * S,
            },
            client: Bucket {
                burst: client,
                refill: 10 * S,
            },
            name: Bucket {
                burst: name,
                refill: 300 * S,
            },
            known_addresses: 2,
        }
    }

    /// `n` failed attempts (reservations kept).
    fn fail(l: &LoginLimiter, client: &str, name: &str, n: usize, now: Instant) {
        for i in 0..n {
            let r = l.attempt(client, name, now);
            assert!(r.is_ok(), "attempt {i} of {client}/{name}: {r:?}");
        }
    }

    #[test]
    fn the_pair_bucket_refills_one_token_per_interval() {
        let l = LoginLimiter::new(limits(3, 100, 100));
        let t0 = Instant::now();
        fail(&l, "10.0.0.1", "ada", 3, t0);
        assert_eq!(
            l.attempt("10.0.0.1", "ada", t0).expect_err("throttled"),
            60 * S
        );
        assert_eq!(
            l.attempt("10.0.0.1", "ada", t0 + 59 * S)
                .expect_err("throttled"),
            S
        );
        fail(&l, "10.0.0.1", "ada", 1, t0 + 60 * S);
        assert!(l.attempt("10.0.0.1", "ada", t0 + 61 * S).is_err());
        // Another name from the same place, the same name from another place: untouched.
        fail(&l, "10.0.0.1", "bob", 3, t0);
        fail(&l, "10.0.0.2", "ada", 3, t0);
    }

    #[test]
    fn the_client_bucket_spans_names_and_an_ipv6_client_is_its_64() {
        let l = LoginLimiter::new(limits(100, 4, 100));
        let t0 = Instant::now();
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            let client = format!("2001:db8:0:1::{i}");
            fail(&l, &client, name, 1, t0);
        }
        assert_eq!(
            l.attempt("2001:db8:0:1::ff", "e", t0)
                .expect_err("throttled"),
            10 * S
        );
        fail(&l, "2001:db8:0:2::1", "e", 1, t0);
        // Refused attempts take nothing: the wait does not grow.
        for _ in 0..50 {
            assert_eq!(
                l.attempt("2001:db8:0:1::1", "e", t0)
                    .expect_err("throttled"),
                10 * S
            );
        }
        assert_eq!(client_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(client_key("unknown"), "unknown");
    }

    #[test]
    fn the_name_bucket_spares_the_addresses_the_owner_signed_in_from() {
        let l = LoginLimiter::new(limits(100, 100, 5));
        let t0 = Instant::now();
        let ok = l.attempt("192.0.2.1", "ada", t0).expect("room");
        l.succeeded(ok);
        // Guesses from many places empty the name's bucket.
        for i in 0..5 {
            fail(&l, &format!("203.0.113.{i}"), "ada", 1, t0);
        }
        assert!(
            l.attempt("198.51.100.1", "ada", t0).is_err(),
            "a new place waits"
        );
        // The owner's usual address is spared, and succeeds again and again.
        for _ in 0..20 {
            let r = l.attempt("192.0.2.1", "ada", t0).expect("spared");
            l.succeeded(r);
        }
        // Only the last `known_addresses` (2) are remembered.
        for addr in ["192.0.2.2", "192.0.2.3"] {
            let r = l.attempt(addr, "bob", t0).expect("room");
            l.succeeded(r);
        }
        let r = l.attempt("192.0.2.1", "bob", t0).expect("room");
        l.succeeded(r);
        let t = l.tables.lock().expect("lock");
        assert_eq!(
            t.known["bob"],
            ["192.0.2.1".to_owned(), "192.0.2.3".to_owned()]
        );
    }

    #[test]
    fn success_gives_the_tokens_back() {
        let l = LoginLimiter::new(limits(2, 2, 2));
        let t0 = Instant::now();
        for _ in 0..10 {
            let r = l.attempt("10.0.0.1", "ada", t0).expect("room");
            l.succeeded(r);
        }
        fail(&l, "10.0.0.1", "ada", 2, t0);
        assert!(l.attempt("10.0.0.1", "ada", t0).is_err());
    }

    #[test]
    fn tables_are_bounded() {
        let l = LoginLimiter::new(limits(1, 1, 1));
        let t0 = Instant::now();
        for i in 0..TABLE_CAP + 10 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + u32::try_from(i).expect("small"));
            fail(
                &l,
                &ip.to_string(),
                &format!("u{i}"),
                1,
                t0 + S * u32::try_from(i).expect("small"),
            );
        }
        let t = l.tables.lock().expect("lock");
        assert!(t.pairs.len() <= TABLE_CAP);
        assert!(t.clients.len() <= TABLE_CAP);
        assert!(t.names.len() <= TABLE_CAP);
        // The newest survive.
        assert!(t.names.contains_key(&format!("u{}", TABLE_CAP + 9)));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
