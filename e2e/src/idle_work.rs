//! `octo-e2e idle-work`: the idle stop understands work (issue 18, part 4), on the real
//! `octod serve`, the real session image, opencode and the stub model, with an idle time of
//! one minute and no browser attached:
//! - the agent's session: a prompt whose turn runs a three-minute tool call (`sleep 180`
//!   through opencode's `bash` tool) is kept running while the turn lasts (`kept_by` names
//!   the agent) and stops an idle time after it ends;
//! - the terminal's session: `sleep 180` typed into a `tmux` pane through octod's terminal
//!   WebSocket, which is then closed (ttyd hangs up its own shell; tmux's pane lives on), is
//!   kept while the command runs (`kept_by` names the terminal) and stops after it;
//! - a session with nothing going on stops on time, long before the other two.
//!
//! Nothing here touches the sessions through octod's proxy after the work starts (that would
//! be activity): their state is read from `/api/sessions/<id>`, their processes with
//! `podman exec`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use crate::api::{Client, create_session, expect, first_admin, spawn_octod};
use crate::stub_llm::{LLM_MODEL, stub_llm};
use crate::util::{self, say};

const PORT: u16 = 18_095;
const STUB_PORT: u16 = 18_096;
/// How long the work runs: longer than opencode's default limit on a command (2 minutes).
const WORK: Duration = Duration::from_secs(180);
/// The idle time of this octod (`idle_timeout_minutes = 1`).
const IDLE: Duration = Duration::from_secs(60);
/// The reconciler's pass (when the idle stop looks): a stop comes at most this much after
/// it is due, and work is seen at most this much before it ends.
const PASS: Duration = Duration::from_secs(15);
/// The least a session at work may run on after its work ends: the idle time from the last
/// pass that saw the work ([`IDLE`] less a [`PASS`], less 5 s of slack).
const STOP_FLOOR: Duration = Duration::from_secs(40);
/// The least the work must have run (its [`WORK`] less 10 s of slack): a sleep ended
/// sooner was stopped with its session.
const WORK_FLOOR: Duration = Duration::from_secs(170);

