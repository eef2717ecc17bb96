//! RFC 3339 timestamps in UTC with nanoseconds, to and from Unix-epoch
//! nanoseconds: `2026-12-06T13:05:45.123456789Z`. Epoch nanoseconds are
//! above 2^53, so JSON tools that read numbers as doubles (jq, JavaScript)
//! round them; this text form survives them. Pure: no clock, no time zone
//! database (offsets are read as given).

use thiserror::Error;

/// Why a timestamp did not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "`{text}` is not an RFC 3339 timestamp (like 2026-12-06T13:05:45Z or 2026-12-06T14:05:45.5+01:00): {why}"
)]
pub struct Rfc3339Error {
    text: String,
    why: &'static str,
}

/// `unix_ns` as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (always nine digits, so
/// the strings sort as the times do).
pub fn format(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let nanos = unix_ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Unix-epoch nanoseconds of an RFC 3339 timestamp (`T` or a space between
/// date and time; `Z` or a numeric offset; up to nine fractional digits).
pub fn parse(text: &str) -> Result<u64, Rfc3339Error> {
    let err = |why| Rfc3339Error {
        text: text.to_owned(),
        why,
    };
    let b = text.trim().as_bytes();
    if b.len() < 20 {
        return Err(err("too short"));
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, Rfc3339Error> {
        let part = &b[range];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(err("a digit was expected"));
        }
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return Err(err("expected YYYY-MM-DDTHH:MM:SS"));
    }
    if b[16] != b':' {
        return Err(err("expected YYYY-MM-DDTHH:MM:SS"));
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(err("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(err("no such time of day"));
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return Err(err("one to nine fractional digits"));
        }
        nanos = num(start..i)? * 10i64.pow(9 - digits as u32);
    }
    let offset_s = match b.get(i..) {
        Some([b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), _, _, b':', _, _]) => {
            let hours = num(i + 1..i + 3)?;
            let minutes = num(i + 4..i + 6)?;
            if hours > 23 || minutes > 59 {
                return Err(err("no such offset"));
            }
            let s = hours * 3600 + minutes * 60;
            if *sign == b'+' { s } else { -s }
        }
        _ => return Err(err("expected Z or an offset like +01:00 at the end")),
    };
    // A leap second is read as the second after.
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    if secs < 0 {
        return Err(err("before 1970"));
    }
    Ok(secs as u64 * 1_000_000_000 + nanos as u64)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_nine_fractional_digits() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000000000Z");
        // 2024-01-02T03:04:05.678Z, and a leap day.
        assert_eq!(
            format(1_704_164_645_678_000_000),
            "2024-01-02T03:04:05.678000000Z"
        );
        assert_eq!(
            format(1_709_210_096_000_000_001),
            "2024-02-29T12:34:56.000000001Z"
        );
    }

    #[test]
    fn parses_what_it_formats_and_offsets_and_fractions() {
        for ns in [
            0,
            1_704_164_645_678_000_000,
            1_709_210_096_000_000_001,
            u64::MAX / 2,
        ] {
            assert_eq!(parse(&format(ns)), Ok(ns), "{}", format(ns));
        }
        assert_eq!(
            parse("2024-01-02T04:04:05.678+01:00"),
            Ok(1_704_164_645_678_000_000)
        );
        assert_eq!(parse("2024-01-02 03:04:05Z"), Ok(1_704_164_645_000_000_000));
        assert_eq!(
            parse("2024-01-01T22:04:05.5-05:00"),
            Ok(1_704_164_645_500_000_000)
        );
    }

    #[test]
    fn bad_timestamps_say_what_is_wrong() {
        for bad in [
            "",
            "2024-01-02",
            "2024-13-02T03:04:05Z",
            "2023-02-29T03:04:05Z",
            "2024-01-02T25:04:05Z",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05.1234567890Z",
            "2024-01-02T03:04:05+0100",
            "1969-12-31T23:59:59Z",
            "2024-0a-02T03:04:05Z",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.to_string().contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
