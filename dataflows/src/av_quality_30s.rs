//! 2.5 `av_quality_30s` — live audio/video quality per 30 s (seed: 场景三).
//!
//! Over `agora_record` with `user_type='student'`: tumbling 30-second windows
//! on `messageCreateTime` (watermark delay 60 s by default). Each record may
//! feed two families of one table `user_av_record`:
//! * audio, when `agora_audioState.lost >= 0`: `extra_uid = agora_audioState.uid`,
//!   `event = <event>_AUDIO_STATE`, sum/avg/count of `lost`;
//! * video, when `agora_videoState.fr >= 0`: `extra_uid = agora_videoState.uid`,
//!   `event = <event>_VIDEO_STATE`, sum/avg/count of `fr`.
//!
//! Groups are `(window, user_id, agora_channel_id, classroom_id, user_type,
//! event, extra_uid)`; NULL `user_id`, `agora_channel_id`, `extra_uid` become
//! -1 and a NULL `classroom_id` becomes `'-1'` (the seed's CASE WHEN).
//! `event_avg = event_sum / event_count` exactly, as DOUBLE, computed when the
//! row is written (the collection holds sum and count, which are exact).
//!
//! Dead letters: a NULL `event` or `messageCreateTime`, any read field that is
//! not an integer where one is needed, a window outside the years 1000–9999, or a
//! text a sink cannot store (a NUL, or longer than its key column;
//! [`crate::storable`]) (`bad_field:<name>`), a late record (`late`), or one too
//! far ahead of its log time (`future`), once per record. Records of non-students,
//! or with neither family, are filtered out, not dead letters.

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::Text;
use crate::ops::window::{Mark, SumCount, Window, WindowFact, storable_window};
use crate::ops::{SplitLate, Tumbling};
use crate::output::{ColumnType::*, Row, SqlValue, StampKind, Table};
use crate::storable::{key_text, key_text_chars};
use crate::topics::Agora;
use crate::{DeadLetter, Diff, Metric, Rejection, Time, Timing, Topic};

/// Window width: 30 seconds.
pub const WIDTH_MS: i64 = 30_000;
/// Default watermark delay (SPEC §3, as the seed).
pub const DEFAULT_DELAY_MS: i64 = 60_000;

/// The grouping key of a `user_av_record` row (window aside).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AvKey {
    /// `user_id`, -1 when NULL.
    pub user_id: i64,
    /// `agora_channel_id`, -1 when NULL.
    pub web_server_id: i64,
    /// `classroom_id`, `'-1'` when NULL.
    pub classroom_id: Text,
    /// `user_type` (always `student` after the filter).
    pub user_type: Text,
    /// The family's `uid`, -1 when NULL.
    pub extra_uid: i64,
    /// `<event>_AUDIO_STATE` or `<event>_VIDEO_STATE`.
    pub event: Text,
}

/// One row of `user_av_record`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AvRow {
    /// Window start, ms since the epoch (UTC).
    pub start_time: i64,
    /// The group.
    pub key: AvKey,
    /// `SUM(lost)` or `SUM(fr)`.
    pub event_sum: i64,
    /// `COUNT(*)`.
    pub event_count: i64,
}

impl AvRow {
    /// Window end, ms since the epoch (UTC).
    pub fn end_time(&self) -> i64 {
        self.start_time + WIDTH_MS
    }

    /// The exact average as DOUBLE.
    pub fn event_avg(&self) -> f64 {
        self.event_sum as f64 / self.event_count as f64
    }
}

/// The most characters of a key text of `user_av_record` ([`crate::storable`]).
const KEY_CHARS: usize = key_text_chars(&<AvRow as Row>::TABLE);
/// The most characters of `event`, which is written with `_AUDIO_STATE` or `_VIDEO_STATE`
/// appended (both as long) in a key column.
const EVENT_CHARS: usize = KEY_CHARS - "_AUDIO_STATE".len();

/// A sample's audio and video facts, each `(key, value)` if present (an array rather
/// than a vector, so that nothing is allocated).
pub type AvFacts = [Option<(AvKey, i64)>; 2];

