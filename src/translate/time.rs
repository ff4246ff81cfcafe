//! RFC 3339 timestamps without a date crate: Ollama's `created_at` is written from the clock (or from an
//! OpenAI `created`), and OpenAI's `created` (unix seconds) is read back from an Ollama `created_at`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds and nanoseconds since the Unix epoch ((0, 0) if the clock is before 1970).
pub(crate) fn now() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(_) => (0, 0),
    }
}

/// Unix seconds of now.
pub(crate) fn now_unix() -> i64 {
    now().0
}

/// `2024-01-02T03:04:05.5Z`: UTC, fraction as Go's RFC3339Nano writes it (trailing zeros trimmed, none if
/// zero), which is what Ollama clients see from Ollama itself.
pub(crate) fn rfc3339(secs: i64, nanos: u32) -> String {
    let mut s = String::with_capacity(30);
    push_whole_seconds(&mut s, secs);
    push_fraction_and_zone(&mut s, nanos);
    s
}

/// `2024-01-02T03:04:05`, the part of [`rfc3339`] that changes once a second.
fn push_whole_seconds(s: &mut String, secs: i64) {
    use std::fmt::Write;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    );
}

/// `.5Z`: the trimmed fraction (if any) and the zone, written without `fmt`, as it changes every call.
fn push_fraction_and_zone(s: &mut String, nanos: u32) {
    if nanos > 0 && nanos < 1_000_000_000 {
        let mut digits = [b'0'; 9];
        let mut rest = nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let len = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
        s.push('.');
        // ASCII digits are one char each.
        s.extend(digits[..len].iter().map(|&d| char::from(d)));
    }
    s.push('Z');
}

/// [`rfc3339`] for a clock that is read once per stream line: the date and time of day are formatted
/// again only when the second changes, and the text buffer is reused.
#[derive(Debug, Default)]
pub(crate) struct Rfc3339Cache {
    /// The second `text` starts with, if any.
    secs: Option<i64>,
    text: String,
    /// Length of the whole-seconds part of `text`.
    whole_len: usize,
}

impl Rfc3339Cache {
    pub(crate) fn format(&mut self, secs: i64, nanos: u32) -> &str {
        if self.secs == Some(secs) {
            self.text.truncate(self.whole_len);
        } else {
            self.text.clear();
            push_whole_seconds(&mut self.text, secs);
            self.whole_len = self.text.len();
            self.secs = Some(secs);
        }
        push_fraction_and_zone(&mut self.text, nanos);
        &self.text
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to unix seconds; `None` for anything else.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = b.get(from..to)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep_ok = b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't' | b' ');
    if !sep_ok || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, i + 3)?, num(i + 4, i + 6)?);
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339(1_709_164_800, 500_000_000),
            "2024-02-29T00:00:00.5Z"
        );
        assert_eq!(rfc3339(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn parses_ollama_and_offset_forms() {
        assert_eq!(
            parse_rfc3339("2023-08-04T19:22:45.499127Z"),
            Some(1_691_176_965)
        );
        assert_eq!(
            parse_rfc3339("2023-08-04T21:22:45+02:00"),
            Some(1_691_176_965)
        );
        assert_eq!(
            parse_rfc3339("2023-08-04T17:22:45.1-02:00"),
            Some(1_691_176_965)
        );
        assert_eq!(parse_rfc3339("2023-08-04T19:22:45"), None);
        assert_eq!(parse_rfc3339("2023-13-04T19:22:45Z"), None);
        assert_eq!(parse_rfc3339("2023-08-04T19:22:45.Z"), None);
        assert_eq!(parse_rfc3339("2023-08-04T19:22:45Zjunk"), None);
        assert_eq!(parse_rfc3339("garbage garbage garbage"), None);
        assert_eq!(parse_rfc3339("日本日本日本日本日本日本"), None);
    }

    #[test]
    fn cache_matches_rfc3339() {
        let mut cache = Rfc3339Cache::default();
        for (secs, nanos) in [
            (5, 0),
            (5, 120_000_000),
            (5, 7),
            (6, 999_999_999),
            (5, 0),
            (-1, 1),
        ] {
            assert_eq!(cache.format(secs, nanos), rfc3339(secs, nanos));
        }
    }

    proptest! {
        #[test]
        fn round_trips(secs in -62_135_596_800i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            prop_assert_eq!(parse_rfc3339(&rfc3339(secs, nanos)), Some(secs));
        }
    }
}
