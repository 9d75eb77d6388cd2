//! FIX `UTCTimestamp` values (`YYYYMMDD-HH:MM:SS` with an optional fraction of 3, 6 or 9
//! digits) to and from Unix milliseconds. Pure arithmetic on the proleptic Gregorian calendar;
//! no clock is read here.

/// Days from 1970-01-01 to the given civil date (the year may be before 1970).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count from 0000-03-01 so that February, the odd month, is the last of a counting year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date (year, month, day) of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (year, month as u32, day as u32)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// `ms` (Unix milliseconds) as a FIX UTCTimestamp with milliseconds.
pub fn format_utc_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}-{:02}:{:02}:{:02}.{millis:03}",
        in_day / 3600,
        (in_day / 60) % 60,
        in_day % 60
    )
}

fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Parses a FIX UTCTimestamp into Unix milliseconds (a finer fraction is cut to milliseconds).
/// `None` for anything else, a date before 1970 included.
pub fn parse_utc_timestamp(text: &[u8]) -> Option<u64> {
    if text.len() < 17 || text.get(8) != Some(&b'-') {
        return None;
    }
    let year = digits(text.get(0..4)?)?;
    let month = digits(text.get(4..6)?)?;
    let day = digits(text.get(6..8)?)?;
    if text.get(11) != Some(&b':') || text.get(14) != Some(&b':') {
        return None;
    }
    let hour = digits(text.get(9..11)?)?;
    let minute = digits(text.get(12..14)?)?;
    // 60 is a leap second; it reads as the next second's start.
    let second = digits(text.get(15..17)?)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(i64::from(year), month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let millis = match text.get(17..) {
        Some([]) => 0,
        Some([b'.', fraction @ ..]) if matches!(fraction.len(), 3 | 6 | 9) => {
            fraction.iter().all(u8::is_ascii_digit).then_some(())?;
            digits(fraction.get(..3)?)?
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days
        .checked_mul(86_400)?
        .checked_add(i64::from(hour * 3600 + minute * 60 + second))?;
    let ms = secs.checked_mul(1000)?.checked_add(i64::from(millis))?;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_bad_ones_are_refused() {
        assert_eq!(format_utc_timestamp(0), "19700101-00:00:00.000");
        // 2026-12-06 14:30:00.123 UTC.
        let ms = 1_796_567_400_123;
        assert_eq!(format_utc_timestamp(ms), "20261206-14:30:00.123");
        assert_eq!(parse_utc_timestamp(b"20261206-14:30:00.123"), Some(ms));
        assert_eq!(parse_utc_timestamp(b"20261206-14:30:00"), Some(ms - 123));
        assert_eq!(parse_utc_timestamp(b"20261206-14:30:00.123456"), Some(ms));
        assert_eq!(
            parse_utc_timestamp(b"20240229-00:00:00"),
            Some(1_709_164_800_000)
        );
        for ms in [1, 951_782_400_000, 4_102_444_799_999, 1_709_164_800_000] {
            assert_eq!(
                parse_utc_timestamp(format_utc_timestamp(ms).as_bytes()),
                Some(ms)
            );
        }
        for bad in [
            &b""[..],
            b"20261206 14:30:00",
            b"20261306-14:30:00",
            b"20230229-14:30:00",
            b"20261206-24:00:00",
            b"20261206-14:60:00",
            b"20261206-14:30:00.",
            b"20261206-14:30:00.12",
            b"20261206-14:30:00.12a",
            b"2026120a-14:30:00",
            b"19691231-23:59:59",
            b"+0261206-14:30:00",
        ] {
            assert_eq!(
                parse_utc_timestamp(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
