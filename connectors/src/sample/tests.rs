//! The generator's tests: determinism, shapes of sloppiness, shares of garbage and late records.

use std::collections::{BTreeMap, BTreeSet};

use super::sloppy::*;
use super::*;

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
