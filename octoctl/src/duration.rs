//! Durations as people write them: `90s`, `30m`, `12h`, `7d`, `2w`, and sums like `1d12h`.

use std::time::Duration;

/// Parses a duration; the message says what is wrong.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration: use e.g. 30m, 12h, 7d".to_owned());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {c:?} (use s, m, h, d or w)"
                ));
            }
        };
        if number.is_empty() {
            return Err(format!("{text:?}: a number must come before {c:?}"));
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: {number} is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!("{text:?}: {number} needs a unit (s, m, h, d or w)"));
    }
    if total == 0 {
        return Err(format!("{text:?}: must be longer than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// A duration for people: `3d 4h`, `12m 5s`, `40s` (the two largest units).
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let units = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];
    let parts: Vec<String> = units
        .iter()
        .scan(secs, |rest, (name, size)| {
            let n = *rest / size;
            *rest %= size;
            Some((n, *name))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<u64, &str>) {
        match (parse(text), expected) {
            (Ok(d), Ok(secs)) => assert_eq!(d.as_secs(), secs, "{text}"),
            (Err(e), Err(part)) => assert!(e.contains(part), "{text}: {e:?} lacks {part:?}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn units_and_sums() {
        check("90s", Ok(90));
        check("30m", Ok(1800));
        check("12h", Ok(43_200));
        check("7d", Ok(604_800));
        check("2w", Ok(1_209_600));
        check("1d12h", Ok(129_600));
        check(" 5m ", Ok(300));
    }

    #[test]
    fn mistakes_are_named() {
        check("", Err("empty"));
        check("7", Err("needs a unit"));
        check("7y", Err("unknown unit 'y'"));
        check("d", Err("a number must come before"));
        check("0h", Err("longer than zero"));
        check("99999999999999999999d", Err("too large"));
        check("999999999999999w", Err("too long"));
    }

    #[test]
    fn human_shows_the_two_largest_units() {
        assert_eq!(human(Duration::from_secs(0)), "0s");
        assert_eq!(human(Duration::from_secs(40)), "40s");
        assert_eq!(
            human(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)),
            "3d 4h"
        );
        assert_eq!(human(Duration::from_secs(86_400 + 30)), "1d");
        assert_eq!(human(Duration::from_secs(725)), "12m 5s");
    }
}
