//! Seeded, deterministic sample data for `edu-rtdw gen`.
//!
//! Generates all seven source topics of SPEC §1 (classroom signalling, the
//! channel dictionary, recorded-course playback, live audio/video quality,
//! student accounts, user registrations and course-consultant orders) so that
//! a new user sees every metric of SPEC §2 produce rows without any servers.
//! The data is deliberately sloppy in every way §1 allows (nested objects as
//! JSON strings, scalars as strings or numbers, NULL as `""`/`null`/missing,
//! unknown fields), carries about 0.5 % garbage lines (dead letters, §4) and
//! about 0.2 % late events on the windowed inputs (§3), and contains later
//! updates of the same ids (LAST_VALUE semantics of 2.6 and 2.7).
//!
//! Everything is drawn from one `ChaCha8Rng` seeded with the options' seed, so
//! the same options always give byte-identical output. Records of one id are
//! keyed by that id and land in one partition (FNV-1a of the key).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

/// The seven source topics of SPEC §1, in their default names.
pub const TOPICS: [&str; 7] = [
    "timeline_client_topic",
    "blink_stg_activity__channel_name_dictionary_da",
    "qos_log",
    "agora_record",
    "uc_account-student",
    "uc_account-user",
    "data_pack_order_info",
];

const TIMELINE: usize = 0;
const CHANNEL: usize = 1;
const QOS: usize = 2;
const AGORA: usize = 3;
const STUDENT: usize = 4;
const USER: usize = 5;
const ORDER: usize = 6;

/// First event time: 2025-12-02 08:00:00 UTC, in ms since the epoch.
const START_MS: i64 = 1_764_662_400_000;
/// Global clock advance per generated record.
const TICK_MS: i64 = 10;
const DAY_MS: i64 = 86_400_000;
/// Share of garbage lines (dead letters) over all topics.
const GARBAGE_P: f64 = 0.005;
/// Share of late events on `timeline_client_topic` and `agora_record`.
const LATE_P: f64 = 0.002;
/// Chance that a nested object is sent as a string holding JSON.
const STRINGIFY_P: f64 = 0.3;
/// Chance of an unknown extra field on an object.
const EXTRA_FIELD_P: f64 = 0.05;
/// Event-time jitter (±) of timeline signals: spread below the 5 s delay.
const TIMELINE_JITTER_MS: i64 = 2_000;
/// Event-time jitter (±) of agora records: spread below the 60 s delay.
const AGORA_JITTER_MS: i64 = 25_000;

const PEOPLE_BASE: i64 = 100_000;
const TEACHER_BASE: i64 = 900_000;
const ROOM_BASE: i64 = 50_000;
const RECORDED_ROOM_BASE: i64 = 80_000;
const AGORA_CHANNEL_BASE: i64 = 700_000;
const ORDER_BASE: i64 = 3_000_000;
const CC_BASE: i64 = 4_000;
const CC_COUNT: i64 = 40;
const STUDENTS_PER_ROOM: i64 = 6;

type Obj = Map<String, Value>;
type Rand = ChaCha8Rng;

/// Options of `edu-rtdw gen`.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Total records ≈ scale × 10,000.
    pub scale: u64,
    /// Seed of the one random generator; same options → same bytes.
    pub seed: u64,
    /// Partitions per topic (0 is treated as 1).
    pub partitions: u32,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { scale: 10, seed: 42, partitions: 4 }
    }
}

