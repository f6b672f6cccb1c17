//! Reading a unit's journal: the last lines for a failure reason, all lines of an image build,
//! and a unit's log for `octoctl session logs`, once or followed. Every `journalctl` octod runs
//! is started here.
//!
//! The units are the `octo` user's, so this reads with `--user-unit` (which matches our own
//! uid). A system user's units log to the system journal: reading it needs the
//! `systemd-journal` group.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// How each line is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The message only (`-o cat`).
    Message,
    /// With time, host and origin (`-o short-iso`).
    Timestamped,
}

/// Which of the lines logged so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Last(u32),
    All,
}

/// Why a journal could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("starting journalctl for {unit}: {source}")]
    Start {
        unit: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journalctl without pipes")]
    NoPipes,
    #[error("journalctl for {unit}: {status}: {stderr}")]
    Failed {
        unit: String,
        status: std::process::ExitStatus,
        /// What journalctl said, trimmed.
        stderr: String,
    },
    #[error("journalctl for {unit}: {source}")]
    Wait {
        unit: String,
        #[source]
        source: std::io::Error,
    },
}

/// `journalctl` for a unit's lines.
fn command(unit: &str, format: Format, lines: Lines, follow: bool) -> Command {
    let format = match format {
        Format::Message => "cat",
        Format::Timestamped => "short-iso",
    };
    let mut command = Command::new("journalctl");
    command
        .args(["--quiet", "--no-pager", "--output", format, "--lines"])
        .arg(match lines {
            Lines::Last(n) => n.to_string(),
            Lines::All => "all".to_owned(),
        })
        .args(["--user-unit", unit])
        .stdin(Stdio::null());
    if follow {
        command.arg("--follow");
    }
    command
}

/// The lines asked for, read to the end (empty when the journal cannot be read).
async fn read(unit: &str, lines: Lines) -> String {
    match command(unit, Format::Message, lines, false).output().await {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    }
}

/// The last `lines` messages a unit logged, one per line (empty when the journal cannot be
/// read): the tail of a failure reason.
pub async fn last_lines(unit: &str, lines: u32) -> String {
    read(unit, Lines::Last(lines)).await.trim().to_owned()
}

/// Every message the unit logged so far (empty when the journal cannot be read).
pub async fn all_lines(unit: &str) -> Vec<String> {
    read(unit, Lines::All)
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A running `journalctl` for one unit: its lines as they come. Dropping it kills journalctl.
#[derive(Debug)]
pub struct Reader {
    unit: String,
    child: Child,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
    /// journalctl's stderr, read concurrently: a full stderr pipe would block it.
    errors: tokio::task::JoinHandle<String>,
}

/// Starts `journalctl` for a unit's lines; with `follow`, new lines keep coming until
/// [`Reader::stop`] or a drop.
pub fn open(
    unit: &str,
    format: Format,
    lines: Lines,
    follow: bool,
) -> Result<Reader, JournalError> {
    let mut child = command(unit, format, lines, follow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| JournalError::Start {
            unit: unit.to_owned(),
            source,
        })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(JournalError::NoPipes);
    };
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text).await;
        text
    });
    Ok(Reader {
        unit: unit.to_owned(),
        child,
        lines: BufReader::new(stdout).lines(),
        errors,
    })
}

impl Reader {
    /// The next line; `None` at the end or when it cannot be read.
    pub async fn next_line(&mut self) -> Option<String> {
        self.lines.next_line().await.ok().flatten()
    }

    /// Ends journalctl (a follower never ends by itself).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits for journalctl to end, after its last line was read: an error says why it failed.
    pub async fn finish(mut self) -> Result<(), JournalError> {
        let status = self.child.wait().await;
        let stderr = self.errors.await.unwrap_or_default();
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(JournalError::Failed {
                unit: self.unit,
                status,
                stderr: stderr.trim().to_owned(),
            }),
            Err(source) => Err(JournalError::Wait {
                unit: self.unit,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(format: Format, lines: Lines, follow: bool, expected: &str) {
        let command = command("octo-ab1.service", format, lines, follow);
        let args: Vec<_> = command
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy())
            .collect();
        assert_eq!(args.join(" "), expected);
    }

    #[test]
    fn journalctl_arguments() {
        check(
            Format::Message,
            Lines::Last(10),
            false,
            "--quiet --no-pager --output cat --lines 10 --user-unit octo-ab1.service",
        );
        check(
            Format::Message,
            Lines::All,
            true,
            "--quiet --no-pager --output cat --lines all --user-unit octo-ab1.service --follow",
        );
        // The e2e admin check finds the follower of `session logs --follow` by this order.
        check(
            Format::Timestamped,
            Lines::Last(50),
            true,
            "--quiet --no-pager --output short-iso --lines 50 --user-unit octo-ab1.service \
             --follow",
        );
    }
}
