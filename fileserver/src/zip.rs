//! A streaming zip writer (stored entries, data descriptors, ZIP64 where needed) and the
//! directory walk that feeds it.
//!
//! Entries are "stored" (not compressed): workspace downloads are dominated by the network
//! and by already-compressed files, and storing lets us stream at disk speed with a constant
//! memory footprint. Sizes and CRCs follow each entry in a data descriptor, so nothing is
//! buffered or seeked. Symlinks are stored as links (Unix mode in the external attributes),
//! never followed, so an archive never contains anything from outside the tree.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag, readlinkat};
use nix::sys::stat::{SFlag, fstat, fstatat};

use crate::confine::open_child;
use crate::fsops::MAX_DEPTH;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
/// General purpose flags: bit 3 (sizes in a data descriptor), bit 11 (UTF-8 name).
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const FLAG_UTF8: u16 = 1 << 11;
/// "Made by" Unix (3), spec version 4.5 (ZIP64).
const MADE_BY: u16 = (3 << 8) | 0x2D;
const U32_MAX: u64 = 0xFFFF_FFFF;

struct Central {
    name: Vec<u8>,
    flags: u16,
    crc: u32,
    size: u64,
    offset: u64,
    time: (u16, u16),
    mtime: Option<u32>,
    attrs: u32,
    zip64: bool,
}

/// Writes a zip archive to `W` one entry at a time.
pub struct ZipWriter<W: Write> {
    out: W,
    written: u64,
    entries: Vec<Central>,
    force_zip64: bool,
}

impl<W: Write> ZipWriter<W> {
    /// A writer that emits ZIP64 records only where sizes or counts need them.
    pub fn new(out: W) -> Self {
        ZipWriter {
            out,
            written: 0,
            entries: Vec::new(),
            force_zip64: false,
        }
    }

    /// A writer that emits ZIP64 records everywhere (to test those paths with small files).
    pub fn new_zip64(out: W) -> Self {
        ZipWriter {
            force_zip64: true,
            ..ZipWriter::new(out)
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Adds a directory entry (`name` gets a trailing `/`).
    pub fn add_dir(&mut self, name: &[u8], mtime: i64, mode: u32) -> io::Result<()> {
        let mut name = name.to_vec();
        name.push(b'/');
        let attrs = ((SFlag::S_IFDIR.bits() | (mode & 0o7777)) << 16) | 0x10;
        self.add(name, mtime, attrs, 0, &mut io::empty())
    }

    /// Adds a symlink entry whose content is the link text.
    pub fn add_symlink(&mut self, name: &[u8], mtime: i64, target: &[u8]) -> io::Result<()> {
        let attrs = (SFlag::S_IFLNK.bits() | 0o777) << 16;
        self.add(name.to_vec(), mtime, attrs, target.len() as u64, &mut {
            target
        })
    }

    /// Adds a file with at most `size` bytes from `data`. A read error ends the entry early
    /// (its descriptor then records what was written) and is logged; write errors abort.
    pub fn add_file(
        &mut self,
        name: &[u8],
        mtime: i64,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let attrs = (SFlag::S_IFREG.bits() | (mode & 0o7777)) << 16;
        self.add(name.to_vec(), mtime, attrs, size, data)
    }

    fn add(
        &mut self,
        name: Vec<u8>,
        mtime: i64,
        attrs: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let zip64 = self.force_zip64 || size >= U32_MAX;
        let offset = self.written;
        let flags = FLAG_DESCRIPTOR
            | if std::str::from_utf8(&name).is_ok() {
                FLAG_UTF8
            } else {
                0
            };
        let time = dos_time(mtime);
        let unix_mtime = u32::try_from(mtime).ok();
        // A ZIP64 local header has both sizes as 0xFFFFFFFF and zeros in the extra field.
        let extra = extra_fields(zip64.then_some(0), None, unix_mtime);
        let mut h = Vec::with_capacity(30 + name.len() + extra.len());
        h.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 45u16 } else { 20 }).to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&time.0.to_le_bytes());
        h.extend_from_slice(&time.1.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes()); // crc: in the descriptor
        let placeholder: u32 = if zip64 { u32::MAX } else { 0 };
        h.extend_from_slice(&placeholder.to_le_bytes());
        h.extend_from_slice(&placeholder.to_le_bytes());
        h.extend_from_slice(&len16(name.len())?.to_le_bytes());
        h.extend_from_slice(&len16(extra.len())?.to_le_bytes());
        h.extend_from_slice(&name);
        h.extend_from_slice(&extra);
        self.put(&h)?;