/// One generated message: topic name, partition, key bytes (the id it is
/// keyed by) and the value line (no newline; may be invalid UTF-8 for
/// garbage lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: &'static str,
    pub partition: u32,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Counts written by [`write_files`], per topic (in [`TOPICS`] order) and in total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenReport {
    pub per_topic: Vec<(&'static str, u64)>,
    pub total: u64,
}

/// Every message in production order (deterministic for given options).
/// Streams: memory does not grow with the scale beyond per-id order state.
pub fn messages(opts: &GenOptions) -> impl Iterator<Item = Message> {
    Generator::new(opts)
}

/// Writes `<out>/<topic>/<partition>.jsonl` for every topic and partition
/// (files may be empty), one message value per line.
pub fn write_files(out: &Path, opts: &GenOptions) -> anyhow::Result<GenReport> {
    let parts = opts.partitions.max(1);
    let mut writers = Vec::with_capacity(TOPICS.len());
    for topic in TOPICS {
        let dir = out.join(topic);
        fs::create_dir_all(&dir)?;
        let mut files = Vec::with_capacity(parts as usize);
        for p in 0..parts {
            files.push(BufWriter::new(File::create(dir.join(format!("{p}.jsonl")))?));
        }
        writers.push(files);
    }
    let mut counts = [0u64; 7];
    for msg in messages(opts) {
        let t = topic_index(msg.topic);
        let w = &mut writers[t][msg.partition as usize];
        w.write_all(&msg.value)?;
        w.write_all(b"\n")?;
        counts[t] += 1;
    }
    for files in &mut writers {
        for w in files {
            w.flush()?;
        }
    }
    Ok(GenReport { per_topic: TOPICS.iter().copied().zip(counts).collect(), total: counts.iter().sum() })
}

fn topic_index(topic: &str) -> usize {
    TOPICS.iter().position(|t| *t == topic).unwrap_or(0)
}

/// Partition of a key: FNV-1a 64 of the key bytes modulo the partitions.
fn partition_of(key: &[u8], partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

// ---------------------------------------------------------------------------
// Volumes
// ---------------------------------------------------------------------------

/// Record counts per topic, in [`TOPICS`] order.
fn topic_counts(scale: u64) -> [u64; 7] {
    let (channels_new, channel_updates) = channel_volume(scale);
    [5_000 * scale, channels_new + channel_updates, 1_500 * scale, 2_000 * scale, 400 * scale, 400 * scale, 600 * scale]
}

/// Distinct channels (at most 300) and updates of existing channels.
fn channel_volume(scale: u64) -> (u64, u64) {
    let new = (80 * scale).min(300);
    (new, new / 5)
}

/// 85 % of the account and order records are creations, the rest updates.
fn new_share(total: u64) -> u64 {
    total * 85 / 100
}

/// Decides whether an upsert-style topic creates a new id now, so that the
/// creations are spread over the whole run and end exactly with it.
fn next_is_new(rng: &mut Rand, remaining: u64, created: u64, total_new: u64) -> bool {
    let new_left = total_new.saturating_sub(created);
    created == 0 || (new_left > 0 && rng.random_range(0..remaining.max(1)) < new_left)
}

// ---------------------------------------------------------------------------
// Sloppy JSON helpers (SPEC §1)
// ---------------------------------------------------------------------------

/// An integer as a JSON number or a JSON string.
fn int(rng: &mut Rand, v: i64) -> Value {
    if rng.random_bool(0.5) {
        Value::from(v)
    } else {
        Value::from(v.to_string())
    }
}

/// A nested object as an object or as a string holding its JSON.
fn nested(rng: &mut Rand, obj: Obj) -> Value {
    let v = Value::Object(obj);
    if rng.random_bool(STRINGIFY_P) {
        Value::String(v.to_string())
    } else {
        v
    }
}

/// NULL as `""`, `null` or a missing field.
fn put_null(rng: &mut Rand, obj: &mut Obj, k: &str) {
    match rng.random_range(0..3u8) {
        0 => {
            obj.insert(k.into(), Value::from(""));
        }
        1 => {
            obj.insert(k.into(), Value::Null);
        }
        _ => {}
    }
}

/// A value, or NULL in one of its three forms.
fn put_opt(rng: &mut Rand, obj: &mut Obj, k: &str, v: Option<Value>) {
    match v {
        Some(v) => {
            obj.insert(k.into(), v);
        }
        None => put_null(rng, obj, k),
    }
}

fn put(obj: &mut Obj, k: &str, v: impl Into<Value>) {
    obj.insert(k.into(), v.into());
}

/// Sometimes adds an unknown field that every parser must ignore.
fn extras(rng: &mut Rand, obj: &mut Obj) {
    if rng.random_bool(EXTRA_FIELD_P) {
        let trace: u64 = rng.random();
        put(obj, "trace_id", format!("{trace:016x}"));
    }
    if rng.random_bool(EXTRA_FIELD_P / 2.0) {
        put(obj, "v", 2);
    }
}

/// Weighted choice from a small static table.
fn pick<'a, T>(rng: &mut Rand, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total);
    for (item, w) in items {
        if r < *w {
            return item;
        }
        r -= w;
    }
    &items[items.len() - 1].0
}

/// `yyyy-MM-dd HH:mm:ss` of ms since the epoch, in UTC.
fn fmt_datetime(ms: i64) -> String {
    utc(ms).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `yyyy-MM-dd HH:mm:ss.SSS` of ms since the epoch, in UTC.
fn fmt_datetime_ms(ms: i64) -> String {
    utc(ms).format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// The UTC date-time of ms since the epoch (the generator's times are all well within chrono's range).
fn utc(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Garbage (SPEC §4)
// ---------------------------------------------------------------------------

/// Turns a record into one of the dead-letter shapes.
fn garbage(rng: &mut Rand, topic: usize, value: Value) -> Vec<u8> {
    match rng.random_range(0..6u8) {
        0 => truncated(rng, &value),
        1 => format!("[{value}]").into_bytes(),
        2 => {
            let scalars: [&[u8]; 4] = [b"42", b"\"x\"", b"null", b"true"];
            scalars[rng.random_range(0..scalars.len())].to_vec()
        }
        3 => Vec::new(),
        4 => invalid_utf8(value),
        _ => match wrong_type(rng, topic, value.clone()) {
            Some(v) => v.to_string().into_bytes(),
            None => truncated(rng, &value),
        },
    }
}

fn truncated(rng: &mut Rand, value: &Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    let cut = rng.random_range(1..bytes.len().max(2));
    bytes.truncate(cut);
    bytes
}

/// Valid JSON syntax but invalid UTF-8 inside the first key.
fn invalid_utf8(value: Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    let at = bytes.iter().position(|b| *b == b'"').map_or(0, |i| i + 1);
    bytes.splice(at..at, [0xff, 0xfe]);
    bytes
}

/// Parses a stringified nested object in place and returns it.
fn as_obj(v: &mut Value) -> Option<&mut Obj> {
    if let Value::String(s) = v {
        if let Ok(parsed) = serde_json::from_str::<Value>(s) {
            *v = parsed;
        }
    }
    v.as_object_mut()
}

/// A JSON object whose required typed field cannot be read as its type.
fn wrong_type(rng: &mut Rand, topic: usize, mut value: Value) -> Option<Value> {
    let obj = value.as_object_mut()?;
    let flip = rng.random_bool(0.5);
    match topic {
        TIMELINE => {
            let data = as_obj(obj.get_mut("data")?)?;
            put(data, "timestamp", "soon");
        }
        QOS => put(obj, "user_id", "abc"),
        AGORA if flip => put(obj, "user_id", "abc"),
        AGORA => put(obj, "messageCreateTime", "later"),
        ORDER if flip => put(obj, "cc_id", "x"),
        ORDER => put(obj, "status", "three"),
        _ => return None,
    }
    Some(value)
}

// ---------------------------------------------------------------------------
// Static vocabularies
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Target {
    Any,
    Match,
    Other,
}

/// (target_type, action, sub_action, target_id, weight): the 7 rules of
/// SPEC §2.1 first, then near misses that must match no rule.
type Signal = (&'static str, &'static str, Option<&'static str>, Target);
const SIGNALS: [(Signal, u32); 11] = [
    (("shape", "move", None, Target::Any), 20),
    (("shape", "mouse", Some("over"), Target::Any), 14),
    (("shape", "add", Some("line"), Target::Any), 10),
    (("template", "audio", Some("start"), Target::Any), 8),
    (("template", "audio", Some("pause"), Target::Any), 6),
    (("template", "match", Some("drop:wrong"), Target::Match), 6),
    (("template", "match", Some("drop:correct"), Target::Match), 7),
    (("shape", "mouse", Some("out"), Target::Any), 6),
    (("template", "audio", Some("stop"), Target::Any), 4),
    (("template", "match", Some("drop:wrong"), Target::Other), 4),
    (("template", "page", Some("turn"), Target::Any), 4),
];

const MOVE_SUB_ACTIONS: [&str; 3] = ["drag", "end", "start"];

const LEVELS: [(Option<&str>, u32); 7] =
    [(Some("A"), 25), (Some("B"), 25), (Some("C"), 20), (Some("D"), 15), (Some("E"), 6), (Some(""), 4), (None, 5)];

const USER_TYPES: [(Option<&str>, u32); 3] = [(Some("student"), 85), (Some("teacher"), 10), (None, 5)];

const AGORA_EVENTS: [(Option<&str>, u32); 4] = [(Some("stat"), 82), (Some("join"), 9), (Some("leave"), 6), (None, 3)];

const QOS_PLAY_EVENTS: [(&str, u32); 3] = [("PPT_PLAY", 50), ("PPT_PAGE", 40), ("PPT_LOADING", 10)];

const STATUSES: [(&str, u32); 3] = [("NORMAL", 90), ("LOCKED", 6), ("DELETED", 4)];

const ORDER_STATUSES: [(i64, u32); 5] = [(3, 70), (1, 12), (4, 9), (2, 5), (5, 4)];

const BASE_NAMES: [&str; 10] = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "Lucy", "Tom", "Amy", "Kevin"];

fn user_name(rng: &mut Rand, id: i64) -> String {
    let base = BASE_NAMES[rng.random_range(0..BASE_NAMES.len())];
    match rng.random_range(0..100u8) {
        0..=2 => format!("{base}测试"),
        3..=4 => format!("DM__{id}"),
        5..=6 => format!("DM_a{id}"),
        7..=8 => format!("{base}_test"),
        9..=10 => format!("Test{base}"),
        _ => format!("{base}{}", id % 1000),
    }
}

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

/// A recorded-course playback of one (user, classroom): plays, then success.
struct Session {
    user: i64,
    classroom: i64,
    user_type: Option<&'static str>,
    clock: i64,
    first: i64,
    page: i64,
    plays_left: u32,
    late_play: bool,
}

struct Generator {
    rng: Rand,
    partitions: u32,
    remaining: [u64; 7],
    totals: [u64; 7],
    index: i64,
    now: i64,
    rooms: i64,
    people: i64,
    channels: i64,
    channels_created: u64,
    students_created: u64,
    users_created: u64,
    /// Current status and whether `confirm_date_time` is set, per order.
    orders: Vec<(i64, bool)>,
    sessions: Vec<Session>,
    session_target: usize,
    timeline_max: Vec<i64>,
    agora_max: Vec<i64>,
}

impl Generator {
    fn new(opts: &GenOptions) -> Self {
        let scale = opts.scale;
        let parts = opts.partitions.max(1);
        let counts = topic_counts(scale);
        let people = new_share(counts[USER]).max(1) as i64;
        Generator {
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            partitions: parts,
            remaining: counts,
            totals: counts,
            index: 0,
            now: START_MS,
            rooms: (20 + 2 * scale).min(500) as i64,
            people,
            channels: channel_volume(scale).0.max(1) as i64,
            channels_created: 0,
            students_created: 0,
            users_created: 0,
            orders: Vec::new(),
            sessions: Vec::new(),
            session_target: (8 + scale as usize).min(200),
            timeline_max: vec![i64::MIN; parts as usize],
            agora_max: vec![i64::MIN; parts as usize],
        }
    }

    /// Random merge of the topics, proportional to their remaining records.
    fn pick_topic(&mut self) -> Option<usize> {
        let total: u64 = self.remaining.iter().sum();
        if total == 0 {
            return None;
        }
        let mut r = self.rng.random_range(0..total);
        for (t, n) in self.remaining.iter_mut().enumerate() {
            if r < *n {
                *n -= 1;
                return Some(t);
            }
            r -= *n;
        }
        None
    }

    fn record(&mut self, topic: usize) -> (String, Value) {
        match topic {
            TIMELINE => self.timeline(),
            CHANNEL => self.channel(),
            QOS => self.qos(),
            AGORA => self.agora(),
            STUDENT => self.student(),
            USER => self.user(),
            _ => self.order(),
        }
    }

    fn partition_index(&self, key: &str) -> usize {
        partition_of(key.as_bytes(), self.partitions) as usize
    }

    fn student_in_room(&mut self, room: i64) -> i64 {
        let j = self.rng.random_range(0..STUDENTS_PER_ROOM);
        PEOPLE_BASE + 1 + (room * STUDENTS_PER_ROOM + j) % self.people
    }

    fn any_person(&mut self) -> i64 {
        PEOPLE_BASE + 1 + self.rng.random_range(0..self.people)
    }

    /// Event time near the clock, or (rarely) well behind the partition's
    /// latest event time so that it is late.
    fn event_time(rng: &mut Rand, max: &mut i64, now: i64, jitter: i64) -> i64 {
        if *max != i64::MIN && rng.random_bool(LATE_P) {
            return *max - rng.random_range(120_000..=600_000);
        }
        let t = now + rng.random_range(-jitter..=jitter);
        *max = (*max).max(t);
        t
    }

    // -- timeline_client_topic ------------------------------------------------

    fn timeline(&mut self) -> (String, Value) {
        let room = self.rng.random_range(0..self.rooms);
        let teacher = self.rng.random_bool(0.08);
        let user = if teacher { TEACHER_BASE + room } else { self.student_in_room(room) };
        let key = user.to_string();
        let p = self.partition_index(&key);
        let rng = &mut self.rng;
        let ts = Self::event_time(rng, &mut self.timeline_max[p], self.now, TIMELINE_JITTER_MS);
        let msg = self.timeline_msg();
        let rng = &mut self.rng;
        let mut data = Obj::new();
        put(&mut data, "userid", int(rng, user));
        put(&mut data, "roomId", int(rng, ROOM_BASE + room));
        put(&mut data, "timestamp", int(rng, ts));
        put(&mut data, "role", int(rng, if teacher { 1 } else { 2 }));
        let msgid = if rng.random_bool(0.95) { 305 } else { 306 };
        put(&mut data, "msgid", int(rng, msgid));
        put(&mut data, "msg", msg);
        extras(rng, &mut data);
        let mut top = Obj::new();
        let created = ts + rng.random_range(0..300);
        put(&mut top, "createTime", fmt_datetime_ms(created));
        put(&mut top, "data", nested(rng, data));
        extras(rng, &mut top);
        (key, Value::Object(top))
    }

    fn timeline_msg(&mut self) -> Value {
        let rng = &mut self.rng;
        let (target_type, action, sub_action, target) = *pick(rng, &SIGNALS);
        let sub_action = match (action, sub_action) {
            ("move", None) if rng.random_bool(0.7) => {
                Some(MOVE_SUB_ACTIONS[rng.random_range(0..MOVE_SUB_ACTIONS.len())])
            }
            _ => sub_action,
        };
        let target_id = match target {
            Target::Any => format!("shape_{}", rng.random_range(1..60)),
            Target::Match => "match".to_string(),
            Target::Other => "other".to_string(),
        };
        let mut md = Obj::new();
        put(&mut md, "target_id", target_id);
        put(&mut md, "target_type", target_type);
        put(&mut md, "action", action);
        put_opt(rng, &mut md, "sub_action", sub_action.map(Value::from));
        let page = rng.random_range(0..20);
        put(&mut md, "page_index", int(rng, page));
        let mut msg = Obj::new();
        let msgtype = if rng.random_bool(0.96) { 116 } else { 117 };
        put(&mut msg, "msgtype", int(rng, msgtype));
        put(&mut msg, "msg_data", nested(rng, md));
        nested(rng, msg)
    }

    // -- blink_stg_activity__channel_name_dictionary_da -------------------------

    fn channel(&mut self) -> (String, Value) {
        let rng = &mut self.rng;
        let total_new = self.channels as u64;
        let is_new = next_is_new(rng, self.remaining[CHANNEL] + 1, self.channels_created, total_new);
        let k = if is_new {
            self.channels_created += 1;
            self.channels_created as i64
        } else {
            rng.random_range(1..=self.channels_created as i64)
        };
        let id = format!("c{k}");
        let mut obj = Obj::new();
        put(&mut obj, "id", id.clone());
        put(&mut obj, "chinese_name", format!("渠道{k}"));
        put(&mut obj, "english_name", format!("channel_{k}"));
        let level = pick(rng, &LEVELS).map(Value::from);
        put_opt(rng, &mut obj, "level", level);
        let pid = if k > 5 { format!("c{}", k % 5 + 1) } else { "0".into() };
        put(&mut obj, "pid", pid);
        put(&mut obj, "create_time", fmt_datetime(START_MS - 30 * DAY_MS + k * 60_000));
        put(&mut obj, "update_time", fmt_datetime(self.now));
        put(&mut obj, "dept_id", int(rng, 10 + k % 7));
        extras(rng, &mut obj);
        (id, Value::Object(obj))
    }

    // -- qos_log ----------------------------------------------------------------

    fn qos(&mut self) -> (String, Value) {
        if self.sessions.len() < self.session_target || self.rng.random_bool(0.05) {
            self.start_session();
        }
        let i = self.rng.random_range(0..self.sessions.len());
        let (sub_event, data_time, done) = self.session_step(i);
        let s = &self.sessions[i];
        let (user, classroom, user_type, page) = (s.user, s.classroom, s.user_type, s.page);
        if done {
            self.sessions.swap_remove(i);
        }
        let rng = &mut self.rng;
        let mut obj = Obj::new();
        put(&mut obj, "classroom_id", int(rng, classroom));
        put_opt(rng, &mut obj, "user_type", user_type.map(Value::from));
        put(&mut obj, "user_id", int(rng, user));
        let event_time = self.now + rng.random_range(0..1_000);
        put(&mut obj, "event_time", int(rng, event_time));
        put(&mut obj, "sub_event", sub_event);
        let mut msg = Obj::new();
        put(&mut msg, "pptIndex", int(rng, page));
        extras(rng, &mut msg);
        let mut extra = Obj::new();
        put(&mut extra, "data_time", int(rng, data_time));
        put(&mut extra, "msg", nested(rng, msg));
        put(&mut obj, "extra", nested(rng, extra));
        extras(rng, &mut obj);
        (user.to_string(), Value::Object(obj))
    }

    fn start_session(&mut self) {
        let user = self.any_person();
        let rng = &mut self.rng;
        let classroom = RECORDED_ROOM_BASE + rng.random_range(0..self.rooms);
        let clock = self.now - rng.random_range(0..5_000);
        self.sessions.push(Session {
            user,
            classroom,
            user_type: *pick(rng, &USER_TYPES),
            clock,
            first: clock,
            page: 0,
            plays_left: rng.random_range(0..8),
            late_play: false,
        });
    }

    /// Next (sub_event, data_time) of a session, and whether it is over.
    fn session_step(&mut self, i: usize) -> (&'static str, i64, bool) {
        let rng = &mut self.rng;
        let s = &mut self.sessions[i];
        if s.late_play {
            return ("PPT_PLAY", s.first - rng.random_range(1_000..30_000), true);
        }
        if s.plays_left > 0 {
            s.plays_left -= 1;
            let sub = if s.page == 0 { "PPT_PLAY" } else { *pick(rng, &QOS_PLAY_EVENTS) };
            let t = s.clock;
            s.page += 1;
            s.clock += rng.random_range(2_000..60_000);
            return (sub, t, false);
        }
        let t = s.clock + rng.random_range(1_000..10_000);
        s.late_play = rng.random_bool(0.08);
        ("PPT_SUCCESS", t, !s.late_play)
    }

    // -- agora_record -------------------------------------------------------------

    fn agora(&mut self) -> (String, Value) {
        let room = self.rng.random_range(0..self.rooms);
        let student = self.rng.random_bool(0.9);
        let user = if student { self.student_in_room(room) } else { TEACHER_BASE + room };
        let rng = &mut self.rng;
        let user_id = (!rng.random_bool(0.02)).then_some(user);
        let key = user_id.map(|u| u.to_string()).unwrap_or_default();
        let p = partition_of(key.as_bytes(), self.partitions) as usize;
        let t = Self::event_time(rng, &mut self.agora_max[p], self.now, AGORA_JITTER_MS);
        let mut obj = Obj::new();
        let classroom = (!rng.random_bool(0.02)).then(|| int(rng, ROOM_BASE + room));
        put_opt(rng, &mut obj, "classroom_id", classroom);
        let user_type = match rng.random_range(0..50u8) {
            0 => None,
            _ if student => Some("student"),
            _ => Some("teacher"),
        };
        put_opt(rng, &mut obj, "user_type", user_type.map(Value::from));
        let uid = user_id.map(|u| int(rng, u));
        put_opt(rng, &mut obj, "user_id", uid);
        let chan = (!rng.random_bool(0.02)).then(|| int(rng, AGORA_CHANNEL_BASE + room));
        put_opt(rng, &mut obj, "agora_channel_id", chan);
        let event = pick(rng, &AGORA_EVENTS).map(Value::from);
        put_opt(rng, &mut obj, "event", event);
        Self::agora_state(rng, &mut obj, "agora_videoState", "fr", 0..31, user);
        Self::agora_state(rng, &mut obj, "agora_audioState", "lost", 0..12, user);
        put(&mut obj, "messageCreateTime", int(rng, t));
        extras(rng, &mut obj);
        (key, Value::Object(obj))
    }

    /// `{<metric>, uid}` with the metric sometimes -1 or missing, the uid
    /// sometimes NULL, and the whole state sometimes missing.
    fn agora_state(rng: &mut Rand, obj: &mut Obj, name: &str, metric: &str, range: std::ops::Range<i64>, user: i64) {
        if rng.random_bool(0.03) {
            return;
        }
        let mut state = Obj::new();
        match rng.random_range(0..100u8) {
            0..=4 => put(&mut state, metric, int(rng, -1)),
            5..=9 => put_null(rng, &mut state, metric),
            _ => {
                let v = rng.random_range(range);
                put(&mut state, metric, int(rng, v));
            }
        }
        let uid = (!rng.random_bool(0.04)).then(|| int(rng, user));
        put_opt(rng, &mut state, "uid", uid);
        obj.insert(name.into(), nested(rng, state));
    }

    // -- uc_account-student ----------------------------------------------------------

    fn student(&mut self) -> (String, Value) {
        let rng = &mut self.rng;
        let total_new = new_share(self.totals[STUDENT]);
        let is_new = next_is_new(rng, self.remaining[STUDENT] + 1, self.students_created, total_new);
        let k = if is_new {
            self.students_created += 1;
            self.students_created as i64
        } else {
            rng.random_range(1..=self.students_created as i64)
        };
        let id = (PEOPLE_BASE + k).to_string();
        let mut obj = Obj::new();
        put(&mut obj, "id", id.clone());
        let channel = match rng.random_range(0..100u8) {
            0..=2 => Some(Value::from("c9999")),
            3..=9 => None,
            _ => Some(Value::from(format!("c{}", rng.random_range(1..=self.channels)))),
        };
        // An update often sends channel_id as NULL, which must not erase it.
        let channel = if !is_new && rng.random_bool(0.4) { None } else { channel };
        put_opt(rng, &mut obj, "channel_id", channel);
        put(&mut obj, "update_time", fmt_datetime(self.now));
        extras(rng, &mut obj);
        (id, Value::Object(obj))
    }

    // -- uc_account-user ----------------------------------------------------------------

    fn user(&mut self) -> (String, Value) {
        let rng = &mut self.rng;
        let total_new = new_share(self.totals[USER]);
        let is_new = next_is_new(rng, self.remaining[USER] + 1, self.users_created, total_new);
        let k = if is_new {
            self.users_created += 1;
            self.users_created as i64
        } else {
            rng.random_range(1..=self.users_created as i64)
        };
        let id_num = PEOPLE_BASE + k;
        let id = id_num.to_string();
        let mut obj = Obj::new();
        put(&mut obj, "id", id.clone());
        if is_new {
            Self::new_user(rng, &mut obj, id_num);
        } else {
            Self::user_update(rng, &mut obj, id_num);
        }
        extras(rng, &mut obj);
        (id, Value::Object(obj))
    }

    fn new_user(rng: &mut Rand, obj: &mut Obj, id: i64) {
        put(obj, "name", user_name(rng, id));
        let reg = if rng.random_bool(0.01) {
            "2025/12/02 8点".to_string()
        } else {
            fmt_datetime(START_MS - rng.random_range(0..3 * DAY_MS))
        };
        put(obj, "register_date_time", reg);
        put(obj, "status", *pick(rng, &STATUSES));
    }

    /// A later change of a user: status change, or fields sent as NULL that
    /// must not erase the old values (LAST_VALUE semantics).
    fn user_update(rng: &mut Rand, obj: &mut Obj, id: i64) {
        match rng.random_range(0..100u8) {
            0..=49 => {
                put_null(rng, obj, "name");
                put(obj, "status", *pick(rng, &STATUSES));
            }
            50..=74 => {
                put_null(rng, obj, "name");
                put_null(rng, obj, "status");
            }
            75..=84 => {
                put(obj, "name", user_name(rng, id));
                put_null(rng, obj, "status");
            }
            _ => {
                put(obj, "status", "NORMAL");
            }
        }
        put_null(rng, obj, "register_date_time");
    }

    // -- data_pack_order_info ----------------------------------------------------------

    fn order(&mut self) -> (String, Value) {
        let total_new = new_share(self.totals[ORDER]);
        let created = self.orders.len() as u64;
        let is_new = next_is_new(&mut self.rng, self.remaining[ORDER] + 1, created, total_new);
        let mut obj = Obj::new();
        let k = if is_new {
            let student = self.any_person();
            self.new_order(&mut obj, student)
        } else {
            self.order_update(&mut obj)
        };
        let id = (ORDER_BASE + k as i64).to_string();
        let rng = &mut self.rng;
        obj.insert("id".into(), Value::from(id.clone()));
        put(&mut obj, "update_time", fmt_datetime(self.now));
        extras(rng, &mut obj);
        (id, Value::Object(obj))
    }

    fn confirm_time(rng: &mut Rand) -> String {
        fmt_datetime(START_MS - rng.random_range(0..4 * DAY_MS))
    }

    fn new_order(&mut self, obj: &mut Obj, student: i64) -> usize {
        let rng = &mut self.rng;
        let k = self.orders.len();
        let status = *pick(rng, &ORDER_STATUSES);
        let cc_num = CC_BASE + rng.random_range(0..CC_COUNT);
        let cc = (!rng.random_bool(0.03)).then(|| int(rng, cc_num));
        put_opt(rng, obj, "cc_id", cc);
        put(obj, "student_id", student.to_string());
        put(obj, "order_id", format!("SO{:08}", 10_000 + k));
        put(obj, "leads_id", int(rng, 5_000_000 + k as i64));
        let confirmed = status != 1 && !rng.random_bool(0.1);
        let confirm = confirmed.then(|| Value::from(Self::confirm_time(rng)));
        put_opt(rng, obj, "confirm_date_time", confirm);
        put(obj, "create_time", fmt_datetime(self.now));
        let ordered = self.now - rng.random_range(0..7 * DAY_MS);
        put(obj, "order_create_time", fmt_datetime(ordered));
        let canceled = (status == 4).then(|| Value::from(fmt_datetime(self.now)));
        put_opt(rng, obj, "canceled_date_time", canceled);
        put_opt(rng, obj, "apply_refund_date", None);
        put(obj, "status", int(rng, status));
        self.orders.push((status, confirmed));
        k
    }

    /// A partial update of an existing order: 3 → 4, 1 → 3, or NULL fields.
    fn order_update(&mut self, obj: &mut Obj) -> usize {
        let rng = &mut self.rng;
        let k = rng.random_range(0..self.orders.len());
        let (status, confirmed) = self.orders[k];
        let next = match status {
            3 if rng.random_bool(0.5) => 4,
            1 => 3,
            s => s,
        };
        if next == 4 && status == 3 {
            put(obj, "apply_refund_date", fmt_datetime(self.now));
            put(obj, "canceled_date_time", fmt_datetime(self.now));
        }
        let newly_confirmed = next == 3 && !confirmed;
        if newly_confirmed {
            put(obj, "confirm_date_time", Self::confirm_time(rng));
        } else {
            put_null(rng, obj, "confirm_date_time");
        }
        put_null(rng, obj, "cc_id");
        put(obj, "status", int(rng, next));
        self.orders[k] = (next, confirmed || newly_confirmed);
        k
    }
}

impl Iterator for Generator {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        let topic = self.pick_topic()?;
        self.now = START_MS + self.index * TICK_MS;
        self.index += 1;
        let (key, value) = self.record(topic);
        let partition = partition_of(key.as_bytes(), self.partitions);
        let value = if self.rng.random_bool(GARBAGE_P) {
            garbage(&mut self.rng, topic, value)
        } else {
            value.to_string().into_bytes()
        };
        Some(Message { topic: TOPICS[topic], partition, key: key.into_bytes(), value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn opts(scale: u64, seed: u64) -> GenOptions {
        GenOptions { scale, seed, partitions: 4 }
    }

    fn all(o: &GenOptions) -> Vec<Message> {
        messages(o).collect()
    }

    /// Parses a line as a JSON object (None for garbage that is not one).
    fn parse(m: &Message) -> Option<Value> {
        let s = std::str::from_utf8(&m.value).ok()?;
        serde_json::from_str::<Value>(s).ok().filter(Value::is_object)
    }

    /// Follows a path, unwrapping nested objects sent as strings.
    fn get(v: &Value, path: &[&str]) -> Option<Value> {
        let mut cur = v.clone();
        for k in path {
            if let Value::String(s) = &cur {
                cur = serde_json::from_str(s).ok()?;
            }
            cur = cur.get(*k)?.clone();
        }
        Some(cur)
    }

    /// A scalar read as a string; NULL (`""`, `null`, missing) is None.
    fn text(v: &Value, path: &[&str]) -> Option<String> {
        match get(v, path)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A present scalar that is not an integer: a wrong-type dead letter.
    fn bad_int(v: &Value, path: &[&str]) -> bool {
        text(v, path).is_some_and(|s| s.parse::<i64>().is_err())
    }

    fn is_dead(m: &Message) -> bool {
        let Some(v) = parse(m) else { return true };
        match m.topic {
            "timeline_client_topic" => bad_int(&v, &["data", "timestamp"]),
            "qos_log" => bad_int(&v, &["user_id"]),
            "agora_record" => bad_int(&v, &["user_id"]) || bad_int(&v, &["messageCreateTime"]),
            "data_pack_order_info" => bad_int(&v, &["cc_id"]) || bad_int(&v, &["status"]),
            _ => false,
        }
    }

    fn id_path(topic: &str) -> &'static [&'static str] {
        match topic {
            "timeline_client_topic" => &["data", "userid"],
            "qos_log" | "agora_record" => &["user_id"],
            _ => &["id"],
        }
    }

    /// Share of late records per SPEC §3 (per-partition max minus delay).
    fn late_share(msgs: &[Message], topic: &str, path: &[&str], delay: i64) -> f64 {
        let mut max: BTreeMap<u32, i64> = BTreeMap::new();
        let (mut late, mut n) = (0u64, 0u64);
        for m in msgs.iter().filter(|m| m.topic == topic) {
            n += 1;
            let Some(t) = parse(m).and_then(|v| text(&v, path)?.parse::<i64>().ok()) else {
                continue;
            };
            let w = max.entry(m.partition).or_insert(i64::MIN);
            if *w != i64::MIN && t < *w - delay {
                late += 1;
            }
            *w = (*w).max(t);
        }
        late as f64 / n.max(1) as f64
    }

    fn rule(v: &Value) -> Option<&'static str> {
        let f = |p: &[&str]| text(v, p).unwrap_or_default();
        let md = |k: &str| f(&["data", "msg", "msg_data", k]);
        if f(&["data", "msgid"]) != "305" || f(&["data", "msg", "msgtype"]) != "116" || f(&["data", "role"]) != "2" {
            return None;
        }
        let t = (md("target_type"), md("action"), md("sub_action"), md("target_id"));
        match (t.0.as_str(), t.1.as_str(), t.2.as_str(), t.3.as_str()) {
            ("shape", "move", _, _) => Some("MOVE_IMAGE"),
            ("shape", "mouse", "over", _) => Some("HOVER_IMAGE"),
            ("shape", "add", _, _) => Some("DRAW_LINE"),
            ("template", "audio", "start", _) => Some("AUDIO_PLAY"),
            ("template", "audio", "pause", _) => Some("AUDIO_PAUSE"),
            ("template", "match", "drop:wrong", "match") => Some("MATCH_WRONG"),
            ("template", "match", "drop:correct", "match") => Some("MATCH_CORRECT"),
            _ => None,
        }
    }

    #[test]
    fn datetime_format() {
        assert_eq!(fmt_datetime(START_MS), "2025-12-02 08:00:00");
        assert_eq!(fmt_datetime_ms(START_MS + 1_234), "2025-12-02 08:00:01.234");
        assert_eq!(fmt_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_datetime(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn same_options_same_bytes() -> anyhow::Result<()> {
        let o = opts(1, 7);
        assert_eq!(all(&o), all(&o));
        let base = std::env::temp_dir().join(format!("edu-rtdw-gen-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        let ra = write_files(&a, &o)?;
        let rb = write_files(&b, &o)?;
        assert_eq!(ra, rb);
        for topic in TOPICS {
            for p in 0..o.partitions {
                let f = format!("{p}.jsonl");
                assert_eq!(fs::read(a.join(topic).join(&f))?, fs::read(b.join(topic).join(&f))?);
            }
        }
        fs::remove_dir_all(&base)?;
        Ok(())
    }

    #[test]
    fn different_seed_differs() {
        assert_ne!(all(&opts(1, 1)), all(&opts(1, 2)));
    }

    #[test]
    fn every_topic_non_empty_and_volume() {
        let msgs = all(&opts(1, 42));
        for topic in TOPICS {
            assert!(msgs.iter().any(|m| m.topic == topic), "{topic} empty");
        }
        assert!((9_000..=10_000).contains(&msgs.len()), "{}", msgs.len());
        assert!(msgs.iter().all(|m| !m.value.contains(&b'\n')));
    }

    #[test]
    fn every_signal_rule_appears() {
        let msgs = all(&opts(1, 42));
        let seen: BTreeSet<_> =
            msgs.iter().filter(|m| m.topic == TOPICS[TIMELINE]).filter_map(parse).filter_map(|v| rule(&v)).collect();
        assert_eq!(seen.len(), 7, "{seen:?}");
    }

    #[test]
    fn nested_as_string_and_object() {
        let msgs = all(&opts(1, 42));
        let paths: [(&str, &[&str]); 7] = [
            ("timeline_client_topic", &["data"]),
            ("timeline_client_topic", &["data", "msg"]),
            ("timeline_client_topic", &["data", "msg", "msg_data"]),
            ("qos_log", &["extra"]),
            ("qos_log", &["extra", "msg"]),
            ("agora_record", &["agora_videoState"]),
            ("agora_record", &["agora_audioState"]),
        ];
        for (topic, path) in paths {
            let kinds: BTreeSet<bool> = msgs
                .iter()
                .filter(|m| m.topic == topic)
                .filter_map(parse)
                .filter_map(|v| get(&v, path))
                .map(|v| v.is_string())
                .collect();
            assert_eq!(kinds.len(), 2, "{topic} {path:?}");
        }
    }

    #[test]
    fn scalars_as_strings_and_numbers() {
        let msgs = all(&opts(1, 42));
        let kinds: BTreeSet<bool> = msgs
            .iter()
            .filter(|m| m.topic == "agora_record")
            .filter_map(parse)
            .filter_map(|v| get(&v, &["messageCreateTime"]))
            .map(|v| v.is_string())
            .collect();
        assert_eq!(kinds.len(), 2);
    }

    #[test]
    fn one_id_one_partition() {
        let msgs = all(&opts(1, 42));
        let mut seen: BTreeMap<(&str, String), u32> = BTreeMap::new();
        for m in &msgs {
            let id = parse(m).filter(|_| !is_dead(m)).and_then(|v| text(&v, id_path(m.topic)));
            if let Some(id) = id {
                assert_eq!(id.as_bytes(), m.key.as_slice(), "{}", m.topic);
            }
            let p = *seen.entry((m.topic, String::from_utf8_lossy(&m.key).into())).or_insert(m.partition);
            assert_eq!(p, m.partition);
        }
        assert_eq!(seen.values().collect::<BTreeSet<_>>().len(), 4);
    }

    #[test]
    fn garbage_and_late_shares() {
        let msgs = all(&opts(2, 42));
        let dead = msgs.iter().filter(|m| is_dead(m)).count() as f64 / msgs.len() as f64;
        assert!((0.003..0.008).contains(&dead), "garbage share {dead}");
        let tl = late_share(&msgs, "timeline_client_topic", &["data", "timestamp"], 5_000);
        let ag = late_share(&msgs, "agora_record", &["messageCreateTime"], 60_000);
        assert!((0.0005..0.005).contains(&tl), "timeline late {tl}");
        assert!((0.0005..0.005).contains(&ag), "agora late {ag}");
    }

    #[test]
    fn garbage_kinds_appear() {
        let msgs = all(&opts(2, 42));
        let dead: Vec<_> = msgs.iter().filter(|m| is_dead(m)).collect();
        assert!(dead.iter().any(|m| m.value.is_empty()));
        assert!(dead.iter().any(|m| std::str::from_utf8(&m.value).is_err()));
        assert!(dead.iter().any(|m| m.value.first() == Some(&b'[')));
        assert!(dead.iter().any(|m| parse(m).is_some()), "wrong-type objects");
    }

    /// Prints the volumes and shares at scale 10 (`cargo test -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn stats_scale_10() {
        let msgs = all(&GenOptions::default());
        for topic in TOPICS {
            let n = msgs.iter().filter(|m| m.topic == topic).count();
            let d = msgs.iter().filter(|m| m.topic == topic && is_dead(m)).count();
            println!("{topic}: {n} records, {d} dead");
        }
        let dead = msgs.iter().filter(|m| is_dead(m)).count();
        println!("total {} garbage {:.4}", msgs.len(), dead as f64 / msgs.len() as f64);
        let tl = late_share(&msgs, "timeline_client_topic", &["data", "timestamp"], 5_000);
        let ag = late_share(&msgs, "agora_record", &["messageCreateTime"], 60_000);
        println!("late timeline {tl:.5} agora {ag:.5}");
    }
}
