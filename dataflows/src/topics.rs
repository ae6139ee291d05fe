//! The seven source topics of SPEC §1 as typed records.
//!
//! Each record type lists its fields with their JSON path and type; the
//! `topic_record!` macro generates the struct and its `parse`, which reads a
//! message value once through [`crate::json::read_slots_with`]. Every field is a
//! [`Field`]: NULL, a value, or `Bad` (present but unreadable), so that a bad
//! field only rejects the record for the metrics that read it. A field's type is
//! `str` (any scalar as text), `int` (an integer, or a string holding one) or
//! `is(TEXT)` (whether the field, as text, is `TEXT`: for fields a metric only
//! compares with a constant, so that no text is made for them) or `class(A, B)`
//! (`Some(0)` when the field, as text, is `A`, `Some(1)` when it is `B`, else
//! `None`). A reader that drops every record whose `is` fields are not all
//! true and whose `class` fields are not all `A`, before looking at its texts,
//! can parse with `parse_gated_with`, which then leaves those texts NULL, except
//! the `text` fields (text like `str`, read for every record).

use serde::{Deserialize, Serialize};

use crate::json::{Field, PathSet, Reject, Scratch, read_slots_with};

/// The source topics, in a fixed order (their index is stable and small).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Topic {
    /// `timeline_client_topic`: raw classroom signalling.
    Timeline,
    /// `blink_stg_activity__channel_name_dictionary_da`: channel / level dictionary.
    Channel,
    /// `qos_log`: recorded-course playback log.
    Qos,
    /// `agora_record`: live audio/video quality.
    Agora,
    /// `uc_account-student`: student accounts.
    Student,
    /// `uc_account-user`: user registrations.
    User,
    /// `data_pack_order_info`: course-consultant order follow-ups.
    Order,
}

impl Topic {
    /// Every topic, in index order.
    pub const ALL: [Topic; 7] =
        [Topic::Timeline, Topic::Channel, Topic::Qos, Topic::Agora, Topic::Student, Topic::User, Topic::Order];

    /// The default Kafka topic name (also the directory name in file replay).
    pub fn default_name(self) -> &'static str {
        match self {
            Topic::Timeline => "timeline_client_topic",
            Topic::Channel => "blink_stg_activity__channel_name_dictionary_da",
            Topic::Qos => "qos_log",
            Topic::Agora => "agora_record",
            Topic::Student => "uc_account-student",
            Topic::User => "uc_account-user",
            Topic::Order => "data_pack_order_info",
        }
    }

    /// The topic whose default name is `name`.
    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.default_name() == name)
    }
}

