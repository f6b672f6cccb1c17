//! `octo-e2e llm`: octod's model gateway (issue 15) through the real `octod serve`, with the
//! provider's key as a systemd-style credential (`$CREDENTIALS_DIRECTORY/llm-key`, not in the
//! config) and the stub model (tests only) as the provider:
//!
//! - a prompt through octod's proxy and opencode in Alice's session is answered by the stub,
//!   which saw the credential's key on every request (the session holds a placeholder);
//! - inside Alice's session, `/run/octo-llm` holds only its own socket and Bob's socket is
//!   not there to reach; a streamed request through the gateway's loopback bridge gets its
//!   answer and the usage chunk octod asked for;
//! - the usage book: Alice's `/api/usage` shows exactly the tokens the stub reported, all on
//!   her session and the model; Bob sees none and may not ask for Alice's; the admin sees
//!   Alice's; `/metrics` counts them by model;
//! - bad input from inside the session: an unknown model, another route, a malformed body:
//!   OpenAI-shaped errors; with the provider down, `502 provider_unreachable` and the session
//!   keeps working.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use crate::api::{Client, expect, first_admin, sign_in, spawn_octod_with};
use crate::stub_llm::{AGENT_REPLY, LLM_MODEL, keys_seen, stub_llm, usage_reported};
use crate::util::{self, say};

const PORT: u16 = 18_511;
const STUB_PORT: u16 = 44_911;
/// The second provider's stub, with its own key and model.
const SECOND_PORT: u16 = 44_912;
const SECOND_KEY: &str = "e2e-second-provider-key-90be1f";
const SECOND_MODEL: &str = "e2e-second";
/// A model of the default provider that `[llm.allow]` gives admins only.
const ADMIN_MODEL: &str = "e2e-admin-only";
/// The provider's key: a credential file octod reads, never the config.
const KEY: &str = "e2e-llm-credential-key-7c41d2";

