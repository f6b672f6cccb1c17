//! Each command: one call to the admin socket, then a table or message for people, or the
//! JSON answer (a stream: its JSON lines) for scripts. Answers are read as the wire types of
//! `octo_wire`; `--json` prints the answer as it came.

use std::fmt::Write as _;
use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use hyper::Method;
use octo_wire::{
    ApiTokenView, BuildEvent, CreateApiToken, CreateInvite, CreateUser, CreatedApiToken,
    InviteView, LogEvent, RefreshEvent, RefreshStatus, ResetPassword, Scope, SessionView,
    SetBudget, SetRole, SnapshotJobState, SnapshotJobView, SnapshotList, StatusView, UpdateSession,
    UsageReport, UserView,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::cli::{
    BackupCommand, Budget, Cli, Command, ContainerCommand, ImageCommand, InviteCommand,
    PasswordArgs, Role, SessionCommand, SnapshotCommand, TokenCommand, UserCommand,
};
use crate::client::Client;
use crate::table;
use crate::{Failure, duration};

/// Runs a command (all but `generate-assets`).
pub async fn run(cli: &Cli) -> Result<(), Failure> {
    let out = Output { json: cli.json };
    let client = Client::new(&cli.socket);
    match &cli.command {
        Command::Status => status(&client, out).await,
        Command::Session(command) => session(&client, out, command).await,
        Command::User(command) => user(&client, out, command).await,
        Command::InviteCodes(command) => invite(&client, out, command).await,
        Command::Image(ImageCommand::Build) => image_build(&client, out).await,
        Command::Container(ContainerCommand::Refresh { parallel }) => {
            refresh(&client, out, *parallel).await
        }
        Command::Usage { user, since } => usage(&client, out, user.as_deref(), *since).await,
        Command::Backup(command) => backup(&client, command).await,
        Command::GenerateAssets { .. } | Command::Llm(_) => Ok(()),
    }
}

async fn backup(client: &Client, command: &BackupCommand) -> Result<(), Failure> {
    match command {
        BackupCommand::Create {
            file,
            without_snapshots,
            without_credentials,
            force,
            config_dir,
        } => {
            let options = crate::backup::CreateOptions {
                file: file.clone(),
                config_dir: config_dir.clone(),
                with_snapshots: !without_snapshots,
                with_credentials: !without_credentials,
                force: *force,
            };
            crate::backup::create(client, &options).await
        }
        BackupCommand::Restore {
            file,
            force,
            state_dir,
            config_dir,
            octod,
            user,
        } => {
            let options = crate::backup::RestoreOptions {
                file: file.clone(),
                force: *force,
                state_dir: state_dir.clone(),
                config_dir: config_dir.clone(),
                octod: octod.clone(),
                user: user.clone(),
            };
            crate::backup::restore(client, &options).await
        }
        BackupCommand::Verify { file } => crate::backup::verify(file, false),
    }
}

#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// Prints the JSON for scripts, else what `human` makes of it.
    fn show(self, value: &Value, human: impl FnOnce(&Value) -> String) {
        let _ = self.show_typed(value, |_: Value| human(value));
    }

    /// Prints the JSON for scripts as it came, else what `human` makes of its wire type.
    fn show_typed<T: DeserializeOwned>(
        self,
        value: &Value,
        human: impl FnOnce(T) -> String,
    ) -> Result<(), Failure> {
        let text = if self.json {
            let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
            text.push('\n');
            text
        } else {
            human(typed(value)?)
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        Ok(())
    }
}

/// An answer as its wire type.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, Failure> {
    T::deserialize(value).map_err(|e| {
        Failure::Failed(format!(
            "octod's answer is not the {} octoctl knows: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// A stream event as its wire type; `None` for an event this octoctl does not know.
fn event<T: DeserializeOwned>(value: &Value) -> Option<T> {
    T::deserialize(value).ok()
}

/// A request body as the JSON octod reads.
fn body(request: &impl Serialize) -> Value {
    serde_json::to_value(request).unwrap_or_default()
}

fn wire_role(role: Role) -> octo_wire::Role {
    match role {
        Role::User => octo_wire::Role::User,
        Role::Admin => octo_wire::Role::Admin,
    }
}

/// The first 12 characters of an image ID, as `podman images` shows it.
fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// A path segment, percent-encoded beyond the unreserved characters.
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn answer(value: Option<Value>) -> Value {
    value.unwrap_or(Value::Null)
}

// ---- status

async fn usage(client: &Client, out: Output, user: Option<&str>, days: u32) -> Result<(), Failure> {
    let mut path = format!("/admin/v1/usage?since_days={days}");
    if let Some(user) = user {
        let _ = write!(path, "&user={}", segment(user));
    }
    let v = answer(client.call(Method::GET, &path, None).await?);
    out.show_typed(&v, |report: UsageReport| {
        let rows: Vec<Vec<String>> = report
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.day.clone(),
                    r.user.clone(),
                    r.session.clone(),
                    r.model.clone(),
                    r.prompt_tokens.to_string(),
                    r.completion_tokens.to_string(),
                    r.requests.to_string(),
                ]
            })
            .collect();
        let mut s = if rows.is_empty() {
            format!("no model usage since {}\n", report.since)
        } else {
            table::render(
                &[
                    "DAY",
                    "USER",
                    "SESSION",
                    "MODEL",
                    "PROMPT",
                    "COMPLETION",
                    "REQUESTS",
                ],
                &rows,
            )
        };
        let _ = writeln!(
            s,
            "total since {}: {} prompt + {} completion tokens in {} requests",
            report.since, report.prompt_tokens, report.completion_tokens, report.requests
        );
        if let (Some(user), Some(budget)) = (&report.user, &report.budget) {
            let _ = writeln!(
                s,
                "budget of {user}: {} of {} tokens used this month ({}'s); resets on {}",
                budget.used,
                budget.tokens,
                if budget.set_for == "user" {
                    "the user"
                } else {
                    "the role"
                },
                budget.resets_on
            );
        }
        s
    })
}

async fn status(client: &Client, out: Output) -> Result<(), Failure> {
    let v = answer(client.call(Method::GET, "/admin/v1/status", None).await?);
    out.show_typed(&v, |v: StatusView| {
        let mut s = String::new();
        let uptime = duration::human(Duration::from_secs(v.uptime_seconds));
        let _ = writeln!(s, "octod     {} (up {uptime})", v.octod_version);
        let podman = v.podman_version.as_deref().unwrap_or("not answering");
        let _ = writeln!(s, "podman    {podman}");
        match &v.image {
            Some(image) => {
                let created = image.created.clone().unwrap_or_default();
                let runtime = image
                    .runtime
                    .map(|r| format!("  session runtime {r}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "image     {}  {}  built {}{runtime}",
                    image.reference,
                    short_id(&image.id),
                    created.get(..19).unwrap_or(&created).replace('T', " ")
                );
            }
            None => s.push_str("image     none (octoctl image build)\n"),
        }
        let counts: Vec<String> = v
            .sessions
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        let counts = if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        };
        let _ = writeln!(s, "sessions  {counts}");
        if v.warnings.is_empty() {
            s.push_str("warnings  none\n");
        } else {
            s.push_str("warnings:\n");
            for w in &v.warnings {
                let _ = writeln!(s, "  - {w}");
            }
        }
        s
    })
}

// ---- sessions

fn session_table(list: &[SessionView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.name.clone(),
                s.owner.clone(),
                s.template.clone(),
                s.state.as_str().to_owned(),
                s.desired.as_str().to_owned(),
                home_size(&s.disk),
                table::utc_minutes(s.last_active_at),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "NAME",
            "OWNER",
            "TEMPLATE",
            "STATE",
            "WANTED",
            "HOME",
            "LAST ACTIVE (UTC)",
        ],
        &rows,
    )
}

fn session_details(s: &SessionView) -> String {
    let mut rows = vec![
        vec!["id".to_owned(), s.id.clone()],
        vec!["name".to_owned(), s.name.clone()],
        vec!["owner".to_owned(), s.owner.clone()],
        vec!["template".to_owned(), s.template.clone()],
        vec!["state".to_owned(), s.state.as_str().to_owned()],
        vec!["wanted".to_owned(), s.desired.as_str().to_owned()],
        vec![
            "created".to_owned(),
            format!("{} UTC", table::utc_minutes(s.created_at)),
        ],
        vec![
            "updated".to_owned(),
            format!("{} UTC", table::utc_minutes(s.updated_at)),
        ],
        vec![
            "active".to_owned(),
            format!("{} UTC", table::utc_minutes(s.last_active_at)),
        ],
    ];
    rows.push(vec!["limits".to_owned(), limits_text(&s.limits)]);
    rows.push(vec!["disk".to_owned(), disk_text(&s.disk)]);
    rows.push(vec!["idle stop".to_owned(), idle_text(&s.idle)]);
    if !s.description.is_empty() {
        rows.insert(2, vec!["about".to_owned(), s.description.clone()]);
    }
    if let Some(reason) = &s.reason {
        rows.push(vec![
            "reason".to_owned(),
            reason.replace('\n', "\n          "),
        ]);
    }
    let mut text = String::new();
    for row in rows {
        let _ = writeln!(text, "{:<10}{}", row[0], row[1]);
    }
    text
}

/// What the idle stop will do: `about 14:32 UTC (kept running by: its agent's turn, a
/// keep-alive until 18:00 UTC)`, or why it will not stop it.
fn idle_text(idle: &octo_wire::SessionIdle) -> String {
    let Some(stops_at) = idle.stops_at else {
        return match idle.keep_alive_until {
            Some(until) => format!(
                "not while stopped (kept alive until {} UTC)",
                table::utc_minutes(until)
            ),
            None => "none (idle stop is off, or the session is not running)".to_owned(),
        };
    };
    let reasons: Vec<String> = idle
        .kept_by
        .iter()
        .map(|reason| match reason {
            octo_wire::IdleReason::Agent => "its agent is working".to_owned(),
            octo_wire::IdleReason::Terminal => "a command runs in its terminal".to_owned(),
            octo_wire::IdleReason::KeepAlive => format!(
                "kept alive until {} UTC",
                idle.keep_alive_until
                    .map_or_else(|| "?".to_owned(), table::utc_minutes)
            ),
            octo_wire::IdleReason::Activity => "recent use".to_owned(),
        })
        .collect();
    let when = format!("about {} UTC", table::utc_minutes(stops_at));
    if reasons.is_empty() {
        format!("{when} (due: nothing keeps it running)")
    } else {
        format!("{when} (running: {})", reasons.join(", "))
    }
}

/// The home's size for the table: `1.5 GiB`, `-` before its first measurement, and a `!`
/// when its owner is at the warning threshold or past the quota.
fn home_size(d: &octo_wire::SessionDisk) -> String {
    let size = d.used_bytes.map_or_else(|| "-".to_owned(), binary_size);
    match d.quota_state {
        octo_wire::QuotaState::Ok => size,
        octo_wire::QuotaState::Warning | octo_wire::QuotaState::Over => format!("{size} !"),
    }
}

/// `home 1.5 GiB (measured 2026-12-03 10:02 UTC); owner's homes 9 GiB of 10 GiB: warning`.
fn disk_text(d: &octo_wire::SessionDisk) -> String {
    let home = match (d.used_bytes, d.measured_at) {
        (Some(bytes), Some(at)) => format!(
            "home {} (measured {} UTC)",
            binary_size(bytes),
            table::utc_minutes(at)
        ),
        (Some(bytes), None) => format!("home {} (not measured yet)", binary_size(bytes)),
        (None, _) => "home not measured yet".to_owned(),
    };
    let owner = match d.quota_bytes {
        Some(quota) => format!(
            "owner's homes {} of {}: {}",
            binary_size(d.owner_used_bytes),
            binary_size(quota),
            d.quota_state.as_str()
        ),
        None => format!(
            "owner's homes {}, no quota",
            binary_size(d.owner_used_bytes)
        ),
    };
    format!("{home}; {owner}")
}

/// `memory 2 GiB, cpu 1.5, pids 512`, `none`, and which of them the host does not enforce.
fn limits_text(l: &octo_wire::SessionLimits) -> String {
    let mut parts = Vec::new();
    if let Some(bytes) = l.memory_bytes {
        parts.push(format!("memory {}", binary_size(bytes)));
    }
    if let Some(centis) = l.cpu_centis {
        let cpus = format!("{}.{:02}", centis / 100, centis % 100);
        parts.push(format!(
            "cpu {}",
            cpus.trim_end_matches('0').trim_end_matches('.')
        ));
    }
    if let Some(pids) = l.pids {
        parts.push(format!("pids {pids}"));
    }
    let mut text = if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    };
    if !l.unenforced.is_empty() {
        let _ = write!(
            text,
            " (not enforced on this host: {}; see `octoctl status`)",
            l.unenforced.join(", ")
        );
    }
    text
}

