//! The generator itself: the seeded record stream of every topic (sessions,
//! rooms, people, orders and their later updates), one record at a time.
//!
//! Two modes share every record maker: `gen`'s finite run ([`Generator::new`],
//! the clock at `START_MS + i × TICK_MS` for record `i`) and the endless live
//! feed's ([`Generator::live`], the clock given per record by
//! [`Generator::next_at`]).

use super::sloppy::*;
use super::*;

#[derive(Clone, Copy)]
pub(super) enum Target {
    Any,
    Match,
    Other,
}

/// (target_type, action, sub_action, target_id, weight): the 7 rules of
/// SPEC §2.1 first, then near misses that must match no rule.
pub(super) type Signal = (&'static str, &'static str, Option<&'static str>, Target);
pub(super) const SIGNALS: [(Signal, u32); 11] = [
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

pub(super) const MOVE_SUB_ACTIONS: [&str; 3] = ["drag", "end", "start"];

pub(super) const LEVELS: [(Option<&str>, u32); 7] =
    [(Some("A"), 25), (Some("B"), 25), (Some("C"), 20), (Some("D"), 15), (Some("E"), 6), (Some(""), 4), (None, 5)];

pub(super) const USER_TYPES: [(Option<&str>, u32); 3] = [(Some("student"), 85), (Some("teacher"), 10), (None, 5)];

pub(super) const AGORA_EVENTS: [(Option<&str>, u32); 4] =
    [(Some("stat"), 82), (Some("join"), 9), (Some("leave"), 6), (None, 3)];

pub(super) const QOS_PLAY_EVENTS: [(&str, u32); 3] = [("PPT_PLAY", 50), ("PPT_PAGE", 40), ("PPT_LOADING", 10)];

pub(super) const STATUSES: [(&str, u32); 3] = [("NORMAL", 90), ("LOCKED", 6), ("DELETED", 4)];

pub(super) const ORDER_STATUSES: [(i64, u32); 5] = [(3, 70), (1, 12), (4, 9), (2, 5), (5, 4)];

pub(super) const BASE_NAMES: [&str; 10] =
    ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "Lucy", "Tom", "Amy", "Kevin"];

pub(super) fn user_name(rng: &mut Rand, id: i64) -> String {
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
pub(super) struct Session {
    user: i64,
    classroom: i64,
    user_type: Option<&'static str>,
    clock: i64,
    first: i64,
    page: i64,
    plays_left: u32,
    late_play: bool,
}

pub(super) struct Generator {
    rng: Rand,
    /// The start of the run: `gen`'s `START_MS`, or when the live feed started. Dates that
    /// lie before the run (registrations, confirmations, channel creations) are relative to it.
    start: i64,
    /// Endless live mode: topics drawn with fixed weights (`totals`), ids created with
    /// fixed shares up to caps; else `gen`'s finite run of `remaining` records.
    live: bool,
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
    pub(super) fn new(opts: &GenOptions) -> Self {
        let scale = opts.scale;
        let parts = opts.partitions.max(1);
        let counts = topic_counts(scale);
        let people = new_share(counts[USER]).max(1) as i64;
        Generator {
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            start: START_MS,
            live: false,
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

    /// The endless generator of the live feed: the mix, population and shares of `gen
    /// --scale 10`, dates before the run relative to `start_ms`; the clock is given per
    /// record ([`Generator::next_at`]).
    pub(super) fn live(seed: u64, partitions: u32, start_ms: i64) -> Self {
        let mut g = Generator::new(&GenOptions { scale: LIVE_SCALE, seed, partitions });
        g.start = start_ms;
        g.now = start_ms;
        g.live = true;
        g
    }

    /// Random merge of the topics, proportional to their remaining records (live: to
    /// their fixed weights).
    fn pick_topic(&mut self) -> Option<usize> {
        if self.live {
            let mut r = self.rng.random_range(0..self.totals.iter().sum::<u64>());
            for (t, n) in self.totals.iter().enumerate() {
                if r < *n {
                    return Some(t);
                }
                r -= *n;
            }
            return None;
        }
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

    /// Whether an upsert-style topic creates a new id now (else it updates one of the
    /// `created` ones): spread so that `total_new` creations end with the run in `gen`; in
    /// the live feed, with `gen`'s share of creations up to a cap of distinct ids.
    fn creates(&mut self, topic: usize, created: u64, total_new: u64) -> bool {
        if !self.live {
            return next_is_new(&mut self.rng, self.remaining[topic] + 1, created, total_new);
        }
        let (cap, share) = match topic {
            CHANNEL => (total_new, 5.0 / 6.0),
            ORDER => (LIVE_MAX_ORDERS, 0.85),
            _ => (LIVE_MAX_PEOPLE, 0.85),
        };
        created == 0 || (created < cap && self.rng.random_bool(share))
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
        let is_new = self.creates(CHANNEL, self.channels_created, self.channels as u64);
        let rng = &mut self.rng;
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
        put(&mut obj, "create_time", fmt_datetime(self.start - 30 * DAY_MS + k * 60_000));
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
        let is_new = self.creates(STUDENT, self.students_created, new_share(self.totals[STUDENT]));
        let rng = &mut self.rng;
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
        let is_new = self.creates(USER, self.users_created, new_share(self.totals[USER]));
        let rng = &mut self.rng;
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
            Self::new_user(rng, &mut obj, id_num, self.start);
        } else {
            Self::user_update(rng, &mut obj, id_num);
        }
        extras(rng, &mut obj);
        (id, Value::Object(obj))
    }

    fn new_user(rng: &mut Rand, obj: &mut Obj, id: i64, start: i64) {
        put(obj, "name", user_name(rng, id));
        let reg = if rng.random_bool(0.01) {
            "2025/12/02 8点".to_string()
        } else {
            fmt_datetime(start - rng.random_range(0..3 * DAY_MS))
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
        let is_new = self.creates(ORDER, self.orders.len() as u64, new_share(self.totals[ORDER]));
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

    fn confirm_time(rng: &mut Rand, start: i64) -> String {
        fmt_datetime(start - rng.random_range(0..4 * DAY_MS))
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
        let confirm = confirmed.then(|| Value::from(Self::confirm_time(rng, self.start)));
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
            put(obj, "confirm_date_time", Self::confirm_time(rng, self.start));
        } else {
            put_null(rng, obj, "confirm_date_time");
        }
        put_null(rng, obj, "cc_id");
        put(obj, "status", int(rng, next));
        self.orders[k] = (next, confirmed || newly_confirmed);
        k
    }
}

impl Generator {
    /// The next message, made with the clock at `now` (ms); `None` once a `gen` run is over
    /// (never in live mode).
    pub(super) fn next_at(&mut self, now: i64) -> Option<Message> {
        let topic = self.pick_topic()?;
        self.now = now;
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

impl Iterator for Generator {
    type Item = Message;

    /// `gen`'s clock: record `i` at `START_MS + i × TICK_MS`.
    fn next(&mut self) -> Option<Message> {
        self.next_at(self.start + self.index * TICK_MS)
    }
}