pub(crate) async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let home = std::path::PathBuf::from(std::env::var("HOME").context("HOME")?);
    let base = home.join("e2e-llm");
    let _ = std::fs::remove_dir_all(&base);
    let credentials = base.join("credentials");
    std::fs::create_dir_all(&credentials)?;
    std::fs::write(credentials.join("llm-key"), format!("{KEY}\n"))?;
    std::fs::write(
        credentials.join("llm-key-second"),
        format!("{SECOND_KEY}\n"),
    )?;
    let config = base.join("octod.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"{}\"\n\n[sessions]\ntemplates_dir = \"/opt/octo/src/container/templates\"\nmax_per_user = 3\n\n[llm]\nbase_url = \"http://127.0.0.1:{STUB_PORT}/v1\"\nmodel = \"{LLM_MODEL}\"\ntimeout_seconds = 5\nmodels = [\"{ADMIN_MODEL}\"]\n\n[llm.budgets]\nadmin = 1\n\n[llm.providers.second]\nbase_url = \"http://127.0.0.1:{SECOND_PORT}/v1\"\nmodels = [\"{SECOND_MODEL}\"]\n\n[llm.allow]\nuser = [\"{LLM_MODEL}\", \"{SECOND_MODEL}\"]\n",
            base.join("state").display()
        ),
    )?;
    let second = tokio::spawn(stub_llm(
        tokio::net::TcpListener::bind(("0.0.0.0", SECOND_PORT))
            .await
            .with_context(|| format!("binding the second stub model on port {SECOND_PORT}"))?,
    ));
    let stub = tokio::spawn(stub_llm(
        tokio::net::TcpListener::bind(("0.0.0.0", STUB_PORT))
            .await
            .with_context(|| format!("binding the stub model on port {STUB_PORT}"))?,
    ));
    let (mut child, code_rx) =
        spawn_octod_with(PORT, &config, &[("CREDENTIALS_DIRECTORY", &credentials)])?;
    let mut cleanup = Vec::new();
    let mut admin = None;
    let result = scenario(&code_rx, &mut admin, &mut cleanup, stub).await;
    if let Some(admin) = &admin {
        for id in &cleanup {
            if let Err(error) = admin.call("DELETE", &format!("/api/sessions/{id}"), None) {
                eprintln!("    cleanup: DELETE session {id}: {error:#}");
            }
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    second.abort();
    result?;
    ensure!(
        status.success(),
        "octod did not exit cleanly on SIGTERM: {status}"
    );
    say(format!(
        "llm done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

async fn scenario(
    code: &std::sync::mpsc::Receiver<String>,
    admin_out: &mut Option<Client>,
    cleanup: &mut Vec<String>,
    stub: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    let admin = first_admin(PORT, code).await?;
    *admin_out = Some(Client {
        port: PORT,
        cookie: admin.cookie.clone(),
    });
    let alice = register(&admin, "alice")?;
    let bob = register(&admin, "bob")?;
    let a = create_session(&alice, cleanup)?;
    let b = create_session(&bob, cleanup)?;
    for (client, id) in [(&alice, &a), (&bob, &b)] {
        util::session_running(
            |path| client.call("GET", path, None),
            id,
            Duration::from_secs(120),
        )
        .await?;
    }
    say(format!(
        "alice's session {a} and bob's {b} are running; the provider's key is only in octod's credential"
    ));

    agent_loop(&alice, &a).await?;
    let seen = keys_seen();
    let bearer = format!("Bearer {KEY}");
    ensure!(
        !seen.is_empty() && seen.iter().all(|k| *k == bearer),
        "the stub did not see the credential's key on every request: {seen:?}"
    );
    say(format!(
        "a prompt through octod's proxy and opencode was answered by the stub; it saw the credential's key on all {} requests",
        seen.len()
    ));

    walls(&a, &b)?;
    let streamed = in_session(
        &a,
        r#"{"model":"e2e-model","stream":true,"messages":[{"role":"user","content":"hello"}]}"#,
        "POST",
        "/v1/chat/completions",
    )
    .await?;
    ensure!(
        // The reply comes in chunks of a few words each.
        streamed.starts_with("200 ")
            && streamed.contains("\"content\":\"The file \"")
            && streamed.contains("\"usage\"")
            && streamed.contains("data: [DONE]"),
        "a streamed request through the bridge: {streamed}"
    );
    say(
        "inside alice's session: a streamed request through the bridge got the reply and the usage chunk octod asked for",
    );

    usage_book(&admin, &alice, &bob, &a).await?;
    bad_input(&a).await?;
    budget(&admin, cleanup).await?;
    providers_and_roles(&admin, &alice, &a).await?;
    budget_from_the_admin_ui(&admin, &alice)?;

    stub.abort();
    let _ = stub.await;
    let down = in_session(
        &a,
        r#"{"model":"e2e-model","messages":[{"role":"user","content":"hello"}]}"#,
        "POST",
        "/v1/chat/completions",
    )
    .await?;
    ensure!(
        down.starts_with("502 ") && down.contains("provider_unreachable"),
        "with the provider down: {down}"
    );
    expect(
        &alice.call("GET", &format!("/sessions/{a}/files/api/list?path=/"), None)?,
        200,
        "the session's files with the provider down",
    )?;
    say(
        "the provider down: 502 provider_unreachable in OpenAI's shape, and the session keeps working",
    );
    Ok(())
}

fn register(admin: &Client, name: &str) -> anyhow::Result<Client> {
    let invite = admin.call("POST", "/api/admin/invite-codes", Some("{}"))?;
    ensure!(
        matches!(invite.status, 200 | 201),
        "invite code: {} {}",
        invite.status,
        invite.body
    );
    let code = invite.json()?["code"]
        .as_str()
        .context("invite code in the answer")?
        .to_owned();
    let answer = util::request(
        PORT,
        "POST",
        "/api/auth/register",
        &[],
        Some(&format!(
            r#"{{"invite_code":"{code}","username":"{name}","password":"correct horse battery"}}"#
        )),
    )?;
    expect(&answer, 201, &format!("register {name}"))?;
    sign_in(PORT, &answer)
}

fn create_session(owner: &Client, cleanup: &mut Vec<String>) -> anyhow::Result<String> {
    let id = crate::api::create_session(owner, "coding-copilot")?;
    cleanup.push(id.clone());
    Ok(id)
}

/// A prompt through octod's proxy into opencode, which asks the model through the gateway.
async fn agent_loop(alice: &Client, id: &str) -> anyhow::Result<()> {
    let created = alice.call(
        "POST",
        &format!("/sessions/{id}/opencode/session"),
        Some("{}"),
    )?;
    expect(&created, 200, "creating an opencode session")?;
    let session = created.json()?["id"]
        .as_str()
        .context("opencode session id")?
        .to_owned();
    let client = Client {
        port: PORT,
        cookie: alice.cookie.clone(),
    };
    let path = format!("/sessions/{id}/opencode/session/{session}/message");
    // Blocking I/O on another thread: the stub answers on this runtime.
    let answer = tokio::task::spawn_blocking(move || {
        client.call(
            "POST",
            &path,
            Some(r#"{"parts":[{"type":"text","text":"Please create the file."}]}"#),
        )
    })
    .await??;
    ensure!(
        answer.status == 200 && answer.body.contains(AGENT_REPLY),
        "prompting opencode: {} {}",
        answer.status,
        answer.body
    );
    Ok(())
}

/// Alice's session sees its own gateway directory and nothing of Bob's.
fn walls(a: &str, b: &str) -> anyhow::Result<()> {
    let container = format!("octo-{a}");
    let listed = exec(&container, "ls -A /run/octo-llm")?;
    ensure!(
        listed.trim() == "llm.sock",
        "alice's /run/octo-llm holds {listed:?}, not only llm.sock"
    );
    let home = std::env::var("HOME").context("HOME")?;
    let bobs = Path::new(&home).join(format!("e2e-llm/state/llm/{b}/llm.sock"));
    ensure!(
        bobs.exists(),
        "bob's socket {} is not there",
        bobs.display()
    );
    // Bob's socket by its host path, and every socket file the session can see: none is his.
    let probe = exec(
        &container,
        &format!(
            "test -e {} && echo reachable; find / -xdev -type s 2>/dev/null; true",
            bobs.display()
        ),
    )?;
    ensure!(
        !probe.contains("reachable") && !probe.contains(b),
        "alice's session sees bob's socket: {probe}"
    );
    say(format!(
        "alice's session sees only its own /run/octo-llm/llm.sock; bob's ({}) is not reachable from it",
        bobs.display()
    ));
    Ok(())
}

/// The usage octod recorded equals what the stub reported, all on Alice's session.
async fn usage_book(admin: &Client, alice: &Client, bob: &Client, a: &str) -> anyhow::Result<()> {
    let (prompt, completion) = usage_reported();
    ensure!(prompt > 0, "the stub reported no usage");
    let mut report = serde_json::Value::Null;
    util::eventually(Duration::from_secs(10), "the usage book", async || {
        let answer = alice.call("GET", "/api/usage?since_days=1", None)?;
        expect(&answer, 200, "alice's usage")?;
        report = answer.json()?;
        ensure!(
            report["prompt_tokens"] == prompt && report["completion_tokens"] == completion,
            "alice's usage {report} is not the stub's {prompt} + {completion}"
        );
        Ok(())
    })
    .await?;
    let rows = report["rows"].as_array().context("rows")?;
    ensure!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r["session"] == a && r["user"] == "alice" && r["model"] == LLM_MODEL),
        "alice's rows are not all her session's: {report}"
    );
    let bobs = bob.call("GET", "/api/usage", None)?;
    expect(&bobs, 200, "bob's usage")?;
    ensure!(
        bobs.json()?["requests"] == 0,
        "bob was billed: {}",
        bobs.body
    );
    expect(
        &bob.call("GET", "/api/usage?user=alice", None)?,
        403,
        "bob asking for alice's usage",
    )?;
    let admins = admin.call("GET", "/api/usage?user=alice", None)?;
    expect(&admins, 200, "the admin asking for alice's usage")?;
    ensure!(
        admins.json()?["prompt_tokens"] == prompt,
        "the admin's view: {}",
        admins.body
    );
    let metrics = util::request(PORT, "GET", "/metrics", &[], None)?;
    let line = format!("octo_llm_prompt_tokens_total{{model=\"{LLM_MODEL}\"}} {prompt}\n");
    ensure!(
        metrics.body.contains(&line),
        "/metrics lacks {line:?}:\n{}",
        metrics.body
    );
    say(format!(
        "usage: alice's /api/usage shows exactly the stub's {prompt} prompt + {completion} completion tokens, all on session {a}; bob sees none and may not see hers; the admin does; /metrics counts them"
    ));
    Ok(())
}

/// Admins have a budget of 1 token a month here (`[llm.budgets]`): the admin's first request
/// passes, the second gets 402 with the message, and a prompt to opencode then ends at once
/// with that message as its reply's error (a 429 would be retried without end); alice (a
/// user) is unaffected.
async fn budget(admin: &Client, cleanup: &mut Vec<String>) -> anyhow::Result<()> {
    let id = create_session(admin, cleanup)?;
    util::session_running(
        |path| admin.call("GET", path, None),
        &id,
        Duration::from_secs(120),
    )
    .await?;
    let body = r#"{"model":"e2e-model","messages":[{"role":"user","content":"hello"}]}"#;
    let first = in_session(&id, body, "POST", "/v1/chat/completions").await?;
    ensure!(
        first.starts_with("200 "),
        "the admin's first request: {first}"
    );
    let second = in_session(&id, body, "POST", "/v1/chat/completions").await?;
    ensure!(
        second.starts_with("402 ")
            && second.contains("budget_exceeded")
            && second.contains("monthly token budget of 1 reached; resets on "),
        "the admin's second request: {second}"
    );
    over_budget_prompt(admin, &id).await?;
    // What the Usage page shows the admin: the role's budget, reached.
    let answer = admin.call("GET", "/api/usage?user=admin", None)?;
    expect(&answer, 200, "the admin's usage")?;
    let report: serde_json::Value = serde_json::from_str(&answer.body)?;
    let budget = &report["budget"];
    ensure!(
        budget["tokens"] == 1
            && budget["used"].as_u64().is_some_and(|used| used >= 1)
            && budget["set_for"] == "role"
            && budget["resets_on"]
                .as_str()
                .is_some_and(|d| d.ends_with("-01")),
        "the admin's budget in /api/usage: {report}"
    );
    say(format!(
        "budget: the admin (1 token a month) got their first answer, then 402 \"monthly token budget of 1 reached; resets on …\" in OpenAI's shape, and a prompt to opencode ended at once with that message as its reply's error; /api/usage shows {} of 1 used (the role's)",
        budget["used"]
    ));
    Ok(())
}

/// A prompt over budget: opencode answers (it does not retry a 402) with the budget's message
/// as the reply's error, and the session is idle again.
async fn over_budget_prompt(admin: &Client, id: &str) -> anyhow::Result<()> {
    let created = admin.call(
        "POST",
        &format!("/sessions/{id}/opencode/session"),
        Some("{}"),
    )?;
    expect(&created, 200, "creating the admin's opencode session")?;
    let session = created.json()?["id"]
        .as_str()
        .context("opencode session id")?
        .to_owned();
    let client = Client {
        port: PORT,
        cookie: admin.cookie.clone(),
    };
    let path = format!("/sessions/{id}/opencode/session/{session}/message");
    let answer = tokio::task::spawn_blocking(move || {
        client.call(
            "POST",
            &path,
            Some(r#"{"parts":[{"type":"text","text":"Anything left?"}]}"#),
        )
    })
    .await??;
    expect(&answer, 200, "prompting opencode over budget")?;
    let reply = answer.json()?;
    let error = &reply["info"]["error"];
    ensure!(
        error["name"] == "APIError"
            && error["data"]["statusCode"] == 402
            && error["data"]["isRetryable"] == false
            && error["data"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("monthly token budget of 1 reached; resets on ")),
        "opencode's reply over budget: {reply}"
    );
    let status = admin.call(
        "GET",
        &format!("/sessions/{id}/opencode/session/status"),
        None,
    )?;
    expect(&status, 200, "opencode's session status")?;
    ensure!(
        !status.body.contains(&session),
        "the opencode session is still busy over budget: {}",
        status.body
    );
    Ok(())
}

/// Refusals in OpenAI's shape, from inside the session.
async fn bad_input(a: &str) -> anyhow::Result<()> {
    for (body, method, path, status, code) in [
        (
            r#"{"model":"gpt-none","messages":[]}"#,
            "POST",
            "/v1/chat/completions",
            "404",
            "model_not_found",
        ),
        ("{", "POST", "/v1/chat/completions", "400", "invalid_json"),
        ("{}", "POST", "/v1/embeddings", "404", "unsupported_route"),
    ] {
        let answer = in_session(a, body, method, path).await?;
        ensure!(
            answer.starts_with(&format!("{status} "))
                && answer.contains(&format!("\"code\":\"{code}\"")),
            "{method} {path} {body}: {answer}"
        );
    }
    let models = in_session(a, "", "GET", "/v1/models").await?;
    ensure!(
        models.starts_with("200 ") && models.contains(LLM_MODEL),
        "/v1/models: {models}"
    );
    say(
        "bad input from inside the session: unknown model 404, malformed body 400, other routes 404, all in OpenAI's shape; /v1/models lists the model",
    );
    Ok(())
}

/// Two providers and `[llm.allow]`: each role's list from `/api/models`, a model of the second
/// provider reaching it with its own key, a model outside the role's list refused.
async fn providers_and_roles(admin: &Client, alice: &Client, a: &str) -> anyhow::Result<()> {
    let listed = |client: &Client| -> anyhow::Result<(Vec<(String, String)>, serde_json::Value)> {
        let answer = client.call("GET", "/api/models", None)?;
        expect(&answer, 200, "GET /api/models")?;
        let body: serde_json::Value = serde_json::from_str(&answer.body)?;
        let models = body["models"]
            .as_array()
            .context("models")?
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_owned(),
                    m["provider"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Ok((models, body))
    };
    let pair = |id: &str, provider: &str| (id.to_owned(), provider.to_owned());
    let (mine, body) = listed(alice)?;
    ensure!(
        mine == [pair(LLM_MODEL, "default"), pair(SECOND_MODEL, "second")]
            && body["default"] == LLM_MODEL
            && body["opencode_provider"] == "octo",
        "alice's models: {body}"
    );
    let (all, body) = listed(admin)?;
    ensure!(
        all == [
            pair(LLM_MODEL, "default"),
            pair(ADMIN_MODEL, "default"),
            pair(SECOND_MODEL, "second")
        ],
        "the admin's models: {body}"
    );
    let ask = |model: &str| {
        format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hello"}}]}}"#)
    };
    let refused = in_session(a, &ask(ADMIN_MODEL), "POST", "/v1/chat/completions").await?;
    ensure!(
        refused.starts_with("403 ") && refused.contains("\"code\":\"model_not_allowed\""),
        "alice asking for the admins' model: {refused}"
    );
    let listed_inside = in_session(a, "", "GET", "/v1/models").await?;
    ensure!(
        listed_inside.contains(SECOND_MODEL) && !listed_inside.contains(ADMIN_MODEL),
        "/v1/models in alice's session: {listed_inside}"
    );
    let before = keys_seen().len();
    let answered = in_session(a, &ask(SECOND_MODEL), "POST", "/v1/chat/completions").await?;
    ensure!(
        answered.starts_with("200 "),
        "the second provider's model: {answered}"
    );
    let second_bearer = format!("Bearer {SECOND_KEY}");
    let seen = keys_seen();
    let new = seen.get(before..).unwrap_or_default();
    ensure!(
        new.iter().filter(|k| **k == second_bearer).count() == 1
            && seen.iter().filter(|k| **k == second_bearer).count() == 1,
        "the second provider's stub should have seen its own key once, now: {new:?}"
    );
    say(format!(
        "two providers: /api/models gives alice {} and the admin {} models; {SECOND_MODEL} reached the second provider with its own key; {ADMIN_MODEL} refused to alice with 403 model_not_allowed and left out of her /v1/models",
        mine.len(),
        all.len()
    ));
    Ok(())
}

/// The admin UI's budget route: an admin sets alice's own budget, alice may not, and her
/// Usage page's standing follows; `{}` gives her back her role's (none here).
fn budget_from_the_admin_ui(admin: &Client, alice: &Client) -> anyhow::Result<()> {
    let path = "/api/admin/users/alice/budget";
    expect(
        &alice.call("POST", path, Some(r#"{"monthly_tokens":5}"#))?,
        403,
        "alice setting her own budget",
    )?;
    expect(
        &admin.call("POST", "/api/admin/users/nobody/budget", Some("{}"))?,
        404,
        "a budget for no such user",
    )?;
    expect(
        &admin.call(
            "POST",
            path,
            Some(r#"{"monthly_tokens":5,"unlimited":true}"#),
        )?,
        400,
        "both a budget and unlimited",
    )?;
    expect(
        &admin.call("POST", path, Some(r#"{"monthly_tokens":1000000}"#))?,
        204,
        "the admin setting alice's budget",
    )?;
    let standing = |client: &Client| -> anyhow::Result<serde_json::Value> {
        let answer = client.call("GET", "/api/usage", None)?;
        expect(&answer, 200, "alice's usage")?;
        let report: serde_json::Value = serde_json::from_str(&answer.body)?;
        Ok(report["budget"].clone())
    };
    let budget = standing(alice)?;
    ensure!(
        budget["tokens"] == 1_000_000
            && budget["set_for"] == "user"
            && budget["used"].as_u64().is_some_and(|used| used > 0),
        "alice's budget after the admin set it: {budget}"
    );
    expect(
        &admin.call("POST", path, Some("{}"))?,
        204,
        "alice back to her role's budget",
    )?;
    let budget = standing(alice)?;
    ensure!(budget.is_null(), "alice's budget after {{}}: {budget}");
    let audit = admin.call("GET", "/api/admin/audit?limit=50", None)?;
    expect(&audit, 200, "the audit log")?;
    let entries: serde_json::Value = serde_json::from_str(&audit.body)?;
    let changes = entries
        .as_array()
        .context("audit entries")?
        .iter()
        .filter(|e| e["action"] == "user.budget" && e["target"] == "alice" && e["actor"] == "admin")
        .count();
    ensure!(
        changes >= 2,
        "the audit log of the budget changes: {entries}"
    );
    say(format!(
        "budgets from the admin UI's route: set for alice (her Usage shows {} of 1,000,000 used, her own), refused to alice (403), a bad body 400, no such user 404, back to the role's (none); audited",
        budget_used(alice)?
    ));
    Ok(())
}

/// What alice used this month, from her usage report.
fn budget_used(alice: &Client) -> anyhow::Result<u64> {
    let answer = alice.call("GET", "/api/usage", None)?;
    let report: serde_json::Value = serde_json::from_str(&answer.body)?;
    Ok(report["prompt_tokens"].as_u64().unwrap_or(0)
        + report["completion_tokens"].as_u64().unwrap_or(0))
}

/// An HTTP request from inside the session to the gateway's bridge (`127.0.0.1:41830`), as
/// opencode makes them, with the placeholder key: `<status> <body>`. On another thread: the
/// stub model answers on this runtime's.
async fn in_session(id: &str, body: &str, method: &str, path: &str) -> anyhow::Result<String> {
    let (id, body, method, path) = (
        id.to_owned(),
        body.to_owned(),
        method.to_owned(),
        path.to_owned(),
    );
    tokio::task::spawn_blocking(move || in_session_blocking(&id, &body, &method, &path)).await?
}

/// [`in_session`], blocking; the body goes in on standard input.
fn in_session_blocking(id: &str, body: &str, method: &str, path: &str) -> anyhow::Result<String> {
    let script = format!(
        r#"import sys, urllib.request, urllib.error
data = sys.stdin.buffer.read() or None
req = urllib.request.Request("http://127.0.0.1:41830{path}", data=data, method="{method}",
    headers={{"Authorization": "Bearer octo-session", "Content-Type": "application/json"}})
try:
    r = urllib.request.urlopen(req, timeout=30)
    print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#
    );
    let mut child = Command::new("podman")
        .args([
            "exec",
            "-i",
            &format!("octo-{id}"),
            "python3",
            "-c",
            &script,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("podman exec python3")?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, body.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "python3 in the session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn exec(container: &str, script: &str) -> anyhow::Result<String> {
    util::run(Command::new("podman").args(["exec", container, "sh", "-c", script]))
}
