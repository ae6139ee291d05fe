//! 2.1 `student_signal_etl` — classroom signal cleaning (seed: 场景一).
//!
//! Keeps a raw signal iff `msgId='305' AND msgType='116' AND role='2'` and it
//! matches exactly one of the seven rules below, and emits one flat record
//! with `event` set by that rule. The output is append-only: one row per kept
//! input record, keyed by its source position, so replaying the input writes
//! each record once (SPEC §5).
//!
//! | event | targetId | targetType | action | subAction |
//! |---|---|---|---|---|
//! | `MOVE_IMAGE` | any | `shape` | `move` | any |
//! | `HOVER_IMAGE` | any | `shape` | `mouse` | `over` |
//! | `DRAW_LINE` | any | `shape` | `add` | any |
//! | `AUDIO_PLAY` | any | `template` | `audio` | `start` |
//! | `AUDIO_PAUSE` | any | `template` | `audio` | `pause` |
//! | `MATCH_WRONG` | `match` | `template` | `match` | `drop:wrong` |
//! | `MATCH_CORRECT` | `match` | `template` | `match` | `drop:correct` |
//!
//! Dead letters: a field that the filter or the output reads and that is
//! present but unreadable (an object where text is expected, or a non-integer
//! `timestamp`) makes the record a dead letter for this metric; records that
//! fail the filter are neither counted nor dead letters. A kept record with a
//! text that a sink cannot store ([`crate::storable`]: a NUL, or over 64 KiB) is a
//! dead letter for this metric too, found by [`check_storable`] (2.3, which
//! writes none of its texts, still counts it).

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::Text;
use crate::ops::Inserts;
use crate::output::{ColumnType::*, Row, SqlValue, StampKind, Table};
use crate::storable::checked_text;
use crate::topics::Signal;
use crate::{Diff, Pos, Rejection, Time};

/// The `msgId` of the signals kept. (The three constants are defined with the signal
/// record, [`Signal::MSG_ID`], which compares its fields with them, so that `topics`
/// does not import this module, which reads that record.)
pub const MSG_ID: &str = Signal::MSG_ID;
/// The `msgType` of the signals kept.
pub const MSG_TYPE: &str = Signal::MSG_TYPE;
/// The `role` of the signals kept (students).
pub const ROLE: &str = Signal::ROLE;

/// The classroom action a kept signal stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SignalEvent {
    /// A picture moved into a bucket.
    MoveImage,
    /// The mouse hovers over a picture.
    HoverImage,
    /// A line drawn between word and picture.
    DrawLine,
    /// Courseware audio started.
    AudioPlay,
    /// Courseware audio paused.
    AudioPause,
    /// A wrong picture–text match.
    MatchWrong,
    /// A correct picture–text match.
    MatchCorrect,
}

impl SignalEvent {
    /// The `event` text written to the outputs.
    pub fn name(self) -> &'static str {
        match self {
            SignalEvent::MoveImage => "MOVE_IMAGE",
            SignalEvent::HoverImage => "HOVER_IMAGE",
            SignalEvent::DrawLine => "DRAW_LINE",
            SignalEvent::AudioPlay => "AUDIO_PLAY",
            SignalEvent::AudioPause => "AUDIO_PAUSE",
            SignalEvent::MatchWrong => "MATCH_WRONG",
            SignalEvent::MatchCorrect => "MATCH_CORRECT",
        }
    }
}

/// The event of the rule that matches, if one does (the rules of the table above
/// are disjoint, so "exactly one" and "at least one" agree; a test checks this
/// function against the table as data).
///
/// Written as one `match` on literals, which compiles to a few length and word
/// comparisons: going through the table row by row cost about 160
/// instructions per signal.
pub fn classify(
    target_id: Option<&str>,
    target_type: Option<&str>,
    action: Option<&str>,
    sub_action: Option<&str>,
) -> Option<SignalEvent> {
    use SignalEvent::*;
    Some(match (target_type?, action?, sub_action) {
        ("shape", "move", _) => MoveImage,
        ("shape", "mouse", Some("over")) => HoverImage,
        ("shape", "add", _) => DrawLine,
        ("template", "audio", Some("start")) => AudioPlay,
        ("template", "audio", Some("pause")) => AudioPause,
        ("template", "match", Some("drop:wrong")) if target_id == Some("match") => MatchWrong,
        ("template", "match", Some("drop:correct")) if target_id == Some("match") => MatchCorrect,
        _ => return None,
    })
}