        let mut hasher = crc32fast::Hasher::new();
        let mut written = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        let mut limited = data.take(size);
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(name = %String::from_utf8_lossy(&name), error = %e, "read failed; entry truncated");
                    break;
                }
            };
            hasher.update(&buf[..n]);
            self.put(&buf[..n])?;
            written += n as u64;
        }
        let crc = hasher.finalize();

        let mut d = Vec::with_capacity(24);
        d.extend_from_slice(&DATA_DESCRIPTOR.to_le_bytes());
        d.extend_from_slice(&crc.to_le_bytes());
        if zip64 {
            d.extend_from_slice(&written.to_le_bytes());
            d.extend_from_slice(&written.to_le_bytes());
        } else {
            // `size < U32_MAX` and `written <= size`, so this fits.
            let w = u32::try_from(written).map_err(|_| io::Error::other("entry size overflow"))?;
            d.extend_from_slice(&w.to_le_bytes());
            d.extend_from_slice(&w.to_le_bytes());
        }
        self.put(&d)?;
        self.entries.push(Central {
            name,
            flags,
            crc,
            size: written,
            offset,
            time,
            mtime: unix_mtime,
            attrs,
            zip64,
        });
        Ok(())
    }

    /// Writes the central directory and the end records; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let cd_offset = self.written;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let big_size = self.force_zip64 || e.size >= U32_MAX;
            let big_offset = self.force_zip64 || e.offset >= U32_MAX;
            // Only the fields that overflow go into the ZIP64 extra field, in the fixed order.
            let extra = extra_fields(
                big_size.then_some(e.size),
                big_offset.then_some(e.offset),
                e.mtime,
            );
            let mut h = Vec::with_capacity(46 + e.name.len() + extra.len());
            h.extend_from_slice(&CENTRAL_HEADER.to_le_bytes());
            h.extend_from_slice(&MADE_BY.to_le_bytes());
            let needs64 = e.zip64 || big_size || big_offset;
            h.extend_from_slice(&(if needs64 { 45u16 } else { 20 }).to_le_bytes());
            h.extend_from_slice(&e.flags.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&e.time.0.to_le_bytes());
            h.extend_from_slice(&e.time.1.to_le_bytes());
            h.extend_from_slice(&e.crc.to_le_bytes());
            let size32 = if big_size { u32::MAX } else { clamp32(e.size) };
            h.extend_from_slice(&size32.to_le_bytes());
            h.extend_from_slice(&size32.to_le_bytes());
            h.extend_from_slice(&len16(e.name.len())?.to_le_bytes());
            h.extend_from_slice(&len16(extra.len())?.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // comment
            h.extend_from_slice(&0u16.to_le_bytes()); // disk
            h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            h.extend_from_slice(&e.attrs.to_le_bytes());
            let offset32 = if big_offset {
                u32::MAX
            } else {
                clamp32(e.offset)
            };
            h.extend_from_slice(&offset32.to_le_bytes());
            h.extend_from_slice(&e.name);
            h.extend_from_slice(&extra);
            self.put(&h)?;
        }
        let cd_size = self.written - cd_offset;
        let count = entries.len() as u64;
        let mut t = Vec::with_capacity(98);
        if self.force_zip64 || count >= 0xFFFF || cd_offset >= U32_MAX || cd_size >= U32_MAX {
            let end64 = self.written;
            t.extend_from_slice(&ZIP64_END.to_le_bytes());
            t.extend_from_slice(&44u64.to_le_bytes());
            t.extend_from_slice(&MADE_BY.to_le_bytes());
            t.extend_from_slice(&45u16.to_le_bytes());
            t.extend_from_slice(&0u32.to_le_bytes());
            t.extend_from_slice(&0u32.to_le_bytes());
            t.extend_from_slice(&count.to_le_bytes());
            t.extend_from_slice(&count.to_le_bytes());
            t.extend_from_slice(&cd_size.to_le_bytes());
            t.extend_from_slice(&cd_offset.to_le_bytes());
            t.extend_from_slice(&ZIP64_LOCATOR.to_le_bytes());
            t.extend_from_slice(&0u32.to_le_bytes());
            t.extend_from_slice(&end64.to_le_bytes());
            t.extend_from_slice(&1u32.to_le_bytes());
        }
        let count16 = u16::try_from(count).unwrap_or(u16::MAX);
        t.extend_from_slice(&END.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&count16.to_le_bytes());
        t.extend_from_slice(&count16.to_le_bytes());
        t.extend_from_slice(&clamp32(cd_size).to_le_bytes());
        t.extend_from_slice(&clamp32(cd_offset).to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        self.put(&t)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `value`, or `0xFFFFFFFF` (the "see ZIP64" marker) when it does not fit.
fn clamp32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn len16(len: usize) -> io::Result<u16> {
    u16::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "zip name or extra field too long",
        )
    })
}