// ---- snapshots

async fn snapshot(client: &Client, out: Output, command: &SnapshotCommand) -> Result<(), Failure> {
    let path = |id: &str, rest: &str| format!("/admin/v1/sessions/{}/snapshots{rest}", segment(id));
    match command {
        SnapshotCommand::List { id } => {
            let v = answer(client.call(Method::GET, &path(id, ""), None).await?);
            out.show_typed(&v, |list: SnapshotList| snapshot_table(&list))?;
        }
        SnapshotCommand::Create { id, name, no_wait } => {
            let request = json!({ "name": name });
            let v = answer(
                client
                    .call(Method::POST, &path(id, ""), Some(&request))
                    .await?,
            );
            let job: SnapshotJobView = typed(&v)?;
            follow_job(client, out, &path(id, ""), &v, job, *no_wait).await?;
        }
        SnapshotCommand::Restore {
            id,
            snapshot,
            yes,
            no_wait,
        } => {
            if !yes {
                return Err(Failure::Failed(format!(
                    "restoring {snapshot} replaces the home of session {id}: add --yes to confirm"
                )));
            }
            let at = path(id, &format!("/{}/restore", segment(snapshot)));
            let v = answer(client.call(Method::POST, &at, None).await?);
            let job: SnapshotJobView = typed(&v)?;
            follow_job(client, out, &path(id, ""), &v, job, *no_wait).await?;
        }
        SnapshotCommand::Delete { id, snapshot } => {
            client
                .call(
                    Method::DELETE,
                    &path(id, &format!("/{}", segment(snapshot))),
                    None,
                )
                .await?;
            out.show(&json!({"id": snapshot, "deleted": true}), |_| {
                format!("snapshot {snapshot}: deleted\n")
            });
        }
    }
    Ok(())
}

