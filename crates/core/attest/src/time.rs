//! Times given as text (a verifier's `--at`, the dates of recorded evidence samples), parsed
//! without a clock or a calendar library.

/// `text` is neither Unix milliseconds nor an RFC 3339 UTC time bulwark accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a time: give Unix milliseconds or e.g. 2026-11-26T12:00:00Z")]
pub struct TimeError {
    /// The text given.
    pub text: String,
}

/// Parses Unix milliseconds, or RFC 3339 UTC `YYYY-MM-DDTHH:MM:SS[.fff]Z` (years 0 to 9999).
pub fn parse_time_ms(text: &str) -> Result<u64, TimeError> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let bad = || TimeError {
        text: text.to_owned(),
    };
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = body.split_once('T').ok_or_else(bad)?;
    let date: Vec<&str> = date.split('-').collect();
    let (time, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let time: Vec<&str> = time.split(':').collect();
    if date.len() != 3 || time.len() != 3 {
        return Err(bad());
    }
    let n = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let (year, month, day) = (n(date[0])?, n(date[1])?, n(date[2])?);
    let (hour, minute, second) = (n(time[0])?, n(time[1])?, n(time[2])?);
    // RFC 3339 years have four digits; the bound also keeps the day arithmetic below from overflowing.
    if !(0..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar, counting years from March so that the
    // leap day falls at the end of the counted year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let fraction: String = fraction.chars().chain("000".chars()).take(3).collect();
    let millis = n(&fraction)?;
    let total = ((days * 24 + hour) * 60 + minute) * 60 + second;
    let total_ms = total * 1_000 + millis;
    u64::try_from(total_ms).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time_ms("0"), Ok(0));
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time_ms("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        assert_eq!(
            parse_time_ms("2026-11-26T12:30:15.250Z"),
            Ok(1_795_696_215_250)
        );
        assert!(parse_time_ms("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time_ms("yesterday").is_err());
        // A year far out of range is refused, not an arithmetic overflow.
        assert!(parse_time_ms("99999999999999999-01-01T00:00:00Z").is_err());
        assert!(parse_time_ms("10000-01-01T00:00:00Z").is_err());
    }
}
