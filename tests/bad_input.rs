//! SPEC §4 bad input: a corpus of garbage lines in every topic gives exactly
//! one dead letter each, with the right reason, and the run still exits 0.

mod common;

use common::{edu_rtdw, rows, write_partition};
use connectors::sample::TOPICS;

/// Lines that no metric can read, with their reason.
const GARBAGE: &[(&[u8], &str)] = &[
    (b"{\"id\": \"1\", \"data\": {\"userid\":", "not_json"),
    (b"{\"id\": \"1\"} trailing", "not_json"),
    (b"", "not_json"),
    (b"   ", "not_json"),
    (b"\xff\xfe\x00garbage", "not_json"),
    (b"{\"id\": \"\xc3\x28\"}", "not_json"),
    (b"{'id': 1}", "not_json"),
    (b"NaN", "not_json"),
    (b"[1, 2, 3]", "not_object"),
    (b"[]", "not_object"),
    (b"42", "not_object"),
    (b"\"just a string\"", "not_object"),
    (b"null", "not_object"),
    (b"true", "not_object"),
    // Valid JSON beyond f64: not an object, not unreadable.
    (b"1e400", "not_object"),
];

#[test]
fn garbage_in_every_topic_is_one_dead_letter_each() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("input");
    let lines: Vec<&[u8]> = GARBAGE.iter().map(|(l, _)| *l).collect();
    for topic in TOPICS {
        write_partition(&input, topic, 0, &lines);
    }
    let db = tmp.path().join("out.db");
    let out = edu_rtdw(&["run", "--input-dir", "input", "--sqlite", "out.db", "-q"], tmp.path());
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));

    for topic in TOPICS {
        let got = rows(
            &db,
            &format!(
                "SELECT \"offset\", metric, reason FROM dead_letters WHERE source = '{topic}' ORDER BY \"offset\""
            ),
        );
        let want: Vec<Vec<String>> = GARBAGE
            .iter()
            .enumerate()
            .map(|(i, (_, reason))| vec![i.to_string(), "*".to_string(), reason.to_string()])
            .collect();
        assert_eq!(got, want, "dead letters of {topic}");
    }
    // The raw bytes are kept exactly, as text or (invalid UTF-8) as a blob.
    let raw =
        rows(&db, "SELECT typeof(raw), length(raw) FROM dead_letters WHERE source = 'qos_log' AND \"offset\" = 4");
    assert_eq!(raw, vec![vec!["blob".to_string(), "10".to_string()]]);
}

#[test]
fn wrong_types_are_dead_letters_of_the_metrics_that_read_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("input");
    write_partition(&input, "qos_log", 0, &[br#"{"user_id": "abc", "classroom_id": "r", "extra": {"data_time": 1}}"#]);
    write_partition(
        &input,
        "data_pack_order_info",
        0,
        &[br#"{"id": "o1", "cc_id": "x", "status": 3}"#, br#"{"id": "o2", "cc_id": 1, "status": "three"}"#],
    );
    write_partition(
        &input,
        "agora_record",
        0,
        &[
            br#"{"user_type": "student", "event": "e", "agora_audioState": {"lost": "lots"}, "messageCreateTime": 1}"#,
            br#"{"user_type": "student", "event": "e", "agora_audioState": {"lost": 1e400}, "messageCreateTime": 1}"#,
        ],
    );
    write_partition(&input, "timeline_client_topic", 0, &[br#"{"data": "{not json", "createTime": "x"}"#, br#"{"data": {"timestamp": "soon", "role": "2", "msgid": "305", "msg": {"msgtype": "116", "msg_data": {"target_type": "shape", "action": "move"}}}}"#, br#"{"data": {"timestamp": 1e400, "role": "2", "msgid": "305", "msg": {"msgtype": "116", "msg_data": {"target_type": "shape", "action": "move"}}}}"#]);
    write_partition(&input, "uc_account-user", 0, &[br#"{"id": {"nested": 1}, "name": "x"}"#]);
    let db = tmp.path().join("out.db");
    let out = edu_rtdw(&["run", "--input-dir", "input", "--sqlite", "out.db", "-q"], tmp.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = rows(&db, "SELECT source, \"offset\", metric, reason FROM dead_letters ORDER BY source, \"offset\"");
    let want = [
        ["agora_record", "0", "av_quality_30s", "bad_field:agora_audioState.lost"],
        // A number beyond f64 is valid JSON: a bad field, not `not_json`.
        ["agora_record", "1", "av_quality_30s", "bad_field:agora_audioState.lost"],
        ["data_pack_order_info", "0", "daily_cc_confirmations", "bad_field:cc_id"],
        ["data_pack_order_info", "1", "daily_cc_confirmations", "bad_field:status"],
        // 2.8 reads every qos_log record: its time is named first (event_time is NULL).
        ["qos_log", "0", "daily_uv_pv", "bad_field:event_time"],
        ["qos_log", "0", "offline_study_time", "bad_field:user_id"],
        // 2.8 reads every signal: `data` is no JSON object (0), the timestamp is no integer (1).
        ["timeline_client_topic", "0", "daily_uv_pv", "bad_field:timestamp"],
        ["timeline_client_topic", "0", "student_signal_etl", "bad_field:msgId"],
        ["timeline_client_topic", "1", "daily_uv_pv", "bad_field:timestamp"],
        ["timeline_client_topic", "1", "student_signal_etl", "bad_field:timestamp"],
        ["timeline_client_topic", "2", "daily_uv_pv", "bad_field:timestamp"],
        ["timeline_client_topic", "2", "student_signal_etl", "bad_field:timestamp"],
        ["uc_account-user", "0", "hourly_registrations_by_level", "bad_field:id"],
    ];
    let want: Vec<Vec<String>> = want.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    assert_eq!(got, want);
}
