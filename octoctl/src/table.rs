//! Output for people: aligned columns and UTC times.

/// Renders rows under headers in aligned columns (two spaces apart, the last column not
/// padded). Widths count characters, not bytes.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().min(widths.len()).saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().take(widths.len()).enumerate() {
            line.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM` UTC.
pub fn utc_minutes(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 → (year, month, day) of the proleptic Gregorian calendar
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(headers: &[&str], rows: &[&[&str]], expected: &str) {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
            .collect();
        assert_eq!(render(headers, &rows), expected);
    }

    #[test]
    fn columns_align_on_the_widest_cell() {
        check(
            &["ID", "OWNER", "STATE"],
            &[
                &["abc", "alice", "running"],
                &["d", "bob-the-builder", "stopped"],
            ],
            "ID   OWNER            STATE\n\
             abc  alice            running\n\
             d    bob-the-builder  stopped\n",
        );
    }

    #[test]
    fn empty_tables_keep_their_header_and_wide_characters_count_once() {
        check(&["NAME", "ROLE"], &[], "NAME  ROLE\n");
        check(
            &["NAME", "ROLE"],
            &[&["zoë", "admin"], &["", "user"]],
            "NAME  ROLE\nzoë   admin\n      user\n",
        );
    }

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        assert_eq!(utc_minutes(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc_minutes(1_795_000_000_000), "2026-11-18 11:06");
    }
}
