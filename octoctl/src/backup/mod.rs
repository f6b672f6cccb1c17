//! `octoctl backup create|verify|restore`: a whole Octo instance in one archive (issue 17,
//! part 3). Runs as root: the archive holds octod's state (password hashes, session tokens),
//! the configuration and, unless `--without-credentials`, its credentials, so it is written
//! 0600 and only root may make or restore one.
//!
//! **Create** asks octod for what only it can give consistently while it runs (the state
//! copied through redb's API in one read transaction; each home archived by the snapshot
//! worker as a transient unit with the container paused: see octod's `admin::backup`) and
//! streams everything into one tar + zstd archive ([`format`]), member by member, never a
//! whole file in memory. It is written as `FILE.partial` and renamed once complete.
//!
//! **Verify** reads the archive end to end: the header first (a newer format is refused
//! before anything else is read), then every member's SHA-256 against the manifest.
//!
//! **Restore** verifies first (a damaged or newer archive changes nothing), refuses a host
//! whose octod already has users or sessions (unless `--force`), stops octod, writes the
//! state, the configuration, the units, the snapshots and, through the snapshot worker run as
//! `octo` under `podman unshare`, the homes; then starts octod, whose reconciler brings back
//! the sessions that ran.

pub mod format;

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::Method;
use octo_wire::{BackupHomeEvent, BackupState};

use crate::Failure;
use crate::client::Client;
use format::{Entry, Header, Manifest, Refusal, SessionEntry};

/// The zstd level of the outer stream: fast (the homes inside are compressed already).
const ZSTD_LEVEL: i32 = 3;
/// How long a backup waits for a session's other operation to end.
const BUSY_WAIT: Duration = Duration::from_secs(300);

fn failed(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Failure {
    move |e| Failure::Failed(format!("{what}: {e}"))
}

fn require_root(verb: &str) -> Result<(), Failure> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Failure::Denied(format!(
            "backup {verb} must run as root: the archive holds the state and the configuration"
        )))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn human(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", b / f64::from(1u32 << 30))
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", b / f64::from(1u32 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

// ---------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------

/// What `backup create` was asked.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub file: PathBuf,
    pub config_dir: PathBuf,
    pub with_snapshots: bool,
    pub with_credentials: bool,
    pub force: bool,
}

/// The archive being written: the tar builder over zstd over a counter over the file, and
/// the manifest's entries so far.
struct Writer {
    tar: tar::Builder<zstd::Encoder<'static, format::Counting<BufWriter<File>>>>,
    entries: Vec<Entry>,
}

impl Writer {
    /// Appends a member from `reader` of `size` bytes with `mode`.
    fn append(
        &mut self,
        path: &str,
        size: u64,
        mode: u32,
        reader: impl Read,
    ) -> Result<(), Failure> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(mode & 0o7777);
        header.set_mtime(now_ms() / 1000);
        header.set_entry_type(tar::EntryType::Regular);
        let mut hashing = format::Hashing::new(reader.take(size));
        self.tar
            .append_data(&mut header, path, &mut hashing)
            .map_err(failed(format!("writing {path} into the archive")))?;
        let (read, sha256) = hashing.finish();
        if read != size {
            return Err(Failure::Failed(format!(
                "{path} changed while it was read ({read} of {size} bytes)"
            )));
        }
        self.entries.push(Entry {
            path: path.to_owned(),
            size,
            sha256,
        });
        Ok(())
    }

    fn append_bytes(&mut self, path: &str, bytes: &[u8]) -> Result<(), Failure> {
        self.append(path, u64::try_from(bytes.len()).unwrap_or(0), 0o600, bytes)
    }

    /// Appends a file of the host; `None` if it is gone (removed meanwhile).
    fn append_file(&mut self, path: &str, file: &Path) -> Result<Option<u64>, Failure> {
        let opened = match File::open(file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(format!("opening {}", file.display()))(e)),
        };
        let meta = opened
            .metadata()
            .map_err(failed(format!("reading {}", file.display())))?;
        self.append(
            path,
            meta.len(),
            meta.permissions().mode(),
            BufReader::with_capacity(256 * 1024, opened),
        )?;
        Ok(Some(meta.len()))
    }

    fn written(&self) -> u64 {
        self.tar.get_ref().get_ref().bytes
    }
}

