//! Confinement: every path the client sends is resolved by the kernel beneath the workspace
//! root, never by string checks.
//!
//! The invariant of this crate: **no file-system call takes a client path relative to anything
//! but a directory fd obtained here.** [`Root::open`] resolves a whole path with `openat2(2)`
//! and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so `..`, absolute symlinks and symlinks that
//! lead out are refused by the kernel at the moment of use, with no check-then-use window.
//! Operations on an entry itself (delete, rename, lstat) go through [`Root::parent`], which
//! resolves only the parent that way and then names a single final component, so the link
//! itself is acted on and never its target. Walks below a directory fd use [`open_child`],
//! which follows no symlink at all.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use crate::error::{ApiError, Code};

/// Longest path the API accepts (the kernel's `PATH_MAX` less the NUL).
pub const MAX_PATH: usize = 4095;
/// Longest single name (the kernel's `NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// A client path, relative to the workspace root, checked for shape only: no NUL byte,
/// no over-long name, leading `/` and empty or `.` components removed. `..` is kept: the
/// kernel decides whether it stays beneath the root. The empty path is the root itself.
#[derive(Clone, PartialEq, Eq)]
pub struct RelPath {
    /// Components joined by `/`; never starts or ends with `/`.
    bytes: Vec<u8>,
}

