//! The engine's book of home sizes ([`crate::disk`]): the last measurement of each session
//! (loaded from redb at start, written there after each walk), what octod proxied into each
//! home since, and the notice each running session was last given. One [`Engine::disk_tick`]
//! measures at most one session and brings the notices in line with the users' levels.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::{Engine, EngineError};
use crate::disk::{Measured, QuotaLevel};
use crate::session::{DesiredState, SessionId, SessionState};

/// What the engine knows of the homes' sizes.
#[derive(Debug, Default)]
pub(super) struct DiskBook {
    measured: BTreeMap<SessionId, Measured>,
    /// Bytes uploaded through octod since the last measurement.
    added: BTreeMap<SessionId, u64>,
    /// Each session's owner, as of the last tick (for the per-user sums).
    owners: BTreeMap<SessionId, String>,
    /// The notice level each running session's home was last given.
    noticed: BTreeMap<SessionId, QuotaLevel>,
    /// When each home was last measured or tried (a failed walk waits its turn too).
    tried: BTreeMap<SessionId, SystemTime>,
}

impl DiskBook {
    fn used(&self, id: &SessionId) -> Option<u64> {
        let added = self.added.get(id).copied().unwrap_or(0);
        match self.measured.get(id) {
            Some(m) => Some(m.bytes.saturating_add(added)),
            None => (added > 0).then_some(added),
        }
    }

    fn owner_used(&self, owner: &str) -> u64 {
        self.owners
            .iter()
            .filter(|(_, o)| *o == owner)
            .filter_map(|(id, _)| self.used(id))
            .fold(0, u64::saturating_add)
    }
}

/// A session's disk figures as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFacts {
    /// The home's size (last measurement plus uploads since); `None` before the first.
    pub used: Option<u64>,
    /// When it was last measured.
    pub measured_at: Option<SystemTime>,
    /// All the owner's homes together.
    pub owner_used: u64,
    /// The owner's quota.
    pub quota: Option<u64>,
    pub level: QuotaLevel,
}

impl Engine {
    fn book(&self) -> std::sync::MutexGuard<'_, DiskBook> {
        self.inner
            .disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads the stored measurements (at start).
    pub(super) async fn load_disk(&self) -> Result<(), EngineError> {
        let stored = self
            .inner
            .store
            .run(crate::store::Store::disk_usage)
            .await?;
        let records = self.list().await?;
        let mut book = self.book();
        for (id, (bytes, at)) in stored {
            book.measured.insert(id, Measured { bytes, at });
        }
        for r in records {
            book.owners.insert(r.spec.id.clone(), r.spec.owner.clone());
        }
        Ok(())
    }

    /// `owner`'s disk quota now (their role read from the store).
    pub async fn disk_quota(&self, owner: &str) -> Result<Option<u64>, EngineError> {
        let name = owner.to_owned();
        let role = self
            .blocking(move |s| {
                s.user(&name)
                    .map_err(|e| EngineError::Internal(format!("reading user {name}: {e}")))
            })
            .await?
            .map_or(crate::identity::Role::User, |u| u.role);
        Ok(self.inner.config.limits.disk_quota(owner, role))
    }

    /// What `owner` uses and may use, for the gateway's `X-Octo-Quota`; `None`: no quota.
    pub async fn quota_of(&self, owner: &str) -> Result<Option<(u64, u64)>, EngineError> {
        let Some(quota) = self.disk_quota(owner).await? else {
            return Ok(None);
        };
        Ok(Some((self.book().owner_used(owner), quota)))
    }

    /// Users past their quota (valid, but worth saying: a quota lowered below what someone
    /// uses already refuses their uploads until they delete files).
    pub(super) fn quota_warnings(&self) -> Vec<String> {
        let roles: BTreeMap<String, crate::identity::Role> = self
            .inner
            .store
            .users()
            .map(|users| users.into_iter().map(|u| (u.name, u.role)).collect())
            .unwrap_or_default();
        let book = self.book();
        let owners: std::collections::BTreeSet<&String> = book.owners.values().collect();
        owners
            .into_iter()
            .filter_map(|owner| {
                let role = roles
                    .get(owner)
                    .copied()
                    .unwrap_or(crate::identity::Role::User);
                let quota = self.inner.config.limits.disk_quota(owner, role)?;
                let used = book.owner_used(owner);
                (used >= quota).then(|| {
                    format!(
                        "{owner} uses {} of a disk quota of {} ([limits] disk): their uploads are refused until they delete files",
                        crate::limits::size(used),
                        crate::limits::size(quota)
                    )
                })
            })
            .collect()
    }

    /// `bytes` were uploaded into the session's home through octod.
    pub fn disk_added(&self, id: &SessionId, bytes: u64) {
        let mut book = self.book();
        let added = book.added.entry(id.clone()).or_default();
        *added = added.saturating_add(bytes);
    }

    /// A session's disk figures, with its owner's quota.
    pub async fn disk_facts(&self, id: &SessionId, owner: &str) -> DiskFacts {
        let quota = self
            .disk_quota(owner)
            .await
            .inspect_err(|e| tracing::warn!("the disk quota of {owner}: {e}"))
            .ok()
            .flatten();
        let warn = self.inner.config.limits.disk.warn_percent;
        let book = self.book();
        let owner_used = book.owner_used(owner);
        DiskFacts {
            used: book.used(id),
            measured_at: book.measured.get(id).map(|m| m.at),
            owner_used,
            quota,
            level: crate::disk::level(owner_used, quota, warn),
        }
    }