/// The extra fields: ZIP64 (the uncompressed and compressed size, both `size` since entries
/// are stored, and the header offset, each only when given) and the Unix modification time
/// ("UT"), which readers prefer to the zone-less DOS time.
fn extra_fields(size: Option<u64>, offset: Option<u64>, mtime: Option<u32>) -> Vec<u8> {
    let mut x = Vec::new();
    if size.is_some() || offset.is_some() {
        let mut body = Vec::with_capacity(24);
        if let Some(size) = size {
            body.extend_from_slice(&size.to_le_bytes());
            body.extend_from_slice(&size.to_le_bytes());
        }
        if let Some(offset) = offset {
            body.extend_from_slice(&offset.to_le_bytes());
        }
        x.extend_from_slice(&1u16.to_le_bytes());
        x.extend_from_slice(&u16::try_from(body.len()).unwrap_or(0).to_le_bytes());
        x.extend_from_slice(&body);
    }
    if let Some(mtime) = mtime {
        x.extend_from_slice(&0x5455u16.to_le_bytes());
        x.extend_from_slice(&5u16.to_le_bytes());
        x.push(1);
        x.extend_from_slice(&mtime.to_le_bytes());
    }
    x
}

/// MS-DOS (time, date) of a Unix time, in UTC, clamped to the format's 1980–2107 range.
fn dos_time(unix: i64) -> (u16, u16) {
    let unix = unix.clamp(315_532_800, 4_354_819_199); // 1980-01-01 .. 2107-12-31
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let pack = |v: i64| u16::try_from(v).unwrap_or(0);
    let time = pack(((secs / 3600) << 11) | (((secs % 3600) / 60) << 5) | ((secs % 60) / 2));
    let date = pack(((year - 1980) << 9) | (month << 5) | day);
    (time, date)
}

/// Writes the directory `dir` as a zip whose entries start with `top/`. Hidden files are
/// included: they are part of the tree. Entries that vanish or cannot be read are skipped
/// and logged; an error writing the archive (the client went away) ends the walk.
pub fn zip_directory<W: Write>(dir: OwnedFd, top: &[u8], out: W) -> io::Result<W> {
    let mut zip = ZipWriter::new(out);
    let st = fstat(&dir).map_err(io::Error::from)?;
    zip.add_dir(top, st.st_mtime, st.st_mode)?;
    walk(&mut zip, dir, top, 0)?;
    zip.finish()
}

