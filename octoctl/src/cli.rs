//! The command line: clap definitions only (also the source of completions and man pages).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The default path of octod's admin socket.
pub const DEFAULT_SOCKET: &str = "/run/octod/admin.sock";

/// Administer an Octo host through octod's admin socket (root or group octo-admin).
#[derive(Debug, Parser)]
#[command(name = "octoctl", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// The admin socket of octod.
    #[arg(long, global = true, env = "OCTOCTL_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print JSON (the admin API's wire types) instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, shown in `--help` and the man page.
pub const EXIT_CODES: &str = "Exit codes: 0 ok; 1 the operation failed; 2 usage error; 3 not found; \
4 permission refused (needs root or group octo-admin); 5 octod not reachable.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Versions, the session image, sessions by state, uptime and warnings.
    Status,
    /// Sessions of all users.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Invite codes for registration.
    #[command(subcommand)]
    InviteCodes(InviteCommand),
    /// The session image.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Session containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// The LLM provider behind octod's model gateway.
    #[command(subcommand)]
    Llm(LlmCommand),
    /// Back up the whole instance into one archive, check one, or restore one (as root).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Model tokens used through octod's model gateway, per day, user, session and model.
    Usage {
        /// Only this user's usage.
        #[arg(long)]
        user: Option<String>,
        /// The period up to today, in whole days: 1d to 366d (e.g. 7d, 2w).
        #[arg(long, default_value = "30d", value_parser = parse_period)]
        since: u32,
    },
    /// Write shell completions and man pages into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Where `completions/` and `man/` are written.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List every session: name, owner, state and when it was last used.
    List,
    /// Show one session.
    Show { id: String },
    /// Rename a session, or set its description.
    Rename {
        id: String,
        /// The new name (1-80 characters).
        #[arg(required_unless_present = "description")]
        name: Option<String>,
        /// A short description (at most 280 characters; "" clears it).
        #[arg(long)]
        description: Option<String>,
    },
    /// Keep a session running without activity for a while (`8h`, `90m`), or `off` to end
    /// it; at most the host's `sessions.keep_alive_max_hours`.
    KeepAlive {
        id: String,
        /// How long from now: e.g. 30m, 8h; `off` (or 0) ends a keep-alive.
        #[arg(value_parser = keep_alive_for)]
        duration: std::time::Duration,
    },
    /// Stop a session; its workspace is kept.
    Stop { id: String },
    /// Start a stopped or failed session again.
    Resume { id: String },
    /// Delete a session and its workspace.
    Delete {
        id: String,
        /// Confirm: the session's workspace is lost.
        #[arg(long)]
        yes: bool,
    },
    /// Snapshots of the session's home: list, create, restore, delete.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// The session's log (its unit's journal).
    Logs {
        id: String,
        /// How many of the last lines to show.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
        /// Keep printing new lines as they come.
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List the session's snapshots (name, size, time), its last job and the quota.
    List { id: String },
    /// Take a snapshot of the session's home (running or stopped) and show its progress.
    Create {
        id: String,
        /// Its name (1-80 characters, unique in the session).
        name: String,
        /// Start it and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Replace the session's home with a snapshot's: it is stopped, restored, and started
    /// again if it ran.
    Restore {
        id: String,
        /// The snapshot's id.
        snapshot: String,
        /// Confirm: the home's current contents are lost.
        #[arg(long)]
        yes: bool,
        /// Start it and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete a snapshot.
    Delete { id: String, snapshot: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// How a new password is given.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input (else one is generated and
    /// printed).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List accounts.
    List,
    /// Create an account.
    Add {
        name: String,
        #[arg(long, value_enum, default_value_t = Role::User)]
        role: Role,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Disable an account: it can no longer sign in, its sign-ins end.
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Make an account a user or an admin.
    SetRole {
        name: String,
        #[arg(value_enum)]
        role: Role,
    },
    /// Set a new password; the account's sign-ins end.
    ResetPassword {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set a user's monthly token budget for the model gateway: a number of tokens,
    /// `unlimited`, or `default` (their role's, [llm.budgets] in octod's config).
    SetBudget {
        name: String,
        #[arg(value_parser = parse_budget)]
        budget: Budget,
    },
    /// Personal API tokens of an account (for scripts, CI jobs, `opencode attach`).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for an account; it is printed once and stored only as a hash.
    Create {
        /// The account.
        user: String,
        /// What the token is for, e.g. "ci" (1 to 80 characters).
        #[arg(long, default_value = "octoctl")]
        name: String,
        /// What it may do (repeatable): sessions:read, sessions:write, sessions:connect,
        /// admin (admins only). Default: the three session scopes.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<octo_wire::Scope>,
        /// How long it is valid, in whole days: 1d to 365d (default 30d).
        #[arg(long, value_parser = parse_days)]
        expires: Option<u32>,
    },
    /// List an account's tokens (never their secrets).
    List { user: String },
    /// Revoke a token: it fails from the next request on, and its open streams close.
    Revoke { user: String, id: String },
}

/// A token's lifetime: whole days, 1d to 365d (`2w` is 14 days).
fn parse_days(text: &str) -> Result<u32, String> {
    let secs = crate::duration::parse(text)?.as_secs();
    let days = u32::try_from(secs / 86_400).unwrap_or(u32::MAX);
    if secs % 86_400 != 0 || !(1..=365).contains(&days) {
        return Err("a token's lifetime is whole days, 1d to 365d".to_owned());
    }
    Ok(days)
}

/// A monthly token budget as `octoctl user set-budget` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Tokens(u64),
    Unlimited,
    Default,
}

fn parse_budget(text: &str) -> Result<Budget, String> {
    match text {
        "unlimited" => Ok(Budget::Unlimited),
        "default" => Ok(Budget::Default),
        _ => text
            .replace(['_', ','], "")
            .parse()
            .map(Budget::Tokens)
            .map_err(|_| format!("{text:?} is not a number of tokens, `unlimited` or `default`")),
    }
}

/// A usage period: whole days, 1d to 366d.
fn parse_period(text: &str) -> Result<u32, String> {
    let secs = crate::duration::parse(text)?.as_secs();
    let days = u32::try_from(secs / 86_400).unwrap_or(u32::MAX);
    if secs % 86_400 != 0 || !(1..=366).contains(&days) {
        return Err("the period is whole days, 1d to 366d".to_owned());
    }
    Ok(days)
}

fn parse_scope(text: &str) -> Result<octo_wire::Scope, String> {
    octo_wire::Scope::parse(text).ok_or_else(|| {
        format!(
            "unknown scope {text:?}; one of {}",
            octo_wire::Scope::ALL
                .map(octo_wire::Scope::as_str)
                .join(", ")
        )
    })
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an invite code.
    Generate {
        /// The role the code grants.
        #[arg(long, value_enum, default_value_t = Role::User)]
        role: Role,
        /// How many registrations it allows.
        #[arg(long)]
        uses: Option<u32>,
        /// How long it is valid, e.g. 30m, 12h, 7d, 2w, 1d12h.
        #[arg(long, value_parser = crate::duration::parse)]
        expires: Option<std::time::Duration>,
    },
    /// List invite codes.
    List,
    /// Revoke an invite code.
    Revoke { code: String },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the session image, printing the build's output as it comes; `:latest` moves only
    /// after success.
    Build,
}

/// `octoctl backup …`: see the README's "Backup and restore".
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write one archive (tar + zstd, mode 0600) of octod's state (users, invite codes,
    /// sessions, audit log), the configuration, and every session's units, home and
    /// snapshots, while Octo keeps running: each home is read with its container paused.
    /// The archive holds password hashes and session tokens (and the credentials unless
    /// --without-credentials): keep it as secret as the host's root account.
    Create {
        /// The archive to write (written as FILE.partial, renamed when complete).
        file: PathBuf,
        /// Leave the sessions' snapshots out.
        #[arg(long)]
        without_snapshots: bool,
        /// Leave /etc/octo/credentials (the LLM provider's key, OIDC client secrets) out.
        #[arg(long)]
        without_credentials: bool,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// The configuration directory.
        #[arg(long, default_value = "/etc/octo")]
        config_dir: PathBuf,
    },
    /// Read an archive end to end: its format, Octo version and every member's SHA-256.
    Verify { file: PathBuf },
    /// Restore an archive onto this host (octod installed, no users or sessions yet):
    /// checks it first, stops octod, brings back the state, configuration, units, homes and
    /// snapshots, and starts octod, which starts the sessions that ran.
    Restore {
        file: PathBuf,
        /// Replace an instance that has users or sessions.
        #[arg(long)]
        force: bool,
        /// Where the state goes (default: where it was on the backed-up host).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The configuration directory.
        #[arg(long, default_value = "/etc/octo")]
        config_dir: PathBuf,
        /// The octod program (its snapshot worker unpacks the homes; default: beside
        /// octoctl).
        #[arg(long)]
        octod: Option<PathBuf>,
        /// The user octod runs as.
        #[arg(long, default_value = "octo")]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LlmCommand {
    /// Store a provider's API key as octod's systemd credential (the file llm-key, or
    /// llm-key-<id> for --provider <id>, in --credentials-dir, root only, mode 0600), read from
    /// standard input or, on a terminal, typed without echo. Restart octod to use it
    /// (systemctl restart octod).
    SetKey {
        /// The directory octod.service loads as credentials (LoadCredential=octo:…).
        #[arg(long, default_value = "/etc/octo/credentials")]
        credentials_dir: PathBuf,
        /// The key of the provider [llm.providers.<id>] instead of the default one ([llm]).
        #[arg(long, value_parser = provider_id)]
        provider: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Restart running sessions onto the current session image and the limits of octod's
    /// configuration now ([limits]), a few at a time; their workspaces are kept.
    Refresh {
        /// How many sessions restart at once.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallel: u16,
    },
}

/// A keep-alive's length: a duration, or `off`.
fn keep_alive_for(text: &str) -> Result<std::time::Duration, String> {
    if text.trim().eq_ignore_ascii_case("off") || text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    crate::duration::parse(text)
}

/// A provider id as octod's configuration takes it: it names a credential file.
fn provider_id(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("use the id of [llm.providers.<id>]: 1–32 lowercase letters, digits or '-'".to_owned())
    }
}