/// Shows a started job's progress (a line per change) until it ends; fails as it failed.
async fn follow_job(
    client: &Client,
    out: Output,
    list_path: &str,
    started: &Value,
    job: SnapshotJobView,
    no_wait: bool,
) -> Result<(), Failure> {
    let verb = match job.kind {
        octo_wire::SnapshotJobKind::Create => "snapshot",
        octo_wire::SnapshotJobKind::Restore => "restore of",
    };
    if no_wait {
        out.show(started, |_| {
            format!("{verb} {} {:?}: started\n", job.snapshot, job.name)
        });
        return Ok(());
    }
    let mut last = None;
    let done = loop {
        let v = answer(client.call(Method::GET, list_path, None).await?);
        let list: SnapshotList = typed(&v)?;
        let Some(now) = list
            .job
            .filter(|j| j.snapshot == job.snapshot && j.kind == job.kind)
        else {
            return Err(Failure::Failed("octod no longer knows the job (did it restart?): see `octoctl session snapshot list`".into()));
        };
        let line = format!(
            "{verb} {} {:?}: {}",
            now.snapshot,
            now.name,
            progress_text(now.done_bytes, now.total_bytes)
        );
        if !out.json && last.as_ref() != Some(&line) && now.state == SnapshotJobState::Running {
            println!("{line}");
            last = Some(line);
        }
        if now.state != SnapshotJobState::Running {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let value = serde_json::to_value(&done).unwrap_or_default();
    match done.state {
        SnapshotJobState::Failed => Err(Failure::Failed(format!(
            "{verb} {} failed: {}",
            done.snapshot,
            done.reason.unwrap_or_default()
        ))),
        _ => {
            out.show(&value, |_| {
                format!("{verb} {} {:?}: done\n", done.snapshot, done.name)
            });
            Ok(())
        }
    }
}

fn progress_text(done: u64, total: u64) -> String {
    if total == 0 {
        return "starting".into();
    }
    let percent = u128::from(done.min(total)) * 100 / u128::from(total);
    format!(
        "{percent}% ({} of {})",
        binary_size(done),
        binary_size(total)
    )
}

fn snapshot_table(list: &SnapshotList) -> String {
    let rows: Vec<Vec<String>> = list
        .snapshots
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.name.clone(),
                binary_size(s.size_bytes),
                binary_size(s.home_bytes),
                table::utc_minutes(s.created_at),
            ]
        })
        .collect();
    let mut text = table::render(&["ID", "NAME", "SIZE", "HOME", "TAKEN"], &rows);
    let quota = list.quota_bytes.map_or_else(
        || "no quota".to_owned(),
        |q| format!("quota {}", binary_size(q)),
    );
    let _ = writeln!(
        text,
        "snapshots of this user: {} ({quota})",
        binary_size(list.used_bytes)
    );
    if let Some(job) = &list.job {
        let state = match job.state {
            SnapshotJobState::Running => progress_text(job.done_bytes, job.total_bytes),
            SnapshotJobState::Done => "done".into(),
            SnapshotJobState::Failed => {
                format!("failed: {}", job.reason.clone().unwrap_or_default())
            }
        };
        let kind = match job.kind {
            octo_wire::SnapshotJobKind::Create => "snapshot",
            octo_wire::SnapshotJobKind::Restore => "restore",
        };
        let _ = writeln!(
            text,
            "last job: {kind} {} {:?}: {state}",
            job.snapshot, job.name
        );
    }
    text
}