fn walk<W: Write>(
    zip: &mut ZipWriter<W>,
    fd: OwnedFd,
    prefix: &[u8],
    depth: usize,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        tracing::warn!(prefix = %String::from_utf8_lossy(prefix), "zip: tree too deep; not descending");
        return Ok(());
    }
    let mut dir = match Dir::from_fd(fd) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::warn!(prefix = %String::from_utf8_lossy(prefix), error = %e, "zip: cannot read directory");
            return Ok(());
        }
    };
    let mut names: Vec<Vec<u8>> = dir
        .iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    names.sort_unstable();
    for name in names {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(&name);
        let os = OsStr::from_bytes(&name);
        let Ok(st) = fstatat(dir.as_fd(), os, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFDIR => {
                zip.add_dir(&path, st.st_mtime, st.st_mode)?;
                match open_child(dir.as_fd(), &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                    Ok(sub) => walk(zip, sub, &path, depth + 1)?,
                    Err(e) => {
                        tracing::warn!(path = %String::from_utf8_lossy(&path), error = %e, "zip: skipping directory");
                    }
                }
            }
            SFlag::S_IFREG => {
                // O_NONBLOCK: if it was swapped for a FIFO meanwhile, the open must not hang.
                match open_child(dir.as_fd(), &name, OFlag::O_RDONLY | OFlag::O_NONBLOCK) {
                    Ok(fd) => {
                        let Ok(st) = fstat(&fd) else { continue };
                        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                            continue;
                        }
                        let size = u64::try_from(st.st_size).unwrap_or(0);
                        zip.add_file(&path, st.st_mtime, st.st_mode, size, &mut File::from(fd))?;
                    }
                    Err(e) => {
                        tracing::warn!(path = %String::from_utf8_lossy(&path), error = %e, "zip: skipping file");
                    }
                }
            }
            SFlag::S_IFLNK => {
                if let Ok(target) = readlinkat(dir.as_fd(), os) {
                    zip.add_symlink(&path, st.st_mtime, target.as_bytes())?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_time_of_known_dates() {
        // 1980-01-01 00:00:00
        assert_eq!(dos_time(315_532_800), (0, (1 << 5) | 1));
        // 2024-02-29 13:45:30 UTC = 1709214330
        let (time, date) = dos_time(1_709_214_330);
        assert_eq!(date >> 9, 2024 - 1980);
        assert_eq!((date >> 5) & 0xF, 2);
        assert_eq!(date & 0x1F, 29);
        assert_eq!(time >> 11, 13);
        assert_eq!((time >> 5) & 0x3F, 45);
        assert_eq!((time & 0x1F) * 2, 30);
        // Before 1980 clamps.
        assert_eq!(dos_time(0), dos_time(315_532_800));
    }

    #[test]
    fn archive_ends_with_a_consistent_end_record() {
        let mut zip = ZipWriter::new(Vec::new());
        zip.add_file(b"a.txt", 1_700_000_000, 0o644, 5, &mut &b"hello"[..])
            .expect("add");
        zip.add_dir(b"d", 1_700_000_000, 0o755).expect("add");
        let bytes = zip.finish().expect("finish");
        let end = &bytes[bytes.len() - 22..];
        assert_eq!(u32::from_le_bytes(end[0..4].try_into().expect("4")), END);
        assert_eq!(u16::from_le_bytes(end[10..12].try_into().expect("2")), 2);
        let cd_size = u32::from_le_bytes(end[12..16].try_into().expect("4")) as usize;
        let cd_offset = u32::from_le_bytes(end[16..20].try_into().expect("4")) as usize;
        assert_eq!(cd_offset + cd_size, bytes.len() - 22);
        assert_eq!(
            u32::from_le_bytes(bytes[cd_offset..cd_offset + 4].try_into().expect("4")),
            CENTRAL_HEADER
        );
    }
}
