//! UTC calendar dates from Unix time, for partition names and SigV4 dates.

/// (year, month, day, hour, minute, second) of a Unix time in seconds.
pub fn utc(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `YYYY-MM-DD` of a Unix time in milliseconds.
pub fn day_of_ms(ms: u64) -> String {
    let (y, m, d, ..) = utc(ms / 1000);
    format!("{y:04}-{m:02}-{d:02}")
}

/// SigV4's `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Days since the Unix epoch of a `YYYY-MM-DD` date, if it is one.
pub fn parse_day(text: &str) -> Option<u64> {
    let mut parts = text.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    // Inverse of `utc` (days-from-civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let back = day_of_ms(days as u64 * 86_400_000);
    (back == text).then_some(days as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(day_of_ms(0), "1970-01-01");
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(day_of_ms(951_782_400_000), "2000-02-29");
        assert_eq!(amz_date(1_796_000_000), "20261130T005320Z");
    }

    #[test]
    fn days_round_trip_and_nonsense_is_refused() {
        for day in [0u64, 59, 10_957, 11_016, 20_000, 20_786] {
            let text = day_of_ms(day * 86_400_000);
            assert_eq!(parse_day(&text), Some(day), "{text}");
        }
        for bad in ["2026-02-30", "2026-13-01", "26-1-1x", "", "2026-11"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