/// Bytes as `2 GiB`, `1.5 GiB`, `512 MiB`.
fn binary_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift {
            #[allow(clippy::cast_precision_loss)]
            let value = bytes as f64 / f64::from(1u32 << (shift - 10)) / 1024.0;
            let text = format!("{value:.1}");
            return format!("{} {unit}", text.trim_end_matches(".0"));
        }
    }
    format!("{bytes} bytes")
}

async fn session(client: &Client, out: Output, command: &SessionCommand) -> Result<(), Failure> {
    let path = |id: &str, op: &str| format!("/admin/v1/sessions/{}{op}", segment(id));
    match command {
        SessionCommand::List => {
            let v = answer(client.call(Method::GET, "/admin/v1/sessions", None).await?);
            out.show_typed(&v, |list: Vec<SessionView>| session_table(&list))?;
        }
        SessionCommand::Show { id } => {
            let v = answer(client.call(Method::GET, &path(id, ""), None).await?);
            out.show_typed(&v, |s: SessionView| session_details(&s))?;
        }
        SessionCommand::Rename {
            id,
            name,
            description,
        } => {
            let change = body(&UpdateSession {
                name: name.clone(),
                description: description.clone(),
            });
            let v = answer(
                client
                    .call(Method::PATCH, &path(id, ""), Some(&change))
                    .await?,
            );
            out.show_typed(&v, |s: SessionView| {
                format!("session {}: {}\n", s.id, s.name)
            })?;
        }
        SessionCommand::KeepAlive { id, duration } => {
            let minutes = u32::try_from(duration.as_secs().div_ceil(60)).map_err(|_| {
                Failure::Failed(format!("{}: too long", duration::human(*duration)))
            })?;
            let request = body(&octo_wire::KeepAlive { minutes });
            let v = answer(
                client
                    .call(Method::POST, &path(id, "/keep-alive"), Some(&request))
                    .await?,
            );
            out.show_typed(&v, |s: SessionView| {
                format!("session {}: {}\n", s.id, idle_text(&s.idle))
            })?;
        }
        SessionCommand::Stop { id } | SessionCommand::Resume { id } => {
            let op = if matches!(command, SessionCommand::Stop { .. }) {
                "/stop"
            } else {
                "/resume"
            };
            let v = answer(client.call(Method::POST, &path(id, op), None).await?);
            out.show_typed(&v, |s: SessionView| {
                format!("session {}: {}\n", s.id, s.state.as_str())
            })?;
        }
        SessionCommand::Delete { id, yes } => {
            if !yes {
                return Err(Failure::Failed(format!(
                    "deleting session {id} also deletes its workspace: add --yes to confirm"
                )));
            }
            let v = client.call(Method::DELETE, &path(id, ""), None).await?;
            match v {
                // 202: still deleting.
                Some(v) => out.show_typed(&v, |s: SessionView| {
                    format!("session {}: {}\n", s.id, s.state.as_str())
                })?,
                None => out.show(&json!({"id": id, "deleted": true}), |_| {
                    format!("session {id}: deleted\n")
                }),
            }
        }
        SessionCommand::Snapshot(command) => snapshot(client, out, command).await?,
        SessionCommand::Logs { id, lines, follow } => {
            let query = format!("/logs?lines={lines}&follow={follow}");
            let mut failed = None;
            client
                .stream(Method::GET, &path(id, &query), |raw, value| {
                    match event::<LogEvent>(value) {
                        Some(LogEvent::Line { line }) if !out.json => println!("{line}"),
                        Some(LogEvent::Error { message }) => failed = Some(message),
                        _ => {}
                    }
                    if out.json {
                        println!("{raw}");
                    }
                    Ok(())
                })
                .await?;
            if let Some(message) = failed {
                return Err(Failure::Failed(message));
            }
        }
    }
    Ok(())
}

