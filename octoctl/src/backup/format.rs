//! The backup archive's format, and the checks a reader makes before it trusts one. Pure: no
//! IO beyond the `Read`/`Write` it is given.
//!
//! An archive is one tar stream compressed with zstd. Its first member is [`HEADER`] (what
//! made it: the format, Octo's version, when, which parts), so that a reader refuses an
//! archive it cannot read before it reads more; its last member is [`MANIFEST`]: every member
//! before it with its size and SHA-256, and the sessions. A truncated or altered archive fails
//! the zstd frame, the tar stream or the manifest's comparison.
//!
//! | member                                   | what                                      |
//! | ---------------------------------------- | ----------------------------------------- |
//! | `octo-backup.json`                       | [`Header`]                                |
//! | `state/octod.redb`                       | the state, copied through redb's API      |
//! | `state/files/<name>`                     | the state directory's other files (the sign-in key) |
//! | `config/<path>`                          | `/etc/octo` (`credentials/` unless left out) |
//! | `sessions/<id>/units/<file>`             | the session's Quadlet and socket units    |
//! | `sessions/<id>/home/{home.tar.zst,snapshot.json}` | its home, as a snapshot's worker writes it |
//! | `sessions/<id>/snapshots/<snapshot>/…`   | its snapshots, unless left out            |
//! | `manifest.json`                          | [`Manifest`]                              |

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The format this octoctl writes and the newest it reads.
pub const FORMAT: u32 = 1;
/// What [`Header::kind`] says.
pub const KIND: &str = "octo-backup";
pub const HEADER: &str = "octo-backup.json";
pub const MANIFEST: &str = "manifest.json";
/// The most a header or manifest may take (they are read into memory).
pub const MAX_HEADER: u64 = 1 << 20;
pub const MAX_MANIFEST: u64 = 64 << 20;

/// The archive's first member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub kind: String,
    pub format: u32,
    /// The version of Octo that made it (octod's).
    pub octo_version: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub host: String,
    pub with_snapshots: bool,
    pub with_credentials: bool,
    /// Where the parts were on the host it was made on.
    pub state_dir: String,
    pub config_dir: String,
    pub quadlet_dir: String,
    pub systemd_user_dir: String,
}

/// The archive's last member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Every member before the manifest, in order.
    pub entries: Vec<Entry>,
    pub sessions: Vec<SessionEntry>,
}

/// A member of the archive and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// A session in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    pub id: String,
    pub owner: String,
    pub name: String,
    /// `running`, `idle` or `stopped`.
    pub desired: String,
    /// Whether its home is in the archive (a session never started has none).
    pub home: bool,
    /// The ids of its snapshots in the archive.
    pub snapshots: Vec<String>,
}

/// Why an archive is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not an Octo backup (its first member is {0:?}, not {HEADER})")]
    NotABackup(String),
    #[error("not an Octo backup: its header is not one ({0})")]
    BadHeader(String),
    #[error(
        "the backup's format is {found}, newer than the {FORMAT} this octoctl reads: restore it with the Octo that made it ({version}) or a newer one"
    )]
    NewerFormat { found: u32, version: String },
    #[error(
        "the backup was made by Octo {archive}, newer than this host's {running}: install Octo {archive} or newer first"
    )]
    NewerOcto { archive: String, running: String },
    #[error("the backup is damaged: {0}")]
    Damaged(String),
}

