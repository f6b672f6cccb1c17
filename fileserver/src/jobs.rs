//! `GET /api/terminal/jobs`: the commands running in the foreground of the session's
//! terminals, so that the idle stop leaves a session alone while a command its user started
//! from the terminal still runs (issue 18, part 4), with no browser open.
//!
//! A terminal's shell is the leader of a session of processes with a controlling terminal;
//! the terminal's foreground process group (`tpgid` in `/proc/<pid>/stat`) is the shell's own
//! group while it waits at its prompt, and the job's group while a command runs in the
//! foreground. So every session leader with a terminal whose foreground group is not its own
//! has a job running; so does one that is no shell at all and holds its terminal itself (a
//! `tmux new-session -d 'make'` pane runs `make` as its leader). That holds for ttyd's shells
//! and for the panes of a `tmux` inside them, which outlive the browser (ttyd hangs up its
//! shell, and the shell's jobs, when the browser goes); the agent's commands run without a
//! terminal and are the agent's business (its turn keeps the session running). Reading
//! `/proc` needs no privilege: `stat` is readable by every user.

use std::io;

use axum::Json;
use serde::Serialize;

use crate::error::ApiError;

/// At most this many processes are looked at (a session's pids are limited far below it).
const MAX_PROCESSES: usize = 100_000;

/// One foreground job, as `GET /api/terminal/jobs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// The job's process group (its leader's pid).
    pub pgid: u32,
    /// The leader's command name (`comm`: at most 15 bytes).
    pub command: String,
}

/// The body of `GET /api/terminal/jobs`.
#[derive(Debug, Serialize)]
pub struct Jobs {
    pub jobs: Vec<Job>,
}

/// The fields of `/proc/<pid>/stat` that tell a terminal's foreground job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub command: String,
    pub pgrp: i64,
    pub session: i64,
    pub tty: i64,
    pub tpgid: i64,
}

/// Parses a `/proc/<pid>/stat` line: `pid (comm) state ppid pgrp session tty_nr tpgid …`; the
/// command may hold spaces and parentheses, so it ends at the last `)`. Pure.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let command = text.get(open + 1..close)?.to_owned();
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace().skip(2);
    let mut next = || rest.next()?.parse::<i64>().ok();
    let (pgrp, session, tty, tpgid) = (next()?, next()?, next()?, next()?);
    Some(Stat {
        pid,
        command,
        pgrp,
        session,
        tty,
        tpgid,
    })
}

/// Shells: a session leader of these holding its own terminal waits at its prompt.
const SHELLS: &[&str] = &[
    "bash", "sh", "dash", "zsh", "fish", "ksh", "mksh", "tcsh", "csh", "ash", "busybox",
];

/// The foreground jobs among `processes`: for every session leader with a controlling
/// terminal whose foreground group is another than its own, that group, named by its leader
/// (or, if the leader is gone, any member); for one that is not a shell and holds its
/// terminal itself, its own group. Sorted by group, each once. Pure.
pub fn foreground_jobs(processes: &[Stat]) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for leader in processes {
        let is_leader = i64::from(leader.pid) == leader.session;
        if !is_leader || leader.tty == 0 || leader.tpgid <= 0 {
            continue;
        }
        if leader.tpgid == leader.pgrp && SHELLS.contains(&leader.command.as_str()) {
            continue;
        }
        let Ok(pgid) = u32::try_from(leader.tpgid) else {
            continue;
        };
        if jobs.iter().any(|j| j.pgid == pgid) {
            continue;
        }
        let named = processes
            .iter()
            .find(|p| p.pid == pgid)
            .or_else(|| processes.iter().find(|p| p.pgrp == leader.tpgid));
        // A group with no process left: the shell is about to take its terminal back.
        let Some(named) = named else {
            continue;
        };
        jobs.push(Job {
            pgid,
            command: named.command.clone(),
        });
    }
    jobs.sort_by_key(|j| j.pgid);
    jobs
}