macro_rules! topic_record {
    ($(#[$meta:meta])* $name:ident { $( $(#[$fmeta:meta])* $field:ident : $ty:ident $(($($want:expr),+))? = [$($seg:literal),+] ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name { $( $(#[$fmeta])* pub $field: Field<topic_record!(@ty $ty)>, )* }

        impl $name {
            /// The JSON paths read, in field order.
            pub const PATHS: &'static [&'static [&'static str]] = &[ $( &[$($seg),+] ),* ];

            /// The paths compiled once, for the fast reader.
            pub fn path_set() -> &'static PathSet<'static> {
                static SET: std::sync::OnceLock<PathSet<'static>> = std::sync::OnceLock::new();
                SET.get_or_init(|| PathSet::new(Self::PATHS))
            }

            /// Reads one message value; fails only if it is not a JSON object.
            pub fn parse(bytes: &[u8]) -> Result<Self, Reject> {
                Self::parse_with(bytes, &mut Scratch::default())
            }

            /// [`Self::parse`] with buffers kept from message to message.
            pub fn parse_with(bytes: &[u8], scratch: &mut Scratch) -> Result<Self, Reject> {
                let slots = read_slots_with(bytes, Self::path_set(), scratch)?;
                let mut index = 0..;
                let record = Self { $( $field: topic_record!(@read $ty, $($($want,)+)? slots, index.next().unwrap_or_default()), )* };
                slots.recycle(scratch);
                Ok(record)
            }

            /// [`Self::parse_with`] for a reader that drops a record unless every `is` field
            /// is `Val(true)`, without looking at its texts: the `str` fields of a record
            /// that fails this gate are left NULL instead of made (its `int` and `is`
            /// fields are read as always). A record that passes is exactly
            /// [`Self::parse_with`]'s. (Written apart from it: reading every topic in
            /// these two passes cost 0.44 % more instructions than `parse_with`'s one.)
            pub fn parse_gated_with(bytes: &[u8], scratch: &mut Scratch) -> Result<Self, Reject> {
                let slots = read_slots_with(bytes, Self::path_set(), scratch)?;
                let mut index = 0..;
                let mut record = Self { $( $field: topic_record!(@cheap $ty, $($($want,)+)? slots, index.next().unwrap_or_default()), )* };
                if true $( && topic_record!(@passes $ty, record.$field) )* {
                    let mut index = 0..;
                    $( topic_record!(@texts $ty, record.$field, slots, index.next().unwrap_or_default()); )*
                }
                slots.recycle(scratch);
                Ok(record)
            }
        }
    };
    (@ty str) => { crate::Text };
    (@ty text) => { crate::Text };
    (@ty int) => { i64 };
    (@ty is) => { bool };
    (@ty class) => { Option<u8> };
    (@read str, $slots:ident, $i:expr) => { $slots.text($i) };
    (@read text, $slots:ident, $i:expr) => { $slots.text($i) };
    (@read int, $slots:ident, $i:expr) => { $slots.int($i) };
    (@read is, $want:expr, $slots:ident, $i:expr) => { $slots.text_is($i, &const { crate::json::Wanted::new($want) }) };
    (@read class, $first:expr, $second:expr, $slots:ident, $i:expr) => {{
        let i = $i;
        match topic_record!(@read is, $first, $slots, i) {
            Field::Val(true) => Field::Val(Some(0)),
            Field::Val(false) => topic_record!(@read is, $second, $slots, i).map(|second| second.then_some(1)),
            other => other.map(|_| None),
        }
    }};
    (@cheap str, $slots:ident, $i:expr) => {{ let _ = $i; Field::Null }};
    (@cheap text, $slots:ident, $i:expr) => { $slots.text($i) };
    (@cheap int, $slots:ident, $i:expr) => { $slots.int($i) };
    (@cheap is, $want:expr, $slots:ident, $i:expr) => { topic_record!(@read is, $want, $slots, $i) };
    (@cheap class, $first:expr, $second:expr, $slots:ident, $i:expr) => { topic_record!(@read class, $first, $second, $slots, $i) };
    (@passes is, $value:expr) => { $value == Field::Val(true) };
    (@passes class, $value:expr) => { $value == Field::Val(Some(0)) };
    (@passes $ty:ident, $value:expr) => { true };
    (@texts str, $field:expr, $slots:ident, $i:expr) => { $field = $slots.text($i) };
    (@texts $ty:ident, $field:expr, $slots:ident, $i:expr) => { let _ = $i; };
}

topic_record! {
    /// A raw classroom signal (`timeline_client_topic`).
    Signal {
        create_time: str = ["createTime"],
        /// Read for every signal: 2.8 and 2.9 count all of them.
        user_id: text = ["data", "userid"],
        room_id: text = ["data", "roomId"],
        /// Event time of 2.3, and the day of 2.8 and 2.9, ms.
        timestamp: int = ["data", "timestamp"],
        /// `Some(0)`: a student (`ROLE`, the only role 2.1 keeps), `Some(1)`: a teacher,
        /// `None`: any other role (2.8 counts it as `other`).
        role: class(Signal::ROLE, Signal::TEACHER_ROLE) = ["data", "role"],
        /// 2.1 keeps only signals of one id and type: these two are only compared.
        msg_id: is(Signal::MSG_ID) = ["data", "msgid"],
        msg_type: is(Signal::MSG_TYPE) = ["data", "msg", "msgtype"],
        target_id: str = ["data", "msg", "msg_data", "target_id"],
        target_type: str = ["data", "msg", "msg_data", "target_type"],
        action: str = ["data", "msg", "msg_data", "action"],
        sub_action: str = ["data", "msg", "msg_data", "sub_action"],
        page_index: str = ["data", "msg", "msg_data", "page_index"],
    }
}

impl Signal {
    /// The `msgId` of the signals 2.1 keeps (what [`Self::msg_id`] is compared with).
    pub const MSG_ID: &'static str = "305";
    /// The `msgType` of the signals 2.1 keeps (what [`Self::msg_type`] is compared with).
    pub const MSG_TYPE: &'static str = "116";
    /// The `role` of the signals 2.1 keeps, students (what [`Self::role`] is compared with).
    pub const ROLE: &'static str = "2";
    /// The `role` of a teacher's signals (2.8, 2.9).
    pub const TEACHER_ROLE: &'static str = "1";
}

topic_record! {
    /// A channel dictionary entry (`blink_stg_activity__channel_name_dictionary_da`).
    Channel {
        id: str = ["id"],
        chinese_name: str = ["chinese_name"],
        english_name: str = ["english_name"],
        level: str = ["level"],
        pid: str = ["pid"],
        create_time: str = ["create_time"],
        update_time: str = ["update_time"],
        dept_id: str = ["dept_id"],
    }
}

topic_record! {
    /// A recorded-course playback log entry (`qos_log`).
    Qos {
        classroom_id: str = ["classroom_id"],
        user_type: str = ["user_type"],
        user_id: int = ["user_id"],
        event_time: int = ["event_time"],
        sub_event: str = ["sub_event"],
        data_time: int = ["extra", "data_time"],
        ppt_index: str = ["extra", "msg", "pptIndex"],
    }
}

topic_record! {
    /// A live audio/video quality sample (`agora_record`).
    Agora {
        classroom_id: str = ["classroom_id"],
        user_type: str = ["user_type"],
        user_id: int = ["user_id"],
        agora_channel_id: int = ["agora_channel_id"],
        event: str = ["event"],
        video_fr: int = ["agora_videoState", "fr"],
        video_uid: int = ["agora_videoState", "uid"],
        audio_lost: int = ["agora_audioState", "lost"],
        audio_uid: int = ["agora_audioState", "uid"],
        /// Event time of 2.5, ms.
        message_create_time: int = ["messageCreateTime"],
    }
}

topic_record! {
    /// A student account (`uc_account-student`).
    Student {
        id: str = ["id"],
        channel_id: str = ["channel_id"],
        update_time: str = ["update_time"],
    }
}

topic_record! {
    /// A user registration (`uc_account-user`).
    User {
        id: str = ["id"],
        name: str = ["name"],
        register_date_time: str = ["register_date_time"],
        status: str = ["status"],
    }
}

topic_record! {
    /// A course-consultant order follow-up (`data_pack_order_info`).
    Order {
        id: str = ["id"],
        cc_id: int = ["cc_id"],
        student_id: str = ["student_id"],
        order_id: str = ["order_id"],
        leads_id: str = ["leads_id"],
        confirm_date_time: str = ["confirm_date_time"],
        create_time: str = ["create_time"],
        update_time: str = ["update_time"],
        order_create_time: str = ["order_create_time"],
        canceled_date_time: str = ["canceled_date_time"],
        apply_refund_date: str = ["apply_refund_date"],
        status: int = ["status"],
    }
}

/// Per-column LAST_VALUE merge of two versions of the same keyed record.
pub trait LastValue {
    /// Folds a later version into `self`: each non-NULL field of `later` wins.
    fn merge_last(&mut self, later: Self);
}

macro_rules! last_value {
    ($name:ident { $($field:ident),* }) => {
        impl LastValue for $name {
            fn merge_last(&mut self, later: Self) {
                $( self.$field.merge_last(later.$field); )*
            }
        }
    };
}

last_value!(Student { id, channel_id, update_time });
last_value!(User { id, name, register_date_time, status });
last_value!(Order {
    id,
    cc_id,
    student_id,
    order_id,
    leads_id,
    confirm_date_time,
    create_time,
    update_time,
    order_create_time,
    canceled_date_time,
    apply_refund_date,
    status
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_reads_string_encoded_nesting_and_numbers() {
        let raw = br#"{"createTime":"2025-12-02 08:00:00","data":"{\"userid\":7,\"roomId\":\"9\",\"timestamp\":\"1764662400000\",\"role\":2,\"msgid\":305,\"msg\":{\"msgtype\":\"116\",\"msg_data\":\"{\\\"target_type\\\":\\\"shape\\\",\\\"action\\\":\\\"move\\\"}\"}}","junk":1}"#;
        let s = Signal::parse(raw).unwrap();
        assert_eq!(s.user_id, Field::Val("7".into()));
        assert_eq!(s.timestamp, Field::Val(1_764_662_400_000));
        assert_eq!((s.role, s.msg_id, s.msg_type), (Field::Val(Some(0)), Field::Val(true), Field::Val(true)));
        assert_eq!(s.target_type, Field::Val("shape".into()));
        assert_eq!(s.action, Field::Val("move".into()));
        assert_eq!(s.sub_action, Field::Null);
    }

    #[test]
    fn a_class_field_tells_its_two_texts_from_the_rest() {
        let role = |raw: &str| Signal::parse(format!(r#"{{"data":{{"role":{raw}}}}}"#).as_bytes()).unwrap().role;
        assert_eq!(role(r#""2""#), Field::Val(Some(0)));
        assert_eq!(role("1"), Field::Val(Some(1)));
        assert_eq!(role(r#""3""#), Field::Val(None));
        assert_eq!(role(r#""""#), Field::Null, "an empty string is NULL");
        assert_eq!(role(r#"{"a":1}"#), Field::Bad);
        // Read by the gated parse too, whatever the gate says, like `text` fields.
        let gated =
            Signal::parse_gated_with(br#"{"data":{"role":"1","userid":"8","roomId":"r"}}"#, &mut Default::default())
                .unwrap();
        assert_eq!(
            (gated.role, gated.user_id, gated.room_id),
            (Field::Val(Some(1)), Field::Val("8".into()), Field::Val("r".into()))
        );
    }

    #[test]
    fn bad_int_is_field_level() {
        let q = Qos::parse(br#"{"user_id":"abc","classroom_id":"r1","extra":{"data_time":5}}"#).unwrap();
        assert_eq!(q.user_id, Field::Bad);
        assert_eq!(q.data_time, Field::Val(5));
        assert_eq!(q.classroom_id, Field::Val("r1".into()));
    }

    #[test]
    fn last_value_per_column() {
        let mut u = User::parse(br#"{"id":"1","name":"Ann","status":"NORMAL"}"#).unwrap();
        u.merge_last(User::parse(br#"{"id":"1","name":null,"status":"LOCKED","register_date_time":""}"#).unwrap());
        assert_eq!(u.name, Field::Val("Ann".into()));
        assert_eq!(u.status, Field::Val("LOCKED".into()));
        assert_eq!(u.register_date_time, Field::Null);
    }
}