// ---- users

/// `enabled` or `disabled`.
fn user_status(user: &UserView) -> &'static str {
    if user.disabled { "disabled" } else { "enabled" }
}

fn user_table(list: &[UserView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.role.as_str().to_owned(),
                user_status(u).to_owned(),
                table::utc_minutes(u.created_at),
            ]
        })
        .collect();
    table::render(&["NAME", "ROLE", "STATUS", "CREATED (UTC)"], &rows)
}

/// The password: the first line of standard input, or a generated one.
fn password(args: &PasswordArgs) -> Result<(String, bool), Failure> {
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            Failure::Failed(format!("reading the password from standard input: {e}"))
        })?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        return Ok((line, false));
    }
    Ok((generate_password()?, true))
}

/// 20 characters from a 56-letter alphabet without look-alikes (~116 bits).
fn generate_password() -> Result<String, Failure> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 64];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom")
            .map_err(|e| Failure::Failed(format!("opening /dev/urandom: {e}")))?,
        &mut bytes,
    )
    .map_err(|e| Failure::Failed(format!("reading /dev/urandom: {e}")))?;
    // Rejection sampling keeps every letter equally likely.
    let limit = u8::try_from(256 / ALPHABET.len() * ALPHABET.len()).unwrap_or(u8::MAX);
    let password: String = bytes
        .iter()
        .filter(|b| **b < limit)
        .take(20)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    if password.len() < 20 {
        return Err(Failure::Failed(
            "not enough randomness for a password".into(),
        ));
    }
    Ok(password)
}

