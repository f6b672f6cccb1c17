//! The workspace's disk usage: one walk of the whole tree, for octod's periodic measurement
//! (`GET /api/usage`), and the quota octod passes on uploads (`X-Octo-Quota`).
//!
//! The walk counts what `du` counts: allocated blocks (a sparse file counts what it holds),
//! every hard-linked file once, symlinks as themselves, nothing on another file system
//! (a mount inside the home is not the home's). It never follows a symlink ([`open_child`]).
//! Walks run one at a time, on a thread of their own with the lowest CPU priority, so a
//! big home costs the session's neighbours as little as the walk can.
//!
//! The quota is octod's to decide: it measures every session of the user and adds what it
//! proxied since. It sends `X-Octo-Quota: used=<bytes>, limit=<bytes>` with each request to
//! the file API (having removed any the browser sent); the gateway only refuses an upload
//! that would pass it. A request without the header has no quota.

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{SFlag, fstat, fstatat};
use serde::Serialize;

use crate::confine::{RelPath, Root, open_child};
use crate::fsops::MAX_DEPTH;

/// The header octod sets on requests to the file API: the user's quota and what they use.
pub const QUOTA_HEADER: &str = "x-octo-quota";

/// What the workspace holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Allocated bytes (blocks × 512), as `du -s --block-size=1` counts them.
    pub bytes: u64,
    /// Files, directories, symlinks and other entries, the root excluded.
    pub entries: u64,
    /// Directories deeper than the walk goes ([`MAX_DEPTH`]) or unreadable: their contents
    /// are not counted.
    pub skipped: u64,
}

/// Walks the whole workspace. Errors only when the root itself cannot be read.
pub fn measure(root: &Root) -> Result<Usage, Errno> {
    let top = root.open_with(
        &RelPath::root(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )?;
    let st = fstat(top.as_fd())?;
    let mut walk = Walk {
        device: st.st_dev,
        seen: HashSet::new(),
        usage: Usage {
            bytes: blocks(&st),
            ..Usage::default()
        },
    };
    walk.dir(top, 0)?;
    Ok(walk.usage)
}

struct Walk {
    device: u64,
    /// (device, inode) of files with more than one link, counted once.
    seen: HashSet<(u64, u64)>,
    usage: Usage,
}

impl Walk {
    fn dir(&mut self, fd: OwnedFd, depth: usize) -> Result<(), Errno> {
        let mut dir = Dir::from_fd(fd)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let Ok(entry) = entry else {
                self.usage.skipped += 1;
                break;
            };
            let name = entry.file_name();
            if !matches!(name.to_bytes(), b"." | b"..") {
                names.push(name.to_owned());
            }
        }
        let mut subdirs = Vec::new();
        for name in names {
            let Ok(st) = fstatat(dir.as_fd(), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue; // gone meanwhile
            };
            if st.st_dev != self.device {
                continue;
            }
            self.usage.entries += 1;
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if kind != SFlag::S_IFDIR
                && st.st_nlink > 1
                && !self.seen.insert((st.st_dev, st.st_ino))
            {
                continue;
            }
            self.usage.bytes = self.usage.bytes.saturating_add(blocks(&st));
            if kind == SFlag::S_IFDIR {
                subdirs.push(name.to_bytes().to_vec());
            }
        }
        for name in subdirs {
            if depth >= MAX_DEPTH {
                self.usage.skipped += 1;
                continue;
            }
            match open_child(&dir, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(sub) => {
                    if self.dir(sub, depth + 1).is_err() {
                        self.usage.skipped += 1;
                    }
                }
                Err(_) => self.usage.skipped += 1,
            }
        }
        Ok(())
    }
}

#[allow(clippy::cast_sign_loss)] // st_blocks is never negative
fn blocks(st: &nix::sys::stat::FileStat) -> u64 {
    (st.st_blocks as u64).saturating_mul(512)
}

/// Lowers the calling thread's CPU and I/O priority as far as an unprivileged thread may:
/// nice 19 and the idle I/O class. Best effort.
#[allow(unsafe_code)]
pub fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread (tid 0 = this thread), no memory passed.
    unsafe {
        let _ = nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, 19);
        // ioprio_set(IOPRIO_WHO_PROCESS = 1, 0, IOPRIO_CLASS_IDLE (3) << 13)
        let _ = nix::libc::syscall(nix::libc::SYS_ioprio_set, 1, 0, 3 << 13);
    }
}

/// The quota octod sent: what the user uses and may use, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub used: u64,
    pub limit: u64,
}

impl Quota {
    /// Parses `used=<bytes>, limit=<bytes>`; `None` for anything else (no quota: the header
    /// is octod's, and a malformed one is a bug there, not a reason to refuse uploads).
    pub fn parse(value: &str) -> Option<Self> {
        let (mut used, mut limit) = (None, None);
        for part in value.split(',') {
            let (key, number) = part.trim().split_once('=')?;
            let number: u64 = number.trim().parse().ok()?;
            match key.trim() {
                "used" => used = Some(number),
                "limit" => limit = Some(number),
                _ => return None,
            }
        }
        Some(Self {
            used: used?,
            limit: limit?,
        })
    }

    /// What may still be written.
    pub fn remaining(self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Whether `bytes` more would pass the quota.
    pub fn refuses(self, bytes: u64) -> bool {
        bytes > self.remaining()
    }
}

/// Bytes for people: `2 GiB`, `1.5 MiB`, `300 bytes`.
pub fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, div) in UNITS {
        if bytes >= div {
            #[allow(clippy::cast_precision_loss)]
            let v = bytes as f64 / div as f64;
            let text = format!("{v:.1}");
            return format!("{} {unit}", text.trim_end_matches(".0"));
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_header_parses_strictly() {
        let q = Quota::parse("used=100, limit=1000").expect("valid");
        assert_eq!(
            q,
            Quota {
                used: 100,
                limit: 1000
            }
        );
        assert_eq!(q.remaining(), 900);
        assert_eq!(
            Quota::parse("limit=10,used=20").map(Quota::remaining),
            Some(0)
        );
        for bad in [
            "",
            "used=1",
            "used=x, limit=2",
            "used=1, limit=2, more=3",
            "used 1",
        ] {
            assert_eq!(Quota::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn measure_counts_blocks_once_per_inode_and_follows_no_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        std::fs::create_dir_all(base.join("a/b")).expect("mkdir");
        std::fs::write(base.join("a/b/big"), vec![1u8; 1 << 20]).expect("write");
        std::fs::hard_link(base.join("a/b/big"), base.join("a/twin")).expect("link");
        std::os::unix::fs::symlink("/usr", base.join("usr")).expect("symlink");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("x"), vec![1u8; 1 << 20]).expect("write");
        std::os::unix::fs::symlink(outside.path(), base.join("out")).expect("symlink");

        let usage = measure(&Root::new(base).expect("root")).expect("measure");
        // a, a/b, a/b/big, a/twin, usr, out
        assert_eq!(usage.entries, 6);
        assert_eq!(usage.skipped, 0);
        // The 1 MiB file once (the link shares it), plus a few directory blocks, no more.
        assert!(usage.bytes >= 1 << 20, "{usage:?}");
        assert!(usage.bytes < (1 << 20) + (64 << 10), "{usage:?}");
    }
}
