//! The reconciler's decisions as a pure table: for what the store says about a session and
//! what systemd says about its unit, the one [`Action`] to take. No IO here; `reconcile.rs`
//! reads the facts, asks [`plan`] and does what it says.
//!
//! The crash-recovery rows are ordinary rows: a killed octod leaves a record in `creating`,
//! `starting`, `stopping` or `deleting` (each operation records its intent before acting), and
//! the table finishes it from the desired state and the unit's state alone.

use std::time::{Duration, SystemTime};

use crate::session::{DesiredState, SessionState};
use crate::systemd::ActiveState;

/// What the reconciler knows of a session before it asks systemd.
#[derive(Debug, Clone, Copy)]
pub struct Session<'a> {
    pub state: &'a SessionState,
    pub desired: DesiredState,
    /// An operation on it is in flight in this octod.
    pub busy: bool,
}

/// What to do with one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: it is as it should be, or it is someone else's to change.
    Leave,
    /// Read the unit's `ActiveState`, then plan again with it.
    ReadUnit,
    /// Run the delete operation again: it was interrupted.
    FinishDelete,
    /// Resume it: it should run and does not.
    Start,
    /// Stop it: it should not run and does.
    Stop,
    /// Record `running`: the unit runs.
    MarkRunning,
    /// Record `failed` with the unit's result and journal as the reason.
    MarkFailed,
    /// Record `stopped`: the unit is down, as wanted.
    MarkStopped,
    /// An idle session's unit is up: a connection to its socket woke it (systemd started it,
    /// not octod). Record `running` with desired running, and render `[Install]` again so that
    /// it comes back after a reboot.
    MarkWoken,
}

/// The reconciler's decision for a session; `unit` is its unit's `ActiveState`, `None` while
/// not read (it is read only when the decision needs it).
pub fn plan(session: Session<'_>, unit: Option<&ActiveState>) -> Action {
    use ActiveState as A;
    use SessionState as S;
    let failed = matches!(session.state, S::Failed(_));
    if session.busy {
        // The operation in flight decides; it records its own outcome.
        return Action::Leave;
    }
    if *session.state == S::Deleting {
        return Action::FinishDelete;
    }
    let Some(unit) = unit else {
        return Action::ReadUnit;
    };
    match (session.desired, unit) {
        (DesiredState::Running, A::Active) if *session.state == S::Running => Action::Leave,
        (DesiredState::Running, A::Active) => Action::MarkRunning,
        // On its way up (for an idle session: waking; the unit's next change brings the
        // reconciler back).
        (DesiredState::Running | DesiredState::Idle, A::Activating | A::Reloading) => Action::Leave,
        (DesiredState::Running, A::Failed) if failed => Action::Leave,
        (DesiredState::Running, A::Failed) => Action::MarkFailed,
        // Inactive or deactivating: it should run. A session that failed is left for its user
        // to resume, not restarted in a loop.
        (DesiredState::Running, _) if failed => Action::Leave,
        (DesiredState::Running, _) => Action::Start,
        (DesiredState::Idle, A::Active) => Action::MarkWoken,
        (DesiredState::Stopped, A::Active | A::Activating | A::Reloading) => Action::Stop,
        // Down, as wanted (an idle session's socket still listens).
        (DesiredState::Stopped | DesiredState::Idle, _)
            if matches!(
                session.state,
                S::Running | S::Starting | S::Stopping | S::Creating
            ) =>
        {
            Action::MarkStopped
        }
        (DesiredState::Stopped | DesiredState::Idle, _) => Action::Leave,
    }
}

/// Whether a session unit's change to `state` behind our back calls for a pass at once: it
/// failed or went down, or it came up (an idle session woken by a connection).
pub fn unit_change_wakes(state: &ActiveState) -> bool {
    matches!(
        state,
        ActiveState::Failed | ActiveState::Inactive | ActiveState::Active
    )
}

