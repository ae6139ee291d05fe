//! Date-time helpers shared by the metrics: UTC milliseconds to text, and the
//! `yyyy-MM-dd HH:mm:ss` strings of the account and order topics.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

/// The source format of `register_date_time` and `confirm_date_time`.
const SOURCE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Parses `yyyy-MM-dd HH:mm:ss`; anything else is `None`.
///
/// ```
/// use dataflows::timefmt::parse_datetime;
/// assert!(parse_datetime("2025-12-02 08:15:00").is_some());
/// assert!(parse_datetime("2025-12-02").is_none());
/// assert!(parse_datetime("2025-13-02 08:15:00").is_none());
/// ```
pub fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    strict_datetime(text.as_bytes()).or_else(|| NaiveDateTime::parse_from_str(text, SOURCE_FORMAT).ok())
}

/// The exact 19-byte `yyyy-MM-dd HH:mm:ss` layout with seconds below 60, read by hand
/// (chrono's `parse_from_str` was ~170 instructions a record in the benchmark). Any
/// other text, leap seconds included, is `None` and left to chrono, so the accepted
/// set and the values are chrono's.
fn strict_datetime(b: &[u8]) -> Option<NaiveDateTime> {
    let &[y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b' ', h0, h1, b':', mi0, mi1, b':', s0, s1] = b else {
        return None;
    };
    let n = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let year = i32::try_from(n(&[y0, y1, y2, y3])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, n(&[mo0, mo1])?, n(&[d0, d1])?)?;
    date.and_hms_opt(n(&[h0, h1])?, n(&[mi0, mi1])?, n(&[s0, s1])?)
}

/// `yyyyMMddHH` of a date-time, as a number (2.6's `reg_date`).
pub fn hour_number(t: &NaiveDateTime) -> i64 {
    i64::from(t.year()) * 1_000_000 + i64::from(t.month()) * 10_000 + i64::from(t.day()) * 100 + i64::from(t.hour())
}

/// `yyyy-MM-dd` of a date-time (2.7's `attribution_time`).
pub fn day_text(t: &NaiveDateTime) -> String {
    date_text(t.date())
}

/// `yyyy-MM-dd` of a date, as chrono's `%Y-%m-%d` writes it; years 0 to 9999 by hand
/// (chrono's formatter was ~3k instructions a call, once per changed 2.7 order).
///
/// ```
/// use chrono::NaiveDate;
/// use dataflows::timefmt::date_text;
/// assert_eq!(date_text(NaiveDate::from_ymd_opt(2025, 12, 2).unwrap()), "2025-12-02");
/// assert_eq!(date_text(NaiveDate::from_ymd_opt(7, 1, 31).unwrap()), "0007-01-31");
/// assert_eq!(date_text(NaiveDate::from_ymd_opt(12345, 1, 1).unwrap()), "+12345-01-01");
/// ```
pub fn date_text(d: NaiveDate) -> String {
    let year = d.year();
    if !(0..=9999).contains(&year) {
        return d.format("%Y-%m-%d").to_string();
    }
    let digit = |v: u32| char::from(b'0' + (v % 10) as u8);
    let y = year.unsigned_abs();
    [
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        '-',
        digit(d.month() / 10),
        digit(d.month()),
        '-',
        digit(d.day() / 10),
        digit(d.day()),
    ]
    .into_iter()
    .collect()
}

/// UTC milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS.SSS`.
///
/// ```
/// assert_eq!(dataflows::timefmt::millis_text(1_764_662_400_123), "2025-12-02 08:00:00.123");
/// ```
pub fn millis_text(ms: i64) -> String {
    let Some(t) = DateTime::from_timestamp_millis(ms) else { return ms.to_string() };
    let (date, year) = (t.date_naive(), t.year());
    if !(0..=9999).contains(&year) {
        return t.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    }
    // Written digit by digit: chrono's `format` parses its pattern for every value, 4 % of
    // a file replay into SQLite (docs/BENCHMARKS.md's profile).
    let of_day = ms.rem_euclid(86_400_000) as u32;
    let (hms, milli) = (of_day / 1000, of_day % 1000);
    let digit = |v: u32| char::from(b'0' + (v % 10) as u8);
    let mut text = date_text(date);
    text.extend([
        ' ',
        digit(hms / 36_000),
        digit(hms / 3600),
        ':',
        digit(hms / 600 % 6),
        digit(hms / 60),
        ':',
        digit(hms % 60 / 10),
        digit(hms % 60),
        '.',
        digit(milli / 100),
        digit(milli / 10),
        digit(milli),
    ]);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written timestamp text equals chrono's, over seeded instants of every era a
    /// sink stores (and beyond), every millisecond of day edges, and the extremes.
    #[test]
    fn millis_text_agrees_with_chrono() {
        let chrono_text = |ms: i64| match DateTime::from_timestamp_millis(ms) {
            Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            None => ms.to_string(),
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut cases: Vec<i64> = vec![0, -1, 1, i64::MIN, i64::MAX, -62_167_219_200_000, 253_402_300_799_999];
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Years about -300 to 10300: both sides of 0 and 9999.
            cases.push((x % 387_000_000_000_000) as i64 - 71_000_000_000_000);
        }
        for day in [-719_528_i64, -1, 0, 1, 19_723, 2_932_896] {
            for ms in [0, 1, 999, 1000, 59_999, 3_599_999, 43_200_000, 86_399_998, 86_399_999] {
                cases.push(day * 86_400_000 + ms);
            }
        }
        for ms in cases {
            assert_eq!(millis_text(ms), chrono_text(ms), "{ms}");
        }
    }

    /// The hand-read layout agrees with chrono on every text it accepts, and declines
    /// (leaves to chrono) everything else: edges of months, leap years, leap seconds.
    #[test]
    fn strict_layout_agrees_with_chrono() {
        let texts = [
            "2025-12-02 08:15:00",
            "2024-02-29 23:59:59",
            "2025-02-29 00:00:00",
            "2025-04-31 12:00:00",
            "0000-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2025-12-02 24:00:00",
            "2025-12-02 23:60:00",
            "2025-12-02 23:59:60",
            "2025-00-10 10:10:10",
            "2025-12-00 10:10:10",
            "2025-1-02 08:15:00",
            "2025-12-02T08:15:00",
            " 2025-12-02 08:15:0",
            "2025-12-02 08:15:00 ",
            "+2025-12-02 08:15:00",
            "2025-12-02 08:15:0x",
            "２025-12-02 08:15:00",
        ];
        for text in texts {
            let chrono = NaiveDateTime::parse_from_str(text, SOURCE_FORMAT).ok();
            assert_eq!(parse_datetime(text), chrono, "{text}");
            if let Some(strict) = strict_datetime(text.as_bytes()) {
                assert_eq!(Some(strict), chrono, "{text}");
            }
        }
        assert!(strict_datetime(b"2025-12-02 23:59:60").is_none(), "a leap second is chrono's");
        assert_eq!(strict_datetime(b"2024-02-29 23:59:59").map(|t| hour_number(&t)), Some(2024022923));
    }

    #[test]
    fn hours_and_days() {
        let t = parse_datetime("2025-12-02 08:59:59").unwrap();
        assert_eq!(hour_number(&t), 2025120208);
        assert_eq!(day_text(&t), "2025-12-02");
        assert_eq!(millis_text(0), "1970-01-01 00:00:00.000");
        assert_eq!(millis_text(-1), "1969-12-31 23:59:59.999");
    }
}
