//! The file operations behind the API, as blocking functions on a [`Root`]: list, stat,
//! mkdir, move, copy, delete, search, and the staged files that uploads and copies write.
//!
//! Everything here runs on tokio's blocking pool. Every path goes through [`Root`]; walks
//! below a directory use [`open_child`], which never follows a symlink, so a link swapped in
//! by a concurrent process is at worst acted on as a link.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, readlinkat, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};
use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
use serde::Serialize;

use crate::confine::{RelPath, Root, create_child, open_child};
use crate::error::{ApiError, Code};
use crate::order;

/// Deepest directory nesting that recursive operations walk.
pub const MAX_DEPTH: usize = 256;

/// What an entry is. Symlinks are reported as links, never as what they point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl Kind {
    fn of(st: &FileStat) -> Kind {
        match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFREG => Kind::File,
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// One directory entry as the API shows it.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// The name (lossy UTF-8).
    pub name: String,
    /// The path from the root (lossy UTF-8).
    pub path: String,
    /// Only for names that are not UTF-8: the exact path, percent-encoded, to send back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<String>,
    /// What it is.
    pub kind: Kind,
    /// Size in bytes (of the link itself for symlinks).
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime: i64,
    /// Permission bits (`st_mode & 0o7777`), e.g. 420 for 0644.
    pub mode: u32,
    /// Symlinks only: the link text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Symlinks only: the kind of what the link resolves to beneath the root; absent when it
    /// dangles, loops or leads outside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_kind: Option<Kind>,
    /// Directories listed with `depth > 1`: their entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<Entry>>,
}

impl Entry {
    fn new(name: &[u8], path: &RelPath, st: &FileStat) -> Entry {
        let raw_path = std::str::from_utf8(path.as_bytes())
            .is_err()
            .then(|| percent_encode(path.as_bytes(), NON_ALPHANUMERIC).to_string());
        Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            path: path.display(),
            raw_path,
            kind: Kind::of(st),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime * 1000 + st.st_mtime_nsec / 1_000_000,
            mode: st.st_mode & 0o7777,
            target: None,
            target_kind: None,
            children: None,
        }
    }
}

/// Reads the entry `name` in `dir` without following it. `path` is its path from the root.
fn entry_at(root: &Root, dir: BorrowedFd<'_>, name: &[u8], path: &RelPath) -> Result<Entry, Errno> {
    let st = fstatat(dir, OsStr::from_bytes(name), AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let mut entry = Entry::new(name, path, &st);
    if entry.kind == Kind::Symlink {
        let target = readlinkat(dir, OsStr::from_bytes(name))?;
        entry.target = Some(target.to_string_lossy().into_owned());
        entry.target_kind = root
            .open_with(path, OFlag::O_PATH, Mode::empty())
            .and_then(fstat)
            .ok()
            .map(|st| Kind::of(&st));
    }
    Ok(entry)
}

/// Stats `path` itself (a final symlink is not followed).
pub fn stat(root: &Root, path: &RelPath) -> Result<Entry, ApiError> {
    if path.is_root() {
        let fd = root.open(path, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let st = fstat(&fd).map_err(|e| ApiError::fs(e, "/"))?;
        return Ok(Entry::new(b"", path, &st));
    }
    let (dir, name) = root.parent(path)?;
    entry_at(root, dir.as_fd(), name, path).map_err(|e| ApiError::fs(e, &path.display()))
}

/// Options of a listing.
#[derive(Debug, Clone, Copy)]
pub struct ListOptions {
    /// Include names that start with `.`.
    pub hidden: bool,
    /// 1 lists the directory; n > 1 nests `children` n − 1 levels deep.
    pub depth: usize,
    /// Stop adding entries after this many (the listing is then `truncated`).
    pub max_entries: usize,
    /// Only this part of the (sorted) entries: `limit` of them from `offset`.
    pub page: Option<Page>,
}

/// A part of a listing: `limit` entries from `offset`, in the listing's order.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

/// A directory listing.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The listed path.
    pub path: String,
    /// The entries (of the page asked for), in [`order::display_order`].
    pub entries: Vec<Entry>,
    /// Whether `max_entries` cut the listing short.
    pub truncated: bool,
    /// A page only: how many entries the whole listing holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
    /// A page only: the place of its first entry in the whole listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

/// Lists the directory at `path` (following symlinks that stay beneath the root).
pub fn list(root: &Root, path: &RelPath, opts: ListOptions) -> Result<Listing, ApiError> {
    let fd = root.open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    let mut budget = opts.max_entries;
    let mut entries = list_dir(root, fd, path, opts.hidden, opts.depth.max(1), &mut budget)
        .map_err(|e| ApiError::fs(e, &path.display()))?;
    let (mut total, mut offset) = (None, None);
    if let Some(page) = opts.page {
        total = Some(entries.len());
        let start = page.offset.min(entries.len());
        offset = Some(start);
        entries.truncate(start.saturating_add(page.limit).min(entries.len()));
        entries.drain(..start);
    }
    Ok(Listing {
        path: path.display(),
        entries,
        truncated: budget == 0,
        total,
        offset,
    })
}

/// A name read from a directory, with its `d_type` if known.
type Name = (Vec<u8>, Option<Type>);

/// The names in a directory, without `.` and `..`, with the `d_type` when the file system
/// gives one.
fn read_names(dir: &mut Dir) -> Result<Vec<Name>, Errno> {
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((name.to_vec(), entry.file_type()));
        }
    }
    Ok(names)
}