async fn user(client: &Client, out: Output, command: &UserCommand) -> Result<(), Failure> {
    let path = |name: &str, op: &str| format!("/admin/v1/users/{}{op}", segment(name));
    let one = |u: UserView| {
        format!(
            "user {}: {}, {}\n",
            u.name,
            u.role.as_str(),
            user_status(&u)
        )
    };
    match command {
        UserCommand::List => {
            let v = answer(client.call(Method::GET, "/admin/v1/users", None).await?);
            out.show_typed(&v, |list: Vec<UserView>| user_table(&list))?;
        }
        UserCommand::Add {
            name,
            role,
            password: args,
        } => {
            let (password, generated) = password(args)?;
            let request = CreateUser {
                username: name.clone(),
                password: password.clone(),
                role: Some(wire_role(*role)),
            };
            let mut v = answer(
                client
                    .call(Method::POST, "/admin/v1/users", Some(&body(&request)))
                    .await?,
            );
            let user: UserView = typed(&v)?;
            if generated && let Some(map) = v.as_object_mut() {
                map.insert("password".into(), Value::String(password.clone()));
            }
            out.show(&v, |_| {
                let mut s = format!("created {}", one(user));
                if generated {
                    let _ = writeln!(s, "password: {password}");
                }
                s
            });
        }
        UserCommand::Disable { name } => {
            let v = answer(
                client
                    .call(Method::POST, &path(name, "/disable"), None)
                    .await?,
            );
            out.show_typed(&v, one)?;
        }
        UserCommand::Enable { name } => {
            let v = answer(
                client
                    .call(Method::POST, &path(name, "/enable"), None)
                    .await?,
            );
            out.show_typed(&v, one)?;
        }
        UserCommand::SetRole { name, role } => {
            let request = SetRole {
                role: wire_role(*role),
            };
            let v = answer(
                client
                    .call(Method::POST, &path(name, "/role"), Some(&body(&request)))
                    .await?,
            );
            out.show_typed(&v, one)?;
        }
        UserCommand::ResetPassword {
            name,
            password: args,
        } => {
            let (password, generated) = password(args)?;
            let request = ResetPassword {
                password: password.clone(),
            };
            client
                .call(
                    Method::POST,
                    &path(name, "/password"),
                    Some(&body(&request)),
                )
                .await?;
            let mut v = json!({"name": name, "password_reset": true});
            if generated {
                v["password"] = Value::String(password.clone());
            }
            out.show(&v, |_| {
                let mut s = format!("user {name}: password reset; their sign-ins ended\n");
                if generated {
                    let _ = writeln!(s, "password: {password}");
                }
                s
            });
        }
        UserCommand::SetBudget { name, budget } => {
            let request = match budget {
                Budget::Tokens(tokens) => SetBudget {
                    monthly_tokens: Some(*tokens),
                    unlimited: false,
                },
                Budget::Unlimited => SetBudget {
                    monthly_tokens: None,
                    unlimited: true,
                },
                Budget::Default => SetBudget::default(),
            };
            client
                .call(Method::POST, &path(name, "/budget"), Some(&body(&request)))
                .await?;
            let text = match budget {
                Budget::Tokens(tokens) => format!("{tokens} tokens a month"),
                Budget::Unlimited => "unlimited".to_owned(),
                Budget::Default => "their role's".to_owned(),
            };
            out.show(&json!({"name": name, "budget": text}), |_| {
                format!("user {name}: monthly token budget {text}\n")
            });
        }
        UserCommand::Token(command) => token(client, out, command).await?,
    }
    Ok(())
}

// ---- API tokens

fn token_table(list: &[ApiTokenView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                table::utc_minutes(t.created_at),
                table::utc_minutes(t.expires_at),
                t.last_used_at
                    .map_or_else(|| "never".to_owned(), table::utc_minutes),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "NAME",
            "SCOPES",
            "CREATED (UTC)",
            "EXPIRES (UTC)",
            "LAST USED",
        ],
        &rows,
    )
}

async fn token(client: &Client, out: Output, command: &TokenCommand) -> Result<(), Failure> {
    let path = |user: &str, rest: &str| format!("/admin/v1/users/{}/tokens{rest}", segment(user));
    match command {
        TokenCommand::Create {
            user,
            name,
            scopes,
            expires,
        } => {
            let scopes = if scopes.is_empty() {
                vec![
                    Scope::SessionsRead,
                    Scope::SessionsWrite,
                    Scope::SessionsConnect,
                ]
            } else {
                scopes.clone()
            };
            let request = CreateApiToken {
                name: name.clone(),
                scopes,
                expires_in_days: *expires,
            };
            let v = answer(
                client
                    .call(Method::POST, &path(user, ""), Some(&body(&request)))
                    .await?,
            );
            out.show_typed(&v, |created: CreatedApiToken| {
                let info = &created.info;
                format!(
                    "token {} for {} ({}), expires {} UTC:\n{}\nIt is shown only now; keep it secret. Use it as `Authorization: Bearer <token>`.\n",
                    info.id,
                    info.user,
                    info.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    table::utc_minutes(info.expires_at),
                    created.token
                )
            })?;
        }
        TokenCommand::List { user } => {
            let v = answer(client.call(Method::GET, &path(user, ""), None).await?);
            out.show_typed(&v, |list: Vec<ApiTokenView>| token_table(&list))?;
        }
        TokenCommand::Revoke { user, id } => {
            client
                .call(
                    Method::DELETE,
                    &path(user, &format!("/{}", segment(id))),
                    None,
                )
                .await?;
            out.show(&json!({"user": user, "id": id, "revoked": true}), |_| {
                format!("token {id} of {user}: revoked; its open streams close\n")
            });
        }
    }
    Ok(())
}

