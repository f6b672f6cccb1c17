//! systemd control over D-Bus (zbus): the `octo` user's manager loads, starts, stops and
//! restarts session units; jobs are awaited through `JobRemoved`.
//!
//! The proxies declare only the calls octod makes. To wait for a job: `Subscribe()` once,
//! open the `JobRemoved` stream, make the call, then match the returned job path — the stream
//! is open before the call, so a job that finishes at once is not missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// Errors from systemd control.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("connecting to the systemd user manager at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: zbus::Error,
    },
    #[error("{action} {unit}: {source}")]
    Call {
        action: &'static str,
        unit: String,
        #[source]
        source: zbus::Error,
    },
    #[error("{action} {unit}: job {result}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    JobFailed {
        action: &'static str,
        unit: String,
        /// systemd's job result: `failed`, `timeout`, `canceled`, `dependency`, `skipped`.
        result: String,
        reason: Option<String>,
    },
    #[error("{action} {unit}: no answer from systemd within {timeout:?}")]
    Timeout {
        action: &'static str,
        unit: String,
        timeout: Duration,
    },
    #[error("daemon-reload of the user manager: {0}")]
    Reload(#[source] zbus::Error),
    #[error("reading the state of {unit}: {source}")]
    Property {
        unit: String,
        #[source]
        source: zbus::Error,
    },
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
pub trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, Vec<(&str, Value<'_>)>)],
    ) -> zbus::Result<OwnedObjectPath>;
    /// Units with their state: (name, description, load, active, sub, following, path, job
    /// id, job type, job path).
    #[allow(clippy::type_complexity)]
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<
        Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>,
    >;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
pub trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn fragment_path(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
pub trait Service {
    /// `success`, `exit-code`, `signal`, `timeout`, `core-dump`, `watchdog`, `protocol`, …
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
}

/// A state enum read from one of systemd's D-Bus strings: the values octod acts on are
/// variants, any other value is kept as `Other` (systemd adds values over time).
macro_rules! unit_state_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value octod does not act on, as systemd spelled it.
            Other(String),
        }

        impl $name {
            /// systemd's spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

unit_state_enum! {
    /// A unit's `ActiveState`.
    ActiveState {
        Active = "active",
        Reloading = "reloading",
        Inactive = "inactive",
        Failed = "failed",
        Activating = "activating",
        Deactivating = "deactivating",
    }
}

unit_state_enum! {
    /// A unit's `SubState` (its values depend on the unit type).
    SubState {
        /// A `RemainAfterExit=` service whose process ended successfully.
        Exited = "exited",
    }
}

/// A unit's state as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, `error`, `masked`, …
    pub load: String,
    pub active: ActiveState,
    pub sub: SubState,
    /// The service result (`success`, `exit-code`, `timeout`, …); empty for non-services.
    pub result: String,
}

impl UnitState {
    pub fn is_active(&self) -> bool {
        self.active == ActiveState::Active
    }
    pub fn is_failed(&self) -> bool {
        self.active == ActiveState::Failed
    }
    pub fn exists(&self) -> bool {
        self.load != "not-found"
    }
}

/// A connection to one systemd manager (the `octo` user's), with a coalescing daemon-reload.
#[derive(Debug, Clone)]
pub struct Systemd {
    connection: zbus::Connection,
    manager: ManagerProxy<'static>,
    reload: Arc<Reloader>,
}

#[derive(Debug, Default)]
struct Reloader {
    /// Incremented by every caller that wants its file changes seen.
    requested: AtomicU64,
    /// The highest request number that a finished reload covers.
    completed: tokio::sync::Mutex<u64>,
}

/// The job mode for start/stop: replace conflicting queued jobs.
const MODE: &str = "replace";

impl Systemd {
    /// Connects to the user manager of the current user: `DBUS_SESSION_BUS_ADDRESS`, else
    /// `unix:path=$XDG_RUNTIME_DIR/bus`, else `/run/user/<uid>/bus`.
    pub async fn connect_user() -> Result<Self, SystemdError> {
        let address = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_else(|_| {
            let runtime = std::env::var("XDG_RUNTIME_DIR")
                .unwrap_or_else(|_| format!("/run/user/{}", nix::unistd::getuid().as_raw()));
            format!("unix:path={runtime}/bus")
        });
        Self::connect(&address).await
    }

    /// Connects to the manager at a D-Bus address and subscribes to its signals.
    pub async fn connect(address: &str) -> Result<Self, SystemdError> {
        let err = |source| SystemdError::Connect {
            address: address.to_owned(),
            source,
        };
        let connection = zbus::connection::Builder::address(address)
            .map_err(err)?
            .build()
            .await
            .map_err(err)?;
        let manager = ManagerProxy::new(&connection).await.map_err(err)?;
        manager.subscribe().await.map_err(err)?;
        Ok(Self {
            connection,
            manager,
            reload: Arc::default(),
        })
    }

    /// The underlying connection, for other proxies.
    pub fn connection(&self) -> &zbus::Connection {
        &self.connection
    }

    /// daemon-reload, coalesced: callers that asked while a reload was pending share the next
    /// one. Returns once a reload that started after this call has finished.
    pub async fn reload(&self) -> Result<(), SystemdError> {
        let mine = self.reload.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut completed = self.reload.completed.lock().await;
        if *completed >= mine {
            return Ok(());
        }
        let covers = self.reload.requested.load(Ordering::SeqCst);
        self.manager.reload().await.map_err(SystemdError::Reload)?;
        *completed = covers;
        Ok(())
    }

    /// Starts a unit and waits for its job (for `Notify=healthy`: until it is healthy).
    pub async fn start(&self, unit: &str, timeout: Duration) -> Result<(), SystemdError> {
        self.job("starting", unit, timeout, |m, u| async move {
            m.start_unit(&u, MODE).await
        })
        .await
    }

    /// Stops a unit and waits for its job.
    pub async fn stop(&self, unit: &str, timeout: Duration) -> Result<(), SystemdError> {
        self.job("stopping", unit, timeout, |m, u| async move {
            m.stop_unit(&u, MODE).await
        })
        .await
    }

    /// Restarts a unit and waits for its job.
    pub async fn restart(&self, unit: &str, timeout: Duration) -> Result<(), SystemdError> {
        self.job("restarting", unit, timeout, |m, u| async move {
            m.restart_unit(&u, MODE).await
        })
        .await
    }

    /// Starts a transient service (long work such as image builds runs under systemd, not as
    /// a child of octod) and returns once its start job is done.
    pub async fn start_transient_service(
        &self,
        unit: &str,
        properties: Vec<(&'static str, OwnedValue)>,
        timeout: Duration,
    ) -> Result<(), SystemdError> {
        self.job("starting", unit, timeout, |m, u| async move {
            let props: Vec<(&str, Value<'_>)> = properties
                .iter()
                .map(|(k, v)| (*k, Value::from(v.clone())))
                .collect();
            m.start_transient_unit(&u, "fail", &props, &[]).await
        })
        .await
    }

    async fn job<F, Fut>(
        &self,
        action: &'static str,
        unit: &str,
        timeout: Duration,
        call: F,
    ) -> Result<(), SystemdError>
    where
        F: FnOnce(ManagerProxy<'static>, String) -> Fut,
        Fut: Future<Output = zbus::Result<OwnedObjectPath>>,
    {
        let call_err = |source| SystemdError::Call {
            action,
            unit: unit.to_owned(),
            source,
        };
        // Open the stream before the call so that an immediate JobRemoved is not missed.
        let mut removed = self.manager.receive_job_removed().await.map_err(call_err)?;
        let job = call(self.manager.clone(), unit.to_owned())
            .await
            .map_err(call_err)?;
        let wait = async {
            while let Some(signal) = removed.next().await {
                let Ok(args) = signal.args() else { continue };
                if args.job == job {
                    return Some(args.result);
                }
            }
            None
        };
        let result = match tokio::time::timeout(timeout, wait).await {
            Err(_) => {
                return Err(SystemdError::Timeout {
                    action,
                    unit: unit.to_owned(),
                    timeout,
                });
            }
            Ok(None) => "lost (the bus connection closed)".to_owned(),
            Ok(Some(result)) => result,
        };
        if result == "done" {
            return Ok(());
        }
        let reason = self.failure_reason(unit).await;
        Err(SystemdError::JobFailed {
            action,
            unit: unit.to_owned(),
            result,
            reason: Some(reason),
        })
    }

    /// The unit's state; a unit systemd does not know reads as `not-found`/`inactive`.
    pub async fn unit_state(&self, unit: &str) -> Result<UnitState, SystemdError> {
        let err = |source| SystemdError::Property {
            unit: unit.to_owned(),
            source,
        };
        let path = self.manager.load_unit(unit).await.map_err(err)?;
        let proxy = UnitProxy::builder(&self.connection)
            .path(path.clone())
            .map_err(err)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(err)?;
        let load = proxy.load_state().await.map_err(err)?;
        let active = proxy.active_state().await.map_err(err)?;
        let sub = proxy.sub_state().await.map_err(err)?;
        let result = if unit.ends_with(".service") && load != "not-found" {
            let service = ServiceProxy::builder(&self.connection)
                .path(path)
                .map_err(err)?
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
                .map_err(err)?;
            service.result().await.unwrap_or_default()
        } else {
            String::new()
        };
        Ok(UnitState {
            load,
            active: active.as_str().into(),
            sub: sub.as_str().into(),
            result,
        })
    }

    /// The `(unit, result)` of every job that ends from now on; the reconciler reacts to
    /// session units whose jobs end in anything but `done`.
    pub async fn job_results(
        &self,
    ) -> Result<futures_util::stream::BoxStream<'static, (String, String)>, SystemdError> {
        let stream =
            self.manager
                .receive_job_removed()
                .await
                .map_err(|source| SystemdError::Call {
                    action: "watching",
                    unit: "jobs".to_owned(),
                    source,
                })?;
        Ok(stream
            .filter_map(|signal| async move { signal.args().ok().map(|a| (a.unit, a.result)) })
            .boxed())
    }

    /// A unit's `ActiveState` as it changes (from its `PropertiesChanged` signals), starting
    /// with the current value. The reconciler watches session units with it.
    pub async fn watch_active_state(
        &self,
        unit: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, ActiveState>, SystemdError> {
        let err = |source| SystemdError::Property {
            unit: unit.to_owned(),
            source,
        };
        let path = self.manager.load_unit(unit).await.map_err(err)?;
        let proxy = UnitProxy::builder(&self.connection)
            .path(path)
            .map_err(err)?
            .build()
            .await
            .map_err(err)?;
        let changes = proxy.receive_active_state_changed().await;
        Ok(changes
            .filter_map(|change| async move { change.get().await.ok().map(|s| s.as_str().into()) })
            .boxed())
    }

    /// Units matching glob patterns (e.g. `octo-*.service`) with their active state.
    pub async fn list_units(
        &self,
        patterns: &[&str],
    ) -> Result<HashMap<String, ActiveState>, SystemdError> {
        let units = self
            .manager
            .list_units_by_patterns(&[], patterns)
            .await
            .map_err(|source| SystemdError::Call {
                action: "listing",
                unit: patterns.join(" "),
                source,
            })?;
        Ok(units
            .into_iter()
            .map(|u| (u.0, u.3.as_str().into()))
            .collect())
    }

    /// Forgets a failed unit's state so a later start begins clean.
    pub async fn reset_failed(&self, unit: &str) -> Result<(), SystemdError> {
        match self.manager.reset_failed_unit(unit).await {
            Ok(()) => Ok(()),
            // Not loaded or not failed: nothing to reset.
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str().ends_with("NoSuchUnit")
                    || name.as_str().ends_with("NotFailed") =>
            {
                Ok(())
            }
            Err(source) => Err(SystemdError::Call {
                action: "resetting",
                unit: unit.to_owned(),
                source,
            }),
        }
    }

    /// Why a unit failed: its service result and the last lines of its journal.
    pub async fn failure_reason(&self, unit: &str) -> String {
        let result = self.unit_state(unit).await.map_or_else(
            |e| e.to_string(),
            |s| format!("unit {} ({}), result {}", s.active, s.sub, s.result),
        );
        let journal = crate::journal::last_lines(unit, 10).await;
        if journal.is_empty() {
            result
        } else {
            format!("{result}; last log lines:\n{journal}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, active: &ActiveState, sub: &SubState) {
        assert_eq!(&ActiveState::from(text), active);
        assert_eq!(&SubState::from(text), sub);
        // Read and written back unchanged, named or not.
        assert_eq!(active.to_string(), text);
        assert_eq!(sub.as_str(), text);
    }

    #[test]
    fn unit_states_are_read_from_systemds_strings() {
        let other = |s: &str| (ActiveState::Other(s.into()), SubState::Other(s.into()));
        check("active", &ActiveState::Active, &other("active").1);
        check("reloading", &ActiveState::Reloading, &other("reloading").1);
        check("inactive", &ActiveState::Inactive, &other("inactive").1);
        check("failed", &ActiveState::Failed, &other("failed").1);
        check(
            "activating",
            &ActiveState::Activating,
            &other("activating").1,
        );
        check(
            "deactivating",
            &ActiveState::Deactivating,
            &other("deactivating").1,
        );
        check("exited", &other("exited").0, &SubState::Exited);
        let (active, sub) = other("maintenance");
        check("maintenance", &active, &sub);
    }
}
