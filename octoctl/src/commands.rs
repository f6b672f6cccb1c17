//! Each command: one call to the admin socket, then a table or message for people, or the
//! JSON answer (a stream: its JSON lines) for scripts.

use std::fmt::Write as _;
use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use crate::cli::{
    Cli, Command, ContainerCommand, ImageCommand, InviteCommand, PasswordArgs, SessionCommand,
    UserCommand,
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
        Command::GenerateAssets { .. } => Ok(()),
    }
}

#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// Prints the JSON for scripts, else what `human` makes of it.
    fn show(self, value: &Value, human: impl FnOnce(&Value) -> String) {
        let text = if self.json {
            let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
            text.push('\n');
            text
        } else {
            human(value)
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn time(v: &Value, key: &str) -> String {
    v[key]
        .as_u64()
        .map_or_else(|| "-".to_owned(), table::utc_minutes)
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

async fn status(client: &Client, out: Output) -> Result<(), Failure> {
    let v = answer(client.call(Method::GET, "/admin/v1/status", None).await?);
    out.show(&v, |v| {
        let mut s = String::new();
        let uptime = duration::human(Duration::from_secs(
            v["uptime_seconds"].as_u64().unwrap_or(0),
        ));
        let _ = writeln!(s, "octod     {} (up {uptime})", text(v, "octod_version"));
        let podman = v["podman_version"].as_str().unwrap_or("not answering");
        let _ = writeln!(s, "podman    {podman}");
        match v.get("image").filter(|i| !i.is_null()) {
            Some(image) => {
                let id: String = text(image, "id").chars().take(12).collect();
                let created = text(image, "created");
                let _ = writeln!(
                    s,
                    "image     {}  {id}  built {}",
                    text(image, "reference"),
                    created.get(..19).unwrap_or(&created).replace('T', " ")
                );
            }
            None => s.push_str("image     none (octoctl image build)\n"),
        }
        let counts: Vec<String> = v["sessions"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                    .map(|(state, n)| format!("{n} {state}"))
                    .collect()
            })
            .unwrap_or_default();
        let counts = if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        };
        let _ = writeln!(s, "sessions  {counts}");
        let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
        if warnings.is_empty() {
            s.push_str("warnings  none\n");
        } else {
            s.push_str("warnings:\n");
            for w in warnings {
                let _ = writeln!(s, "  - {}", w.as_str().unwrap_or_default());
            }
        }
        s
    });
    Ok(())
}

// ---- sessions

fn session_table(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                text(s, "id"),
                text(s, "owner"),
                text(s, "template"),
                text(s, "state"),
                text(s, "desired"),
                time(s, "created_at"),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "OWNER",
            "TEMPLATE",
            "STATE",
            "WANTED",
            "CREATED (UTC)",
        ],
        &rows,
    )
}