// ---- invite codes

fn invite_table(list: &[InviteView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            vec![
                i.code.clone(),
                i.role.as_str().to_owned(),
                i.uses_left.to_string(),
                i.expires_at
                    .map_or_else(|| "never".to_owned(), table::utc_minutes),
                i.created_by.clone(),
                table::utc_minutes(i.created_at),
            ]
        })
        .collect();
    table::render(
        &[
            "CODE",
            "ROLE",
            "USES LEFT",
            "EXPIRES (UTC)",
            "BY",
            "CREATED (UTC)",
        ],
        &rows,
    )
}

async fn invite(client: &Client, out: Output, command: &InviteCommand) -> Result<(), Failure> {
    match command {
        InviteCommand::Generate {
            role,
            uses,
            expires,
        } => {
            let request = CreateInvite {
                role: Some(wire_role(*role)),
                uses: *uses,
                expires_in_seconds: expires.map(|e| e.as_secs()),
            };
            let v = answer(
                client
                    .call(
                        Method::POST,
                        "/admin/v1/invite-codes",
                        Some(&body(&request)),
                    )
                    .await?,
            );
            out.show_typed(&v, |i: InviteView| {
                let expires = i.expires_at.map_or_else(
                    || "never expires".to_owned(),
                    |at| format!("expires {} UTC", table::utc_minutes(at)),
                );
                format!(
                    "{}\n(role {}, {} use(s), {expires})\n",
                    i.code,
                    i.role.as_str(),
                    i.uses_left
                )
            })?;
        }
        InviteCommand::List => {
            let v = answer(
                client
                    .call(Method::GET, "/admin/v1/invite-codes", None)
                    .await?,
            );
            out.show_typed(&v, |list: Vec<InviteView>| invite_table(&list))?;
        }
        InviteCommand::Revoke { code } => {
            let path = format!("/admin/v1/invite-codes/{}", segment(code));
            client.call(Method::DELETE, &path, None).await?;
            out.show(&json!({"code": code, "revoked": true}), |_| {
                format!("invite code {code}: revoked\n")
            });
        }
    }
    Ok(())
}

// ---- image build and container refresh

async fn image_build(client: &Client, out: Output) -> Result<(), Failure> {
    let mut failed = None;
    let mut done = false;
    client
        .stream(Method::POST, "/admin/v1/image/build", |raw, value| {
            if out.json {
                println!("{raw}");
            }
            match event::<BuildEvent>(value) {
                Some(BuildEvent::Start { image, .. }) if !out.json => {
                    println!("building {image}");
                }
                Some(BuildEvent::Line { line }) if !out.json => println!("  {line}"),
                Some(BuildEvent::Done {
                    image,
                    latest,
                    id,
                    elapsed_seconds,
                    ..
                }) => {
                    done = true;
                    if !out.json {
                        println!(
                            "built {image} in {}; {latest} is now {}",
                            duration::human(Duration::from_secs(elapsed_seconds)),
                            short_id(&id.unwrap_or_default()),
                        );
                    }
                }
                Some(BuildEvent::Error { message }) => failed = Some(message),
                _ => {}
            }
            Ok(())
        })
        .await?;
    match failed {
        Some(message) => Err(Failure::Failed(message)),
        None if !done => Err(Failure::Failed(
            "the build's stream ended without a result: see `journalctl --user-unit 'octo-image-build-*'` as octod's user".into(),
        )),
        None => Ok(()),
    }
}

