//! Black-box cases for every clause of SPEC §§1–4: each test writes a small
//! file-replay input (`<dir>/<topic>/<partition>.jsonl`), runs the real
//! `edu-rtdw run --input-dir DIR --sqlite PATH -q`, and compares whole tables
//! of the SQLite file with rows derived **by hand from SPEC** (the derivation
//! is in the comments next to each expectation), not from the program.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::rc::Rc;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const SIGNALS: &str = "timeline_client_topic";
const CHANNELS: &str = "blink_stg_activity__channel_name_dictionary_da";
const QOS: &str = "qos_log";
const AGORA: &str = "agora_record";
const STUDENTS: &str = "uc_account-student";
const USERS: &str = "uc_account-user";
const ORDERS: &str = "data_pack_order_info";

/// 2024-01-01 00:00:00.000 UTC in ms.
const T0: i64 = 1_704_067_200_000;
const MINUTE: i64 = 60_000;

/// A file-replay input directory; each `run` writes a fresh SQLite file.
struct Replay {
    tmp: Rc<tempfile::TempDir>,
    runs: usize,
}

impl Replay {
    fn new() -> Self {
        Replay { tmp: Rc::new(tempfile::tempdir().expect("tempdir")), runs: 0 }
    }

    /// Writes `lines` (raw bytes, one message each) as `<topic>/<partition>.jsonl`.
    fn raw(&mut self, topic: &str, partition: u32, lines: &[&[u8]]) -> &mut Self {
        let dir = self.tmp.path().join("input").join(topic);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        std::fs::write(dir.join(format!("{partition}.jsonl")), bytes).expect("write partition");
        self
    }

    /// Writes JSON values, one per line, as `<topic>/<partition>.jsonl`.
    fn json(&mut self, topic: &str, partition: u32, values: &[Value]) -> &mut Self {
        let lines: Vec<String> = values.iter().map(Value::to_string).collect();
        let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        self.raw(topic, partition, &refs)
    }

    /// Runs the binary with `extra` flags; panics unless it exits 0.
    fn run(&mut self, extra: &[&str]) -> Db {
        self.runs += 1;
        let db = self.tmp.path().join(format!("out{}.db", self.runs));
        let out = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
            .arg("run")
            .arg("--input-dir")
            .arg(self.tmp.path().join("input"))
            .arg("--sqlite")
            .arg(&db)
            .arg("-q")
            .args(extra)
            .current_dir(self.tmp.path())
            .output()
            .expect("spawn edu-rtdw");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "edu-rtdw exited {:?}: {stderr}", out.status.code());
        assert!(!stderr.contains("panicked"), "edu-rtdw panicked: {stderr}");
        Db { path: db, _dir: Rc::clone(&self.tmp) }
    }
}

/// The SQLite file written by one run (keeps the temporary directory alive).
struct Db {
    path: PathBuf,
    _dir: Rc<tempfile::TempDir>,
}

impl Db {
    /// The rows of `sql`, each cell as text (`NULL` for NULL, `{:?}` for REAL).
    fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        use rusqlite::types::ValueRef;
        let conn = rusqlite::Connection::open(&self.path).expect("open db");
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
        let n = stmt.column_count();
        let cell = |v: ValueRef<'_>| match v {
            ValueRef::Null => "NULL".to_string(),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) => format!("{f:?}"),
            ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        };
        let mapped = stmt
            .query_map([], |r| (0..n).map(|i| r.get_ref(i).map(cell)).collect::<Result<Vec<_>, _>>())
            .expect("query");
        mapped.collect::<Result<Vec<_>, _>>().expect("rows")
    }

    /// `(offset, metric, reason)` of the dead letters of `source`.
    fn dead_letters(&self, source: &str) -> Vec<Vec<String>> {
        self.rows(&format!(
            "SELECT \"offset\", metric, reason FROM dead_letters WHERE source = '{source}' \
             ORDER BY \"partition\", \"offset\", metric"
        ))
    }
}

/// Expected rows written as string arrays.
fn want<const N: usize>(rows: &[[&str; N]]) -> Vec<Vec<String>> {
    rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
}

/// Replaces the nested object at `path` by a string holding its JSON (deepest first!).
fn stringify(v: &mut Value, path: &[&str]) {
    let node = path.iter().fold(v, |node, key| &mut node[*key]);
    *node = Value::String(node.to_string());
}