impl RelPath {
    /// Checks and normalises a raw client path.
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        if raw.contains(&0) {
            return Err(ApiError::new(Code::InvalidPath, "path contains a NUL byte"));
        }
        if raw.len() > MAX_PATH {
            return Err(ApiError::new(Code::NameTooLong, "path is too long"));
        }
        let mut bytes = Vec::with_capacity(raw.len());
        for part in raw.split(|&b| b == b'/') {
            if part.is_empty() || part == b"." {
                continue;
            }
            if part.len() > MAX_NAME {
                return Err(ApiError::new(
                    Code::NameTooLong,
                    "a name in the path is longer than 255 bytes",
                ));
            }
            if !bytes.is_empty() {
                bytes.push(b'/');
            }
            bytes.extend_from_slice(part);
        }
        Ok(RelPath { bytes })
    }

    /// The root itself.
    pub fn root() -> Self {
        RelPath { bytes: Vec::new() }
    }

    /// Is this the workspace root?
    pub fn is_root(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The raw bytes, `/`-separated.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The path as an `OsStr`, or `.` for the root (what `openat2` wants).
    pub fn as_os_str(&self) -> &OsStr {
        if self.bytes.is_empty() {
            OsStr::new(".")
        } else {
            OsStr::from_bytes(&self.bytes)
        }
    }

    /// The last component, if any.
    pub fn file_name(&self) -> Option<&[u8]> {
        if self.bytes.is_empty() {
            return None;
        }
        Some(match self.bytes.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.bytes[i + 1..],
            None => &self.bytes,
        })
    }

    /// Everything but the last component (the root for a single name).
    #[must_use]
    pub fn parent(&self) -> RelPath {
        match self.bytes.iter().rposition(|&b| b == b'/') {
            Some(i) => RelPath {
                bytes: self.bytes[..i].to_vec(),
            },
            None => RelPath::root(),
        }
    }

    /// This path with one more name appended.
    #[must_use]
    pub fn join(&self, name: &[u8]) -> RelPath {
        let mut bytes = self.bytes.clone();
        if !bytes.is_empty() {
            bytes.push(b'/');
        }
        bytes.extend_from_slice(name);
        RelPath { bytes }
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// The path for messages and JSON (lossy for names that are not UTF-8).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

/// The workspace root, held open as an `O_PATH` directory fd for the life of the server.
pub struct Root {
    fd: OwnedFd,
}

/// How many times a resolution is retried when the kernel reports a concurrent rename
/// (`EAGAIN`) before we give up.
const EAGAIN_RETRIES: usize = 16;

impl Root {
    /// Opens the directory at `path` as the root. Fails with `ENOSYS` on kernels without
    /// `openat2` (before 5.6): better to refuse to start than to fail every request.
    pub fn new(path: &Path) -> Result<Self, Errno> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let root = Root { fd };
        root.open_with(
            &RelPath::root(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        Ok(root)
    }

    /// Opens `path` beneath the root with `flags`, following symlinks only where they stay
    /// beneath it. `mode` is used with `O_CREAT`.
    pub fn open_with(&self, path: &RelPath, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
        beneath(
            self.fd.as_fd(),
            path.as_os_str(),
            flags,
            mode,
            ResolveFlag::empty(),
        )
    }

    /// Opens `path` beneath the root with `flags`. Errors are mapped for the client.
    pub fn open(&self, path: &RelPath, flags: OFlag) -> Result<OwnedFd, ApiError> {
        self.open_with(path, flags, Mode::empty())
            .map_err(|e| ApiError::fs(e, &path.display()))
    }

    /// Opens `path` beneath the root following no symlink at all, in any component: for the
    /// change watcher, which must watch each directory under its real path only, and never
    /// anything a link leads to (inside or outside).
    pub fn open_real(&self, path: &RelPath, flags: OFlag) -> Result<OwnedFd, Errno> {
        beneath(
            self.fd.as_fd(),
            path.as_os_str(),
            flags,
            Mode::empty(),
            ResolveFlag::RESOLVE_NO_SYMLINKS,
        )
    }

    /// A second handle on the same root (a duplicated descriptor), for a thread of its own.
    pub fn try_clone(&self) -> Result<Root, Errno> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
        Ok(Root { fd })
    }

    /// Opens the directory that contains `path` (as `O_PATH`) and returns it with the final
    /// name. The final name is never followed: operations on it act on the entry itself.
    /// Refuses the root itself and a final `..`.
    pub fn parent<'p>(&self, path: &'p RelPath) -> Result<(OwnedFd, &'p [u8]), ApiError> {
        let name = path.file_name().ok_or_else(|| {
            ApiError::new(
                Code::InvalidPath,
                "the workspace root itself cannot be the target",
            )
        })?;
        if name == b".." {
            return Err(ApiError::new(
                Code::InvalidPath,
                format!("{}: the last name may not be `..`", path.display()),
            ));
        }
        let dir = self.open(&path.parent(), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        Ok((dir, name))
    }
}

/// Opens a single `name` inside the directory `dir`, following no symlink at all (neither
/// the name itself nor anything else), for walks that must never leave the tree.
pub fn open_child(dir: impl AsFd, name: &[u8], flags: OFlag) -> Result<OwnedFd, Errno> {
    beneath(
        dir.as_fd(),
        OsStr::from_bytes(name),
        flags,
        Mode::empty(),
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
}

/// Creates a single `name` inside `dir` (`O_CREAT | O_EXCL`, never through a symlink).
pub fn create_child(
    dir: impl AsFd,
    name: &[u8],
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    beneath(
        dir.as_fd(),
        OsStr::from_bytes(name),
        flags | OFlag::O_CREAT | OFlag::O_EXCL,
        mode,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
}

/// The one place that resolves client paths: `openat2` with `RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS` (plus `extra`), retried when the kernel reports a race.
fn beneath(
    dir: std::os::fd::BorrowedFd<'_>,
    path: &OsStr,
    flags: OFlag,
    mode: Mode,
    extra: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    // openat2 refuses (EINVAL) flags that O_PATH would ignore, so O_NOCTTY only without it.
    let flags = if flags.contains(OFlag::O_PATH) {
        flags | OFlag::O_CLOEXEC
    } else {
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY
    };
    let how = OpenHow::new()
        .flags(flags)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS | extra);
    let mut tries = 0;
    loop {
        match openat2(dir, path, how) {
            // EAGAIN: a concurrent rename made the kernel unsure that `..` stayed beneath.
            Err(Errno::EAGAIN) if tries < EAGAIN_RETRIES => tries += 1,
            // EINTR: e.g. opening a FIFO interrupted by a signal.
            Err(Errno::EINTR) => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: &str) {
        let p = RelPath::parse(raw.as_bytes()).expect("valid path");
        assert_eq!(p.display(), expected, "normalising {raw:?}");
    }

    #[test]
    fn normalises_shape_but_keeps_dotdot_for_the_kernel() {
        check("", "");
        check("/", "");
        check("./a//b/./", "a/b");
        check("/etc/passwd", "etc/passwd");
        check("a/../../b", "a/../../b");
    }

    #[test]
    fn refuses_nul_and_long_names() {
        let nul = RelPath::parse(b"a\0b").expect_err("NUL");
        assert_eq!(nul.code, Code::InvalidPath);
        let long = "x".repeat(256);
        assert_eq!(
            RelPath::parse(long.as_bytes()).expect_err("name").code,
            Code::NameTooLong
        );
        let very_long = "a/".repeat(2100);
        assert_eq!(
            RelPath::parse(very_long.as_bytes()).expect_err("path").code,
            Code::NameTooLong
        );
        assert!(RelPath::parse("x".repeat(255).as_bytes()).is_ok());
    }

    #[test]
    fn parent_and_name() {
        let p = RelPath::parse(b"a/b/c").expect("valid");
        assert_eq!(p.file_name(), Some(&b"c"[..]));
        assert_eq!(p.parent().display(), "a/b");
        assert_eq!(p.parent().parent().parent(), RelPath::root());
        assert_eq!(RelPath::root().file_name(), None);
        assert_eq!(p.parent().join(b"d").display(), "a/b/d");
    }

    #[test]
    fn kernel_refuses_escapes_and_allows_inner_links() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root_dir = tmp.path().join("root");
        std::fs::create_dir_all(root_dir.join("sub")).expect("mkdir");
        std::fs::write(tmp.path().join("secret"), "x").expect("write");
        std::os::unix::fs::symlink("..", root_dir.join("up")).expect("symlink");
        std::os::unix::fs::symlink("/", root_dir.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("sub", root_dir.join("in")).expect("symlink");
        let root = Root::new(&root_dir).expect("root");
        let open = |p: &str| {
            root.open_with(
                &RelPath::parse(p.as_bytes()).expect("p"),
                OFlag::O_PATH,
                Mode::empty(),
            )
        };
        assert_eq!(open("../secret").err(), Some(Errno::EXDEV));
        assert_eq!(open("up/secret").err(), Some(Errno::EXDEV));
        assert_eq!(open("abs/etc").err(), Some(Errno::EXDEV));
        assert!(open("in").is_ok());
        assert!(open("sub/../in").is_ok());
    }
}
