//! What every sink can store (SPEC §4), decided in the dataflow.
//!
//! A value that one of the sinks would reject must never reach a commit, where it
//! would fail every commit on every restart. The metrics check the values they
//! write with these functions when they read a record, and a record whose value
//! does not pass is a `bad_field:<name>` dead letter for that metric, whatever the
//! metric's route: the verdict is the same for every sink.
//!
//! * **Timestamps** (columns of type [`ColumnType::Timestamp`]): the years
//!   1000–9999, MySQL `DATETIME(3)`'s range (PostgreSQL's `timestamp(3)` and
//!   SQLite's text hold more).
//! * **Text**: no NUL character (PostgreSQL `text` rejects it), and at most
//!   [`TEXT_BYTES`] bytes (MySQL `TEXT`).
//! * **Key text**: at most [`key_text_chars`] characters (MySQL's `VARCHAR` of key columns).
//!
//! Each check is a compare or a `memchr` over a value already in memory: no allocation.

use std::ops::RangeInclusive;

use crate::output::{ColumnType, Table};

/// The instants a timestamp column can hold, ms since the epoch (UTC):
/// `1000-01-01 00:00:00.000` to `9999-12-31 23:59:59.999`.
pub const TIMESTAMP_MS: RangeInclusive<i64> = -30_610_224_000_000..=253_402_300_799_999;

/// The most bytes of a text column that is not part of a key (MySQL `TEXT`).
pub const TEXT_BYTES: usize = 65_535;

/// The most characters of a key text column (MySQL `VARCHAR(255)`).
pub const KEY_TEXT_CHARS: usize = 255;

/// The most characters of a key text column in a key of three or more text columns
/// (MySQL `VARCHAR(191)`, to stay under InnoDB's 3,072-byte key limit in `utf8mb4`).
pub const WIDE_KEY_TEXT_CHARS: usize = 191;

/// Whether `ms` can be stored as a timestamp.
///
/// ```
/// use dataflows::storable::timestamp;
/// assert!(timestamp(0) && timestamp(253_402_300_799_999));
/// assert!(!timestamp(253_402_300_800_000) && !timestamp(i64::MIN));
/// ```
#[inline]
pub fn timestamp(ms: i64) -> bool {
    TIMESTAMP_MS.contains(&ms)
}

/// Whether `text` can be stored in a text column that is not part of a key.
#[inline]
pub fn text(text: &str) -> bool {
    text.len() <= TEXT_BYTES && !text.as_bytes().contains(&0)
}

/// Whether `text` can be stored in a key text column of at most `chars` characters.
///
/// ```
/// use dataflows::storable::key_text;
/// assert!(key_text("七年级", 3) && !key_text("七年级", 2) && !key_text("a\0", 9));
/// ```
#[inline]
pub fn key_text(text: &str, chars: usize) -> bool {
    // A text of at most `chars` bytes has at most `chars` characters: count only longer ones.
    (text.len() <= chars || text.chars().count() <= chars) && !text.as_bytes().contains(&0)
}

/// The most characters of `table`'s key text columns: [`WIDE_KEY_TEXT_CHARS`] when its key
/// has three or more text columns, else [`KEY_TEXT_CHARS`].
pub const fn key_text_chars(table: &Table) -> usize {
    let (mut i, mut texts) = (0, 0);
    while i < table.key.len() {
        if matches!(table.columns[table.key[i]].1, ColumnType::Text) {
            texts += 1;
        }
        i += 1;
    }
    if texts > 2 { WIDE_KEY_TEXT_CHARS } else { KEY_TEXT_CHARS }
}

/// `Ok` if `value` (when not NULL) can be stored in a text column, else `Err(name)`.
pub fn checked_text(value: Option<&crate::Text>, name: &'static str) -> Result<(), &'static str> {
    match value {
        Some(t) if !text(t) => Err(name),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn the_timestamp_range_is_the_years_1000_to_9999() {
        let ms = |y, m, d, h, mi, s, milli| {
            NaiveDate::from_ymd_opt(y, m, d)
                .and_then(|d| d.and_hms_milli_opt(h, mi, s, milli))
                .map(|t| t.and_utc().timestamp_millis())
        };
        assert_eq!(ms(1000, 1, 1, 0, 0, 0, 0), Some(*TIMESTAMP_MS.start()));
        assert_eq!(ms(9999, 12, 31, 23, 59, 59, 999), Some(*TIMESTAMP_MS.end()));
        assert!(!timestamp(TIMESTAMP_MS.start() - 1) && !timestamp(i64::MAX));
    }

    #[test]
    fn texts_without_nul_and_within_their_length() {
        assert!(text("") && text("学生") && text(&"x".repeat(TEXT_BYTES)));
        assert!(!text("a\u{0}b") && !text(&"x".repeat(TEXT_BYTES + 1)));
        assert!(key_text(&"é".repeat(255), 255) && !key_text(&"é".repeat(256), 255));
        assert_eq!(checked_text(Some(&"\u{0}".into()), "pid"), Err("pid"));
        assert_eq!(checked_text(None, "pid"), Ok(()));
    }

    #[test]
    fn key_limits_follow_the_number_of_key_texts() {
        use crate::output::Output;
        assert_eq!(key_text_chars(Output::AvQuality30s.table()), WIDE_KEY_TEXT_CHARS);
        assert_eq!(key_text_chars(Output::OfflineStudyTime.table()), KEY_TEXT_CHARS);
    }
}