/// `(target_id, target_type, action, sub_action)` of a signal.
type Rule = [&'static str; 4];
const MOVE: Rule = ["t", "shape", "move", "x"];
const HOVER: Rule = ["t", "shape", "mouse", "over"];
const DRAW: Rule = ["t", "shape", "add", "x"];
const AUDIO_PLAY: Rule = ["t", "template", "audio", "start"];
const AUDIO_PAUSE: Rule = ["t", "template", "audio", "pause"];
const MATCH_WRONG: Rule = ["match", "template", "match", "drop:wrong"];
const MATCH_CORRECT: Rule = ["match", "template", "match", "drop:correct"];

/// A raw classroom signal (msgid 305, msgtype 116) at event time `ts`.
fn signal(ts: i64, user: &str, room: &str, role: &str, rule: Rule) -> Value {
    let [target_id, target_type, action, sub_action] = rule;
    json!({
        "createTime": "2024-01-01 08:00:00",
        "data": {
            "userid": user, "roomId": room, "timestamp": ts, "role": role, "msgid": "305",
            "msg": {"msgtype": "116", "msg_data": {
                "target_id": target_id, "target_type": target_type,
                "action": action, "sub_action": sub_action, "page_index": "1"}}
        }
    })
}

/// A student's signal in room 9 (the common case of 2.3).
fn student(ts: i64, user: &str, rule: Rule) -> Value {
    signal(ts, user, "9", "2", rule)
}

/// `'YYYY-MM-DD HH:MM:SS.SSS'` of `T0 + offset_ms`, for offsets below a day.
fn at(offset_ms: i64) -> String {
    assert!((0..86_400_000).contains(&offset_ms));
    let (s, ms) = (offset_ms / 1000, offset_ms % 1000);
    format!("2024-01-01 {:02}:{:02}:{:02}.{ms:03}", s / 3600, s / 60 % 60, s % 60)
}

/// Run flags that must give the same tables: one record per partition per logical
/// time (so updates and retractions really happen between commits), and the default.
const BATCHINGS: &[&[&str]] = &[&["--epoch-records", "1"], &[]];

const WINDOWS_SQL: &str = "SELECT start_time, end_time, webserver_id, user_id, role, event, event_count \
     FROM timeline_signal_analysis ORDER BY start_time, webserver_id, user_id, role, event";

// ---------------------------------------------------------------------------
// §1 + §2.1 student_signal_etl
// ---------------------------------------------------------------------------

#[test]
fn signal_etl_sloppy_encodings_and_rules() {
    let mut all_strings = signal(1000, "7", "9", "2", MOVE);
    stringify(&mut all_strings, &["data", "msg", "msg_data"]);
    stringify(&mut all_strings, &["data", "msg"]);
    stringify(&mut all_strings, &["data"]);

    // Numbers where strings are expected, and a string where a number is.
    let mut numbers = signal(0, "7", "9", "2", HOVER);
    numbers["data"]["userid"] = json!(7);
    numbers["data"]["roomId"] = json!(9);
    numbers["data"]["role"] = json!(2);
    numbers["data"]["msgid"] = json!(305);
    numbers["data"]["msg"]["msgtype"] = json!(116);
    numbers["data"]["msg"]["msg_data"]["page_index"] = json!(4);
    numbers["data"]["timestamp"] = json!("2000");

    // Only `data.msg` is a string; empty strings and a missing field are NULL.
    let mut msg_string = signal(3000, "7", "9", "2", DRAW);
    msg_string["data"]["msg"]["msg_data"]["target_id"] = Value::Null;
    msg_string["data"]["msg"]["msg_data"]["sub_action"] = json!("");
    msg_string["data"]["msg"]["msg_data"].as_object_mut().unwrap().remove("page_index");
    stringify(&mut msg_string, &["data", "msg"]);

    // Only `data.msg.msg_data` is a string.
    let mut msg_data_string = signal(4000, "7", "9", "2", AUDIO_PLAY);
    stringify(&mut msg_data_string, &["data", "msg", "msg_data"]);

    // Unknown extra fields are ignored; missing createTime is NULL.
    let mut extra = signal(14_000, "7", "9", "2", MOVE);
    extra.as_object_mut().unwrap().remove("createTime");
    extra["unknown"] = json!({"a": [1, 2]});
    extra["data"]["whatever"] = json!("x");

    let mut msgid_306 = signal(11_000, "7", "9", "2", MOVE);
    msgid_306["data"]["msgid"] = json!("306");
    let mut msgtype_117 = signal(12_000, "7", "9", "2", MOVE);
    msgtype_117["data"]["msg"]["msgtype"] = json!(117);

    let lines = [
        all_strings,                                                               // 0 MOVE_IMAGE
        numbers,                                                                   // 1 HOVER_IMAGE
        msg_string,                                                                // 2 DRAW_LINE
        msg_data_string,                                                           // 3 AUDIO_PLAY
        signal(5000, "7", "9", "2", AUDIO_PAUSE),                                  // 4 AUDIO_PAUSE
        signal(6000, "7", "9", "2", MATCH_WRONG),                                  // 5 MATCH_WRONG
        signal(7000, "7", "9", "2", MATCH_CORRECT),                                // 6 MATCH_CORRECT
        signal(8000, "7", "9", "2", ["t", "shape", "mouse", "out"]),               // 7 no rule: mouse/out
        signal(9000, "7", "9", "2", ["t", "template", "audio", "stop"]),           // 8 no rule: audio/stop
        signal(9500, "7", "9", "2", ["other", "template", "match", "drop:wrong"]), // 9 target_id other
        signal(10_000, "7", "9", "1", MOVE),                                       // 10 role 1 (teacher)
        msgid_306,                                                                 // 11 msgid 306
        msgtype_117,                                                               // 12 msgtype 117
        extra,                                                                     // 13 MOVE_IMAGE
        signal(15_000, "7", "9", "2", ["t", "template", "mouse", "over"]),         // 14 hover needs shape
        signal(16_000, "7", "9", "2", ["t", "shape", "match", "drop:wrong"]),      // 15 match needs template
    ];
    let db = Replay::new().json(SIGNALS, 0, &lines).run(&[]);

    // Kept iff msgId='305' AND msgType='116' AND role='2' AND one rule matches.
    assert_eq!(
        db.rows("SELECT src_partition, src_offset, event FROM timeline_analysis_student ORDER BY src_offset"),
        want(&[
            ["0", "0", "MOVE_IMAGE"],
            ["0", "1", "HOVER_IMAGE"],
            ["0", "2", "DRAW_LINE"],
            ["0", "3", "AUDIO_PLAY"],
            ["0", "4", "AUDIO_PAUSE"],
            ["0", "5", "MATCH_WRONG"],
            ["0", "6", "MATCH_CORRECT"],
            ["0", "13", "MOVE_IMAGE"],
        ])
    );

    // Fields are copied (numbers read as their decimal text, "" and missing as NULL);
    // messageTimeStamp = data.timestamp whether it came as a number or a string.
    assert_eq!(
        db.rows(
            "SELECT src_offset, messageCreateTime, messageTimeStamp, userId, roomId, role, msgId, msgType, \
             targetId, targetType, action, subAction, pageIndex FROM timeline_analysis_student \
             WHERE src_offset IN (0, 1, 2, 3, 13) ORDER BY src_offset"
        ),
        want(&[
            ["0", "2024-01-01 08:00:00", "1000", "7", "9", "2", "305", "116", "t", "shape", "move", "x", "1"],
            ["1", "2024-01-01 08:00:00", "2000", "7", "9", "2", "305", "116", "t", "shape", "mouse", "over", "4"],
            ["2", "2024-01-01 08:00:00", "3000", "7", "9", "2", "305", "116", "NULL", "shape", "add", "NULL", "NULL"],
            ["3", "2024-01-01 08:00:00", "4000", "7", "9", "2", "305", "116", "t", "template", "audio", "start", "1"],
            ["13", "NULL", "14000", "7", "9", "2", "305", "116", "t", "shape", "move", "x", "1"],
        ])
    );

    // timeStamp is the wall-clock cleaning time (ms): present and after 2020.
    assert_eq!(
        db.rows("SELECT COUNT(*) FROM timeline_analysis_student WHERE timeStamp IS NULL OR timeStamp < 1577836800000"),
        want(&[["0"]])
    );
    // Filtered signals are not dead letters; these records are all readable.
    assert_eq!(db.dead_letters(SIGNALS), want::<3>(&[]));
}

// ---------------------------------------------------------------------------
// §2.2 channel_dim
// ---------------------------------------------------------------------------

#[test]
fn channel_dim_latest_record_per_id_with_md5_rowkey() {
    let db = Replay::new()
        .json(
            CHANNELS,
            0,
            &[
                json!({"id": "c1", "chinese_name": "一", "english_name": "one", "level": "A", "pid": "0",
                       "create_time": "t0", "update_time": "t1", "dept_id": "d1"}),
                json!({"id": "c2", "chinese_name": "二", "level": "B", "extra": 1}),
                // The latest c1 replaces the whole row: absent/""/null columns become NULL.
                json!({"id": "c1", "english_name": "uno", "level": "C", "pid": "", "update_time": "t2",
                       "dept_id": null}),
                json!({"chinese_name": "no id", "level": "A"}),
                json!({"id": 5, "level": "D"}),
            ],
        )
        .run(&[]);

    // rowkey = md5 hex of id (python3 hashlib): c1, c2, "5".
    assert_eq!(
        db.rows(
            "SELECT rowkey, id, chinese_name, english_name, level, pid, create_time, update_time, dept_id \
             FROM channel_name_dictionary ORDER BY id"
        ),
        want(&[
            ["e4da3b7fbbce2345d7772b0674a318d5", "5", "NULL", "NULL", "D", "NULL", "NULL", "NULL", "NULL"],
            ["a9f7e97965d6cf799a529102a973b8b9", "c1", "NULL", "uno", "C", "NULL", "NULL", "t2", "NULL"],
            ["9ab62b5ef34a985438bfdf7ee0102229", "c2", "二", "NULL", "B", "NULL", "NULL", "NULL", "NULL"],
        ])
    );
    assert_eq!(
        db.rows(&format!(
            "SELECT \"offset\", reason FROM dead_letters WHERE source = '{CHANNELS}' AND metric = 'channel_dim'"
        )),
        want(&[["3", "bad_field:id"]])
    );
}

// ---------------------------------------------------------------------------
// §2.3 class_performance_1m and §3 lateness (delay 5 s)
// ---------------------------------------------------------------------------

#[test]
fn class_performance_windows_lateness_and_bad_fields() {
    let m1 = T0 + MINUTE;
    let m2 = T0 + 2 * MINUTE;
    let mut numeric = student(m1 + 25_000, "7", HOVER);
    numeric["data"]["userid"] = json!(7);
    numeric["data"]["roomId"] = json!(9);
    numeric["data"]["role"] = json!(2);
    let mut no_user = student(m1 + 26_000, "7", MOVE);
    no_user["data"].as_object_mut().unwrap().remove("userid");

    let lines = [
        student(T0, "7", MOVE),                     // 0 window T0; max T0
        student(T0 + 59_999, "7", MOVE),            // 1 window T0 (last ms); W = T0+54_999
        student(T0 + 60_000, "7", MOVE),            // 2 window m1 (first ms); W = T0+55_000
        student(T0 + 55_000, "8", DRAW),            // 3 == W: not late, window T0
        student(T0 + 54_999, "8", DRAW),            // 4 < W: late
        signal(m1 + 30_000, "1", "9", "1", MOVE),   // 5 teacher: filtered, but W = m1+25_000
        student(m1 + 24_999, "7", HOVER),           // 6 < W: late
        numeric,                                    // 7 == W: window m1, same group as "7"/"9"/"2"
        no_user,                                    // 8 bad_field:userId
        signal(m1 + 27_000, "7", "abc", "2", MOVE), // 9 bad_field:roomId
        student(m2 + 1000, "7", MOVE),              // 10 window m2, closed only by end of input
    ];
    let db = Replay::new().json(SIGNALS, 0, &lines).run(&[]);

    // [T0, T0+1m): user 7 MOVE {0, 1} = 2; user 8 DRAW {3} = 1 (4 is late).
    // [m1, m2):    user 7 MOVE {2} = 1; user 7 HOVER {7} = 1 (6 late, 8/9 bad).
    // [m2, m2+1m): user 7 MOVE {10} = 1.
    let (w0, w1, w2, w3) = (at(0), at(MINUTE), at(2 * MINUTE), at(3 * MINUTE));
    assert_eq!(
        db.rows(WINDOWS_SQL),
        want(&[
            [w0.as_str(), &w1, "9", "7", "2", "MOVE_IMAGE", "2"],
            [&w0, &w1, "9", "8", "2", "DRAW_LINE", "1"],
            [&w1, &w2, "9", "7", "2", "HOVER_IMAGE", "1"],
            [&w1, &w2, "9", "7", "2", "MOVE_IMAGE", "1"],
            [&w2, &w3, "9", "7", "2", "MOVE_IMAGE", "1"],
        ])
    );
    assert_eq!(
        db.dead_letters(SIGNALS),
        want(&[
            ["4", "class_performance_1m", "late"],
            ["6", "class_performance_1m", "late"],
            ["8", "class_performance_1m", "bad_field:userId"],
            // 2.8 counts every signal, and 8 has no user (9's room is text to 2.8: counted).
            ["8", "daily_uv_pv", "bad_field:userId"],
            ["9", "class_performance_1m", "bad_field:roomId"],
        ])
    );
    // Late and bad-field signals still flow through 2.1; only the teacher's is filtered.
    assert_eq!(
        db.rows("SELECT src_offset, userId FROM timeline_analysis_student ORDER BY src_offset"),
        want(&[
            ["0", "7"],
            ["1", "7"],
            ["2", "7"],
            ["3", "8"],
            ["4", "8"],
            ["6", "7"],
            ["7", "7"],
            ["8", "NULL"],
            ["9", "7"],
            ["10", "7"],
        ])
    );
}

#[test]
fn class_performance_watermark_is_per_partition() {
    let m1 = T0 + MINUTE;
    let m2 = T0 + 2 * MINUTE;
    let mut input = Replay::new();
    input
        // p0: its own W reaches m1+5_000 before offset 2, which is late.
        .json(
            SIGNALS,
            0,
            &[
                student(T0 + 1000, "1", MOVE),
                student(m1 + 10_000, "1", MOVE),
                student(T0 + 59_000, "1", MOVE),
                student(m2, "1", MOVE),
            ],
        )
        // p1: far ahead, then exhausted; 46_000 >= its W = m2+45_000, not late.
        .json(SIGNALS, 1, &[student(m2 + 50_000, "1", MOVE), student(m2 + 46_000, "1", MOVE)])
        // p2: behind p1, but p1's progress never makes p2's records late.
        .json(SIGNALS, 2, &[student(T0 + 30_000, "1", MOVE), student(T0 + 59_999, "1", MOVE)]);

    // [T0, m1): p0 T0+1000, p2 T0+30_000, T0+59_999 = 3; [m1, m2): p0 m1+10_000 = 1;
    // [m2, m2+1m): p0 m2, p1 m2+50_000, m2+46_000 = 3.
    let (w0, w1, w2, w3) = (at(0), at(MINUTE), at(2 * MINUTE), at(3 * MINUTE));
    let expected = want(&[
        [w0.as_str(), &w1, "9", "1", "2", "MOVE_IMAGE", "3"],
        [&w1, &w2, "9", "1", "2", "MOVE_IMAGE", "1"],
        [&w2, &w3, "9", "1", "2", "MOVE_IMAGE", "3"],
    ]);
    let late = "SELECT source, \"partition\", \"offset\", metric, reason FROM dead_letters";
    for flags in [&[][..], &["--epoch-records", "1"], &["-w", "2", "--epoch-records", "1"]] {
        let db = input.run(flags);
        assert_eq!(db.rows(WINDOWS_SQL), expected, "windows with {flags:?}");
        assert_eq!(
            db.rows(late),
            want(&[[SIGNALS, "0", "2", "class_performance_1m", "late"]]),
            "dead letters with {flags:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// §2.4 offline_study_time
// ---------------------------------------------------------------------------

/// A qos_log record; `None` leaves the field out.
fn qos(user: Value, room: Value, user_type: Value, event_time: i64, sub_event: &str, data_time: Option<i64>) -> Value {
    let mut v = json!({"classroom_id": room, "user_type": user_type, "user_id": user, "event_time": event_time,
                       "sub_event": sub_event, "extra": {"msg": {"pptIndex": "1"}}});
    if let Some(t) = data_time {
        v["extra"]["data_time"] = json!(t);
    }
    v
}

#[test]
fn offline_study_time_first_play_before_each_success() {
    let play = |user: i64, room: &str, ty: Value, event_time: i64, data_time: i64| {
        qos(json!(user), json!(room), ty, event_time, "PPT_PLAY", Some(data_time))
    };
    let success = |user: i64, room: &str, event_time: i64, data_time: i64| {
        qos(json!(user), json!(room), json!("S"), event_time, "PPT_SUCCESS", Some(data_time))
    };
    // Sloppy encodings: user_id and data_time as strings, `extra` as a JSON string.
    let mut sloppy_null_type = qos(json!("5"), json!("r1"), Value::Null, 4000, "X", None);
    sloppy_null_type["extra"] = json!(json!({"data_time": "1000"}).to_string());

    let lines = [
        // user 1: a late-arriving earlier play replaces `a` of both successes.
        play(1, "r1", json!("P"), 1000, 1000), // 0
        success(1, "r1", 9000, 10_000),        // 1 a = 0
        success(1, "r1", 19_000, 20_000),      // 2 a = 0 (1 is later than 0)
        play(1, "r1", json!("E"), 1500, 500),  // 3 earlier: a = 3 for both
        // user 2: equal data_time never matches (strictly smaller), then 2999 does.
        success(2, "r1", 3000, 3000),          // 4 no a
        play(2, "r1", json!("P"), 2000, 3000), // 5 equal: no a
        play(2, "r1", json!("Q"), 2500, 2999), // 6 a = 6
        // user 5: same data_time 1000; smaller event_time, then NULL user_type, win.
        play(5, "r1", json!("T"), 5000, 1000), // 7
        play(5, "r1", json!("S"), 4000, 1000), // 8
        sloppy_null_type,                      // 9 event_time 4000, user_type NULL: a
        success(5, "r1", 9000, 10_000),        // 10
        // user 6: same data_time and event_time; user_type "a" < "b".
        play(6, "r1", json!("b"), 4000, 1000), // 11
        play(6, "r1", json!("a"), 4000, 1000), // 12 a
        success(6, "r1", 9000, 10_000),        // 13
        // NULL keys or times never match.
        qos(Value::Null, json!("r1"), json!("P"), 100, "PPT_PLAY", Some(100)), // 14
        qos(Value::Null, json!("r1"), json!("S"), 5000, "PPT_SUCCESS", Some(5000)), // 15 no row
        qos(json!(3), Value::Null, json!("P"), 100, "PPT_PLAY", Some(100)),    // 16
        qos(json!(3), json!(""), json!("S"), 5000, "PPT_SUCCESS", Some(5000)), // 17 no row
        qos(json!(4), json!("r2"), json!("P"), 100, "PPT_PLAY", None),         // 18 NULL data_time
        success(4, "r2", 7000, 7000),                                          // 19 a = 20 (not 18)
        play(4, "r2", json!("P2"), 6500, 6000),                                // 20
        qos(json!(4), json!("r2"), json!("S"), 8000, "PPT_SUCCESS", None),     // 21 NULL b time: no row
    ];
    let mut input = Replay::new();
    input.json(QOS, 0, &lines);

    // (user, room, a.user_type, b.dt − a.dt, a.event_time, b.dt)
    let expected = want(&[
        ["1", "r1", "E", "9500", "1970-01-01 00:00:01.500", "10000"],
        ["1", "r1", "E", "19500", "1970-01-01 00:00:01.500", "20000"],
        ["2", "r1", "Q", "1", "1970-01-01 00:00:02.500", "3000"],
        ["4", "r2", "P2", "1000", "1970-01-01 00:00:06.500", "7000"],
        ["5", "r1", "NULL", "9000", "1970-01-01 00:00:04.000", "10000"],
        ["6", "r1", "a", "9000", "1970-01-01 00:00:04.000", "10000"],
    ]);
    for flags in BATCHINGS {
        let db = input.run(flags);
        let got = db.rows(
            "SELECT user_id, classroom_id, user_type, spend_time, event_time, success_time \
             FROM user_enter_classroom_take_time ORDER BY user_id, classroom_id, success_time",
        );
        assert_eq!(got, expected, "with {flags:?}");
    }
}

// ---------------------------------------------------------------------------
// §2.5 av_quality_30s (delay 60 s)
// ---------------------------------------------------------------------------

/// A student's agora_record for user 1, channel 100, classroom c1, event E.
fn agora(ts: i64, fr: Option<i64>, lost: Option<i64>) -> Value {
    let mut v = json!({"classroom_id": "c1", "user_type": "student", "user_id": 1, "agora_channel_id": 100,
                       "event": "E", "messageCreateTime": ts});
    if let Some(fr) = fr {
        v["agora_videoState"] = json!({"fr": fr, "uid": 11});
    }
    if let Some(lost) = lost {
        v["agora_audioState"] = json!({"lost": lost, "uid": 12});
    }
    v
}

#[test]
fn av_quality_audio_video_families() {
    let mut string_numbers = agora(0, Some(4), None);
    string_numbers["messageCreateTime"] = json!((T0 + 29_999).to_string());
    string_numbers["agora_audioState"] = json!({"lost": "5", "uid": "12"});
    string_numbers["user_id"] = json!("1");
    let nulls = json!({"classroom_id": "", "user_type": "student", "user_id": null, "event": "E",
                       "agora_videoState": {"fr": 2}, "messageCreateTime": T0 + 5000});
    let mut teacher = agora(T0 + 5000, Some(8), Some(8));
    teacher["user_type"] = json!("teacher");
    let mut no_event = agora(T0 + 6000, Some(1), Some(1));
    no_event["event"] = Value::Null;
    let mut no_time = agora(0, Some(1), Some(1));
    no_time.as_object_mut().unwrap().remove("messageCreateTime");

    let lines = [
        agora(T0 + 1000, Some(3), Some(0)),   // 0 video fr 3, audio lost 0 (>= 0 counts)
        string_numbers,                       // 1 video fr 4, audio lost 5
        agora(T0 + 2000, Some(-1), Some(-1)), // 2 neither family
        agora(T0 + 30_000, Some(10), None),   // 3 video only, window [30 s, 60 s)
        nulls,                                // 4 all keys NULL → -1 / '-1'
        teacher,                              // 5 not a student: filtered
        no_event,                             // 6 bad_field:event
        no_time,                              // 7 bad_field:messageCreateTime
        agora(T0 + 100_000, Some(9), None),   // 8 window [90 s, 120 s); W = T0+40_000
        agora(T0 + 39_999, Some(1), None),    // 9 < W: late
        agora(T0 + 40_000, Some(2), None),    // 10 == W: counts in [30 s, 60 s)
    ];
    let db = Replay::new().json(AGORA, 0, &lines).run(&[]);

    // [0, 30 s): video uid 11: fr 3 + 4 = 7 over 2 → 3.5; audio uid 12: 0 + 5 = 5 over 2 → 2.5;
    //            NULL keys: video fr 2 → 2.0.
    // [30, 60 s): video 10 + 2 = 12 over 2 → 6.0.  [90, 120 s): video 9 → 9.0.
    let (s0, s30, s60, s90, s120) = (at(0), at(30_000), at(60_000), at(90_000), at(120_000));
    assert_eq!(
        db.rows(
            "SELECT start_time, end_time, user_id, web_server_id, classroom_id, user_type, extra_uid, event, \
             event_sum, event_avg, event_count FROM user_av_record ORDER BY start_time, user_id, event"
        ),
        want(&[
            [s0.as_str(), &s30, "-1", "-1", "-1", "student", "-1", "E_VIDEO_STATE", "2", "2.0", "1"],
            [&s0, &s30, "1", "100", "c1", "student", "12", "E_AUDIO_STATE", "5", "2.5", "2"],
            [&s0, &s30, "1", "100", "c1", "student", "11", "E_VIDEO_STATE", "7", "3.5", "2"],
            [&s30, &s60, "1", "100", "c1", "student", "11", "E_VIDEO_STATE", "12", "6.0", "2"],
            [&s90, &s120, "1", "100", "c1", "student", "11", "E_VIDEO_STATE", "9", "9.0", "1"],
        ])
    );
    assert_eq!(
        db.dead_letters(AGORA),
        want(&[
            ["6", "av_quality_30s", "bad_field:event"],
            ["7", "av_quality_30s", "bad_field:messageCreateTime"],
            ["9", "av_quality_30s", "late"],
        ])
    );
}

// ---------------------------------------------------------------------------
// §2.6 hourly_registrations_by_level
// ---------------------------------------------------------------------------

fn user(id: &str, name: Value, reg: &str, status: Value) -> Value {
    json!({"id": id, "name": name, "register_date_time": reg, "status": status})
}

#[test]
fn hourly_registrations_by_level() {
    let normal = || json!("NORMAL");
    let channels = [
        json!({"id": "chA", "level": "A"}),
        json!({"id": "chB", "level": "B"}),
        json!({"id": "chX", "level": "E"}), // outside A–D → other
        json!({"id": "chL", "level": "C"}),
        json!({"id": "chN", "level": "A"}),
    ];
    // Fillers no student uses, so that (with one record per partition per logical time)
    // the level changes below arrive after u10 and u17 were joined and counted.
    let fillers = (0..20).map(|i| json!({"id": format!("filler{i}"), "level": "A"}));
    let changes = [
        json!({"id": "chL", "level": "D"}),        // later level change: u10 C → D
        json!({"id": "chN", "chinese_name": "n"}), // whole row replaced: level NULL → other
    ];
    let channels: Vec<Value> = channels.into_iter().chain(fillers).chain(changes).collect();
    let users = [
        user("u1", json!("Alice"), "2024-01-01 10:15:00", normal()),
        user("u2", json!("Bob"), "2024-01-01 10:59:59", normal()),
        user("u3", json!("DM__x"), "2024-01-01 10:00:00", normal()), // excluded
        user("u4", json!("DM_a"), "2024-01-01 11:00:00", normal()),  // kept
        user("u5", json!("Test"), "2024-01-01 11:10:00", normal()),  // kept (case-sensitive)
        user("u6", json!("my test"), "2024-01-01 11:00:00", normal()), // excluded
        user("u7", json!("测试用户"), "2024-01-01 11:00:00", normal()), // excluded
        user("u8", json!("Eve"), "2024-01-01 11:20:00", normal()),
        user("u9", json!("Ann"), "2024-01-01 11:40:00", normal()),
        user("u10", json!("Zed"), "2024-01-01 12:00:00", normal()),
        user("u11", json!("Kim"), "2024-01-01 13:00:00", normal()),
        user("u12", Value::Null, "2024-01-01 13:00:00", normal()), // NULL name: excluded
        user("u13", json!("Lou"), "2024-01-01 13:00:00", Value::Null), // NULL status: excluded
        user("u14", json!("Max"), "yesterday", normal()),          // unparsable: left out
        user("u15", json!("Ned"), "2024-01-01 11:30:00", normal()),
        user("u17", json!("Oz"), "2024-01-01 14:00:00", normal()),
        // LAST_VALUE: a NULL keeps the older value (u10 keeps name, date).
        json!({"id": "u10", "name": null, "register_date_time": "", "status": "NORMAL"}),
        // u11 leaves NORMAL: its count goes away, and the zero row is deleted.
        json!({"id": "u11", "status": "FROZEN"}),
        json!({"name": "no id"}),
    ];
    let students = [
        json!({"id": "u1", "channel_id": "chA"}),
        json!({"id": "u2", "channel_id": "chA"}),
        json!({"id": "u3", "channel_id": "chA"}),
        json!({"id": "u4", "channel_id": "chB"}),
        json!({"id": "u5", "channel_id": "chX"}),
        json!({"id": "u6", "channel_id": "chA"}),
        json!({"id": "u7", "channel_id": "chA"}),
        json!({"id": "u8", "channel_id": "chNone"}), // no channel row → other
        json!({"id": "u9"}),                         // no channel → other
        json!({"id": "u10", "channel_id": "chL"}),
        json!({"id": "u11", "channel_id": "chA"}),
        json!({"id": "u12", "channel_id": "chA"}),
        json!({"id": "u13", "channel_id": "chA"}),
        json!({"id": "u14", "channel_id": "chA"}),
        json!({"id": "u15", "channel_id": "chB"}),
        json!({"id": "u15", "channel_id": null, "update_time": "x"}), // keeps chB, counted once
        json!({"id": "u16", "channel_id": "chA"}),                    // no user row: no join
        json!({"id": "u17", "channel_id": "chN"}),
        json!({"channel_id": "chA"}), // 18: no id
    ];
    let mut input = Replay::new();
    input.json(CHANNELS, 0, &channels).json(USERS, 0, &users).json(STUDENTS, 0, &students);

    // 10A: u1, u2.  11B: u4, u15.  11other: u5 (E), u8 (no row), u9 (no channel).
    // 12D: u10.  13A: u11 gone (FROZEN) → deleted.  14other: u17 (level NULL).
    let expected = want(&[
        ["2024010110A", "2024010110", "A", "2"],
        ["2024010111B", "2024010111", "B", "2"],
        ["2024010111other", "2024010111", "other", "3"],
        ["2024010112D", "2024010112", "D", "1"],
        ["2024010114other", "2024010114", "other", "1"],
    ]);
    for flags in BATCHINGS {
        let db = input.run(flags);
        assert_eq!(
            db.rows("SELECT uk, reg_date, level, leads FROM registrations_hourly_level ORDER BY uk"),
            expected,
            "with {flags:?}"
        );
        assert_eq!(
            db.rows(&format!(
                "SELECT source, \"offset\", reason FROM dead_letters WHERE metric = 'hourly_registrations_by_level' \
                 AND source IN ('{USERS}', '{STUDENTS}') ORDER BY source, \"offset\""
            )),
            want(&[[STUDENTS, "18", "bad_field:id"], [USERS, "18", "bad_field:id"]])
        );
    }
}

// ---------------------------------------------------------------------------
// §2.7 daily_cc_confirmations
// ---------------------------------------------------------------------------

fn order(id: &str, cc: Value, status: Value, confirm: Value) -> Value {
    json!({"id": id, "cc_id": cc, "student_id": "s", "status": status, "confirm_date_time": confirm})
}

#[test]
fn daily_cc_confirmations() {
    let lines = [
        order("o1", json!(100), json!(3), json!("2024-01-01 09:00:00")), // 0 (100, 01-01)
        order("o2", json!("100"), json!("3"), json!("2024-01-01 23:59:59")), // 1 (100, 01-01)
        order("o3", json!(100), json!(3), json!("2024-01-02 00:00:00")), // 2 (100, 01-02)
        order("o4", json!(200), json!(3), Value::Null),                  // 3 no confirm
        order("o5", json!(200), json!(2), json!("2024-01-01 10:00:00")), // 4 status 2
        order("o6", json!(300), json!(3), json!("2024-01-03 08:00:00")), // 5 (300, 01-03) ...
        order("o7", json!(200), json!(3), json!("2024-01-01 12:00:00")), // 6 (200, 01-01)
        order("o8", Value::Null, json!(3), json!("2024-01-01 12:00:00")), // 7 no cc_id
        order("o9", json!(200), json!(3), json!("not a date")),          // 8 unparsable
        order("o10", json!(100), json!(4), json!("2024-01-02 05:00:00")), // 9 status 4 ...
        json!({"id": "o6", "status": 4}),                                // 10 ... o6 3→4: row deleted
        json!({"id": "o7", "cc_id": null, "confirm_date_time": "", "status": 3}), // 11 keeps cc/confirm
        json!({"id": "o10", "status": "3"}),                             // 12 ... o10 → (100, 01-02)
        json!({"cc_id": 100, "status": 3, "confirm_date_time": "2024-01-01 09:00:00"}), // 13 no id
    ];
    let mut input = Replay::new();
    input.json(ORDERS, 0, &lines);

    // (100, 01-01): o1, o2.  (100, 01-02): o3, o10.  (200, 01-01): o7.  (300, 01-03): 0 → gone.
    let expected =
        want(&[["100", "2", "1", "2024-01-01"], ["100", "2", "1", "2024-01-02"], ["200", "1", "1", "2024-01-01"]]);
    for flags in BATCHINGS {
        let db = input.run(flags);
        let got =
            db.rows("SELECT cc_id, cc_index, type, attribution_time FROM staff_index ORDER BY cc_id, attribution_time");
        assert_eq!(got, expected, "with {flags:?}");
        assert_eq!(db.rows("SELECT COUNT(*) FROM staff_index WHERE update_time IS NULL"), want(&[["0"]]));
        assert_eq!(db.dead_letters(ORDERS), want(&[["13", "daily_cc_confirmations", "bad_field:id"]]));
    }
}

// ---------------------------------------------------------------------------
// §4 dead letters
// ---------------------------------------------------------------------------

#[test]
fn dead_letters_for_unreadable_records() {
    let garbage: [&[u8]; 5] = [
        br#"{"data": {"userid": "7", "#, // 0 truncated
        b"[1, 2]",                       // 1 array
        b"305",                          // 2 scalar
        b"",                             // 3 empty line
        b"{\"id\": \"\xff\xfe\"}",       // 4 invalid UTF-8
    ];
    let ok = signal(T0, "7", "9", "2", MOVE).to_string();
    let mut lines: Vec<&[u8]> = garbage.to_vec();
    lines.push(ok.as_bytes()); // 5 still processed after the garbage
    let mut input = Replay::new();
    input.raw(SIGNALS, 1, &lines);
    input.json(
        QOS,
        0,
        &[json!({"user_id": "abc", "classroom_id": "r", "sub_event": "PPT_PLAY",
                                "event_time": 1, "extra": {"data_time": 1}})],
    );
    let db = input.run(&[]); // asserts exit code 0

    assert_eq!(
        db.rows(
            "SELECT source, \"partition\", \"offset\", metric, reason FROM dead_letters \
             ORDER BY source, \"offset\", metric"
        ),
        want(&[
            // Its time is readable, its user is not: 2.8 rejects it too.
            [QOS, "0", "0", "daily_uv_pv", "bad_field:user_id"],
            [QOS, "0", "0", "offline_study_time", "bad_field:user_id"],
            [SIGNALS, "1", "0", "*", "not_json"],
            [SIGNALS, "1", "1", "*", "not_object"],
            [SIGNALS, "1", "2", "*", "not_object"],
            [SIGNALS, "1", "3", "*", "not_json"],
            [SIGNALS, "1", "4", "*", "not_json"],
        ])
    );
    // The raw message is kept byte for byte.
    let conn = rusqlite::Connection::open(&db.path).expect("open db");
    let raw: Vec<u8> = conn
        .query_row(
            &format!("SELECT CAST(raw AS BLOB) FROM dead_letters WHERE source = '{SIGNALS}' AND \"offset\" = 4"),
            [],
            |r| r.get(0),
        )
        .expect("raw of offset 4");
    assert_eq!(raw, garbage[4]);
    assert_eq!(
        db.rows("SELECT src_partition, src_offset, event FROM timeline_analysis_student"),
        want(&[["1", "5", "MOVE_IMAGE"]])
    );
}

// ---------------------------------------------------------------------------
// §4 values no sink can store, §2.4 / §3 overflow
// ---------------------------------------------------------------------------

/// `1000-01-01 00:00:00.000` and `9999-12-31 23:59:59.999` UTC in ms: the storable timestamps.
const FIRST_MS: i64 = -30_610_224_000_000;
const LAST_MS: i64 = 253_402_300_799_999;

#[test]
fn texts_no_sink_can_store_are_bad_fields() {
    let mut nul_sub_action = student(T0 + 1000, "7", MOVE);
    nul_sub_action["data"]["msg"]["msg_data"]["sub_action"] = json!("x\u{0}y");
    let mut nul_create_time = student(T0 + 2000, "7", MOVE);
    nul_create_time["createTime"] = json!("\u{0}");
    let mut nul_teacher = signal(T0 + 3000, "1", "9", "1", MOVE);
    nul_teacher["data"]["userid"] = json!("\u{0}");
    let signals = [student(T0, "7", MOVE), nul_sub_action, nul_create_time, nul_teacher];
    let channels = [
        json!({"id": "c1", "chinese_name": "一\u{0}", "level": "A"}), // 0 bad_field:chinese_name
        json!({"id": "c2", "level": "B"}),                            // 1 kept
        json!({"id": "x".repeat(70_000)}),                            // 2 bad_field:id (over MySQL TEXT)
    ];
    let long_room = "房".repeat(256); // 256 characters: over the VARCHAR(255) of the key
    let qos_lines = [
        qos(json!(5), json!("r\u{0}"), json!("student"), T0, "PPT_PLAY", Some(T0)), // 0 bad_field:classroom_id
        qos(json!(5), json!(long_room), json!("student"), T0, "PPT_PLAY", Some(T0)), // 1 bad_field:classroom_id
        qos(json!(5), json!("r"), json!("t\u{0}"), T0, "PPT_PLAY", Some(T0)),       // 2 bad_field:user_type
        qos(json!(5), json!("r"), json!("student"), T0, "PPT_PLAY", Some(T0 + 1)),  // 3 a
        qos(json!(5), json!("r"), json!("student"), T0, "PPT_SUCCESS", Some(T0 + 9)), // 4 b
    ];
    let mut nul_event = agora(T0, None, Some(1));
    nul_event["event"] = json!("E\u{0}");
    let mut long_classroom = agora(T0, None, Some(1));
    long_classroom["classroom_id"] = json!("c".repeat(192)); // over the VARCHAR(191) of a three-text key
    let agoras = [nul_event, long_classroom, agora(T0 + 1000, None, Some(3))];
    let mut input = Replay::new();
    input.json(SIGNALS, 0, &signals).json(CHANNELS, 0, &channels).json(QOS, 0, &qos_lines).json(AGORA, 0, &agoras);
    for flags in BATCHINGS {
        let db = input.run(flags);
        // 2.1 keeps only offset 0; 2.3 writes none of the texts and counts 0, 1 and 2.
        assert_eq!(db.rows("SELECT src_offset FROM timeline_analysis_student"), want(&[["0"]]), "{flags:?}");
        let (w0, w1) = (at(0), at(MINUTE));
        assert_eq!(db.rows(WINDOWS_SQL), want(&[[w0.as_str(), &w1, "9", "7", "2", "MOVE_IMAGE", "3"]]));
        assert_eq!(
            db.dead_letters(SIGNALS),
            want(&[
                ["1", "student_signal_etl", "bad_field:subAction"],
                ["2", "student_signal_etl", "bad_field:createTime"],
                // 2.1 drops the teacher's signal; 2.8 counts it, but cannot store its user
                // (2.9 writes teacher ids).
                ["3", "daily_uv_pv", "bad_field:userId"]
            ])
        );
        assert_eq!(db.rows("SELECT id, level FROM channel_name_dictionary"), want(&[["c2", "B"]]));
        assert_eq!(
            db.dead_letters(CHANNELS),
            want(&[["0", "channel_dim", "bad_field:chinese_name"], ["2", "channel_dim", "bad_field:id"]])
        );
        // b (data_time T0+9) after a (T0+1): 8 ms.
        assert_eq!(
            db.rows("SELECT user_id, classroom_id, user_type, spend_time FROM user_enter_classroom_take_time"),
            want(&[["5", "r", "student", "8"]])
        );
        assert_eq!(
            db.dead_letters(QOS),
            want(&[
                ["0", "offline_study_time", "bad_field:classroom_id"],
                ["1", "offline_study_time", "bad_field:classroom_id"],
                ["2", "offline_study_time", "bad_field:user_type"],
            ])
        );
        assert_eq!(db.rows("SELECT event, event_sum FROM user_av_record"), want(&[["E_AUDIO_STATE", "3"]]));
        assert_eq!(
            db.dead_letters(AGORA),
            want(&[["0", "av_quality_30s", "bad_field:event"], ["1", "av_quality_30s", "bad_field:classroom_id"]])
        );
    }
}

#[test]
fn timestamps_outside_the_years_1000_to_9999_are_bad_fields() {
    let signals = [
        student(FIRST_MS, "7", MOVE),         // 0 the first storable minute; W = FIRST_MS − 5 s
        student(i64::MAX, "7", MOVE),         // 1 bad_field:timestamp; W unchanged
        student(i64::MIN, "7", MOVE),         // 2 bad_field:timestamp
        student(T0, "7", MOVE),               // 3 not late: W = T0 − 5 s
        student(LAST_MS - 59_999, "7", MOVE), // 4 its minute ends in the year 10000: bad_field:timestamp
        student(LAST_MS - 60_000, "7", MOVE), // 5 the last storable minute, W = LAST_MS − 65 s (4 moved it)
    ];
    let agoras = [
        agora(i64::MIN, Some(1), None),     // 0 bad_field:messageCreateTime
        agora(i64::MAX - 1, Some(1), None), // 1 bad_field:messageCreateTime
        agora(T0, Some(2), None),           // 2 not late
    ];
    let qos_lines = [
        qos(json!(5), json!("r"), json!("a"), T0, "PPT_PLAY", Some(i64::MIN)), // 0 bad_field:extra.data_time
        qos(json!(5), json!("r"), json!("b"), i64::MAX, "PPT_PLAY", Some(T0 - 9)), // 1 bad_field:event_time
        qos(json!(5), json!("r"), json!("c"), FIRST_MS, "PPT_PLAY", Some(T0 - 5)), // 2 a
        qos(json!(5), json!("r"), json!("d"), T0, "PPT_SUCCESS", Some(i64::MAX)), // 3 bad_field:extra.data_time
        qos(json!(5), json!("r"), json!("e"), T0, "PPT_SUCCESS", Some(T0)),    // 4 b
    ];
    let mut input = Replay::new();
    input.json(SIGNALS, 0, &signals).json(AGORA, 0, &agoras).json(QOS, 0, &qos_lines);
    for flags in BATCHINGS {
        let db = input.run(flags);
        assert_eq!(
            db.rows(WINDOWS_SQL),
            want(&[
                ["1000-01-01 00:00:00.000", "1000-01-01 00:01:00.000", "9", "7", "2", "MOVE_IMAGE", "1"],
                [&at(0), &at(MINUTE), "9", "7", "2", "MOVE_IMAGE", "1"],
                ["9999-12-31 23:58:00.000", "9999-12-31 23:59:00.000", "9", "7", "2", "MOVE_IMAGE", "1"],
            ]),
            "{flags:?}"
        );
        let bad_time = |offset, metric| [offset, metric, "bad_field:timestamp"];
        let (minute, day) = ("class_performance_1m", "daily_uv_pv");
        // 1 and 2 have no storable day either; 4's day (9999-12-31) is storable, only its window is not.
        assert_eq!(
            db.dead_letters(SIGNALS),
            want(&[
                bad_time("1", minute),
                bad_time("1", day),
                bad_time("2", minute),
                bad_time("2", day),
                bad_time("4", minute)
            ])
        );
        assert_eq!(
            db.rows("SELECT start_time, end_time, event_sum FROM user_av_record"),
            want(&[[at(0).as_str(), &at(30_000), "2"]])
        );
        let bad = |offset, name| [offset, "av_quality_30s", name];
        assert_eq!(
            db.dead_letters(AGORA),
            want(&[bad("0", "bad_field:messageCreateTime"), bad("1", "bad_field:messageCreateTime")])
        );
        // a = offset 2 (the only readable play), b = offset 4: 5 ms, at a's event time.
        assert_eq!(
            db.rows("SELECT user_type, spend_time, event_time, success_time FROM user_enter_classroom_take_time"),
            want(&[["c", "5", "1000-01-01 00:00:00.000", &T0.to_string()]])
        );
        let bad = |offset, name| [offset, "offline_study_time", name];
        assert_eq!(
            db.dead_letters(QOS),
            want(&[
                bad("0", "bad_field:extra.data_time"),
                // 2.8 has no storable day for event_time = i64::MAX.
                ["1", "daily_uv_pv", "bad_field:event_time"],
                bad("1", "bad_field:event_time"),
                bad("3", "bad_field:extra.data_time"),
            ])
        );
    }
}

#[test]
fn messages_over_max_message_bytes_are_too_large() {
    // Padded with spaces after the object (valid JSON) to exact sizes.
    let padded = |v: Value, len: usize| {
        let mut line = v.to_string().into_bytes();
        assert!(line.len() <= len);
        line.resize(len, b' ');
        line
    };
    let over = padded(qos(json!(5), json!("r"), json!("a"), T0, "PPT_PLAY", Some(T0)), 1_048_577);
    let at_limit = padded(qos(json!("abc"), json!("r"), json!("a"), T0, "PPT_PLAY", Some(T0)), 1_048_576);
    let small = padded(qos(json!("abc"), json!("r"), json!("a"), T0, "PPT_PLAY", Some(T0)), 200);
    let mut input = Replay::new();
    input.raw(QOS, 0, &[&over, &at_limit, &small]);

    // Default 1 MiB: only offset 0 is too large; 1 and 2 are read (their user_id is bad).
    let db = input.run(&[]);
    let read = |offset, metric| [offset, metric, "bad_field:user_id"];
    let (day, study) = ("daily_uv_pv", "offline_study_time");
    assert_eq!(
        db.dead_letters(QOS),
        want(&[["0", "*", "too_large"], read("1", day), read("1", study), read("2", day), read("2", study)])
    );
    let conn = rusqlite::Connection::open(&db.path).expect("open db");
    let raw: Vec<u8> = conn
        .query_row("SELECT CAST(raw AS BLOB) FROM dead_letters WHERE \"offset\" = 0", [], |r| r.get(0))
        .expect("raw of offset 0");
    assert_eq!(raw, over[..4096], "the first 4 KiB are kept");

    let db = input.run(&["--max-message-bytes", "199"]);
    let large = |offset| [offset, "*", "too_large"];
    assert_eq!(db.dead_letters(QOS), want(&[large("0"), large("1"), large("2")]));
}

#[test]
fn file_replay_has_no_log_time_and_never_finds_a_record_future() {
    // Year 3000 is far ahead of any clock, but file replay has no log time (SPEC §3).
    let year_3000 = 32_503_680_000_000;
    let db = Replay::new().json(AGORA, 0, &[agora(year_3000, Some(1), None)]).run(&["--max-future-ms", "0"]);
    assert_eq!(db.dead_letters(AGORA), Vec::<Vec<String>>::new());
    assert_eq!(db.rows("SELECT start_time FROM user_av_record"), want(&[["3000-01-01 00:00:00.000"]]));
}

// ---------------------------------------------------------------------------
// §2.8 daily_uv_pv, §2.9 top_teachers_daily
// ---------------------------------------------------------------------------

const DAY: i64 = 86_400_000;

/// A live record that 2.1 drops (msgid 999) but 2.8 counts: user, time, and optionally
/// room and role.
fn visit(ts: i64, user: Value, room: Option<&str>, role: Option<&str>) -> Value {
    let mut data = json!({"userid": user, "timestamp": ts, "msgid": "999"});
    if let Some(room) = room {
        data["roomId"] = json!(room);
    }
    if let Some(role) = role {
        data["role"] = json!(role);
    }
    json!({ "data": data })
}

const UV_PV_SQL: &str = "SELECT stat_date, area, role, uv, pv FROM daily_uv_pv ORDER BY stat_date, area, role";

#[test]
fn daily_uv_pv_counts_every_record_per_day_area_and_role() {
    let live = [
        visit(T0, json!("7"), Some("r1"), Some("2")),      // 0 day 1 live student 7
        visit(T0 + 1000, json!(7), Some("r1"), Some("2")), // 1 the same user as a number: uv 1, pv 2
        visit(T0 + 2000, json!("8"), Some("r1"), Some("1")), // 2 teacher
        visit(T0 + 3000, json!("9"), None, Some("x")),     // 3 other role
        visit(T0 + 4000, json!("10"), None, None),         // 4 NULL role: other
        visit(T0 + DAY, json!("7"), Some("r1"), Some("2")), // 5 day 2
        json!({"data": {"userid": "7"}}),                  // 6 bad_field:timestamp
        json!({"data": {"timestamp": T0}}),                // 7 bad_field:userId
        json!({"data": {"timestamp": "soon"}}),            // 8 bad_field:timestamp (the time first)
        visit(T0 + 5000, json!("11"), Some("r2"), Some("2")), // 9 an old day after day 2: no lateness
        student(T0 + 6000, "7", MOVE),                     // 10 a signal 2.1 keeps: counted too
    ];
    let recorded = [
        qos(json!(5), json!("r"), json!("student"), T0, "PPT_PLAY", Some(T0)), // 0 recorded student 5
        qos(json!("5"), json!("r"), json!("student"), T0 + 1, "PPT_SUCCESS", Some(T0 + 1)), // 1 same user
        qos(json!(6), json!("r"), json!("parent"), T0, "PPT_PLAY", None),      // 2 other
        qos(json!("x"), json!("r"), json!("student"), T0, "PPT_PLAY", None),   // 3 bad_field:user_id
    ];
    let mut input = Replay::new();
    input.json(SIGNALS, 0, &live).json(QOS, 0, &recorded);
    for flags in BATCHINGS {
        let db = input.run(flags);
        // Day 1 live: students 7 (0, 1, 10) and 11 (9): uv 2, pv 4; teacher 8; others 9 and 10.
        // Day 1 recorded: student 5 (0, 1); other 6. Day 2 live: student 7 (5).
        assert_eq!(
            db.rows(UV_PV_SQL),
            want(&[
                ["2024-01-01", "live", "other", "2", "2"],
                ["2024-01-01", "live", "student", "2", "4"],
                ["2024-01-01", "live", "teacher", "1", "1"],
                ["2024-01-01", "recorded", "other", "1", "1"],
                ["2024-01-01", "recorded", "student", "1", "2"],
                ["2024-01-02", "live", "student", "1", "1"],
            ]),
            "{flags:?}"
        );
        let uv_dead = |source| {
            db.rows(&format!(
                "SELECT \"offset\", reason FROM dead_letters WHERE source = '{source}' AND metric = 'daily_uv_pv' \
                 ORDER BY \"offset\""
            ))
        };
        assert_eq!(
            uv_dead(SIGNALS),
            want(&[["6", "bad_field:timestamp"], ["7", "bad_field:userId"], ["8", "bad_field:timestamp"]])
        );
        assert_eq!(uv_dead(QOS), want(&[["3", "bad_field:user_id"]]));
    }
}

const TOP_SQL: &str =
    "SELECT stat_date, rank, teacher_id, students, rooms FROM top_teachers_daily ORDER BY stat_date, rank";

#[test]
fn top_teachers_daily_ranks_by_distinct_students_then_teacher_id() {
    let live = |ts: i64, user: &str, room: Option<&str>, role: &str| visit(ts, json!(user), room, Some(role));
    let records = [
        live(T0, "a", Some("r1"), "1"),            // 0 a teaches r1
        live(T0 + 1, "a", Some("r2"), "1"),        // 1 a teaches r2
        live(T0 + 2, "b", Some("r3"), "1"),        // 2 b teaches r3
        live(T0 + 3, "c", Some("r4"), "1"),        // 3 c teaches r4: no student, never ranked
        live(T0 + 4, "s1", Some("r1"), "2"),       // 4 s1 attends r1
        live(T0 + 5, "s2", Some("r1"), "2"),       // 5 s2 attends r1
        live(T0 + 6, "s2", Some("r2"), "2"),       // 6 s2 attends r2 too: one student of a
        live(T0 + 7, "s3", Some("r3"), "2"),       // 7 s3 attends r3
        live(T0 + 8, "10", Some("r5"), "1"),       // 8 teacher "10"
        live(T0 + 9, "s5", Some("r5"), "2"),       // 9 ... with one student
        live(T0 + 10, "9", Some("r6"), "1"),       // 10 teacher "9"
        live(T0 + 11, "s6", Some("r6"), "2"),      // 11 ... with one student
        live(T0 + 12, "9", Some("r1"), "2"),       // 12 teacher 9 is also a student of a
        live(T0 + 13, "z", None, "1"),             // 13 no room: 2.8 only
        live(T0 + 14, "s9", None, "2"),            // 14 no room: 2.8 only
        live(T0 + DAY, "a", Some("r7"), "1"),      // 15 day 2: a teaches r7
        live(T0 + DAY + 1, "s1", Some("r7"), "2"), // 16 ... s1 attends
        live(T0 + 20, "s7", Some("r3"), "2"),      // 17 a late record of day 1: b's second student
        live(T0 + 21, "s8", Some("r3"), "3"),      // 18 role 3: neither teacher nor student
    ];
    let mut input = Replay::new();
    input.json(SIGNALS, 0, &records);
    // Day 1: a {s1, s2, 9} in 2 rooms; b {s3, s7} in 1; "10" {s5}; "9" {s6}; c none.
    // Ties by teacher_id bytes: "10" < "9" < "a" < "b". Day 2: a {s1} in 1 room.
    let day1 = |rank, teacher, students, rooms| ["2024-01-01", rank, teacher, students, rooms];
    let all = [
        day1("1", "a", "3", "2"),
        day1("2", "b", "2", "1"),
        day1("3", "10", "1", "1"),
        day1("4", "9", "1", "1"),
        ["2024-01-02", "1", "a", "1", "1"],
    ];
    for flags in [&["--epoch-records", "1"][..], &[], &["-w", "2", "--epoch-records", "1"]] {
        assert_eq!(input.run(flags).rows(TOP_SQL), want(&all), "{flags:?}");
    }
    // top_n = 3: "10" and "9" tie at the boundary; the smaller id keeps rank 3. Before record
    // 17, b had one student and ranked 4th: the late record rewrote ranks 2 to 4.
    let top3 = [all[0], all[1], all[2], all[4]];
    for flags in [&["--top-n", "3", "--epoch-records", "1"][..], &["--top-n", "3"]] {
        assert_eq!(input.run(flags).rows(TOP_SQL), want(&top3), "{flags:?}");
    }
}