async fn refresh(client: &Client, out: Output, parallel: u16) -> Result<(), Failure> {
    let mut failed = 0_usize;
    let mut summary = false;
    let path = format!("/admin/v1/container/refresh?parallel={parallel}");
    client
        .stream(Method::POST, &path, |raw, value| {
            if out.json {
                println!("{raw}");
            }
            match event::<RefreshEvent>(value) {
                Some(RefreshEvent::Start {
                    image,
                    id,
                    running,
                    parallel,
                }) if !out.json => {
                    println!(
                        "{image} is {}; {running} running session(s), {parallel} at a time",
                        short_id(&id)
                    );
                }
                Some(RefreshEvent::Session {
                    id,
                    status,
                    seconds,
                    message,
                }) if !out.json => match status {
                    RefreshStatus::Current => println!("{id}: already on the current image"),
                    RefreshStatus::Restarting => println!("{id}: restarting"),
                    RefreshStatus::Refreshed => {
                        println!("{id}: refreshed ({:.1} s)", seconds.unwrap_or(0.0));
                    }
                    RefreshStatus::Failed => {
                        println!("{id}: FAILED: {}", message.unwrap_or_default());
                    }
                },
                Some(RefreshEvent::Summary {
                    refreshed,
                    skipped,
                    failed: count,
                }) => {
                    summary = true;
                    failed = count;
                    if !out.json {
                        println!("refreshed {refreshed}, skipped {skipped}, failed {failed}");
                    }
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
    if !summary {
        return Err(Failure::Failed(
            "the refresh's stream ended without a summary: see octod's log".into(),
        ));
    }
    if failed > 0 {
        return Err(Failure::Failed(format!(
            "{failed} session(s) failed to refresh"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("ab12"), "ab12");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("zoë"), "zo%C3%AB");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password().expect("password");
        let b = generate_password().expect("password");
        assert_eq!(a.chars().count(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn sessions_table_shows_state_and_owner() {
        let list = [SessionView {
            id: "ab12".into(),
            owner: "alice".into(),
            template: "coding".into(),
            name: "Thesis, ch. 2".into(),
            description: String::new(),
            state: octo_wire::SessionStatus::Running,
            reason: None,
            desired: octo_wire::Desired::Running,
            created_at: 0,
            updated_at: 0,
            last_active_at: 90_061_000,
            urls: octo_wire::SessionUrls {
                opencode: String::new(),
                files: String::new(),
                terminal: String::new(),
            },
            limits: octo_wire::SessionLimits::default(),
            disk: octo_wire::SessionDisk {
                used_bytes: Some(3 << 29),
                ..octo_wire::SessionDisk::default()
            },
            idle: octo_wire::SessionIdle::default(),
        }];
        let table = session_table(&list);
        assert_eq!(
            table,
            "ID    NAME           OWNER  TEMPLATE  STATE    WANTED   HOME     LAST ACTIVE (UTC)\n\
             ab12  Thesis, ch. 2  alice  coding    running  running  1.5 GiB  1970-01-02 01:01\n"
        );
    }

    #[test]
    fn the_idle_stop_says_when_and_why() {
        let mut idle = octo_wire::SessionIdle::default();
        assert_eq!(
            idle_text(&idle),
            "none (idle stop is off, or the session is not running)"
        );
        idle.keep_alive_until = Some(90_061_000);
        assert_eq!(
            idle_text(&idle),
            "not while stopped (kept alive until 1970-01-02 01:01 UTC)"
        );
        idle.stops_at = Some(90_061_000);
        idle.kept_by = vec![
            octo_wire::IdleReason::Agent,
            octo_wire::IdleReason::KeepAlive,
        ];
        assert_eq!(
            idle_text(&idle),
            "about 1970-01-02 01:01 UTC (running: its agent is working, kept alive until 1970-01-02 01:01 UTC)"
        );
        idle.kept_by.clear();
        idle.keep_alive_until = None;
        assert_eq!(
            idle_text(&idle),
            "about 1970-01-02 01:01 UTC (due: nothing keeps it running)"
        );
    }

    #[test]
    fn disk_usage_is_shown_with_the_owners_quota() {
        let mut d = octo_wire::SessionDisk::default();
        assert_eq!(home_size(&d), "-");
        assert_eq!(
            disk_text(&d),
            "home not measured yet; owner's homes 0 bytes, no quota"
        );
        d.used_bytes = Some(9 << 30);
        d.measured_at = Some(90_061_000);
        d.owner_used_bytes = 9 << 30;
        d.quota_bytes = Some(10 << 30);
        d.quota_state = octo_wire::QuotaState::Warning;
        assert_eq!(home_size(&d), "9 GiB !");
        assert_eq!(
            disk_text(&d),
            "home 9 GiB (measured 1970-01-02 01:01 UTC); owner's homes 9 GiB of 10 GiB: warning"
        );
    }

    #[test]
    fn limits_are_shown_with_what_is_not_enforced() {
        let mut limits = octo_wire::SessionLimits::default();
        assert_eq!(limits_text(&limits), "none");
        limits.memory_bytes = Some(3 << 29);
        limits.cpu_centis = Some(150);
        limits.pids = Some(512);
        assert_eq!(limits_text(&limits), "memory 1.5 GiB, cpu 1.5, pids 512");
        limits.cpu_centis = Some(200);
        limits.memory_bytes = Some(512 << 20);
        limits.unenforced = vec!["memory".into(), "pids".into()];
        assert_eq!(
            limits_text(&limits),
            "memory 512 MiB, cpu 2, pids 512 (not enforced on this host: memory, pids; see `octoctl status`)"
        );
    }
}