/// What one record contributes: zero, one or two `(key, value)` facts at its event time.
/// `timing` is the source partition's verdict (SPEC §3), checked after the fields.
pub fn facts(a: &Agora, timing: Timing) -> Result<(AvFacts, i64), Rejection> {
    if a.user_type.read("user_type")?.map(Text::as_str) != Some("student") {
        return Ok(([None, None], 0));
    }
    let lost = a.audio_lost.read("agora_audioState.lost")?.copied().filter(|v| *v >= 0);
    let fr = a.video_fr.read("agora_videoState.fr")?.copied().filter(|v| *v >= 0);
    if lost.is_none() && fr.is_none() {
        return Ok(([None, None], 0));
    }
    let event = a.event.require("event")?;
    if !key_text(event, EVENT_CHARS) {
        return Err(Rejection::BadField("event"));
    }
    let event_time = *a.message_create_time.require("messageCreateTime")?;
    storable_window(event_time, WIDTH_MS).ok_or(Rejection::BadField("messageCreateTime"))?;
    let user_id = a.user_id.read("user_id")?.copied().unwrap_or(-1);
    let web_server_id = a.agora_channel_id.read("agora_channel_id")?.copied().unwrap_or(-1);
    let classroom_id = match a.classroom_id.read("classroom_id")? {
        Some(c) if !key_text(c, KEY_CHARS) => return Err(Rejection::BadField("classroom_id")),
        Some(c) => c.clone(),
        None => Text::const_new("-1"),
    };
    let audio_uid = a.audio_uid.read("agora_audioState.uid")?.copied().unwrap_or(-1);
    let video_uid = a.video_uid.read("agora_videoState.uid")?.copied().unwrap_or(-1);
    timing.check()?;
    let key = |extra_uid: i64, family: &str| AvKey {
        user_id,
        web_server_id,
        classroom_id: classroom_id.clone(),
        user_type: Text::const_new("student"),
        extra_uid,
        event: state_event(event, family),
    };
    let audio = lost.map(|lost| (key(audio_uid, "AUDIO"), lost));
    let video = fr.map(|fr| (key(video_uid, "VIDEO"), fr));
    Ok(([audio, video], event_time))
}

/// `{event}_{family}_STATE` (e.g. `stat_AUDIO_STATE`), without the formatting machinery
/// (`format_compact!` was most of the ~1.5k instructions `facts` took per sample). A
/// name that fits a [`Text`] inline is assembled in a stack buffer and copied once
/// (four `push_str`s on the text cost ~300 instructions a fact).
fn state_event(event: &str, family: &str) -> Text {
    const SUFFIX: &str = "_STATE";
    let parts = [event, "_", family, SUFFIX];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut buffer = [0u8; 24];
    if let Some(name) = buffer.get_mut(..len) {
        let mut at = 0;
        for part in parts {
            name[at..at + part.len()].copy_from_slice(part.as_bytes());
            at += part.len();
        }
        // Whole `str`s joined: always UTF-8.
        if let Ok(name) = std::str::from_utf8(name) {
            return Text::from(name);
        }
    }
    let mut text = Text::with_capacity(len);
    for part in parts {
        text.push_str(part);
    }
    text
}

/// Final 30-second windows, given the facts (both families, [`facts`] made their
/// keys) and their topic's partition watermarks; and a `late` dead letter for each
/// sample that arrived after its window had been written. The seed's query, per family
/// (the video one reads `agoraVideoState` and `_VIDEO_STATE`):
///
/// ```sql
/// SELECT TUMBLE_START(messageCreateTime, INTERVAL '30' SECOND) AS start_time,
///        user_id, web_server_id, classroom_id, userType AS user_type,
///        agoraAudioStateUid AS extra_uid, CONCAT(event, '_AUDIO_STATE') AS event,
///        SUM(agoraAudioStateLost) AS event_sum, COUNT(event) AS event_count
/// FROM qos_agora_record_kafka
/// WHERE agoraAudioStateLost >= 0 AND userType = 'student'
/// GROUP BY TUMBLE(messageCreateTime, INTERVAL '30' SECOND),
///          userId, agoraChannelId, classroomId, userType, event, agoraAudioStateUid
/// ```
pub fn dataflow<'s>(
    facts: StreamVec<'s, Time, WindowFact<AvKey, i64>>,
    watermarks: StreamVec<'s, Time, (u32, Mark)>,
) -> (VecCollection<'s, Time, AvRow, Diff>, VecCollection<'s, Time, DeadLetter, Diff>) {
    let (windows, late) = facts
        .tumbling::<SumCount>(watermarks, WIDTH_MS, Topic::Agora, "AvQuality30s")
        .split_late(Topic::Agora, Metric::AvQuality30s);
    let rows = windows.map(|Window { start, key, aggregate: (event_sum, event_count) }| AvRow {
        start_time: start,
        key,
        event_sum,
        event_count,
    });
    (rows, late)
}

/// 2.5 `user_av_record`.
impl Row for AvRow {
    const TABLE: Table = Table {
        name: "user_av_record",
        columns: &[
            ("start_time", Timestamp),
            ("end_time", Timestamp),
            ("user_id", BigInt),
            ("web_server_id", BigInt),
            ("classroom_id", Text),
            ("user_type", Text),
            ("extra_uid", BigInt),
            ("event", Text),
            ("event_sum", BigInt),
            ("event_avg", Double),
            ("event_count", BigInt),
        ],
        key: &[0, 1, 2, 3, 4, 5, 6, 7],
        stamp: Some(("create_time", StampKind::Timestamp)),
    };

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Millis(self.start_time),
            SqlValue::Millis(self.end_time()),
            SqlValue::Int(self.key.user_id),
            SqlValue::Int(self.key.web_server_id),
            SqlValue::Text(self.key.classroom_id.to_string()),
            SqlValue::Text(self.key.user_type.to_string()),
            SqlValue::Int(self.key.extra_uid),
            SqlValue::Text(self.key.event.to_string()),
            SqlValue::Int(self.event_sum),
            SqlValue::Double(self.event_avg()),
            SqlValue::Int(self.event_count),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> Result<(Vec<(AvKey, i64)>, i64), Rejection> {
        facts(&Agora::parse(raw.as_bytes()).unwrap(), Timing::OnTime)
            .map(|(facts, time)| (facts.into_iter().flatten().collect(), time))
    }