fn list_dir(
    root: &Root,
    fd: OwnedFd,
    path: &RelPath,
    hidden: bool,
    depth: usize,
    budget: &mut usize,
) -> Result<Vec<Entry>, Errno> {
    let mut dir = Dir::from_fd(fd)?;
    let names = read_names(&mut dir)?;
    let mut entries = Vec::with_capacity(names.len().min(*budget));
    for (name, _) in names {
        if *budget == 0 {
            break;
        }
        if !hidden && name.starts_with(b".") {
            continue;
        }
        let child = path.join(&name);
        let mut entry = match entry_at(root, dir.as_fd(), &name, &child) {
            Ok(entry) => entry,
            // Removed since readdir: not an error of the listing.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        *budget -= 1;
        if entry.kind == Kind::Dir && depth > 1 {
            match open_child(&dir, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(sub) => {
                    entry.children = Some(list_dir(root, sub, &child, hidden, depth - 1, budget)?);
                }
                Err(e) => tracing::debug!(path = %child.display(), error = %e, "not descending"),
            }
        }
        entries.push(entry);
    }
    entries.sort_by(order::display_order);
    Ok(entries)
}

/// Creates the directory `path`; with `parents`, also its missing parents, and an existing
/// directory is not an error. Returns the entry and whether anything was created.
pub fn mkdir(root: &Root, path: &RelPath, parents: bool) -> Result<(Entry, bool), ApiError> {
    let mode = Mode::from_bits_truncate(0o777);
    if !parents {
        let (dir, name) = root.parent(path)?;
        mkdirat(&dir, OsStr::from_bytes(name), mode)
            .map_err(|e| ApiError::fs(e, &path.display()))?;
        return Ok((stat(root, path)?, true));
    }
    let created = mkdir_parents(root, path)?;
    Ok((stat(root, path)?, created))
}

/// `mkdir -p` beneath the root, one component at a time, each resolved from the root.
pub fn mkdir_parents(root: &Root, path: &RelPath) -> Result<bool, ApiError> {
    let mode = Mode::from_bits_truncate(0o777);
    let mut prefix = RelPath::root();
    let mut created = false;
    for part in path.components() {
        prefix = prefix.join(part);
        match root.open_with(&prefix, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(ApiError::fs(e, &prefix.display())),
        }
        let (dir, name) = root.parent(&prefix)?;
        match mkdirat(&dir, OsStr::from_bytes(name), mode) {
            Ok(()) => created = true,
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(ApiError::fs(e, &prefix.display())),
        }
    }
    Ok(created)
}

/// Moves (renames) `from` to `to`. Neither final name is followed.
pub fn rename(
    root: &Root,
    from: &RelPath,
    to: &RelPath,
    overwrite: bool,
) -> Result<Entry, ApiError> {
    let (src_dir, src_name) = root.parent(from)?;
    let (dst_dir, dst_name) = root.parent(to)?;
    let flags = if overwrite {
        RenameFlags::empty()
    } else {
        RenameFlags::RENAME_NOREPLACE
    };
    renameat2(
        &src_dir,
        OsStr::from_bytes(src_name),
        &dst_dir,
        OsStr::from_bytes(dst_name),
        flags,
    )
    .map_err(|e| rename_error(e, from, to))?;
    stat(root, to)
}

fn rename_error(e: Errno, from: &RelPath, to: &RelPath) -> ApiError {
    match e {
        Errno::EXDEV => ApiError::new(
            Code::CrossDevice,
            format!(
                "{} → {}: different file systems",
                from.display(),
                to.display()
            ),
        ),
        Errno::EINVAL => ApiError::new(
            Code::InvalidMove,
            format!(
                "{} → {}: cannot move a directory into itself",
                from.display(),
                to.display()
            ),
        ),
        Errno::EEXIST | Errno::ENOTEMPTY => ApiError::new(
            Code::AlreadyExists,
            format!("{}: already exists", to.display()),
        ),
        Errno::ENOENT => ApiError::fs(e, &from.display()),
        e => ApiError::fs(e, &to.display()),
    }
}

/// Deletes `path` itself (a symlink is removed, never its target). A directory needs
/// `recursive` unless it is empty.
pub fn delete(root: &Root, path: &RelPath, recursive: bool) -> Result<(), ApiError> {
    let (dir, name) = root.parent(path)?;
    let shown = path.display();
    let st = fstatat(&dir, OsStr::from_bytes(name), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| ApiError::fs(e, &shown))?;
    if Kind::of(&st) != Kind::Dir {
        return unlinkat(&dir, OsStr::from_bytes(name), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| ApiError::fs(e, &shown));
    }
    if recursive {
        let sub = open_child(&dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|e| ApiError::fs(e, &shown))?;
        remove_contents(sub, 0).map_err(|e| ApiError::fs(e, &shown))?;
    }
    unlinkat(&dir, OsStr::from_bytes(name), UnlinkatFlags::RemoveDir).map_err(|e| match e {
        Errno::ENOTEMPTY | Errno::EEXIST => ApiError::new(
            Code::DirectoryNotEmpty,
            format!("{shown}: directory not empty (delete with recursive=true)"),
        ),
        e => ApiError::fs(e, &shown),
    })
}

/// Empties the directory `fd`, depth first, without following any symlink.
fn remove_contents(fd: OwnedFd, depth: usize) -> Result<(), Errno> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    let mut dir = Dir::from_fd(fd)?;
    for (name, _) in read_names(&mut dir)? {
        let name = OsStr::from_bytes(&name);
        match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::EISDIR) => {
                // A directory (it might be swapped for a link meanwhile: then the open
                // refuses and the error surfaces; the link is never followed).
                let sub = open_child(&dir, name.as_bytes(), OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                remove_contents(sub, depth + 1)?;
                match unlinkat(&dir, name, UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh hidden name for a staged file in the target's directory.
fn temp_name() -> Vec<u8> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(".octo-partial-{}-{n}-{nanos:x}", std::process::id()).into_bytes()
}

/// A file or directory written under a temporary name next to its destination. Dropping it
/// without [`Staged::commit`] removes it, so a failed or aborted write leaves nothing behind.
pub struct Staged {
    dir: OwnedFd,
    name: Vec<u8>,
    is_dir: bool,
    armed: bool,
}

impl Staged {
    /// Creates an empty staged file in `dir` and returns it with the open file.
    pub fn file(dir: OwnedFd, mode: u32) -> Result<(Staged, File), Errno> {
        loop {
            let name = temp_name();
            let mode = Mode::from_bits_truncate(mode);
            match create_child(&dir, &name, OFlag::O_WRONLY, mode) {
                Ok(fd) => {
                    let staged = Staged {
                        dir,
                        name,
                        is_dir: false,
                        armed: true,
                    };
                    return Ok((staged, File::from(fd)));
                }
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates an empty staged directory in `dir` and returns it with an fd open on it.
    fn directory(dir: OwnedFd) -> Result<(Staged, OwnedFd), Errno> {
        loop {
            let name = temp_name();
            match mkdirat(
                &dir,
                OsStr::from_bytes(&name),
                Mode::from_bits_truncate(0o700),
            ) {
                Ok(()) => {
                    let staged = Staged {
                        dir,
                        name,
                        is_dir: true,
                        armed: true,
                    };
                    let fd = open_child(
                        &staged.dir,
                        &staged.name,
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                    )?;
                    return Ok((staged, fd));
                }
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Renames the staged entry to `name` in the same directory. Without `overwrite` an
    /// existing entry is refused atomically (`RENAME_NOREPLACE`). Returns whether something
    /// was replaced.
    pub fn commit(
        mut self,
        name: &[u8],
        overwrite: bool,
        shown: &RelPath,
    ) -> Result<bool, ApiError> {
        let from = OsStr::from_bytes(&self.name);
        let to = OsStr::from_bytes(name);
        let replaced = match renameat2(
            &self.dir,
            from,
            &self.dir,
            to,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => false,
            Err(Errno::EEXIST) if overwrite => {
                renameat2(&self.dir, from, &self.dir, to, RenameFlags::empty())
                    .map_err(|e| commit_error(e, shown))?;
                true
            }
            Err(e) => return Err(commit_error(e, shown)),
        };
        self.armed = false;
        Ok(replaced)
    }
}

fn commit_error(e: Errno, shown: &RelPath) -> ApiError {
    match e {
        Errno::EEXIST => ApiError::new(
            Code::AlreadyExists,
            format!(
                "{}: already exists (set overwrite=true to replace it)",
                shown.display()
            ),
        ),
        Errno::ENOTEMPTY => ApiError::new(
            Code::DirectoryNotEmpty,
            format!("{}: a non-empty directory is in the way", shown.display()),
        ),
        e => ApiError::fs(e, &shown.display()),
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let name = OsStr::from_bytes(&self.name);
        let result = if self.is_dir {
            open_child(&self.dir, &self.name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .and_then(|fd| remove_contents(fd, 0))
                .and_then(|()| unlinkat(&self.dir, name, UnlinkatFlags::RemoveDir))
        } else {
            unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, name = %String::from_utf8_lossy(&self.name), "removing a staged entry failed");
        }
    }
}

/// Refuses early when `name` exists in `dir` and overwriting was not asked for. The final
/// rename checks again atomically; this only spares a pointless upload or copy.
pub fn refuse_existing(dir: &OwnedFd, name: &[u8], shown: &RelPath) -> Result<(), ApiError> {
    match fstatat(dir, OsStr::from_bytes(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => Err(commit_error(Errno::EEXIST, shown)),
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(ApiError::fs(e, &shown.display())),
    }
}

/// Copies `from` to `to`: a file's bytes, a symlink as a link, a directory recursively
/// (symlinks inside copied as links). The copy is staged and renamed into place.
pub fn copy(
    root: &Root,
    from: &RelPath,
    to: &RelPath,
    overwrite: bool,
) -> Result<(Entry, bool), ApiError> {
    let (src_dir, src_name) = root.parent(from)?;
    let (dst_dir, dst_name) = root.parent(to)?;
    let shown_from = from.display();
    let st = fstatat(
        &src_dir,
        OsStr::from_bytes(src_name),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| ApiError::fs(e, &shown_from))?;
    if !overwrite {
        refuse_existing(&dst_dir, dst_name, to)?;
    }
    let err = |e: Errno| ApiError::fs(e, &shown_from);
    let staged = match Kind::of(&st) {
        Kind::File => {
            let src = open_child(&src_dir, src_name, OFlag::O_RDONLY).map_err(err)?;
            let (staged, mut dst) = Staged::file(dst_dir, st.st_mode & 0o777)
                .map_err(|e| ApiError::fs(e, &to.display()))?;
            std::io::copy(&mut File::from(src), &mut dst).map_err(|e| io_error(&e, &shown_from))?;
            staged
        }
        Kind::Symlink => {
            let target = readlinkat(&src_dir, OsStr::from_bytes(src_name)).map_err(err)?;
            let name = temp_name();
            symlinkat(target.as_os_str(), &dst_dir, OsStr::from_bytes(&name))
                .map_err(|e| ApiError::fs(e, &to.display()))?;
            Staged {
                dir: dst_dir,
                name,
                is_dir: false,
                armed: true,
            }
        }
        Kind::Dir => {
            let src = open_child(&src_dir, src_name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .map_err(err)?;
            let (staged, dst) =
                Staged::directory(dst_dir).map_err(|e| ApiError::fs(e, &to.display()))?;
            let dst_st = fstat(&dst).map_err(err)?;
            // The copy may be inside the source: never copy it into itself.
            let skip = (dst_st.st_dev, dst_st.st_ino);
            copy_tree(src, &dst, skip, 0).map_err(|e| match e {
                CopyError::Errno(e) => ApiError::fs(e, &shown_from),
                CopyError::Io(e) => io_error(&e, &shown_from),
            })?;
            nix::sys::stat::fchmod(&dst, Mode::from_bits_truncate(st.st_mode & 0o7777))
                .map_err(err)?;
            staged
        }
        Kind::Other => {
            return Err(ApiError::new(
                Code::NotAFile,
                format!("{shown_from}: only files, directories and symlinks can be copied"),
            ));
        }
    };
    let replaced = staged.commit(dst_name, overwrite, to)?;
    Ok((stat(root, to)?, replaced))
}

enum CopyError {
    Errno(Errno),
    Io(std::io::Error),
}

impl From<Errno> for CopyError {
    fn from(e: Errno) -> Self {
        CopyError::Errno(e)
    }
}

fn io_error(e: &std::io::Error, shown: &str) -> ApiError {
    match e.raw_os_error() {
        Some(n) => ApiError::fs(Errno::from_raw(n), shown),
        None => ApiError::internal(&format!("{shown}: copying"), e),
    }
}

fn copy_tree(src: OwnedFd, dst: &OwnedFd, skip: (u64, u64), depth: usize) -> Result<(), CopyError> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP.into());
    }
    let mut dir = Dir::from_fd(src)?;
    for (name, _) in read_names(&mut dir)? {
        let os = OsStr::from_bytes(&name);
        let st = match fstatat(&dir, os, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        if (st.st_dev, st.st_ino) == skip {
            continue;
        }
        let perm = st.st_mode & 0o7777;
        match Kind::of(&st) {
            Kind::File => {
                let from = open_child(&dir, &name, OFlag::O_RDONLY)?;
                let to = create_child(
                    dst,
                    &name,
                    OFlag::O_WRONLY,
                    Mode::from_bits_truncate(perm & 0o777),
                )?;
                std::io::copy(&mut File::from(from), &mut File::from(to)).map_err(CopyError::Io)?;
            }
            Kind::Dir => {
                mkdirat(dst, os, Mode::from_bits_truncate(0o700))?;
                let from = open_child(&dir, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                let to = open_child(dst, &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                copy_tree(from, &to, skip, depth + 1)?;
                nix::sys::stat::fchmod(&to, Mode::from_bits_truncate(perm))?;
            }
            Kind::Symlink => {
                let target = readlinkat(&dir, os)?;
                symlinkat(target.as_os_str(), dst, os)?;
            }
            Kind::Other => {
                tracing::debug!(name = %String::from_utf8_lossy(&name), "not copying a special file");
            }
        }
    }
    Ok(())
}

/// Options of a name search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Case-insensitive substring to find in names.
    pub query: String,
    /// Include and descend into names that start with `.`.
    pub hidden: bool,
    /// Stop after this many matches.
    pub limit: usize,
    /// Stop after looking at this many entries.
    pub max_visited: usize,
}

/// The result of a search.
#[derive(Debug, Serialize)]
pub struct SearchResult {
    /// Matching entries, in walk order (breadth first).
    pub results: Vec<Entry>,
    /// Whether a limit ended the walk early.
    pub truncated: bool,
}

/// Finds entries below `path` whose names contain the query (case-insensitive). Symlinks are
/// reported but never descended into.
pub fn search(root: &Root, path: &RelPath, opts: &SearchOptions) -> Result<SearchResult, ApiError> {
    let needle = opts.query.to_lowercase();
    // Fail like the other operations when the start is missing or not a directory.
    drop(root.open(path, OFlag::O_PATH | OFlag::O_DIRECTORY)?);
    // The queue holds paths, not fds, so a wide tree cannot exhaust the fd limit. Reopening
    // resolves beneath the root again, so a directory swapped for a link meanwhile is safe.
    let mut queue = std::collections::VecDeque::from([path.clone()]);
    let mut results = Vec::new();
    let mut visited = 0usize;
    while let Some(dir_path) = queue.pop_front() {
        let Ok(fd) = root.open_with(
            &dir_path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        ) else {
            continue;
        };
        let Ok(mut dir) = Dir::from_fd(fd) else {
            continue;
        };
        let Ok(names) = read_names(&mut dir) else {
            continue;
        };
        for (name, dtype) in names {
            if !opts.hidden && name.starts_with(b".") {
                continue;
            }
            visited += 1;
            if visited > opts.max_visited || results.len() >= opts.limit {
                return Ok(SearchResult {
                    results,
                    truncated: true,
                });
            }
            let child = dir_path.join(&name);
            if String::from_utf8_lossy(&name)
                .to_lowercase()
                .contains(&needle)
            {
                if let Ok(entry) = entry_at(root, dir.as_fd(), &name, &child) {
                    results.push(entry);
                }
            }
            let is_dir = match dtype {
                Some(t) => t == Type::Directory,
                None => fstatat(&dir, OsStr::from_bytes(&name), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| Kind::of(&st) == Kind::Dir),
            };
            if is_dir && child.components().count() <= MAX_DEPTH {
                queue.push_back(child);
            }
        }
    }
    Ok(SearchResult {
        results,
        truncated: false,
    })
}
