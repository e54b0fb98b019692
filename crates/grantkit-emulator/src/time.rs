//! Calendar arithmetic and the date formats both providers use.
//!
//! Written here rather than pulled in: the emulator needs only proleptic-Gregorian
//! conversion, RFC 3339 parsing, and the handful of fixed-rule time zones its seed events use.

/// Days since 1970-01-01 for a civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date for a count of days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day of week, 0 = Sunday.
fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

fn split(ts: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// `2014-01-07T00:00:00+01:00` (PHP's `'c'`) for `ts` seen at `offset_s` from UTC.
pub(crate) fn format_with_offset(ts: i64, offset_s: i32) -> String {
    let (y, mo, d, h, mi, s) = split(ts + i64::from(offset_s));
    let sign = if offset_s < 0 { '-' } else { '+' };
    let off = offset_s.unsigned_abs();
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{:02}:{:02}",
        off / 3600,
        (off % 3600) / 60
    )
}

/// `2015-06-02T09:00:00Z`.
pub(crate) fn format_utc_z(ts: i64) -> String {
    let (y, mo, d, h, mi, s) = split(ts);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2014-03-22T20:45:00` (no zone, as join.me's `registrationDate`).
pub(crate) fn format_naive(ts: i64) -> String {
    let (y, mo, d, h, mi, s) = split(ts);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses `YYYY-MM-DDTHH:MM[:SS[.frac]](Z|±HH:MM|±HHMM)?` into seconds since the epoch.
///
/// A missing zone is read as UTC; fractions are dropped. Returns `None` for anything else
/// (hostile input never panics).
pub(crate) fn parse_rfc3339(input: &str) -> Option<i64> {
    let b = input.trim().as_bytes();
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = u32::try_from(digits(&b[5..7])?).ok()?;
    let day = u32::try_from(digits(&b[8..10])?).ok()?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let mut rest = &b[16..];
    let mut second = 0;
    if rest.first() == Some(&b':') {
        second = digits(rest.get(1..3)?)?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &rest[1 + n..];
        }
    }
    let offset = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Last `weekday_wanted` (0 = Sunday) of a month, as days since the epoch.
fn last_weekday_of_month(year: i64, month: u32, weekday_wanted: i64) -> i64 {
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    let last = next - 1;
    last - (weekday(last) - weekday_wanted).rem_euclid(7)
}

/// The `n`-th (1-based) `weekday_wanted` of a month, as days since the epoch.
fn nth_weekday_of_month(year: i64, month: u32, weekday_wanted: i64, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    first + (weekday_wanted - weekday(first)).rem_euclid(7) + 7 * (n - 1)
}

/// UTC offset, in seconds, of the named zone at `ts`.
///
/// Only the zones the seed data uses are known (with their current daylight-saving rules);
/// any other name is treated as UTC, which the crate README lists as a deviation.
pub(crate) fn zone_offset(zone: &str, ts: i64) -> i32 {
    let year = civil_from_days(ts.div_euclid(86_400)).0;
    // EU rule: last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC.
    let eu_dst = || {
        let start = last_weekday_of_month(year, 3, 0) * 86_400 + 3_600;
        let end = last_weekday_of_month(year, 10, 0) * 86_400 + 3_600;
        ts >= start && ts < end
    };
    // US rule: second Sunday of March 02:00 local to first Sunday of November 02:00 local.
    let us_dst = |standard: i64| {
        let start = nth_weekday_of_month(year, 3, 0, 2) * 86_400 + 7_200 - standard;
        let end = nth_weekday_of_month(year, 11, 0, 1) * 86_400 + 7_200 - (standard + 3_600);
        ts >= start && ts < end
    };
    match zone {
        "Europe/London" | "Europe/Dublin" | "Europe/Lisbon" if eu_dst() => 3_600,
        "Europe/London" | "Europe/Dublin" | "Europe/Lisbon" => 0,
        "Europe/Amsterdam" | "Europe/Berlin" | "Europe/Brussels" | "Europe/Paris" if eu_dst() => {
            7_200
        }
        "Europe/Amsterdam" | "Europe/Berlin" | "Europe/Brussels" | "Europe/Paris" => 3_600,
        "America/New_York" if us_dst(-18_000) => -14_400,
        "America/New_York" => -18_000,
        "America/Chicago" if us_dst(-21_600) => -18_000,
        "America/Chicago" => -21_600,
        "Asia/Tokyo" => 32_400,
        "Asia/Kolkata" => 19_800,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn formats() {
        assert_eq!(format_utc_z(1_433_235_600), "2015-06-02T09:00:00Z");
        assert_eq!(format_naive(1_395_521_100), "2014-03-22T20:45:00");
        assert_eq!(
            format_with_offset(1_389_049_200, 3_600),
            "2014-01-07T00:00:00+01:00"
        );
        assert_eq!(format_with_offset(0, -16_200), "1969-12-31T19:30:00-04:30");
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("2015-06-02T09:00:00Z"), Some(1_433_235_600));
        assert_eq!(
            parse_rfc3339("2015-06-02T11:00:00+02:00"),
            Some(1_433_235_600)
        );
        assert_eq!(
            parse_rfc3339("2015-06-02T04:00:00.123-0500"),
            Some(1_433_235_600)
        );
        assert_eq!(parse_rfc3339("2015-06-02T09:00"), Some(1_433_235_600));
        for bad in [
            "",
            "2015-02-30T00:00:00Z",
            "2015-06-02T09:00:00+25:00",
            "nonsense-at-all!",
            "2015-06-02T09:00:00Zjunk",
            "２０１５-06-02T09:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn zones_follow_daylight_saving() {
        let winter = parse_rfc3339("2024-01-15T12:00:00Z").unwrap_or_default();
        let summer = parse_rfc3339("2024-07-15T12:00:00Z").unwrap_or_default();
        assert_eq!(zone_offset("Europe/Amsterdam", winter), 3_600);
        assert_eq!(zone_offset("Europe/Amsterdam", summer), 7_200);
        assert_eq!(zone_offset("America/New_York", winter), -18_000);
        assert_eq!(zone_offset("America/New_York", summer), -14_400);
        assert_eq!(zone_offset("Asia/Tokyo", summer), 32_400);
        // 2024-03-31 01:00 UTC is the EU switch.
        let switch = parse_rfc3339("2024-03-31T01:00:00Z").unwrap_or_default();
        assert_eq!(zone_offset("Europe/London", switch - 1), 0);
        assert_eq!(zone_offset("Europe/London", switch), 3_600);
    }
}