/// The header's checks: an Octo backup of a format this octoctl reads.
pub fn check_header(bytes: &[u8]) -> Result<Header, Refusal> {
    // The kind and format first, so that a newer format with other fields is named as such.
    #[derive(Deserialize)]
    struct Probe {
        kind: String,
        format: u32,
        #[serde(default)]
        octo_version: String,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| Refusal::BadHeader(e.to_string()))?;
    if probe.kind != KIND {
        return Err(Refusal::BadHeader(format!("kind {:?}", probe.kind)));
    }
    if probe.format > FORMAT {
        return Err(Refusal::NewerFormat {
            found: probe.format,
            version: probe.octo_version,
        });
    }
    if probe.format == 0 {
        return Err(Refusal::BadHeader("format 0".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| Refusal::BadHeader(e.to_string()))
}

/// Whether a backup of Octo `archive` can be restored by Octo `running`: not if it is newer
/// (its state may have a schema this octod cannot open).
pub fn check_version(archive: &str, running: &str) -> Result<(), Refusal> {
    let (Some(a), Some(r)) = (parse_version(archive), parse_version(running)) else {
        return Err(Refusal::BadHeader(format!(
            "cannot compare the versions {archive:?} and {running:?}"
        )));
    };
    if a > r {
        return Err(Refusal::NewerOcto {
            archive: archive.to_owned(),
            running: running.to_owned(),
        });
    }
    Ok(())
}

/// `MAJOR.MINOR.PATCH`, anything after a `-` or `+` ignored.
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(str::parse::<u64>);
    let out = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    parts.next().is_none().then_some(out)
}

/// Compares what was read with what the manifest says was written.
pub fn check_entries(read: &[Entry], manifest: &Manifest) -> Result<(), Refusal> {
    for (i, listed) in manifest.entries.iter().enumerate() {
        let Some(found) = read.get(i) else {
            return Err(Refusal::Damaged(format!("{} is missing", listed.path)));
        };
        if found.path != listed.path {
            return Err(Refusal::Damaged(format!(
                "member {} is {}, the manifest lists {}",
                i + 1,
                found.path,
                listed.path
            )));
        }
        if found.size != listed.size || found.sha256 != listed.sha256 {
            return Err(Refusal::Damaged(format!(
                "{} does not match its checksum",
                listed.path
            )));
        }
    }
    if let Some(extra) = read.get(manifest.entries.len()) {
        return Err(Refusal::Damaged(format!(
            "{} is not in the manifest",
            extra.path
        )));
    }
    Ok(())
}

/// A reader that hashes and counts what passes through it.
pub struct Hashing<R> {
    inner: R,
    hash: Sha256,
    pub bytes: u64,
}

impl<R> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    /// The hex SHA-256 of what was read.
    pub fn finish(self) -> (u64, String) {
        (self.bytes, hex(&self.hash.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += u64::try_from(n).unwrap_or(0);
        Ok(n)
    }
}

/// A writer that counts what passes through it (the archive's compressed bytes).
pub struct Counting<W> {
    pub inner: W,
    pub bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += u64::try_from(n).unwrap_or(0);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(format: u32) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "kind": KIND, "format": format, "octo_version": "9.1.0", "created_at": 1,
            "host": "h", "with_snapshots": true, "with_credentials": false,
            "state_dir": "/var/lib/octod", "config_dir": "/etc/octo",
            "quadlet_dir": "q", "systemd_user_dir": "s",
            "a_field_of_the_future": [1, 2]
        }))
        .expect("json")
    }

    #[test]
    fn a_header_of_this_format_is_read_and_a_newer_one_refused_by_name() {
        let read = check_header(&header(FORMAT)).expect("this format");
        assert_eq!(read.octo_version, "9.1.0");
        assert_eq!(
            check_header(&header(FORMAT + 1)),
            Err(Refusal::NewerFormat {
                found: FORMAT + 1,
                version: "9.1.0".into()
            })
        );
        let message = check_header(&header(FORMAT + 1))
            .expect_err("newer")
            .to_string();
        assert!(
            message.contains("newer than the 1 this octoctl reads"),
            "{message}"
        );
        assert!(matches!(
            check_header(&header(0)),
            Err(Refusal::BadHeader(_))
        ));
        assert!(matches!(
            check_header(br#"{"kind":"other","format":1}"#),
            Err(Refusal::BadHeader(_))
        ));
        assert!(matches!(
            check_header(b"\x00\x01"),
            Err(Refusal::BadHeader(_))
        ));
    }

    #[test]
    fn a_backup_of_a_newer_octo_is_refused() {
        assert_eq!(check_version("0.1.0", "0.1.0"), Ok(()));
        assert_eq!(check_version("0.1.0", "0.2.0"), Ok(()));
        assert_eq!(check_version("0.9.9", "1.0.0-rc1"), Ok(()));
        assert_eq!(
            check_version("0.10.0", "0.9.0"),
            Err(Refusal::NewerOcto {
                archive: "0.10.0".into(),
                running: "0.9.0".into()
            })
        );
        assert!(check_version("1.0.1", "1.0.0").is_err());
        assert!(matches!(
            check_version("one", "1.0.0"),
            Err(Refusal::BadHeader(_))
        ));
        assert!(check_version("1.0", "1.0.0").is_err(), "three numbers");
    }

    fn entry(path: &str, sha: &str) -> Entry {
        Entry {
            path: path.into(),
            size: 3,
            sha256: sha.into(),
        }
    }

    #[test]
    fn entries_must_match_the_manifest_in_order_size_and_hash() {
        let manifest = Manifest {
            format: FORMAT,
            entries: vec![entry("a", "1"), entry("b", "2")],
            sessions: Vec::new(),
        };
        let good = manifest.entries.clone();
        assert_eq!(check_entries(&good, &manifest), Ok(()));
        let check = |read: &[Entry]| {
            check_entries(read, &manifest)
                .expect_err("refused")
                .to_string()
        };
        assert!(check(&good[..1]).contains("b is missing"));
        assert!(check(&[entry("a", "1"), entry("b", "3")]).contains("b does not match"));
        assert!(check(&[entry("b", "2"), entry("a", "1")]).contains("member 1 is b"));
        let mut more = good.clone();
        more.push(entry("c", "4"));
        assert!(check(&more).contains("c is not in the manifest"));
    }

    #[test]
    fn hashing_reads_through() {
        let mut r = Hashing::new(&b"abc"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        assert_eq!(out, b"abc");
        assert_eq!(
            r.finish(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            )
        );
    }
}
