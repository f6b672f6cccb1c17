//! The order of a listing, as the Files pane shows it: folders (and links to folders) first,
//! then names in natural order — case folded, runs of digits by their number (`file-9` before
//! `file-10`) —, ties by bytes so the order is total. The server sorts, so that a listing can be
//! paged; the UI's `compareNames` (`frontend/src/files/fileops.ts`) is the same function and
//! both are tested on the same table.

use std::cmp::Ordering;

use crate::fsops::{Entry, Kind};

/// Whether the tree treats `entry` as a folder: a directory, or a link to one beneath the root.
fn is_folder(entry: &Entry) -> bool {
    entry.kind == Kind::Dir || (entry.kind == Kind::Symlink && entry.target_kind == Some(Kind::Dir))
}

/// Folders first, then [`compare_names`].
pub fn display_order(a: &Entry, b: &Entry) -> Ordering {
    is_folder(b)
        .cmp(&is_folder(a))
        .then_with(|| compare_names(&a.name, &b.name))
}

/// Natural, case-insensitive order of two names; equal only when they are the same bytes.
/// Lower case is Unicode's simple mapping of each character (not a locale's collation): names
/// in other scripts sort by code point after folding.
pub fn compare_names(a: &str, b: &str) -> Ordering {
    natural(a, b).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

fn natural(left: &str, right: &str) -> Ordering {
    let (mut lhs, mut rhs) = (left.chars().peekable(), right.chars().peekable());
    loop {
        match (lhs.peek().copied(), rhs.peek().copied()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(l), Some(r)) if l.is_ascii_digit() && r.is_ascii_digit() => {
                let (ln, rn) = (digits(&mut lhs), digits(&mut rhs));
                // By value: without leading zeros, the longer run is the larger number.
                let (ln, rn) = (ln.trim_start_matches('0'), rn.trim_start_matches('0'));
                let by_value = ln.len().cmp(&rn.len()).then_with(|| ln.cmp(rn));
                if by_value != Ordering::Equal {
                    return by_value;
                }
            }
            (Some(l), Some(r)) => {
                let by_char = fold(l).cmp(&fold(r));
                if by_char != Ordering::Equal {
                    return by_char;
                }
                lhs.next();
                rhs.next();
            }
        }
    }
}

/// A character folded for comparison: its lower case when that is one character.
fn fold(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

fn digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut run = String::new();
    while let Some(c) = chars.next_if(char::is_ascii_digit) {
        run.push(c);
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names in the order the Files pane shows them; `frontend/src/files/fileops.test.ts` checks
    /// the UI's `compareNames` against the same table.
    const ORDERED: &[&str] = &[
        "",
        "-dash",
        "01.txt",
        "1.txt",
        "2.txt",
        "10.txt",
        "a",
        "A.md",
        "a.md",
        "a01",
        "a1",
        "a2",
        "a10",
        "B",
        "b",
        "file-9.txt",
        "file-00010.txt",
        "file-10.txt",
        "readme",
        "README.md",
        "zeta",
        "Ärger",
        "éclair",
    ];

    #[test]
    fn names_sort_naturally_case_folded_with_ties_by_bytes() {
        for (i, a) in ORDERED.iter().enumerate() {
            for (j, b) in ORDERED.iter().enumerate() {
                assert_eq!(compare_names(a, b), i.cmp(&j), "{a:?} against {b:?}");
            }
        }
    }
}
