//! How the generator writes JSON sloppily, in every way SPEC §1 allows, and how it
//! makes garbage (dead letters, SPEC §4): nested objects as strings, scalars as
//! strings or numbers, NULL as `""`/`null`/missing, unknown fields, truncated or
//! non-UTF-8 lines and values of the wrong type.

use super::*;

/// An integer as a JSON number or a JSON string.
pub(super) fn int(rng: &mut Rand, v: i64) -> Value {
    if rng.random_bool(0.5) { Value::from(v) } else { Value::from(v.to_string()) }
}

/// A nested object as an object or as a string holding its JSON.
pub(super) fn nested(rng: &mut Rand, obj: Obj) -> Value {
    let v = Value::Object(obj);
    if rng.random_bool(STRINGIFY_P) { Value::String(v.to_string()) } else { v }
}

/// NULL as `""`, `null` or a missing field.
pub(super) fn put_null(rng: &mut Rand, obj: &mut Obj, k: &str) {
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
pub(super) fn put_opt(rng: &mut Rand, obj: &mut Obj, k: &str, v: Option<Value>) {
    match v {
        Some(v) => {
            obj.insert(k.into(), v);
        }
        None => put_null(rng, obj, k),
    }
}

pub(super) fn put(obj: &mut Obj, k: &str, v: impl Into<Value>) {
    obj.insert(k.into(), v.into());
}

/// Sometimes adds an unknown field that every parser must ignore.
pub(super) fn extras(rng: &mut Rand, obj: &mut Obj) {
    if rng.random_bool(EXTRA_FIELD_P) {
        let trace: u64 = rng.random();
        put(obj, "trace_id", format!("{trace:016x}"));
    }
    if rng.random_bool(EXTRA_FIELD_P / 2.0) {
        put(obj, "v", 2);
    }
}

/// Weighted choice from a small static table.
pub(super) fn pick<'a, T>(rng: &mut Rand, items: &'a [(T, u32)]) -> &'a T {
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
pub(super) fn fmt_datetime(ms: i64) -> String {
    utc(ms).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `yyyy-MM-dd HH:mm:ss.SSS` of ms since the epoch, in UTC.
pub(super) fn fmt_datetime_ms(ms: i64) -> String {
    utc(ms).format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// The UTC date-time of ms since the epoch (the generator's times are all well within chrono's range).
pub(super) fn utc(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Garbage (SPEC §4)
// ---------------------------------------------------------------------------

/// Turns a record into one of the dead-letter shapes.
pub(super) fn garbage(rng: &mut Rand, topic: usize, value: Value) -> Vec<u8> {
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

pub(super) fn truncated(rng: &mut Rand, value: &Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    let cut = rng.random_range(1..bytes.len().max(2));
    bytes.truncate(cut);
    bytes
}

/// Valid JSON syntax but invalid UTF-8 inside the first key.
pub(super) fn invalid_utf8(value: Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    let at = bytes.iter().position(|b| *b == b'"').map_or(0, |i| i + 1);
    bytes.splice(at..at, [0xff, 0xfe]);
    bytes
}

/// Parses a stringified nested object in place and returns it.
pub(super) fn as_obj(v: &mut Value) -> Option<&mut Obj> {
    if let Value::String(s) = v
        && let Ok(parsed) = serde_json::from_str::<Value>(s)
    {
        *v = parsed;
    }
    v.as_object_mut()
}

/// A JSON object whose required typed field cannot be read as its type.
pub(super) fn wrong_type(rng: &mut Rand, topic: usize, mut value: Value) -> Option<Value> {
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