/// Every process's [`Stat`] under `proc` (processes that end while being read are skipped).
pub fn read_processes(proc: &std::path::Path) -> io::Result<Vec<Stat>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(proc)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        if found.len() >= MAX_PROCESSES {
            break;
        }
        match std::fs::read_to_string(entry.path().join("stat")) {
            Ok(text) => found.extend(parse_stat(&text)),
            Err(e)
                if matches!(e.kind(), io::ErrorKind::NotFound) || e.raw_os_error() == Some(3) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// `GET /api/terminal/jobs`.
pub async fn jobs() -> Result<Json<Jobs>, ApiError> {
    let processes = crate::blocking(|| {
        read_processes(std::path::Path::new("/proc"))
            .map_err(|e| ApiError::internal("reading the session's processes", &e))
    })
    .await?;
    Ok(Json(Jobs {
        jobs: foreground_jobs(&processes),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(pid: u32, command: &str, pgrp: i64, session: i64, tty: i64, tpgid: i64) -> Stat {
        Stat {
            pid,
            command: command.to_owned(),
            pgrp,
            session,
            tty,
            tpgid,
        }
    }

    #[test]
    fn stat_lines_parse_with_any_command_name() {
        let line =
            "4242 (my (odd) cmd) S 1 4242 4242 34816 4300 4194560 120 0 0 0 0 0 0 0 20 0 1 0";
        assert_eq!(
            parse_stat(line),
            Some(stat(4242, "my (odd) cmd", 4242, 4242, 34816, 4300))
        );
        assert_eq!(
            parse_stat("1 (init) S 0 1 1 0 -1 4194560"),
            Some(stat(1, "init", 1, 1, 0, -1))
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
    }

    #[test]
    fn a_shell_at_its_prompt_has_no_job_and_one_running_a_command_has() {
        let ttyd = stat(10, "ttyd", 10, 1, 0, -1);
        let opencode = stat(11, "opencode", 11, 1, 0, -1);
        // A shell at its prompt: its terminal's foreground group is its own.
        let idle = stat(20, "bash", 20, 20, 34816, 20);
        // A shell running `sleep 180 | cat`: the job's group has the terminal.
        let busy = stat(30, "bash", 30, 30, 34817, 31);
        let sleep = stat(31, "sleep", 31, 30, 34817, 31);
        let cat = stat(32, "cat", 31, 30, 34817, 31);
        // A background job of the idle shell does not count.
        let background = stat(21, "make", 21, 20, 34816, 20);
        let all = [ttyd, opencode, idle, busy, sleep, cat, background];
        assert_eq!(
            foreground_jobs(&all),
            vec![Job {
                pgid: 31,
                command: "sleep".into()
            }]
        );
        assert_eq!(foreground_jobs(&all[..3]), vec![]);
        // A tmux pane that runs a command itself, no shell: the command is the job.
        let pane = [stat(40, "make", 40, 40, 34818, 40)];
        assert_eq!(
            foreground_jobs(&pane),
            vec![Job {
                pgid: 40,
                command: "make".into()
            }]
        );
        // The job's leader gone, a member left: named by the member.
        let orphaned = [
            stat(30, "bash", 30, 30, 34817, 31),
            stat(32, "cat", 31, 30, 34817, 31),
        ];
        assert_eq!(foreground_jobs(&orphaned)[0].command, "cat");
        // The whole group gone: nothing (the shell takes the terminal back).
        assert_eq!(foreground_jobs(&orphaned[..1]), vec![]);
    }

    /// A real terminal: `script` gives an interactive bash a pty, as ttyd does; a command
    /// typed into it is its foreground job until it ends.
    #[test]
    fn a_command_typed_into_a_real_terminal_is_its_job_until_it_ends() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut terminal = Command::new("script")
            .args(["-qfec", "bash --norc --noprofile -i", "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("script(1) from util-linux");
        let ours = |marker: &str| {
            let processes = read_processes(std::path::Path::new("/proc")).expect("read /proc");
            foreground_jobs(&processes).into_iter().any(|job| {
                processes
                    .iter()
                    .filter(|p| i64::from(p.pid) == i64::from(job.pgid))
                    .any(|p| p.command == marker)
            })
        };
        let until = |want: bool| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while ours("sleep") != want {
                assert!(std::time::Instant::now() < deadline, "job seen: {}", !want);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        };
        let stdin = terminal.stdin.as_mut().expect("stdin");
        stdin.write_all(b"sleep 3\n").expect("type a command");
        until(true);
        // It ends by itself; the shell takes its terminal back.
        until(false);
        stdin.write_all(b"exit\n").expect("exit");
        let _ = terminal.wait();
    }

    #[test]
    fn this_machines_processes_are_read() {
        let processes = read_processes(std::path::Path::new("/proc")).expect("read /proc");
        let me = std::process::id();
        assert!(processes.iter().any(|p| p.pid == me), "{processes:?}");
    }
}