/// Whether the pass starts the session's socket when it does not listen (`socket` is the
/// socket unit's `ActiveState`): an idle session is woken through its socket, so it must
/// listen (after an upgrade from units without sockets, or a socket stopped by hand). A
/// running session's socket comes with its service (`Requires=`); a stopped one's stays down.
pub fn starts_socket(session: Session<'_>, socket: &ActiveState) -> bool {
    session.desired == DesiredState::Idle
        && !session.busy
        && *session.state != SessionState::Deleting
        && !matches!(
            socket,
            ActiveState::Active | ActiveState::Activating | ActiveState::Reloading
        )
}

/// Whether the pass restarts a session after rewriting its units: its container's unit
/// changed beyond `[Install]` (`container_changed`, e.g. octod was upgraded from units that
/// published ports to units with a socket) while its container runs, so the container is
/// not what its unit says. Once: the next pass finds the unit unchanged. Only a session
/// running as wanted and left alone; a stopped or idle one starts from the new unit anyway.
pub fn restarts_after_rewrite(
    session: Session<'_>,
    container_changed: bool,
    unit: &ActiveState,
) -> bool {
    container_changed
        && !session.busy
        && session.desired == DesiredState::Running
        && *session.state == SessionState::Running
        && *unit == ActiveState::Active
}

/// Whether the pass rewrites the session's unit files: not while it is being deleted (the
/// delete removes them) nor while an operation writes them itself.
pub fn writes_units(session: Session<'_>) -> bool {
    !session.busy && *session.state != SessionState::Deleting
}

/// Whether idle stop may stop the session (once idle for long enough): it runs as wanted and
/// nothing else is being done to it. It becomes desired `idle`: its socket keeps listening.
pub fn may_idle_stop(session: Session<'_>) -> bool {
    session.desired == DesiredState::Running
        && *session.state == SessionState::Running
        && !session.busy
}

/// What a running session is doing, as it said when asked ([`crate::agent`]): no answer
/// counts as nothing (the session does not answer, or its opencode is not up), so a broken
/// session cannot keep itself running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Its agent is in a turn (or waits on a permission prompt or a question).
    pub agent: bool,
    /// A command runs in the foreground of one of its terminals.
    pub terminal: bool,
}

/// Whether a session idle by its traffic is kept running by its work: an agent in a turn, a
/// command running in a terminal. A kept session's activity is recorded, so that it stops no
/// sooner than the idle timeout after the work ends.
pub fn work_keeps_running(work: Work) -> bool {
    work.agent || work.terminal
}

/// How long a session has been idle at `now`: since its last activity or, if later or there
/// was none, its last state change (activity before a resume does not count).
pub fn idle_for(
    last_activity: Option<SystemTime>,
    state_changed_at: SystemTime,
    now: SystemTime,
) -> Duration {
    let last = last_activity
        .unwrap_or(state_changed_at)
        .max(state_changed_at);
    now.duration_since(last).unwrap_or_default()
}

/// What keeps a running session from its idle stop now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptBy {
    /// Its agent is in a turn (or waits on a permission prompt or a question).
    Agent,
    /// A command runs in the foreground of one of its terminals.
    Terminal,
    /// Its user asked to keep it running until a time that has not come.
    KeepAlive,
    /// It was used (chat, files, an open terminal, previews) within the idle time.
    Activity,
}

/// When the idle stop will stop a running session if nothing changes, and what keeps it
/// running now (empty: it is due, and the next pass stops it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleOutlook {
    pub stops_at: SystemTime,
    pub kept_by: Vec<KeptBy>,
}