/// A cleaned signal: the flat record of SPEC §2.1 (without `timeStamp`, which
/// the sink stamps with the wall-clock time at which it writes the record).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CleanSignal {
    /// `createTime`.
    pub message_create_time: Option<Text>,
    /// `data.timestamp` (ms).
    pub message_time_stamp: Option<i64>,
    /// `data.userid`.
    pub user_id: Option<Text>,
    /// `data.roomId`.
    pub room_id: Option<Text>,
    /// `data.role`.
    pub role: Option<Text>,
    /// `data.msgid`.
    pub msg_id: Option<Text>,
    /// `data.msg.msgtype`.
    pub msg_type: Option<Text>,
    /// `data.msg.msg_data.target_id`.
    pub target_id: Option<Text>,
    /// `data.msg.msg_data.target_type`.
    pub target_type: Option<Text>,
    /// `data.msg.msg_data.action`.
    pub action: Option<Text>,
    /// `data.msg.msg_data.sub_action`.
    pub sub_action: Option<Text>,
    /// `data.msg.msg_data.page_index`.
    pub page_index: Option<Text>,
    /// The matched rule.
    pub event: SignalEvent,
    /// The input message's key (Kafka), written as the output's key.
    pub key: Option<Vec<u8>>,
}

/// One row of `timeline_analysis_student`, keyed by its source position.
pub type SignalRow = (Pos, Box<CleanSignal>);

/// Cleans one raw signal: `Ok(None)` if the business rules drop it. The signal's
/// texts move into the clean record (no copies); its `msgId`, `msgType` and `role`
/// were only compared with [`MSG_ID`], [`MSG_TYPE`] and [`ROLE`], which a kept
/// record holds.
pub fn clean(s: Signal) -> Result<Option<CleanSignal>, Rejection> {
    let Signal {
        create_time,
        user_id,
        room_id,
        timestamp,
        role,
        msg_id,
        msg_type,
        target_id,
        target_type,
        action,
        sub_action,
        page_index,
    } = s;
    let msg_id = msg_id.into_read("msgId")?;
    let msg_type = msg_type.into_read("msgType")?;
    let role = role.into_read("role")?;
    if msg_id != Some(true) || msg_type != Some(true) || role != Some(Some(0)) {
        return Ok(None);
    }
    let target_id = target_id.into_read("targetId")?;
    let target_type = target_type.into_read("targetType")?;
    let action = action.into_read("action")?;
    let sub_action = sub_action.into_read("subAction")?;
    let Some(event) = classify(target_id.as_deref(), target_type.as_deref(), action.as_deref(), sub_action.as_deref())
    else {
        return Ok(None);
    };
    Ok(Some(CleanSignal {
        message_create_time: create_time.into_read("createTime")?,
        message_time_stamp: timestamp.into_read("timestamp")?,
        user_id: user_id.into_read("userId")?,
        room_id: room_id.into_read("roomId")?,
        role: Some(Text::const_new(ROLE)),
        msg_id: Some(Text::const_new(MSG_ID)),
        msg_type: Some(Text::const_new(MSG_TYPE)),
        target_id,
        target_type,
        action,
        sub_action,
        page_index: page_index.into_read("pageIndex")?,
        event,
        key: None,
    }))
}

/// `Ok` if a sink can store every text of the cleaned signal, else the first field
/// that it cannot ([`crate::storable::text`]).
pub fn check_storable(s: &CleanSignal) -> Result<(), Rejection> {
    checked_text(s.message_create_time.as_ref(), "createTime")?;
    checked_text(s.user_id.as_ref(), "userId")?;
    checked_text(s.room_id.as_ref(), "roomId")?;
    checked_text(s.target_id.as_ref(), "targetId")?;
    checked_text(s.target_type.as_ref(), "targetType")?;
    checked_text(s.action.as_ref(), "action")?;
    checked_text(s.sub_action.as_ref(), "subAction")?;
    checked_text(s.page_index.as_ref(), "pageIndex")?;
    Ok(())
}

/// The cleaned-signal collection: every kept record, once (the seed's `INSERT INTO
/// signal_student_classroom_internation SELECT .. WHERE ..`, one per rule, whose
/// filters [`clean`] applied).
pub fn dataflow<'s>(cleaned: StreamVec<'s, Time, SignalRow>) -> VecCollection<'s, Time, SignalRow, Diff> {
    cleaned.inserts()
}

/// 2.1 `timeline_analysis_student`, keyed by source position.
impl Row for SignalRow {
    const TABLE: Table = Table {
        name: "timeline_analysis_student",
        columns: &[
            ("src_partition", BigInt),
            ("src_offset", BigInt),
            ("messageCreateTime", Text),
            ("messageTimeStamp", BigInt),
            ("userId", Text),
            ("roomId", Text),
            ("role", Text),
            ("msgId", Text),
            ("msgType", Text),
            ("targetId", Text),
            ("targetType", Text),
            ("action", Text),
            ("subAction", Text),
            ("pageIndex", Text),
            ("event", Text),
        ],
        key: &[0, 1],
        stamp: Some(("timeStamp", StampKind::Millis)),
    };

