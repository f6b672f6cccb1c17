//! Host port ranges and the choice of free ports inside one. The store calls [`pick`] inside
//! the write transaction that records the allocation, so two sessions never get the same port.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Ports each session publishes: opencode, files, terminal.
pub const PORTS_PER_SESSION: usize = 3;

/// An inclusive range of host ports that octod hands out, e.g. `start = 42000, end = 42999`.
/// Holds at least [`PORTS_PER_SESSION`] ports and never port 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPortRange")]
pub struct PortRange {
    start: u16,
    end: u16,
}

/// Why a [`PortRange`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid port range {start}-{end}: it must not include port 0 and must hold at least 3 ports (start <= end - 2)"
)]
pub struct InvalidPortRange {
    pub start: u16,
    pub end: u16,
}

#[derive(Deserialize)]
struct RawPortRange {
    start: u16,
    end: u16,
}

impl TryFrom<RawPortRange> for PortRange {
    type Error = InvalidPortRange;
    fn try_from(raw: RawPortRange) -> Result<Self, Self::Error> {
        Self::new(raw.start, raw.end)
    }
}

impl PortRange {
    pub fn new(start: u16, end: u16) -> Result<Self, InvalidPortRange> {
        let room = usize::from(end)
            .checked_sub(usize::from(start))
            .map(|d| d + 1);
        match room {
            Some(n) if start > 0 && n >= PORTS_PER_SESSION => Ok(Self { start, end }),
            _ => Err(InvalidPortRange { start, end }),
        }
    }

    pub fn start(self) -> u16 {
        self.start
    }

    /// The last port of the range (inclusive).
    pub fn end(self) -> u16 {
        self.end
    }

    /// The number of ports in the range.
    pub fn len(self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Always false: a range holds at least three ports. Here for clippy's `len_without_is_empty`.
    pub fn is_empty(self) -> bool {
        false
    }

    pub fn contains(self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// The lowest [`PORTS_PER_SESSION`] ports of `range` that are not in `used`, or, when there
/// are not enough, `Err` with the number of free ports. `used` must be ascending (redb's key
/// order); ports outside the range are ignored.
pub(super) fn pick(
    range: PortRange,
    used: impl IntoIterator<Item = u16>,
) -> Result<[u16; PORTS_PER_SESSION], usize> {
    let mut picked = Vec::with_capacity(PORTS_PER_SESSION);
    let mut used_in_range = 0usize;
    // u32 so that `next` can step past 65535 without overflowing.
    let mut next = u32::from(range.start);
    let end = u32::from(range.end);
    for port in used.into_iter().map(u32::from) {
        if port < next || port > end {
            continue;
        }
        used_in_range += 1;
        while next < port && picked.len() < PORTS_PER_SESSION {
            picked.push(next);
            next += 1;
        }
        next = port + 1;
    }
    while next <= end && picked.len() < PORTS_PER_SESSION {
        picked.push(next);
        next += 1;
    }
    match <[u32; PORTS_PER_SESSION]>::try_from(picked) {
        // Every picked port is <= range.end, a u16.
        Ok(p) => Ok(p.map(|port| u16::try_from(port).unwrap_or(u16::MAX))),
        Err(_) => Err(range.len() - used_in_range),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u16, end: u16) -> PortRange {
        PortRange::new(start, end).expect("valid range")
    }

    #[test]
    fn ranges_are_validated() {
        assert!(PortRange::new(100, 102).is_ok());
        assert!(PortRange::new(65533, 65535).is_ok());
        for (start, end) in [(100, 101), (100, 100), (101, 100), (0, 10), (65535, 65535)] {
            assert_eq!(
                PortRange::new(start, end),
                Err(InvalidPortRange { start, end }),
                "{start}-{end}"
            );
        }
        assert_eq!(range(100, 102).len(), 3);
        let parsed: PortRange = serde_json::from_str(r#"{"start":42000,"end":42999}"#).expect("ok");
        assert_eq!(parsed, range(42000, 42999));
        assert!(serde_json::from_str::<PortRange>(r#"{"start":5,"end":4}"#).is_err());
    }

    #[track_caller]
    fn check(range: PortRange, used: &[u16], expected: Result<[u16; 3], usize>) {
        assert_eq!(pick(range, used.iter().copied()), expected, "used {used:?}");
    }

    #[test]
    fn picks_the_lowest_free_ports() {
        let r = range(100, 109);
        check(r, &[], Ok([100, 101, 102]));
        check(r, &[100, 101, 102], Ok([103, 104, 105]));
        check(r, &[101, 103], Ok([100, 102, 104]));
        check(r, &[1, 2, 100, 200], Ok([101, 102, 103]));
        check(r, &[100, 101, 102, 103, 104, 105, 106, 107], Err(2));
        check(r, &[100, 102, 104, 106, 108], Ok([101, 103, 105]));
        check(r, &[101, 102, 103, 104, 105, 106, 107, 108, 109], Err(1));
        check(range(65533, 65535), &[], Ok([65533, 65534, 65535]));
        check(range(65533, 65535), &[65534], Err(2));
    }
}