/// The idle stop's outlook for a session that [`may_idle_stop`], with `idle` the idle time:
/// it stops an idle time after its last activity (or state change, [`idle_for`]), no sooner
/// than an idle time after work (a turn, a terminal's command) seen in progress now, and not
/// before a keep-alive ends.
/// Pure.
pub fn idle_outlook(
    idle: Duration,
    last_activity: Option<SystemTime>,
    state_changed_at: SystemTime,
    keep_alive_until: Option<SystemTime>,
    work: Work,
    now: SystemTime,
) -> IdleOutlook {
    let last = now
        .checked_sub(idle_for(last_activity, state_changed_at, now))
        .unwrap_or(now);
    let mut stops_at = last + idle;
    let mut kept_by = Vec::new();
    if work.agent {
        kept_by.push(KeptBy::Agent);
    }
    if work.terminal {
        kept_by.push(KeptBy::Terminal);
    }
    if work_keeps_running(work) {
        stops_at = stops_at.max(now + idle);
    }
    if let Some(until) = keep_alive_until.filter(|until| *until > now) {
        kept_by.push(KeptBy::KeepAlive);
        stops_at = stops_at.max(until);
    }
    if last + idle > now {
        kept_by.push(KeptBy::Activity);
    }
    IdleOutlook { stops_at, kept_by }
}

/// Whether a keep-alive holds the session at `now`.
pub fn kept_alive(keep_alive_until: Option<SystemTime>, now: SystemTime) -> bool {
    keep_alive_until.is_some_and(|until| until > now)
}

/// A running session that could be idle-stopped to make room for a start that admission
/// control refused.
#[derive(Debug, Clone, Copy)]
pub struct RoomCandidate<'a> {
    pub session: Session<'a>,
    pub id: &'a crate::session::SessionId,
    pub owner: &'a str,
    /// How long it has been without activity ([`idle_for`]).
    pub idle_for: Duration,
}