    #[test]
    fn families_and_null_defaults() {
        let (f, t) = read(r#"{"user_type":"student","event":"stat","agora_audioState":"{\"lost\":\"3\"}","agora_videoState":{"fr":0,"uid":5},"messageCreateTime":"1000"}"#).unwrap();
        assert_eq!(t, 1000);
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].0.event.as_str(), f[0].0.extra_uid, f[0].0.user_id, f[0].0.classroom_id.as_str(), f[0].1),
            ("stat_AUDIO_STATE", -1, -1, "-1", 3)
        );
        assert_eq!((f[1].0.event.as_str(), f[1].0.extra_uid, f[1].1), ("stat_VIDEO_STATE", 5, 0));
    }

    #[test]
    fn filters_and_rejections() {
        assert_eq!(
            read(r#"{"user_type":"teacher","event":"e","agora_audioState":{"lost":1},"messageCreateTime":1}"#)
                .unwrap()
                .0,
            vec![]
        );
        assert_eq!(
            read(r#"{"user_type":"student","event":"e","agora_audioState":{"lost":-1},"messageCreateTime":1}"#)
                .unwrap()
                .0,
            vec![]
        );
        assert_eq!(
            read(r#"{"user_type":"student","agora_audioState":{"lost":1},"messageCreateTime":1}"#),
            Err(Rejection::BadField("event"))
        );
        assert_eq!(
            read(r#"{"user_type":"student","event":"e","agora_audioState":{"lost":1}}"#),
            Err(Rejection::BadField("messageCreateTime"))
        );
        assert_eq!(
            read(
                r#"{"user_type":"student","event":"e","user_id":"x","agora_audioState":{"lost":1},"messageCreateTime":1}"#
            ),
            Err(Rejection::BadField("user_id"))
        );
    }

    #[test]
    fn what_a_row_cannot_store_is_a_bad_field() {
        let sample = |classroom: &str, event: &str, time: i64| {
            read(&format!(
                r#"{{"user_type":"student","classroom_id":"{classroom}","event":"{event}","agora_audioState":{{"lost":1}},"messageCreateTime":{time}}}"#
            ))
        };
        let bad = |name| Err(Rejection::BadField(name));
        assert_eq!(sample("c", "e", i64::MAX), bad("messageCreateTime"));
        assert_eq!(sample("c", "e", i64::MIN), bad("messageCreateTime"));
        assert_eq!(sample("c", "e", 253_402_300_770_000), bad("messageCreateTime")); // ends in the year 10000
        assert!(sample("c", "e", 253_402_300_769_999).is_ok());
        assert_eq!(sample("c\\u0000", "e", 0), bad("classroom_id"));
        assert_eq!(sample("c", "e\\u0000", 0), bad("event"));
        // Key texts of VARCHAR(191); the event is written with `_AUDIO_STATE` appended.
        assert_eq!(sample(&"c".repeat(192), "e", 0), bad("classroom_id"));
        assert!(sample(&"c".repeat(191), &"e".repeat(179), 0).is_ok());
        assert_eq!(sample("c", &"e".repeat(180), 0), bad("event"));
    }

    #[test]
    fn state_event_names_short_and_long() {
        assert_eq!(state_event("stat", "AUDIO"), "stat_AUDIO_STATE");
        assert_eq!(state_event("", "VIDEO"), "_VIDEO_STATE");
        // 24 bytes (the longest kept inline), 25, and multi-byte text.
        assert_eq!(state_event("abcdefghijkl", "VIDEO"), "abcdefghijkl_VIDEO_STATE");
        assert_eq!(state_event("abcdefghijklm", "VIDEO"), "abcdefghijklm_VIDEO_STATE");
        assert_eq!(state_event("加入课堂", "AUDIO"), "加入课堂_AUDIO_STATE");
    }

    #[test]
    fn exact_average() {
        let row = AvRow {
            start_time: 0,
            key: read(r#"{"user_type":"student","event":"e","agora_audioState":{"lost":1},"messageCreateTime":1}"#)
                .unwrap()
                .0[0]
                .0
                .clone(),
            event_sum: 7,
            event_count: 2,
        };
        assert_eq!(row.event_avg(), 3.5);
        assert_eq!(row.end_time(), 30_000);
    }
}