/// `octoctl backup create FILE`.
pub async fn create(client: &Client, options: &CreateOptions) -> Result<(), Failure> {
    require_root("create")?;
    let file = &options.file;
    if !options.force && file.exists() {
        return Err(Failure::Failed(format!(
            "{} exists: choose another name, or add --force to replace it",
            file.display()
        )));
    }
    let partial = partial_path(file);
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(failed(format!("creating {}", partial.display())))?;
    let mut cleanup = Vec::new();
    let result = write_archive(client, options, out, &mut cleanup).await;
    for dir in cleanup {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(summary) => {
            std::fs::rename(&partial, file)
                .map_err(failed(format!("renaming {}", partial.display())))?;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .map_err(failed(format!("setting the mode of {}", file.display())))?;
            println!("{summary}");
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    file.with_file_name(name)
}

async fn write_archive(
    client: &Client,
    options: &CreateOptions,
    out: File,
    cleanup: &mut Vec<PathBuf>,
) -> Result<String, Failure> {
    let state: BackupState = serde_json::from_value(
        client
            .call(Method::POST, "/admin/v1/backup/state", None)
            .await?
            .unwrap_or_default(),
    )
    .map_err(|e| Failure::Failed(format!("octod's backup/state answer: {e}")))?;
    let copy = PathBuf::from(&state.state_copy);
    if let Some(dir) = copy.parent() {
        cleanup.push(dir.to_owned());
    }
    eprintln!(
        "backup: octod {}: the state copied ({} tables, {} rows); {} sessions",
        state.version,
        state.tables,
        state.rows,
        state.sessions.len()
    );
    let counting = format::Counting {
        inner: BufWriter::with_capacity(256 * 1024, out),
        bytes: 0,
    };
    let encoder =
        zstd::Encoder::new(counting, ZSTD_LEVEL).map_err(failed("starting the zstd stream"))?;
    let mut writer = Writer {
        tar: tar::Builder::new(encoder),
        entries: Vec::new(),
    };
    let header = Header {
        kind: format::KIND.into(),
        format: format::FORMAT,
        octo_version: state.version.clone(),
        created_at: now_ms(),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        with_snapshots: options.with_snapshots,
        with_credentials: options.with_credentials,
        state_dir: state.state_dir.clone(),
        config_dir: options.config_dir.to_string_lossy().into_owned(),
        quadlet_dir: state.quadlet_dir.clone(),
        systemd_user_dir: state.systemd_user_dir.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&header)
        .map_err(|e| Failure::Failed(format!("the header: {e}")))?;
    writer.append_bytes(format::HEADER, &bytes)?;

    // The state: the copy, then the state directory's other files (the sign-in key).
    writer
        .append_file("state/octod.redb", &copy)?
        .ok_or_else(|| Failure::Failed(format!("{} is gone", copy.display())))?;
    let state_dir = PathBuf::from(&state.state_dir);
    for (name, path) in plain_files(&state_dir)? {
        if name.starts_with("octod.redb") {
            continue;
        }
        writer.append_file(&format!("state/files/{name}"), &path)?;
    }

    // The configuration.
    let mut config = Vec::new();
    walk_files(&options.config_dir, Path::new(""), &mut config)?;
    for rel in config {
        let text = rel.to_string_lossy();
        if !options.with_credentials && rel.starts_with("credentials") {
            continue;
        }
        writer.append_file(&format!("config/{text}"), &options.config_dir.join(&rel))?;
    }
    eprintln!(
        "backup: state and configuration written ({})",
        human(writer.written())
    );

    // The sessions.
    let total = state.sessions.len();
    let mut sessions = Vec::new();
    for (i, session) in state.sessions.iter().enumerate() {
        let id = &session.id;
        for (dir, suffix) in [
            (&state.quadlet_dir, "container"),
            (&state.quadlet_dir, "volume"),
            (&state.systemd_user_dir, "socket"),
        ] {
            let name = format!("octo-{id}.{suffix}");
            writer.append_file(
                &format!("sessions/{id}/units/{name}"),
                &Path::new(dir).join(&name),
            )?;
        }
        let home = back_up_home(client, &mut writer, id, cleanup).await?;
        let mut snapshots = Vec::new();
        if options.with_snapshots {
            let shelf = state_dir.join("snapshots").join(id);
            for (snap, dir) in plain_dirs(&shelf)? {
                let files = [dir.join("snapshot.json"), dir.join("home.tar.zst")];
                let mut complete = true;
                for f in &files {
                    let name = f.file_name().unwrap_or_default().to_string_lossy();
                    let member = format!("sessions/{id}/snapshots/{snap}/{name}");
                    if writer.append_file(&member, f)?.is_none() {
                        // Deleted meanwhile: what was written of it is harmless, a restore
                        // keeps only complete snapshots.
                        complete = false;
                        break;
                    }
                }
                if complete {
                    snapshots.push(snap);
                }
            }
        }
        eprintln!(
            "backup: session {}/{total} {id} ({}, {}): {}{} snapshot(s); {} written",
            i + 1,
            session.owner,
            session.desired,
            if home { "home, " } else { "no home, " },
            snapshots.len(),
            human(writer.written())
        );
        sessions.push(SessionEntry {
            id: id.clone(),
            owner: session.owner.clone(),
            name: session.name.clone(),
            desired: session.desired.clone(),
            home,
            snapshots,
        });
    }

    let manifest = Manifest {
        format: format::FORMAT,
        entries: writer.entries.clone(),
        sessions,
    };
    let bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Failure::Failed(format!("the manifest: {e}")))?;
    writer.append_bytes(format::MANIFEST, &bytes)?;
    let encoder = writer
        .tar
        .into_inner()
        .map_err(failed("finishing the tar stream"))?;
    let mut counting = encoder
        .finish()
        .map_err(failed("finishing the zstd stream"))?;
    counting.flush().map_err(failed("writing the archive"))?;
    let written = counting.bytes;
    let file = counting
        .inner
        .into_inner()
        .map_err(|e| Failure::Failed(format!("writing the archive: {}", e.error())))?;
    file.sync_all().map_err(failed("syncing the archive"))?;
    Ok(format!(
        "backup {}: {} sessions, {} members, {} (mode 0600: it holds password hashes, session tokens{})",
        options.file.display(),
        manifest.sessions.len(),
        manifest.entries.len() + 1,
        human(written),
        if options.with_credentials {
            " and the credentials"
        } else {
            ""
        }
    ))
}

/// Asks octod for the session's home (the snapshot worker, the container paused) and
/// appends it; waits while another operation runs on the session. Whether it had a home.
async fn back_up_home(
    client: &Client,
    writer: &mut Writer,
    id: &str,
    cleanup: &mut Vec<PathBuf>,
) -> Result<bool, Failure> {
    let deadline = tokio::time::Instant::now() + BUSY_WAIT;
    let path = format!("/admin/v1/backup/sessions/{id}/home");
    loop {
        let mut last: Option<BackupHomeEvent> = None;
        let mut shown = String::new();
        client
            .stream(Method::POST, &path, |_, value| {
                let event: BackupHomeEvent = serde_json::from_value(value.clone())
                    .map_err(|e| Failure::Failed(format!("octod's home event: {e}")))?;
                if let BackupHomeEvent::Progress { done, total } = &event {
                    let line = format!(
                        "backup: session {id}: home {} of {}",
                        human(*done),
                        human(*total)
                    );
                    if line != shown {
                        eprintln!("{line}");
                        shown = line;
                    }
                }
                last = Some(event);
                Ok(())
            })
            .await?;
        match last {
            Some(BackupHomeEvent::Done { dir, .. }) => {
                let dir = PathBuf::from(dir);
                if let Some(parent) = dir.parent() {
                    cleanup.push(parent.to_owned());
                }
                for name in ["snapshot.json", "home.tar.zst"] {
                    writer
                        .append_file(&format!("sessions/{id}/home/{name}"), &dir.join(name))?
                        .ok_or_else(|| {
                            Failure::Failed(format!("{} is gone", dir.join(name).display()))
                        })?;
                }
                if let Some(parent) = dir.parent() {
                    let _ = std::fs::remove_dir_all(parent);
                }
                return Ok(true);
            }
            Some(BackupHomeEvent::Skipped { .. }) => return Ok(false),
            Some(BackupHomeEvent::Busy { message }) if tokio::time::Instant::now() < deadline => {
                eprintln!("backup: session {id}: {message}; waiting");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Some(BackupHomeEvent::Busy { message } | BackupHomeEvent::Error { message }) => {
                return Err(Failure::Failed(format!(
                    "backing up the home of session {id}: {message}"
                )));
            }
            Some(BackupHomeEvent::Progress { .. }) | None => {
                return Err(Failure::Failed(format!(
                    "backing up the home of session {id}: octod's stream ended early"
                )));
            }
        }
    }
}

/// The regular files directly in `dir` (none if it does not exist), by name.
fn plain_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Failure> {
    entries(dir, std::fs::FileType::is_file)
}

/// The directories directly in `dir` whose names do not start with a dot, by name.
fn plain_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, Failure> {
    Ok(entries(dir, std::fs::FileType::is_dir)?
        .into_iter()
        .filter(|(n, _)| !n.starts_with('.'))
        .collect())
}

fn entries(
    dir: &Path,
    keep: impl Fn(&std::fs::FileType) -> bool,
) -> Result<Vec<(String, PathBuf)>, Failure> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(format!("reading {}", dir.display()))(e)),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(failed(format!("reading {}", dir.display())))?;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if keep(&kind) {
            out.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// Every regular file beneath `root` (symlinks not followed), as paths relative to it.
fn walk_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
    let dir = root.join(rel);
    for (name, path) in entries(&dir, |_| true)? {
        let meta = std::fs::symlink_metadata(&path)
            .map_err(failed(format!("reading {}", path.display())))?;
        if meta.is_dir() {
            walk_files(root, &rel.join(&name), out)?;
        } else if meta.is_file() {
            out.push(rel.join(&name));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading: verify, and the two passes of a restore
// ---------------------------------------------------------------------------------------------

/// What a full read of an archive found.
#[derive(Debug, Clone)]
pub struct Verified {
    pub header: Header,
    pub manifest: Manifest,
    pub bytes: u64,
}

/// Reads the archive end to end; `each` sees every member between the header and the
/// manifest (its path, mode and contents) and may consume it. The header is checked first;
/// every member's checksum and the manifest at the end.
pub fn read_archive(
    file: &Path,
    mut each: impl FnMut(&str, u32, &mut dyn Read) -> Result<(), Failure>,
) -> Result<Verified, Failure> {
    let damaged = |e: &dyn std::fmt::Display| {
        Failure::Failed(format!(
            "{}: {}",
            file.display(),
            Refusal::Damaged(format!("{e} (truncated or altered?)"))
        ))
    };
    let refused = |r: Refusal| Failure::Failed(format!("{}: {r}", file.display()));
    let opened = File::open(file).map_err(failed(format!("opening {}", file.display())))?;
    let size = opened.metadata().map_or(0, |m| m.len());
    let decoder = zstd::Decoder::new(BufReader::with_capacity(256 * 1024, opened))
        .map_err(|e| damaged(&e))?;
    let mut archive = tar::Archive::new(decoder);
    let mut header: Option<Header> = None;
    let mut manifest: Option<Manifest> = None;
    let mut read: Vec<Entry> = Vec::new();
    for member in archive.entries().map_err(|e| damaged(&e))? {
        let mut member = member.map_err(|e| damaged(&e))?;
        let path = member
            .path()
            .map_err(|e| damaged(&e))?
            .to_string_lossy()
            .into_owned();
        let mode = member.header().mode().unwrap_or(0o600);
        if manifest.is_some() {
            return Err(refused(Refusal::Damaged(format!(
                "{path} follows the manifest"
            ))));
        }
        if header.is_none() {
            if path != format::HEADER {
                return Err(refused(Refusal::NotABackup(path)));
            }
            let bytes = read_small(&mut member, format::MAX_HEADER).map_err(|e| damaged(&e))?;
            header = Some(format::check_header(&bytes).map_err(refused)?);
            read.push(entry_of(&path, &bytes));
            continue;
        }
        if path == format::MANIFEST {
            let bytes = read_small(&mut member, format::MAX_MANIFEST).map_err(|e| damaged(&e))?;
            let parsed: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| refused(Refusal::Damaged(format!("the manifest: {e}"))))?;
            format::check_entries(&read, &parsed).map_err(refused)?;
            manifest = Some(parsed);
            continue;
        }
        let mut hashing = format::Hashing::new(&mut member);
        each(&path, mode, &mut hashing)?;
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| damaged(&e))?;
        let (size, sha256) = hashing.finish();
        read.push(Entry { path, size, sha256 });
    }
    let header = header.ok_or_else(|| refused(Refusal::NotABackup("nothing".into())))?;
    let manifest = manifest
        .ok_or_else(|| refused(Refusal::Damaged("it has no manifest (truncated?)".into())))?;
    Ok(Verified {
        header,
        manifest,
        bytes: size,
    })
}

fn read_small(r: &mut impl Read, max: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(max + 1).read_to_end(&mut out)?;
    if u64::try_from(out.len()).unwrap_or(u64::MAX) > max {
        return Err(io::Error::other(format!("a member over {max} bytes")));
    }
    Ok(out)
}

fn entry_of(path: &str, bytes: &[u8]) -> Entry {
    let mut h = format::Hashing::new(bytes);
    let _ = io::copy(&mut h, &mut io::sink());
    let (size, sha256) = h.finish();
    Entry {
        path: path.to_owned(),
        size,
        sha256,
    }
}

/// `octoctl backup verify FILE`.
pub fn verify(file: &Path, json: bool) -> Result<(), Failure> {
    let verified = read_archive(file, |_, _, _| Ok(()))?;
    let running = env!("CARGO_PKG_VERSION");
    let restorable = format::check_version(&verified.header.octo_version, running);
    if json {
        let value = serde_json::json!({
            "header": verified.header,
            "sessions": verified.manifest.sessions,
            "members": verified.manifest.entries.len() + 1,
            "bytes": verified.bytes,
            "restorable": restorable.is_ok(),
        });
        println!("{value:#}");
    } else {
        let h = &verified.header;
        println!(
            "{}: intact: format {}, Octo {}, made on {} at {} UTC; {} members, {}",
            file.display(),
            h.format,
            h.octo_version,
            h.host,
            crate::table::utc_minutes(h.created_at),
            verified.manifest.entries.len() + 1,
            human(verified.bytes)
        );
        for s in &verified.manifest.sessions {
            println!(
                "  session {} of {} ({}): {}, {} snapshot(s)",
                s.id,
                s.owner,
                s.desired,
                if s.home { "home" } else { "no home" },
                s.snapshots.len()
            );
        }
        if let Err(refusal) = &restorable {
            println!("  this host cannot restore it: {refusal}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------------------------

/// What `backup restore` was asked.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub file: PathBuf,
    pub force: bool,
    /// Where the state goes (else where it was).
    pub state_dir: Option<PathBuf>,
    pub config_dir: PathBuf,
    /// The octod program whose snapshot worker unpacks the homes.
    pub octod: Option<PathBuf>,
    /// The user octod runs as.
    pub user: String,
}

/// The `octo` user.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
    home: PathBuf,
}

impl RunAs {
    fn find(name: &str) -> Result<Self, Failure> {
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| Failure::Failed(format!("looking up the user {name}: {e}")))?
            .ok_or_else(|| {
                Failure::Failed(format!(
                    "no user {name}: install the octo package first (it creates the user)"
                ))
            })?;
        Ok(Self {
            name: name.to_owned(),
            uid: user.uid,
            gid: user.gid,
            home: user.dir,
        })
    }

    /// `command` as this user with its user manager's environment.
    fn command(&self, command: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.current_dir(&self.home)
            .args([
                "--reuid",
                &self.name,
                "--regid",
                &self.name,
                "--init-groups",
                "--",
            ])
            .args(["env", "-i"])
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.name))
            .arg(format!("XDG_RUNTIME_DIR=/run/user/{}", self.uid))
            .arg(format!(
                "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{}/bus",
                self.uid
            ))
            .args(command);
        cmd
    }

    fn run(&self, command: &[&str]) -> Result<String, Failure> {
        run(&mut self.command(command), &command.join(" "))
    }

    fn chown(&self, path: &Path) -> Result<(), Failure> {
        std::os::unix::fs::lchown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
            .map_err(failed(format!("chown {}", path.display())))
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<String, Failure> {
    let out = cmd.output().map_err(failed(format!("running {what}")))?;
    if !out.status.success() {
        return Err(Failure::Failed(format!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether systemd knows `octod.service` (a packaged install).
fn octod_is_a_service() -> bool {
    Command::new("systemctl")
        .args(["cat", "octod.service"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `octoctl backup restore FILE`.
pub async fn restore(client: &Client, options: &RestoreOptions) -> Result<(), Failure> {
    require_root("restore")?;
    let running = env!("CARGO_PKG_VERSION");
    eprintln!("restore: reading {} to check it", options.file.display());
    let verified = read_archive(&options.file, |_, _, _| Ok(()))?;
    format::check_version(&verified.header.octo_version, running)
        .map_err(|r| Failure::Failed(format!("{}: {r}", options.file.display())))?;
    let header = &verified.header;
    let state_dir = options
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&header.state_dir));
    let octo = RunAs::find(&options.user)?;
    let octod = match &options.octod {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("octod")))
            .unwrap_or_else(|| PathBuf::from("/usr/bin/octod")),
    };
    eprintln!(
        "restore: intact (format {}, Octo {}, {} sessions); checking this host",
        header.format,
        header.octo_version,
        verified.manifest.sessions.len()
    );

    // An instance in use is not overwritten by accident.
    let service = octod_is_a_service();
    let existing = state_dir.join("octod.redb");
    match in_use(client).await {
        Ok(Some(what)) if !options.force => {
            return Err(Failure::Failed(format!(
                "this Octo is in use ({what}): a restore replaces all of it; add --force to do so"
            )));
        }
        Err(_) if existing.exists() && !options.force => {
            return Err(Failure::Failed(format!(
                "octod does not answer on {} and {} exists, so whether it is in use cannot be told: add --force to replace it",
                client.socket().display(),
                existing.display()
            )));
        }
        _ => {}
    }
    if service {
        eprintln!("restore: stopping octod");
        run(
            Command::new("systemctl").args([
                "stop",
                "octod.socket",
                "octod-admin.socket",
                "octod.service",
            ]),
            "systemctl stop octod",
        )?;
    } else if in_use(client).await.is_ok() {
        return Err(Failure::Failed(format!(
            "octod answers on {} but is not octod.service: stop it first",
            client.socket().display()
        )));
    }
    // Sessions of the archive that run here already (with --force) are stopped: their homes
    // are replaced.
    for s in &verified.manifest.sessions {
        let _ = octo.run(&[
            "systemctl",
            "--user",
            "stop",
            &format!("octo-{}.socket", s.id),
            &format!("octo-{}.service", s.id),
        ]);
    }

    let mut apply = Apply {
        octo: &octo,
        octod: &octod,
        state_dir: state_dir.clone(),
        config_dir: options.config_dir.clone(),
        quadlet_dir: PathBuf::from(&header.quadlet_dir),
        systemd_user_dir: PathBuf::from(&header.systemd_user_dir),
        staged: Vec::new(),
        snapshots: Vec::new(),
        homes: 0,
        sessions: verified.manifest.sessions.iter().filter(|s| s.home).count(),
    };
    apply.prepare()?;
    read_archive(&options.file, |path, mode, reader| {
        apply.member(path, mode, reader)
    })?;
    apply.finish()?;

    if service {
        eprintln!("restore: starting octod");
        run(
            Command::new("systemctl").args([
                "start",
                "octod.socket",
                "octod-admin.socket",
                "octod.service",
            ]),
            "systemctl start octod",
        )?;
        println!(
            "restored {}: {} sessions; octod started (its reconciler starts the sessions that ran)",
            options.file.display(),
            verified.manifest.sessions.len()
        );
    } else {
        println!(
            "restored {}: {} sessions; start octod now (its reconciler starts the sessions that ran)",
            options.file.display(),
            verified.manifest.sessions.len()
        );
    }
    Ok(())
}

/// What the running octod holds: `Some` when it has users or sessions; `Err` when it does
/// not answer.
async fn in_use(client: &Client) -> Result<Option<String>, Failure> {
    let count =
        |v: Option<serde_json::Value>| v.and_then(|v| v.as_array().map(Vec::len)).unwrap_or(0);
    let users = count(client.call(Method::GET, "/admin/v1/users", None).await?);
    let sessions = count(client.call(Method::GET, "/admin/v1/sessions", None).await?);
    Ok((users + sessions > 0).then(|| format!("{users} users, {sessions} sessions")))
}

/// The restore's writing pass.
struct Apply<'a> {
    octo: &'a RunAs,
    octod: &'a Path,
    state_dir: PathBuf,
    config_dir: PathBuf,
    quadlet_dir: PathBuf,
    systemd_user_dir: PathBuf,
    /// The session whose home is being staged, and what of it has arrived.
    staged: Vec<String>,
    /// Snapshot directories written under their partial names: (partial, final).
    snapshots: Vec<(PathBuf, PathBuf)>,
    homes: usize,
    /// The homes in the archive.
    sessions: usize,
}

impl Apply<'_> {
    fn staging(&self) -> PathBuf {
        self.state_dir.join("backup").join("restore-home")
    }

    fn prepare(&self) -> Result<(), Failure> {
        for dir in [
            &self.state_dir,
            &self.state_dir.join("backup"),
            &self.state_dir.join("snapshots"),
        ] {
            std::fs::create_dir_all(dir).map_err(failed(format!("creating {}", dir.display())))?;
            self.octo.chown(dir)?;
        }
        std::fs::set_permissions(&self.state_dir, std::fs::Permissions::from_mode(0o700)).map_err(
            failed(format!("setting the mode of {}", self.state_dir.display())),
        )?;
        let _ = std::fs::remove_dir_all(self.staging());
        for dir in [&self.quadlet_dir, &self.systemd_user_dir] {
            self.mkdir_as_octo(dir)?;
        }
        std::fs::create_dir_all(&self.config_dir)
            .map_err(failed(format!("creating {}", self.config_dir.display())))
    }

    /// Creates `dir` and its missing parents beneath the user's home, owned by the user.
    fn mkdir_as_octo(&self, dir: &Path) -> Result<(), Failure> {
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.exists() {
            missing.push(at.to_owned());
            match at.parent() {
                Some(p) => at = p,
                None => break,
            }
        }
        for d in missing.iter().rev() {
            std::fs::create_dir(d).map_err(failed(format!("creating {}", d.display())))?;
            self.octo.chown(d)?;
        }
        Ok(())
    }

    /// Writes `reader` to `to` through a temporary name, with `mode`, owned by the user or
    /// by root.
    fn write(
        &self,
        to: &Path,
        mode: u32,
        reader: &mut dyn Read,
        octo: bool,
    ) -> Result<(), Failure> {
        let tmp = partial_path(to);
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(failed(format!("creating {}", tmp.display())))?;
        io::copy(reader, &mut out).map_err(failed(format!("writing {}", tmp.display())))?;
        out.sync_all()
            .map_err(failed(format!("writing {}", tmp.display())))?;
        if octo {
            self.octo.chown(&tmp)?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(failed(format!("setting the mode of {}", tmp.display())))?;
        std::fs::rename(&tmp, to).map_err(failed(format!("renaming {}", tmp.display())))
    }

    fn member(&mut self, path: &str, mode: u32, reader: &mut dyn Read) -> Result<(), Failure> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
        {
            return Err(Failure::Failed(format!(
                "a member with a bad path: {path:?}"
            )));
        }
        match parts.as_slice() {
            ["state", "octod.redb"] => {
                self.write(&self.state_dir.join("octod.redb"), 0o600, reader, true)?;
                eprintln!("restore: the state database");
            }
            ["state", "files", name] => {
                self.write(&self.state_dir.join(name), mode, reader, true)?;
            }
            ["config", rest @ ..] => {
                let to = self.config_dir.join(rest.join("/"));
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(failed(format!("creating {}", parent.display())))?;
                    // The credentials' directory is root's alone, as the package makes it.
                    if rest.first() == Some(&"credentials") && rest.len() > 1 {
                        std::fs::set_permissions(
                            self.config_dir.join("credentials"),
                            std::fs::Permissions::from_mode(0o700),
                        )
                        .map_err(failed("setting the mode of the credentials' directory"))?;
                    }
                }
                self.write(&to, mode, reader, false)?;
            }
            ["sessions", _, "units", name] => {
                let dir = if name.ends_with(".socket") {
                    &self.systemd_user_dir
                } else {
                    &self.quadlet_dir
                };
                self.write(&dir.join(name), mode, reader, true)?;
            }
            ["sessions", id, "home", name] => {
                let staging = self.staging();
                self.mkdir_as_octo(&staging)?;
                self.write(&staging.join(name), 0o600, reader, true)?;
                self.staged.push((*name).to_owned());
                if self.staged.len() == 2 {
                    self.restore_home(id)?;
                    self.staged.clear();
                }
            }
            ["sessions", id, "snapshots", snap, name] => {
                let shelf = self.state_dir.join("snapshots").join(id);
                let partial = shelf.join(format!(".partial-{snap}"));
                self.mkdir_as_octo(&partial)?;
                self.write(&partial.join(name), mode, reader, true)?;
                let done = shelf.join(snap);
                if !self.snapshots.iter().any(|(p, _)| p == &partial) {
                    self.snapshots.push((partial, done));
                }
            }
            _ => {
                return Err(Failure::Failed(format!(
                    "a member this octoctl does not know: {path}"
                )));
            }
        }
        Ok(())
    }

    /// The staged home of session `id` unpacked into its volume by the snapshot worker, as
    /// the user under `podman unshare` (the files' owners are the containers' ids).
    fn restore_home(&mut self, id: &str) -> Result<(), Failure> {
        let volume = format!("octo-{id}");
        // The volume as Quadlet makes it, from the unit just written.
        self.octo.run(&["systemctl", "--user", "daemon-reload"])?;
        self.octo.run(&[
            "systemctl",
            "--user",
            "start",
            &format!("{volume}-volume.service"),
        ])?;
        let home = self.octo.run(&[
            "podman",
            "volume",
            "inspect",
            "--format",
            "{{.Mountpoint}}",
            &volume,
        ])?;
        let staging = self.staging();
        let progress = staging.join("progress.json");
        let octod = self.octod.to_string_lossy().into_owned();
        let staging_text = staging.to_string_lossy().into_owned();
        let progress_text = progress.to_string_lossy().into_owned();
        self.octo.run(&[
            "podman",
            "unshare",
            &octod,
            "snapshot-worker",
            "restore",
            "--snapshot",
            &staging_text,
            "--home",
            &home,
            "--progress",
            &progress_text,
        ])?;
        let _ = std::fs::remove_dir_all(&staging);
        self.homes += 1;
        eprintln!(
            "restore: session {id}: home restored ({} of {} homes)",
            self.homes, self.sessions
        );
        Ok(())
    }

    /// Snapshots become visible, the last units are read.
    fn finish(&mut self) -> Result<(), Failure> {
        for (partial, done) in &self.snapshots {
            if partial.join("snapshot.json").exists() && partial.join("home.tar.zst").exists() {
                let _ = std::fs::remove_dir_all(done);
                std::fs::rename(partial, done)
                    .map_err(failed(format!("renaming {}", partial.display())))?;
            } else {
                let _ = std::fs::remove_dir_all(partial);
            }
        }
        self.octo.run(&["systemctl", "--user", "daemon-reload"])?;
        eprintln!(
            "restore: {} homes and {} snapshots restored",
            self.homes,
            self.snapshots.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive with a header of `format`, one member and the manifest, as `create`
    /// writes them.
    fn write(path: &Path, format: u32) {
        let out = File::create(path).expect("create");
        let counting = format::Counting {
            inner: BufWriter::new(out),
            bytes: 0,
        };
        let mut writer = Writer {
            tar: tar::Builder::new(zstd::Encoder::new(counting, 3).expect("zstd")),
            entries: Vec::new(),
        };
        let header = serde_json::json!({
            "kind": format::KIND, "format": format, "octo_version": "0.1.0", "created_at": 1,
            "host": "h", "with_snapshots": true, "with_credentials": true,
            "state_dir": "/s", "config_dir": "/c", "quadlet_dir": "/q", "systemd_user_dir": "/u"
        });
        writer
            .append_bytes(format::HEADER, header.to_string().as_bytes())
            .expect("header");
        let mut noise = vec![0u8; 256 << 10];
        for (i, b) in noise.iter_mut().enumerate() {
            *b = u8::try_from((i * 7919) % 251).expect("byte");
        }
        writer
            .append("state/octod.redb", 256 << 10, 0o600, noise.as_slice())
            .expect("member");
        let manifest = Manifest {
            format: format::FORMAT,
            entries: writer.entries.clone(),
            sessions: Vec::new(),
        };
        writer
            .append_bytes(
                format::MANIFEST,
                &serde_json::to_vec(&manifest).expect("json"),
            )
            .expect("manifest");
        let mut counting = writer
            .tar
            .into_inner()
            .expect("tar")
            .finish()
            .expect("zstd");
        counting.flush().expect("flush");
    }

    fn error(path: &Path) -> String {
        let mut seen = Vec::new();
        let result = read_archive(path, |p, _, _| {
            seen.push(p.to_owned());
            Ok(())
        });
        result.expect_err("refused").to_string()
    }

    #[test]
    fn an_archive_reads_back_and_a_truncated_or_future_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.tar.zst");
        write(&good, format::FORMAT);
        let mut members = Vec::new();
        let verified = read_archive(&good, |path, mode, reader| {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).expect("read");
            members.push((path.to_owned(), mode, bytes.len()));
            Ok(())
        })
        .expect("intact");
        assert_eq!(
            members,
            vec![("state/octod.redb".to_owned(), 0o600, 256 << 10)]
        );
        assert_eq!(verified.header.octo_version, "0.1.0");
        assert_eq!(verified.manifest.entries.len(), 2);

        // Cut short: the zstd frame or the tar stream ends early, or the manifest is missing.
        let bytes = std::fs::read(&good).expect("read");
        for keep in [bytes.len() - 10, bytes.len() / 2, 40] {
            let cut = dir.path().join(format!("cut-{keep}.tar.zst"));
            std::fs::write(&cut, &bytes[..keep]).expect("write");
            let message = error(&cut);
            assert!(message.contains("is damaged"), "{keep}: {message}");
        }

        // A byte changed in the member: its checksum.
        let mut plain = Vec::new();
        zstd::Decoder::new(bytes.as_slice())
            .expect("zstd")
            .read_to_end(&mut plain)
            .expect("decode");
        // The middle of the tar stream is inside the 256 KiB member.
        let at = plain.len() / 2;
        plain[at] ^= 1;
        let altered = dir.path().join("altered.tar.zst");
        std::fs::write(
            &altered,
            zstd::encode_all(plain.as_slice(), 3).expect("zstd"),
        )
        .expect("write");
        let message = error(&altered);
        assert!(
            message.contains("state/octod.redb does not match its checksum"),
            "{message}"
        );

        // A format from the future: refused at the header, before anything else is read.
        let future = dir.path().join("future.tar.zst");
        write(&future, format::FORMAT + 1);
        let mut seen = 0;
        let result = read_archive(&future, |_, _, _| {
            seen += 1;
            Ok(())
        });
        let message = result.expect_err("newer").to_string();
        assert!(
            message.contains("format is 2, newer than the 1"),
            "{message}"
        );
        assert_eq!(seen, 0, "nothing read past the header");
    }
}