    fn values(&self) -> Vec<SqlValue> {
        let (pos, s) = self;
        vec![
            SqlValue::Int(i64::from(pos.partition)),
            SqlValue::Int(pos.offset as i64),
            SqlValue::text(&s.message_create_time),
            SqlValue::int(s.message_time_stamp),
            SqlValue::text(&s.user_id),
            SqlValue::text(&s.room_id),
            SqlValue::text(&s.role),
            SqlValue::text(&s.msg_id),
            SqlValue::text(&s.msg_type),
            SqlValue::text(&s.target_id),
            SqlValue::text(&s.target_type),
            SqlValue::text(&s.action),
            SqlValue::text(&s.sub_action),
            SqlValue::text(&s.page_index),
            SqlValue::Text(s.event.name().into()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(extra: &str) -> Signal {
        let raw = format!(
            r#"{{"createTime":"c","data":{{"userid":"7","roomId":"9","timestamp":1000,"role":"2","msgid":"305","msg":{{"msgtype":"116","msg_data":{{{extra}}}}}}}}}"#
        );
        Signal::parse(raw.as_bytes()).unwrap()
    }

    fn event_of(extra: &str) -> Option<&'static str> {
        clean(signal(extra)).unwrap().map(|c| c.event.name())
    }

    /// `(event, targetId, targetType, action, subAction)`, as in the module's table;
    /// `None` matches anything.
    type Rule = (SignalEvent, Option<&'static str>, &'static str, &'static str, Option<&'static str>);

    const RULES: [Rule; 7] = [
        (SignalEvent::MoveImage, None, "shape", "move", None),
        (SignalEvent::HoverImage, None, "shape", "mouse", Some("over")),
        (SignalEvent::DrawLine, None, "shape", "add", None),
        (SignalEvent::AudioPlay, None, "template", "audio", Some("start")),
        (SignalEvent::AudioPause, None, "template", "audio", Some("pause")),
        (SignalEvent::MatchWrong, Some("match"), "template", "match", Some("drop:wrong")),
        (SignalEvent::MatchCorrect, Some("match"), "template", "match", Some("drop:correct")),
    ];

    /// The table read as data: the event of the single matching rule.
    fn by_table(
        target_id: Option<&str>,
        target_type: Option<&str>,
        action: Option<&str>,
        sub_action: Option<&str>,
    ) -> Option<SignalEvent> {
        let matches = |want: Option<&str>, got: Option<&str>| want.is_none() || want == got;
        let mut hits = RULES.iter().filter(|(_, tid, ttype, act, sub)| {
            matches(*tid, target_id) && Some(*ttype) == target_type && Some(*act) == action && matches(*sub, sub_action)
        });
        match (hits.next(), hits.next()) {
            (Some(rule), None) => Some(rule.0),
            _ => None,
        }
    }

    #[test]
    fn classify_agrees_with_the_table_on_every_combination() {
        // Every value the table names, near misses of them, and NULL, in every column.
        let mut values: Vec<Option<&str>> = vec![None, Some(""), Some("x"), Some("Shape"), Some("drop"), Some("matc")];
        for (_, tid, ttype, act, sub) in RULES {
            values.extend([tid, Some(ttype), Some(act), sub]);
        }
        values.sort();
        values.dedup();
        let mut hits = 0;
        for &tid in &values {
            for &ttype in &values {
                for &act in &values {
                    for &sub in &values {
                        let want = by_table(tid, ttype, act, sub);
                        assert_eq!(classify(tid, ttype, act, sub), want, "{tid:?} {ttype:?} {act:?} {sub:?}");
                        hits += usize::from(want.is_some());
                    }
                }
            }
        }
        // Every rule matched somewhere (so the comparison was not vacuous).
        assert!(hits >= RULES.len(), "{hits}");
    }

    #[test]
    fn the_seven_rules() {
        assert_eq!(event_of(r#""target_type":"shape","action":"move","sub_action":"x""#), Some("MOVE_IMAGE"));
        assert_eq!(event_of(r#""target_type":"shape","action":"mouse","sub_action":"over""#), Some("HOVER_IMAGE"));
        assert_eq!(event_of(r#""target_type":"shape","action":"add""#), Some("DRAW_LINE"));
        assert_eq!(event_of(r#""target_type":"template","action":"audio","sub_action":"start""#), Some("AUDIO_PLAY"));
        assert_eq!(event_of(r#""target_type":"template","action":"audio","sub_action":"pause""#), Some("AUDIO_PAUSE"));
        assert_eq!(
            event_of(r#""target_id":"match","target_type":"template","action":"match","sub_action":"drop:wrong""#),
            Some("MATCH_WRONG")
        );
        assert_eq!(
            event_of(r#""target_id":"match","target_type":"template","action":"match","sub_action":"drop:correct""#),
            Some("MATCH_CORRECT")
        );
    }

    #[test]
    fn near_misses() {
        assert_eq!(event_of(r#""target_type":"shape","action":"mouse","sub_action":"out""#), None);
        assert_eq!(event_of(r#""target_type":"template","action":"audio","sub_action":"stop""#), None);
        assert_eq!(
            event_of(r#""target_id":"other","target_type":"template","action":"match","sub_action":"drop:wrong""#),
            None
        );
        assert_eq!(event_of(r#""target_type":"Shape","action":"move""#), None);
        assert_eq!(event_of(r#""target_type":"template","action":"move""#), None);
    }

    #[test]
    fn filter_on_ids_and_role() {
        let teacher = Signal::parse(br#"{"data":{"role":"1","msgid":"305","msg":{"msgtype":"116","msg_data":{"target_type":"shape","action":"move"}}}}"#).unwrap();
        assert_eq!(clean(teacher), Ok(None));
        let numeric = Signal::parse(br#"{"data":{"role":2,"msgid":305,"msg":{"msgtype":116,"msg_data":{"target_type":"shape","action":"move"}}}}"#).unwrap();
        assert_eq!(clean(numeric).unwrap().map(|c| c.event), Some(SignalEvent::MoveImage));
    }

    /// The gated parse (`Signal::parse_gated_with`, what ingestion uses) leaves the texts
    /// of a signal NULL when its role, msgId or msgType is not the constant. Over every
    /// combination of those three (constant as string and number, other values, NULL,
    /// missing, unreadable) and of readable, unreadable and missing texts, `clean` must
    /// give what it gives on the full parse, and the event time must be the same.
    #[test]
    fn gated_parse_cleans_like_the_full_parse() {
        let roles = [
            r#""role":"2","#,
            r#""role":2,"#,
            r#""role":"1","#,
            r#""role":null,"#,
            "",
            r#""role":{"x":2},"#,
            r#""role":"02","#,
        ];
        let ids =
            [r#""msgid":"305","#, r#""msgid":305,"#, r#""msgid":"306","#, r#""msgid":"","#, "", r#""msgid":[305],"#];
        let types = [r#""msgtype":"116","#, r#""msgtype":116,"#, r#""msgtype":117,"#, "", r#""msgtype":true,"#];
        let texts = [
            r#""userid":"7","roomId":9,"msg_data":{"target_type":"shape","action":"move"}"#,
            r#""userid":{"a":1},"roomId":9,"msg_data":{"target_type":"shape","action":"move"}"#,
            r#""userid":"7","msg_data":{"target_type":"shape","action":[1]}"#,
            r#""userid":"7","msg_data":"{\"target_type\":\"template\",\"action\":\"match\",\"sub_action\":\"drop:wrong\",\"target_id\":\"match\"}""#,
        ];
        let (mut scratch, mut outcomes) = (crate::json::Scratch::default(), [0; 3]);
        for role in roles {
            for id in ids {
                for ty in types {
                    for text in texts {
                        let (data, msg) = text.split_once(r#","msg_data""#).unwrap_or((text, ""));
                        let raw = format!(
                            r#"{{"createTime":"c","data":{{{role}{id}"timestamp":1000,{data},"msg":{{{ty}"msg_data"{msg}}}}}}}"#
                        );
                        let full = Signal::parse(raw.as_bytes()).unwrap();
                        let gated = Signal::parse_gated_with(raw.as_bytes(), &mut scratch).unwrap();
                        assert_eq!(gated.timestamp, full.timestamp, "{raw}");
                        let passes = gated.role == crate::json::Field::Val(Some(0))
                            && [&gated.msg_id, &gated.msg_type].iter().all(|f| **f == crate::json::Field::Val(true));
                        if passes {
                            assert_eq!(gated, full, "{raw}");
                        }
                        let cleaned = clean(full);
                        assert_eq!(clean(gated), cleaned, "{raw}");
                        outcomes[match cleaned {
                            Ok(Some(_)) => 0,
                            Ok(None) => 1,
                            Err(_) => 2,
                        }] += 1;
                    }
                }
            }
        }
        // Every outcome occurs, the texts' own rejections among them.
        assert!(outcomes.iter().all(|&n| n > 4), "{outcomes:?}");
    }

    #[test]
    fn unreadable_fields_reject() {
        let s = signal(r#""target_type":"shape","action":{"x":1}"#);
        assert_eq!(clean(s), Err(Rejection::BadField("action")));
        let s = Signal::parse(br#"{"data":{"timestamp":"soon","role":"2","msgid":"305","msg":{"msgtype":"116","msg_data":{"target_type":"shape","action":"move"}}}}"#).unwrap();
        assert_eq!(clean(s), Err(Rejection::BadField("timestamp")));
    }
}