fn session_details(s: &Value) -> String {
    let mut rows = vec![
        vec!["id".to_owned(), text(s, "id")],
        vec!["owner".to_owned(), text(s, "owner")],
        vec!["template".to_owned(), text(s, "template")],
        vec!["state".to_owned(), text(s, "state")],
        vec!["wanted".to_owned(), text(s, "desired")],
        vec![
            "created".to_owned(),
            format!("{} UTC", time(s, "created_at")),
        ],
        vec![
            "updated".to_owned(),
            format!("{} UTC", time(s, "updated_at")),
        ],
    ];
    if let Some(reason) = s["reason"].as_str() {
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

async fn session(client: &Client, out: Output, command: &SessionCommand) -> Result<(), Failure> {
    let path = |id: &str, op: &str| format!("/admin/v1/sessions/{}{op}", segment(id));
    match command {
        SessionCommand::List => {
            let v = answer(client.call(Method::GET, "/admin/v1/sessions", None).await?);
            out.show(&v, session_table);
        }
        SessionCommand::Show { id } => {
            let v = answer(client.call(Method::GET, &path(id, ""), None).await?);
            out.show(&v, session_details);
        }
        SessionCommand::Stop { id } | SessionCommand::Resume { id } => {
            let op = if matches!(command, SessionCommand::Stop { .. }) {
                "/stop"
            } else {
                "/resume"
            };
            let v = answer(client.call(Method::POST, &path(id, op), None).await?);
            out.show(&v, |v| {
                format!("session {}: {}\n", text(v, "id"), text(v, "state"))
            });
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
                Some(v) => out.show(&v, |v| {
                    format!("session {}: {}\n", text(v, "id"), text(v, "state"))
                }),
                None => out.show(&json!({"id": id, "deleted": true}), |_| {
                    format!("session {id}: deleted\n")
                }),
            }
        }
        SessionCommand::Logs { id, lines, follow } => {
            let query = format!("/logs?lines={lines}&follow={follow}");
            let mut failed = None;
            client
                .stream(Method::GET, &path(id, &query), |raw, event| {
                    match event["event"].as_str() {
                        Some("line") if !out.json => {
                            println!("{}", text(event, "line"));
                        }
                        Some("error") => failed = Some(text(event, "message")),
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

fn user_table(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let status = if u["disabled"].as_bool().unwrap_or(false) {
                "disabled"
            } else {
                "enabled"
            };
            vec![
                text(u, "name"),
                text(u, "role"),
                status.to_owned(),
                time(u, "created_at"),
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
    let one = |v: &Value| {
        let status = if v["disabled"].as_bool().unwrap_or(false) {
            "disabled"
        } else {
            "enabled"
        };
        format!("user {}: {}, {status}\n", text(v, "name"), text(v, "role"))
    };
    match command {
        UserCommand::List => {
            let v = answer(client.call(Method::GET, "/admin/v1/users", None).await?);
            out.show(&v, user_table);
        }
        UserCommand::Add {
            name,
            role,
            password: args,
        } => {
            let (password, generated) = password(args)?;
            let body = json!({"username": name, "password": password, "role": role.as_str()});
            let mut v = answer(
                client
                    .call(Method::POST, "/admin/v1/users", Some(&body))
                    .await?,
            );
            if generated && let Some(map) = v.as_object_mut() {
                map.insert("password".into(), Value::String(password.clone()));
            }
            out.show(&v, |v| {
                let mut s = format!("created {}", one(v));
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
            out.show(&v, one);
        }
        UserCommand::Enable { name } => {
            let v = answer(
                client
                    .call(Method::POST, &path(name, "/enable"), None)
                    .await?,
            );
            out.show(&v, one);
        }
        UserCommand::SetRole { name, role } => {
            let body = json!({"role": role.as_str()});
            let v = answer(
                client
                    .call(Method::POST, &path(name, "/role"), Some(&body))
                    .await?,
            );
            out.show(&v, one);
        }
        UserCommand::ResetPassword {
            name,
            password: args,
        } => {
            let (password, generated) = password(args)?;
            let body = json!({"password": password});
            client
                .call(Method::POST, &path(name, "/password"), Some(&body))
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
    }
    Ok(())
}

// ---- invite codes

fn invite_table(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            vec![
                text(i, "code"),
                text(i, "role"),
                text(i, "uses_left"),
                if i["expires_at"].is_null() {
                    "never".to_owned()
                } else {
                    time(i, "expires_at")
                },
                text(i, "created_by"),
                time(i, "created_at"),
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
            let mut body = json!({"role": role.as_str()});
            if let Some(uses) = uses {
                body["uses"] = json!(uses);
            }
            if let Some(expires) = expires {
                body["expires_in_seconds"] = json!(expires.as_secs());
            }
            let v = answer(
                client
                    .call(Method::POST, "/admin/v1/invite-codes", Some(&body))
                    .await?,
            );
            out.show(&v, |v| {
                let expires = if v["expires_at"].is_null() {
                    "never expires".to_owned()
                } else {
                    format!("expires {} UTC", time(v, "expires_at"))
                };
                format!(
                    "{}\n(role {}, {} use(s), {expires})\n",
                    text(v, "code"),
                    text(v, "role"),
                    text(v, "uses_left")
                )
            });
        }
        InviteCommand::List => {
            let v = answer(
                client
                    .call(Method::GET, "/admin/v1/invite-codes", None)
                    .await?,
            );
            out.show(&v, invite_table);
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
        .stream(Method::POST, "/admin/v1/image/build", |raw, event| {
            if out.json {
                println!("{raw}");
            }
            match event["event"].as_str() {
                Some("start") if !out.json => {
                    println!("building {}", text(event, "image"));
                }
                Some("line") if !out.json => println!("  {}", text(event, "line")),
                Some("done") => {
                    done = true;
                    if !out.json {
                        let id: String = text(event, "id").chars().take(12).collect();
                        println!(
                            "built {} in {}; {} is now {id}",
                            text(event, "image"),
                            duration::human(Duration::from_secs(
                                event["elapsed_seconds"].as_u64().unwrap_or(0)
                            )),
                            text(event, "latest"),
                        );
                    }
                }
                Some("error") => failed = Some(text(event, "message")),
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
    let mut failed = 0_u64;
    let mut summary = false;
    let path = format!("/admin/v1/container/refresh?parallel={parallel}");
    client
        .stream(Method::POST, &path, |raw, event| {
            if out.json {
                println!("{raw}");
            }
            match event["event"].as_str() {
                Some("start") if !out.json => {
                    let id: String = text(event, "id").chars().take(12).collect();
                    println!(
                        "{} is {id}; {} running session(s), {} at a time",
                        text(event, "image"),
                        text(event, "running"),
                        text(event, "parallel")
                    );
                }
                Some("session") if !out.json => {
                    let id = text(event, "id");
                    match event["status"].as_str().unwrap_or_default() {
                        "current" => println!("{id}: already on the current image"),
                        "restarting" => println!("{id}: restarting"),
                        "refreshed" => println!(
                            "{id}: refreshed ({:.1} s)",
                            event["seconds"].as_f64().unwrap_or(0.0)
                        ),
                        "failed" => println!("{id}: FAILED: {}", text(event, "message")),
                        other => println!("{id}: {other}"),
                    }
                }
                Some("summary") => {
                    summary = true;
                    failed = event["failed"].as_u64().unwrap_or(0);
                    if !out.json {
                        println!(
                            "refreshed {}, skipped {}, failed {failed}",
                            text(event, "refreshed"),
                            text(event, "skipped")
                        );
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
        let list = json!([{"id": "ab12", "owner": "alice", "template": "coding", "state": "running", "desired": "running", "created_at": 0}]);
        let table = session_table(&list);
        assert_eq!(
            table,
            "ID    OWNER  TEMPLATE  STATE    WANTED   CREATED (UTC)\n\
             ab12  alice  coding    running  running  1970-01-01 00:00\n"
        );
    }
}