/// The sessions that could be idle-stopped to make room, in the order to try them: each
/// running as wanted and left alone, idle for at least `idle_after`, not the one being
/// started, and for a user at their own maximum only that user's (stopping another user's
/// would not help); the longest idle first (then the lowest id, so that concurrent starts pick
/// the same one and join its stop). The caller skips those whose agent is in a turn.
pub fn rooms_to_make<'a>(
    candidates: &[RoomCandidate<'a>],
    starting: &crate::session::SessionId,
    refusal: &crate::limits::Refusal,
    idle_after: Duration,
) -> Vec<&'a crate::session::SessionId> {
    let owner = match refusal {
        // Stopping a session frees no disk.
        crate::limits::Refusal::LowStateDisk { .. } => return Vec::new(),
        crate::limits::Refusal::UserFull { owner, .. } => Some(owner.as_str()),
        crate::limits::Refusal::HostFull { .. } | crate::limits::Refusal::LowMemory { .. } => None,
    };
    let mut fit: Vec<&RoomCandidate<'a>> = candidates
        .iter()
        .filter(|c| {
            c.id != starting
                && may_idle_stop(c.session)
                && *c.session.state == SessionState::Running
                && c.idle_for >= idle_after
                && owner.is_none_or(|o| o == c.owner)
        })
        .collect();
    fit.sort_by(|a, b| b.idle_for.cmp(&a.idle_for).then(a.id.cmp(b.id)));
    fit.into_iter().map(|c| c.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{
        FinishDelete, Leave, MarkFailed, MarkRunning, MarkStopped, MarkWoken, ReadUnit, Start, Stop,
    };
    use DesiredState::{Idle as WantIdle, Running as WantRunning, Stopped as WantStopped};

    fn failed() -> SessionState {
        SessionState::Failed("unit failed".into())
    }

    const EVERY_UNIT_STATE: [ActiveState; 6] = [
        ActiveState::Active,
        ActiveState::Reloading,
        ActiveState::Inactive,
        ActiveState::Failed,
        ActiveState::Activating,
        ActiveState::Deactivating,
    ];

    fn every_state() -> [SessionState; 7] {
        [
            SessionState::Creating,
            SessionState::Starting,
            SessionState::Running,
            SessionState::Stopping,
            SessionState::Stopped,
            SessionState::Deleting,
            failed(),
        ]
    }

    /// Plans for `(record state, desired, busy, unit)` and expects `action`.
    fn check(
        state: &SessionState,
        desired: DesiredState,
        busy: bool,
        unit: Option<&ActiveState>,
        action: Action,
    ) {
        let session = Session {
            state,
            desired,
            busy,
        };
        assert_eq!(
            plan(session, unit),
            action,
            "{state:?}, desired {desired:?}, busy {busy}, unit {unit:?}"
        );
    }

    /// [`check`] for a session that is not busy, with each unit state in `units`.
    fn check_units(
        state: &SessionState,
        desired: DesiredState,
        units: &[ActiveState],
        action: Action,
    ) {
        for unit in units {
            check(state, desired, false, Some(unit), action);
        }
    }

    fn other() -> ActiveState {
        ActiveState::Other("maintenance".into())
    }

    #[test]
    fn a_busy_session_is_left_to_its_operation() {
        for state in every_state() {
            for desired in [WantRunning, WantIdle, WantStopped] {
                check(&state, desired, true, None, Leave);
                for unit in &EVERY_UNIT_STATE {
                    check(&state, desired, true, Some(unit), Leave);
                }
            }
        }
    }

    #[test]
    fn crash_while_deleting_finishes_the_delete() {
        for desired in [WantRunning, WantIdle, WantStopped] {
            check(&SessionState::Deleting, desired, false, None, FinishDelete);
            check_units(
                &SessionState::Deleting,
                desired,
                &EVERY_UNIT_STATE,
                FinishDelete,
            );
        }
    }

    #[test]
    fn the_unit_is_read_before_any_other_decision() {
        for state in every_state() {
            if state == SessionState::Deleting {
                continue;
            }
            for desired in [WantRunning, WantIdle, WantStopped] {
                check(&state, desired, false, None, ReadUnit);
            }
        }
    }

    #[test]
    fn running_as_wanted_is_left() {
        check(
            &SessionState::Running,
            WantRunning,
            false,
            Some(&ActiveState::Active),
            Leave,
        );
    }

    #[test]
    fn an_active_unit_that_should_run_is_marked_running() {
        for state in [
            SessionState::Starting,
            SessionState::Stopping,
            SessionState::Stopped,
            failed(),
        ] {
            check_units(&state, WantRunning, &[ActiveState::Active], MarkRunning);
        }
    }

    #[test]
    fn crash_while_creating_with_the_unit_up_marks_it_running() {
        check_units(
            &SessionState::Creating,
            WantRunning,
            &[ActiveState::Active],
            MarkRunning,
        );
    }

    #[test]
    fn a_unit_on_its_way_up_is_left() {
        for state in every_state() {
            if state == SessionState::Deleting {
                continue;
            }
            check_units(
                &state,
                WantRunning,
                &[ActiveState::Activating, ActiveState::Reloading],
                Leave,
            );
        }
    }

    #[test]
    fn a_failed_unit_that_should_run_is_marked_failed() {
        for state in [
            SessionState::Creating,
            SessionState::Starting,
            SessionState::Running,
            SessionState::Stopping,
            SessionState::Stopped,
        ] {
            check_units(&state, WantRunning, &[ActiveState::Failed], MarkFailed);
        }
    }

    #[test]
    fn a_failed_unit_already_marked_failed_is_left() {
        check_units(&failed(), WantRunning, &[ActiveState::Failed], Leave);
    }

    #[test]
    fn a_unit_down_that_should_run_is_started() {
        for state in [
            SessionState::Running,
            SessionState::Stopping,
            SessionState::Stopped,
        ] {
            check_units(
                &state,
                WantRunning,
                &[ActiveState::Inactive, ActiveState::Deactivating, other()],
                Start,
            );
        }
    }

    #[test]
    fn crash_while_creating_or_starting_starts_it() {
        for state in [SessionState::Creating, SessionState::Starting] {
            check_units(
                &state,
                WantRunning,
                &[ActiveState::Inactive, ActiveState::Deactivating, other()],
                Start,
            );
        }
    }

    #[test]
    fn a_failed_session_is_not_restarted() {
        check_units(
            &failed(),
            WantRunning,
            &[ActiveState::Inactive, ActiveState::Deactivating, other()],
            Leave,
        );
    }

    #[test]
    fn a_unit_up_that_should_not_run_is_stopped() {
        for state in every_state() {
            if state == SessionState::Deleting {
                continue;
            }
            check_units(
                &state,
                WantStopped,
                &[
                    ActiveState::Active,
                    ActiveState::Activating,
                    ActiveState::Reloading,
                ],
                Stop,
            );
        }
    }

    #[test]
    fn a_unit_down_as_wanted_is_marked_stopped() {
        for state in [SessionState::Running, SessionState::Starting] {
            check_units(
                &state,
                WantStopped,
                &[
                    ActiveState::Inactive,
                    ActiveState::Failed,
                    ActiveState::Deactivating,
                    other(),
                ],
                MarkStopped,
            );
        }
    }

    #[test]
    fn crash_while_stopping_or_creating_marks_it_stopped() {
        for state in [SessionState::Stopping, SessionState::Creating] {
            check_units(
                &state,
                WantStopped,
                &[
                    ActiveState::Inactive,
                    ActiveState::Failed,
                    ActiveState::Deactivating,
                    other(),
                ],
                MarkStopped,
            );
        }
    }

    #[test]
    fn stopped_or_failed_and_down_as_wanted_is_left() {
        for state in [SessionState::Stopped, failed()] {
            check_units(
                &state,
                WantStopped,
                &[
                    ActiveState::Inactive,
                    ActiveState::Failed,
                    ActiveState::Deactivating,
                    other(),
                ],
                Leave,
            );
        }
    }

    #[test]
    fn a_unit_that_fails_or_goes_down_wakes_the_reconciler() {
        for (state, expected) in [
            (ActiveState::Active, true),
            (ActiveState::Reloading, false),
            (ActiveState::Inactive, true),
            (ActiveState::Failed, true),
            (ActiveState::Activating, false),
            (ActiveState::Deactivating, false),
            (other(), false),
        ] {
            assert_eq!(unit_change_wakes(&state), expected, "{state}");
        }
    }

    #[test]
    fn an_idle_session_whose_unit_came_up_was_woken() {
        for state in every_state() {
            if state == SessionState::Deleting {
                continue;
            }
            check_units(&state, WantIdle, &[ActiveState::Active], MarkWoken);
        }
    }

    #[test]
    fn an_idle_session_waking_is_left() {
        for state in [SessionState::Stopped, SessionState::Running, failed()] {
            check_units(
                &state,
                WantIdle,
                &[ActiveState::Activating, ActiveState::Reloading],
                Leave,
            );
        }
    }

    #[test]
    fn an_idle_session_down_is_left() {
        for state in [SessionState::Stopped, failed()] {
            check_units(
                &state,
                WantIdle,
                &[
                    ActiveState::Inactive,
                    ActiveState::Failed,
                    ActiveState::Deactivating,
                    other(),
                ],
                Leave,
            );
        }
    }

    #[test]
    fn crash_during_an_idle_stop_marks_it_stopped() {
        for state in [
            SessionState::Stopping,
            SessionState::Running,
            SessionState::Starting,
            SessionState::Creating,
        ] {
            check_units(
                &state,
                WantIdle,
                &[ActiveState::Inactive, ActiveState::Failed, other()],
                MarkStopped,
            );
        }
    }

    #[test]
    fn only_an_idle_session_gets_its_socket_started() {
        use ActiveState as A;
        // (desired, busy, record state, socket) → start it
        let check_socket =
            |desired, busy, state: SessionState, socket: ActiveState, expected: bool| {
                let session = Session {
                    state: &state,
                    desired,
                    busy,
                };
                assert_eq!(
                    starts_socket(session, &socket),
                    expected,
                    "{session:?}, socket {socket}"
                );
            };
        check_socket(WantIdle, false, SessionState::Stopped, A::Inactive, true);
        check_socket(WantIdle, false, SessionState::Stopped, A::Failed, true);
        check_socket(WantIdle, false, SessionState::Stopped, other(), true);
        check_socket(WantIdle, false, SessionState::Stopped, A::Active, false);
        check_socket(WantIdle, false, SessionState::Stopped, A::Activating, false);
        check_socket(WantIdle, true, SessionState::Stopped, A::Inactive, false);
        check_socket(WantIdle, false, SessionState::Deleting, A::Inactive, false);
        check_socket(
            WantRunning,
            false,
            SessionState::Running,
            A::Inactive,
            false,
        );
        check_socket(
            WantStopped,
            false,
            SessionState::Stopped,
            A::Inactive,
            false,
        );
    }

    #[test]
    fn a_running_session_whose_container_unit_changed_is_restarted_once() {
        use ActiveState as A;
        use SessionState as S;
        // (container changed, desired, record state, busy, unit) → restart
        let check_restart =
            |changed, desired, state: SessionState, busy, unit: ActiveState, expected: bool| {
                let session = Session {
                    state: &state,
                    desired,
                    busy,
                };
                assert_eq!(
                    restarts_after_rewrite(session, changed, &unit),
                    expected,
                    "changed {changed}, {session:?}, unit {unit}"
                );
            };
        // Upgraded from published ports to a socket while it runs: restart it.
        check_restart(true, WantRunning, S::Running, false, A::Active, true);
        // Unchanged (the pass after the restart), or only [Install]: leave it.
        check_restart(false, WantRunning, S::Running, false, A::Active, false);
        // Not running: it starts from the new unit anyway.
        check_restart(true, WantRunning, S::Running, false, A::Inactive, false);
        check_restart(true, WantRunning, S::Running, false, A::Activating, false);
        check_restart(true, WantRunning, failed(), false, A::Failed, false);
        check_restart(true, WantIdle, S::Stopped, false, A::Inactive, false);
        check_restart(true, WantStopped, S::Stopped, false, A::Inactive, false);
        // An operation is at work on it, or it is mid-transition: not ours.
        check_restart(true, WantRunning, S::Running, true, A::Active, false);
        check_restart(true, WantRunning, S::Starting, false, A::Active, false);
    }

    #[test]
    fn units_are_rewritten_unless_busy_or_deleting() {
        for state in every_state() {
            for busy in [false, true] {
                let session = Session {
                    state: &state,
                    desired: WantRunning,
                    busy,
                };
                let expected = !busy && state != SessionState::Deleting;
                assert_eq!(writes_units(session), expected, "{state:?}, busy {busy}");
            }
        }
    }

    #[test]
    fn only_a_session_running_as_wanted_and_not_busy_is_stopped_when_idle() {
        for state in every_state() {
            for desired in [WantRunning, WantIdle, WantStopped] {
                for busy in [false, true] {
                    let session = Session {
                        state: &state,
                        desired,
                        busy,
                    };
                    let expected =
                        state == SessionState::Running && desired == WantRunning && !busy;
                    assert_eq!(may_idle_stop(session), expected, "{session:?}");
                }
            }
        }
    }

    #[test]
    fn idle_time_counts_from_the_later_of_activity_and_state_change() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        // (last activity, state changed at, now) → idle for
        let check_idle = |activity, changed, now, expected: u64| {
            assert_eq!(
                idle_for(activity, changed, now),
                Duration::from_secs(expected),
                "{activity:?}, {changed:?}, {now:?}"
            );
        };
        check_idle(None, at(10), at(70), 60);
        check_idle(Some(at(30)), at(10), at(70), 40);
        check_idle(Some(at(0)), at(30), at(70), 40);
        // A clock that went back: not idle.
        check_idle(None, at(100), at(0), 0);
    }

    #[test]
    fn room_is_made_by_the_longest_idle_session_that_helps() {
        use crate::limits::Refusal;
        use crate::session::SessionId;
        let running = SessionState::Running;
        let starting = SessionState::Starting;
        let id = |s: &str| s.parse::<SessionId>().expect("id");
        let (a, b, c, d, me) = (id("a"), id("b"), id("c"), id("d"), id("me"));
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let candidate = |id, owner, state, busy, idle| RoomCandidate {
            session: Session {
                state,
                desired: WantRunning,
                busy,
            },
            id,
            owner,
            idle_for: minutes(idle),
        };
        let all = [
            candidate(&a, "alice", &running, false, 30),
            candidate(&b, "bob", &running, false, 50),
            // Busy, or still starting: never.
            candidate(&c, "bob", &running, true, 90),
            candidate(&d, "bob", &starting, false, 90),
            // The session being started itself: never.
            candidate(&me, "alice", &running, false, 99),
        ];
        let host = Refusal::HostFull { running: 5, max: 5 };
        let alice_full = Refusal::UserFull {
            owner: "alice".into(),
            running: 2,
            max: 2,
        };
        assert_eq!(
            rooms_to_make(&all, &me, &host, minutes(10)).first(),
            Some(&&b)
        );
        assert_eq!(
            rooms_to_make(&all, &me, &alice_full, minutes(10)).first(),
            Some(&&a)
        );
        // Nobody idle long enough.
        assert_eq!(rooms_to_make(&all, &me, &host, minutes(60)).first(), None);
        // A tie goes to the lowest id.
        let tied = [
            candidate(&b, "bob", &running, false, 5),
            candidate(&a, "alice", &running, false, 5),
        ];
        assert_eq!(
            rooms_to_make(&tied, &me, &host, Duration::ZERO).first(),
            Some(&&a)
        );
        assert_eq!(
            rooms_to_make(&all, &me, &host, minutes(10)),
            [&b, &a],
            "the longest idle first"
        );
    }

    #[test]
    fn an_agent_in_a_turn_or_a_terminals_command_keeps_a_session_running() {
        let work = |agent, terminal| Work { agent, terminal };
        assert!(work_keeps_running(work(true, false)));
        assert!(work_keeps_running(work(false, true)));
        assert!(work_keeps_running(work(true, true)));
        assert!(!work_keeps_running(Work::default()));
    }

    #[test]
    fn the_idle_outlook_names_what_keeps_a_session_and_when_it_stops() {
        let t = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let idle = Duration::from_secs(600);
        let outlook = |last: Option<u64>, keep: Option<u64>, agent: bool, now: u64| {
            let work = Work {
                agent,
                terminal: false,
            };
            idle_outlook(idle, last.map(t), t(100), keep.map(t), work, t(now))
        };
        // Used 100 s ago: kept by its activity, stops an idle time after it.
        assert_eq!(
            outlook(Some(1000), None, false, 1100),
            IdleOutlook {
                stops_at: t(1600),
                kept_by: vec![KeptBy::Activity]
            }
        );
        // Never used: counts from its last state change; due now.
        assert_eq!(
            outlook(None, None, false, 800),
            IdleOutlook {
                stops_at: t(700),
                kept_by: vec![]
            }
        );
        // An agent in a turn: no sooner than an idle time from now.
        assert_eq!(
            outlook(Some(200), None, true, 5000),
            IdleOutlook {
                stops_at: t(5600),
                kept_by: vec![KeptBy::Agent]
            }
        );
        // A keep-alive until 9000: stops then, unless used later than that allows.
        assert_eq!(
            outlook(Some(4000), Some(9000), false, 5000),
            IdleOutlook {
                stops_at: t(9000),
                kept_by: vec![KeptBy::KeepAlive]
            }
        );
        assert_eq!(
            outlook(Some(8900), Some(9000), true, 8950),
            IdleOutlook {
                stops_at: t(9550),
                kept_by: vec![KeptBy::Agent, KeptBy::KeepAlive, KeptBy::Activity]
            }
        );
        // A command in a terminal, like an agent's turn: no sooner than an idle time from now.
        let terminal = Work {
            agent: false,
            terminal: true,
        };
        assert_eq!(
            idle_outlook(idle, Some(t(200)), t(100), None, terminal, t(5000)),
            IdleOutlook {
                stops_at: t(5600),
                kept_by: vec![KeptBy::Terminal]
            }
        );
        // An expired keep-alive counts for nothing.
        assert_eq!(outlook(Some(100), Some(4000), false, 5000).kept_by, vec![]);
        assert!(kept_alive(Some(t(10)), t(9)));
        assert!(!kept_alive(Some(t(10)), t(10)));
        assert!(!kept_alive(None, t(0)));
    }
}