    /// Every session's home size (for `/metrics`): the last measurement plus uploads since.
    pub fn disk_sizes(&self) -> BTreeMap<SessionId, u64> {
        let book = self.book();
        book.owners
            .keys()
            .filter_map(|id| Some((id.clone(), book.used(id)?)))
            .collect()
    }

    /// One step of the background measurement: refreshes the owners, measures the running
    /// session that is most due ([`crate::disk::next_to_measure`]), then writes or removes the
    /// quota notice in each running session whose owner's level changed. Returns the session
    /// measured, if any.
    pub async fn disk_tick(&self) -> Result<Option<SessionId>, EngineError> {
        let records = self.list().await?;
        let running: Vec<_> = records
            .iter()
            .filter(|r| r.state == SessionState::Running && r.spec.desired == DesiredState::Running)
            .collect();
        let due = {
            let mut book = self.book();
            book.owners = records
                .iter()
                .map(|r| (r.spec.id.clone(), r.spec.owner.clone()))
                .collect();
            let DiskBook {
                measured,
                added,
                owners,
                noticed,
                tried,
            } = &mut *book;
            measured.retain(|id, _| owners.contains_key(id));
            added.retain(|id, _| owners.contains_key(id));
            noticed.retain(|id, _| running.iter().any(|r| &r.spec.id == id));
            tried.retain(|id, _| owners.contains_key(id));
            for (id, m) in measured.iter() {
                let at = tried.entry(id.clone()).or_insert(m.at);
                *at = (*at).max(m.at);
            }
            let now = SystemTime::now();
            let due = crate::disk::next_to_measure(
                running.iter().map(|r| &r.spec.id),
                tried,
                now,
                self.inner.config.limits.disk.measure_every,
            )
            .cloned();
            if let Some(id) = &due {
                tried.insert(id.clone(), now);
            }
            due
        };
        if let Some(id) = &due {
            self.measure_home(id).await;
        }
        let warn = self.inner.config.limits.disk.warn_percent;
        for record in running {
            let owner = &record.spec.owner;
            let quota = self.disk_quota(owner).await?;
            let (used, last) = {
                let book = self.book();
                (
                    book.owner_used(owner),
                    book.noticed.get(&record.spec.id).copied(),
                )
            };
            let level = crate::disk::level(used, quota, warn);
            if last == Some(level) {
                continue;
            }
            let text = quota.and_then(|q| crate::disk::notice(used, q, level));
            let id = &record.spec.id;
            let token = self.inner.store.run({
                let id = id.clone();
                move |s| s.token(&id)
            });
            let token = token.await?;
            match crate::disk::set_notice(&self.socket_path(id), &token, text).await {
                Ok(()) => {
                    tracing::info!(session = %id, owner = %owner, level = level.as_str(), "disk quota notice set");
                    self.book().noticed.insert(id.clone(), level);
                }
                Err(error) => tracing::info!(session = %id, "{error}"),
            }
        }
        Ok(due)
    }

    /// Walks one session's home through its gateway and records the size.
    async fn measure_home(&self, id: &SessionId) {
        let key = id.clone();
        let token = match self.inner.store.run(move |s| s.token(&key)).await {
            Ok(token) => token,
            Err(error) => {
                tracing::debug!(session = %id, "{error}");
                return;
            }
        };
        let started = std::time::Instant::now();
        match crate::disk::measure(&self.socket_path(id), &token).await {
            Ok(bytes) => {
                let now = SystemTime::now();
                {
                    let mut book = self.book();
                    book.measured
                        .insert(id.clone(), Measured { bytes, at: now });
                    book.added.remove(id);
                }
                tracing::debug!(session = %id, bytes, took_ms = started.elapsed().as_millis(), "home measured");
                let key = id.clone();
                if let Err(error) = self
                    .inner
                    .store
                    .run(move |s| s.record_disk(&key, bytes, now))
                    .await
                {
                    tracing::warn!(session = %id, "{error}");
                }
            }
            Err(error) => {
                // Not measured: tried again at the next tick, since its measurement is due.
                tracing::info!(session = %id, "{error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_sums_a_users_homes_with_what_came_in_since() {
        let id = |s: &str| s.parse::<SessionId>().expect("id");
        let mut book = DiskBook::default();
        let at = SystemTime::UNIX_EPOCH;
        for (s, owner) in [("a", "alice"), ("b", "alice"), ("c", "bob"), ("d", "alice")] {
            book.owners.insert(id(s), owner.to_owned());
        }
        book.measured.insert(id("a"), Measured { bytes: 100, at });
        book.measured.insert(id("b"), Measured { bytes: 20, at });
        book.measured.insert(id("c"), Measured { bytes: 1000, at });
        book.added.insert(id("b"), 5);
        book.added.insert(id("d"), 7);
        assert_eq!(book.used(&id("a")), Some(100));
        assert_eq!(book.used(&id("b")), Some(25));
        assert_eq!(book.used(&id("d")), Some(7));
        assert_eq!(book.used(&id("e")), None);
        assert_eq!(book.owner_used("alice"), 132);
        assert_eq!(book.owner_used("bob"), 1000);
        assert_eq!(book.owner_used("carol"), 0);
    }
}
