//! `octo-e2e session-limit`: the per-user session limit holds under concurrency (issue 12).
//! The real `octod serve` with `max_per_user = 2` and the stand-in session image; one
//! signed-in user sends 10 `POST /api/sessions` at once through the real HTTP API. Exactly 2
//! sessions must exist afterwards and the 8 others must have answered 409 `session_limit`.
//! A limit checked with a list before the create (not in the store transaction that creates
//! the session) lets several creates through.

use std::process::Command;
use std::sync::Barrier;
use std::time::Duration;

use anyhow::{Context as _, ensure};

use crate::api::{Client, expect, sign_in, spawn_octod};
use crate::util::{self, Answer, say};

const PORT: u16 = 18_486;
const PORT_RANGE: &str = "23200-23299";
const IMAGE: &str = "localhost/octo-limit-e2e:latest";
const LIMIT: usize = 2;
const CREATES: usize = 10;

pub(crate) async fn run() -> anyhow::Result<()> {
    util::ensure_served_session_image(IMAGE)?;
    let home = std::path::PathBuf::from(std::env::var("HOME").context("HOME")?);
    let base = home.join("e2e-session-limit");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let config = base.join("octod.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"{}\"\n\n[sessions]\nimage = \"{IMAGE}\"\ntemplates_dir = \"/opt/octo/src/container/templates\"\nport_range = \"{PORT_RANGE}\"\nmax_per_user = {LIMIT}\n",
            base.join("state").display()
        ),
    )?;
    let (mut child, code_rx) = spawn_octod(PORT, &config)?;
    let result = scenario(&code_rx).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    result?;
    ensure!(
        status.success(),
        "octod did not exit cleanly on SIGTERM: {status}"
    );
    Ok(())
}

async fn scenario(code: &std::sync::mpsc::Receiver<String>) -> anyhow::Result<()> {
    let code = code
        .recv_timeout(Duration::from_secs(60))
        .context("octod logged no first admin invite code")?;
    util::eventually(Duration::from_secs(30), "octod's /api/health", async || {
        expect(
            &util::request(PORT, "GET", "/api/health", &[], None)?,
            200,
            "health",
        )
    })
    .await?;
    let answer = util::request(
        PORT,
        "POST",
        "/api/auth/register",
        &[],
        Some(&format!(
            r#"{{"invite_code":"{code}","username":"limited","password":"correct horse battery"}}"#
        )),
    )?;
    expect(&answer, 201, "register")?;
    let user = sign_in(PORT, &answer)?;

    let answers = concurrent_creates(&user);
    // Whatever the outcome, the sessions go again (the host's later checks start clean).
    let sessions = sessions(&user);
    let deleted = match &sessions {
        Ok(ids) => delete_all(&user, ids).await,
        Err(_) => Ok(()),
    };
    let answers = answers?;
    let ids = sessions?;
    deleted?;

    let created = answers
        .iter()
        .filter(|a| matches!(a.status, 201 | 202))
        .count();
    let limited = answers
        .iter()
        .filter(|a| {
            a.status == 409
                && a.json()
                    .is_ok_and(|body| body["error"]["code"] == "session_limit")
        })
        .count();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    say(format!(
        "{CREATES} concurrent creates against a limit of {LIMIT}: answers {statuses:?}, {} sessions exist",
        ids.len()
    ));
    ensure!(
        ids.len() == LIMIT,
        "{} sessions exist after {CREATES} concurrent creates by one user with max_per_user = \
         {LIMIT} (answers {statuses:?})",
        ids.len()
    );
    ensure!(
        created == LIMIT && limited == CREATES - LIMIT,
        "{created} creates accepted and {limited} refused with 409 session_limit, expected \
         {LIMIT} and {}: {statuses:?}",
        CREATES - LIMIT
    );
    say("exactly 2 sessions, 8 answers 409 session_limit; the sessions are deleted again");
    Ok(())
}

/// `CREATES` creates, each on its own connection, released together.
fn concurrent_creates(user: &Client) -> anyhow::Result<Vec<Answer>> {
    let start = Barrier::new(CREATES);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CREATES)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    user.call(
                        "POST",
                        "/api/sessions",
                        Some(r#"{"template":"coding-copilot"}"#),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a create's thread panicked"))?
            })
            .collect()
    })
}

/// The ids of the user's sessions.
fn sessions(user: &Client) -> anyhow::Result<Vec<String>> {
    let list = user.call("GET", "/api/sessions", None)?;
    expect(&list, 200, "list sessions")?;
    Ok(list
        .json()?
        .as_array()
        .context("a list of sessions")?
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect())
}

/// Deletes the sessions and waits until none is left (a delete not done within octod's wait
/// answers 202 and finishes in the background).
async fn delete_all(user: &Client, ids: &[String]) -> anyhow::Result<()> {
    for id in ids {
        let answer = user.call("DELETE", &format!("/api/sessions/{id}"), None)?;
        ensure!(
            matches!(answer.status, 202 | 204),
            "deleting session {id}: {} {}",
            answer.status,
            answer.body
        );
    }
    util::eventually(Duration::from_secs(120), "no session left", async || {
        let left = sessions(user)?;
        ensure!(left.is_empty(), "sessions left: {left:?}");
        Ok(())
    })
    .await
}