pub(crate) async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let home = std::path::PathBuf::from(std::env::var("HOME").context("HOME")?);
    let base = home.join("e2e-idle-work");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let config = base.join("octod.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"{}\"\n\n[sessions]\ntemplates_dir = \"/opt/octo/src/container/templates\"\nmax_per_user = 3\nidle_timeout_minutes = 1\n\n[llm]\nbase_url = \"http://127.0.0.1:{STUB_PORT}/v1\"\nmodel = \"{LLM_MODEL}\"\napi_key = \"e2e-idle-work-key\"\n",
            base.join("state").display()
        ),
    )?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", STUB_PORT))
        .await
        .context("binding the stub model")?;
    let stub = tokio::spawn(stub_llm(listener));
    let (mut child, code_rx) = spawn_octod(PORT, &config)?;
    let mut made: Vec<(Client, String)> = Vec::new();
    let result = scenario(&code_rx, &mut made).await;
    for (client, id) in &made {
        let _ = client.call("DELETE", &format!("/api/sessions/{id}"), None);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    stub.abort();
    result?;
    ensure!(
        status.success(),
        "octod did not exit cleanly on SIGTERM: {status}"
    );
    say(format!(
        "idle-work done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

async fn scenario(
    code: &std::sync::mpsc::Receiver<String>,
    made: &mut Vec<(Client, String)>,
) -> anyhow::Result<()> {
    let user = first_admin(PORT, code).await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = create_session(&user, "coding-copilot")?;
        made.push((
            Client {
                port: PORT,
                cookie: user.cookie.clone(),
            },
            id.clone(),
        ));
        ids.push(id);
    }
    for id in &ids {
        util::session_running(
            |path| user.call("GET", path, None),
            id,
            Duration::from_secs(180),
        )
        .await?;
    }
    let (agent, terminal, quiet) = (&ids[0], &ids[1], &ids[2]);
    say(format!(
        "three sessions run (idle time 1 minute): {agent} for the agent, {terminal} for the terminal, {quiet} with nothing"
    ));

    // The terminal's work first: typed into a tmux pane, the browser gone.
    let url = format!("ws://127.0.0.1:{PORT}/sessions/{terminal}/terminal");
    let output = crate::image::terminal_at(
        &url,
        &[("Cookie", user.cookie.as_str()), ("Origin", &user.origin())],
        "the browser does not know the session token",
        &[
            "tmux new-session -d -s work",
            &format!("tmux send-keys -t work 'sleep {}' Enter", WORK.as_secs()),
            "echo started-$((40+2))",
        ],
        "started-42",
    )
    .await?;
    ensure!(output.contains("started-42"), "terminal output: {output}");
    util::eventually(
        Duration::from_secs(20),
        "sleep running in the tmux pane",
        async || {
            ensure!(sleeping(terminal)?, "no sleep yet");
            Ok(())
        },
    )
    .await?;
    let terminal_from = Instant::now();
    say("terminal: `sleep 180` runs in a tmux pane; the terminal's WebSocket is closed");

    // The agent's work: a prompt whose turn runs `sleep 180` through its bash tool.
    let created = user.call(
        "POST",
        &format!("/sessions/{agent}/opencode/session"),
        Some("{}"),
    )?;
    expect(&created, 200, "creating an opencode session")?;
    let session = created.json()?["id"]
        .as_str()
        .context("opencode session id")?
        .to_owned();
    let prompt = format!(
        r#"{{"parts":[{{"type":"text","text":"Please keep working for {} seconds."}}]}}"#,
        WORK.as_secs()
    );
    let answer = user.call(
        "POST",
        &format!("/sessions/{agent}/opencode/session/{session}/prompt_async"),
        Some(&prompt),
    )?;
    ensure!(
        matches!(answer.status, 200 | 204),
        "prompt_async: {} {}",
        answer.status,
        answer.body
    );
    util::eventually(
        Duration::from_secs(60),
        "the agent's sleep running",
        async || {
            ensure!(sleeping(agent)?, "no sleep yet");
            Ok(())
        },
    )
    .await?;
    let agent_from = Instant::now();
    say("agent: its turn runs `sleep 180` through opencode's bash tool; no client is attached");

    // Watch all three until the two at work have stopped, reading only octod's session
    // records and the containers' processes.
    let mut watch = [
        Watched::new(agent, "agent", agent_from),
        Watched::new(terminal, "terminal", terminal_from),
        Watched::new(quiet, "", Instant::now()),
    ];
    let deadline = Instant::now() + WORK + IDLE + PASS * 4 + Duration::from_secs(60);
    while watch.iter().any(|w| w.stopped.is_none()) {
        ensure!(
            Instant::now() < deadline,
            "not all stopped in time: {watch:?}"
        );
        for w in &mut watch {
            if w.stopped.is_some() {
                continue;
            }
            let view = user.call("GET", &format!("/api/sessions/{}", w.id), None)?;
            expect(&view, 200, "the session")?;
            let view = view.json()?;
            if view["state"] == "stopped" {
                w.stopped = Some(Instant::now());
                continue;
            }
            if !w.reason.is_empty() && w.work_ended.is_none() {
                if sleeping(&w.id)? {
                    let kept: Vec<&str> = view["idle"]["kept_by"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
                        .unwrap_or_default();
                    if kept.contains(&w.reason) {
                        w.named = true;
                    }
                } else {
                    w.work_ended = Some(Instant::now());
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let [agent_w, terminal_w, quiet_w] = &watch;
    let quiet_stop = quiet_w.stopped.context("quiet")?;
    for w in [agent_w, terminal_w] {
        let ended = w
            .work_ended
            .with_context(|| format!("{}: its work never ended", w.id))?;
        let stopped = w.stopped.context("stopped")?;
        ensure!(
            ended.duration_since(w.from) >= WORK_FLOOR,
            "{} ({}): its sleep ended after {:?}, not the {WORK:?} asked: stopped with it?",
            w.id,
            w.reason,
            ended.duration_since(w.from)
        );
        ensure!(
            stopped >= ended + STOP_FLOOR,
            "{} ({}): stopped {:?} after its work ended; the idle time is {IDLE:?}",
            w.id,
            w.reason,
            stopped.saturating_duration_since(ended)
        );
        ensure!(
            w.named,
            "{}: the session's idle outlook never named `{}` while it worked",
            w.id,
            w.reason
        );
        ensure!(
            quiet_stop < ended,
            "the quiet session stopped after the work ended: {quiet_w:?} {w:?}"
        );
        say(format!(
            "{} ({}): kept running while its work ran {:.0} s (kept_by named it), stopped {:.0} s after it ended",
            w.id,
            w.reason,
            ended.duration_since(w.from).as_secs_f64(),
            stopped.duration_since(ended).as_secs_f64()
        ));
    }
    say(format!(
        "{quiet} (nothing going on): stopped {:.0} s after the watch began, while the others worked",
        quiet_stop.duration_since(quiet_w.from).as_secs_f64()
    ));
    Ok(())
}

/// One session under watch: what keeps it (`reason`, empty for none) and when things happened.
#[derive(Debug)]
struct Watched {
    id: String,
    reason: &'static str,
    from: Instant,
    /// Its `idle.kept_by` named `reason` while the work ran.
    named: bool,
    work_ended: Option<Instant>,
    stopped: Option<Instant>,
}

impl Watched {
    fn new(id: &str, reason: &'static str, from: Instant) -> Self {
        Self {
            id: id.to_owned(),
            reason,
            from,
            named: false,
            work_ended: None,
            stopped: None,
        }
    }
}

/// Whether a `sleep` runs in the session's container (`podman exec`: no activity).
fn sleeping(id: &str) -> anyhow::Result<bool> {
    let out = Command::new("podman")
        .args(["exec", &format!("octo-{id}"), "pgrep", "-x", "sleep"])
        .output()
        .context("podman exec pgrep")?;
    Ok(out.status.success())
}
