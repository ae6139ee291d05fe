//! The reader's contract checked from outside each part: typed slots against the
//! scalar conversions, the fast scanner against the reference reader (on hand-made,
//! boundary and mutated messages), learned keys against fresh reads, and the
//! integer and UTF-8 paths against `std`.

use super::reference::{into_owned, slow_read};
use super::*;

const PATHS: &[&[&str]] = &[&["a"], &["n", "x"], &["n", "m", "y"]];

fn read(s: &str) -> Result<Vec<Scalar<'_>>, Reject> {
    read_paths(s.as_bytes(), PATHS)
}

#[test]
fn typed_text_from_every_kind_of_slot() {
    let set = PathSet::new(PATHS);
    let texts = |msg: &str| {
        let slots = read_slots(msg.as_bytes(), &set).unwrap();
        (0..PATHS.len()).map(|i| slots.text(i)).collect::<Vec<_>>()
    };
    let val = |s: &str| Field::Val(crate::Text::from(s));
    // Literal, escaped string (decoded), negative integer.
    assert_eq!(
        texts(r#"{"a": true, "n": {"x": "q\"w", "m": {"y": -12}}}"#),
        vec![val("true"), val("q\"w"), val("-12")]
    );
    // Object where text is wanted, null, plain string nested as a string.
    assert_eq!(
        texts(r#"{"a": {"k": 1}, "n": {"x": null, "m": "{\"y\": \"plain\"}"}}"#),
        vec![Field::Bad, Field::Null, val("plain")]
    );
    // A float is read by the reference reader: its text as serde writes it; missing keys are NULL.
    assert_eq!(texts(r#"{"a": 1.5, "n": {"x": false}}"#), vec![val("1.5"), val("false"), Field::Null]);
}

/// Issue 22 finding 8: a number beyond `f64` is valid JSON. Where a field is read it is
/// its text (a typed field then says `bad_field`), where an object is expected its leaves
/// are Bad, unread it is skipped, and a whole message of it is no object: never `not_json`.
#[test]
fn numbers_beyond_f64_are_valid_json() {
    let num = |t: &str| Scalar::Num(t.to_string());
    assert_eq!(read(r#"{"a": 1e400, "n": {"x": -2E+999}}"#), Ok(vec![num("1e400"), num("-2E+999"), Scalar::Null]));
    assert_eq!(read(r#"{"a": 1, "n": 1e400}"#), Ok(vec![Scalar::Int(1), Scalar::Bad, Scalar::Bad]));
    assert_eq!(read(r#"{"a": 2, "zz": 1e400}"#), Ok(vec![Scalar::Int(2), Scalar::Null, Scalar::Null]));
    assert_eq!(read("1e400"), Err(Reject::NotObject));
    assert_eq!(read(r#"{"a": 1e400"#), Err(Reject::NotJson));
    // What serde_json reads, it still reads the same: floats as its f64 text, big integers whole.
    assert_eq!(read(r#"{"a": 1.50}"#), Ok(vec![num("1.5"), Scalar::Null, Scalar::Null]));
    assert_eq!(
        read(r#"{"a": 18446744073709551615}"#),
        Ok(vec![num("18446744073709551615"), Scalar::Null, Scalar::Null])
    );
    let set = PathSet::new(PATHS);
    let slots = read_slots(br#"{"a": 1e400}"#, &set).unwrap();
    assert_eq!(slots.text(0), Field::Val(crate::Text::from("1e400")), "text where any scalar is accepted");
}

#[test]
fn a_kept_slot_buffer_reads_each_message_afresh() {
    let set = PathSet::new(PATHS);
    let mut scratch = Scratch::default();
    let messages = [
        r#"{"a": "1", "n": {"x": 2, "m": "{\"y\": \"t\\n\"}"}}"#,
        r#"{"z": 0}"#,
        r#"{"a": 1.5}"#,
        r#"{"n": "{\"m\": 7}", "a": null}"#,
        "not json",
        r#"{"a": "x"}"#,
    ];
    for text in messages {
        let fresh = read_path_set(text.as_bytes(), &set);
        assert_eq!(read_kept(text, &set, &mut scratch), fresh, "{text}");
    }
    // The buffer came back each time, with its allocation.
    assert!(scratch.slots.is_empty() && scratch.slots.capacity() >= PATHS.len());
    let before = scratch.slots.as_ptr();
    read_slots_with(br#"{"a": 1}"#, &set, &mut scratch).unwrap().recycle(&mut scratch);
    assert_eq!(scratch.slots.as_ptr(), before, "the slot buffer is reused, not reallocated");
}

#[test]
fn objects_and_strings_nest_alike() {
    let direct = read(r#"{"a": 1, "n": {"x": "2", "m": {"y": 3}}}"#).unwrap();
    let strung = read(r#"{"a": 1, "n": "{\"x\": \"2\", \"m\": \"{\\\"y\\\": 3}\"}"}"#).unwrap();
    assert_eq!(direct, strung);
    assert_eq!(direct, vec![Scalar::Int(1), Scalar::Str("2".into()), Scalar::Int(3)]);
}

#[test]
fn null_empty_missing_and_extra() {
    let s = read(r#"{"a": "", "n": null, "zzz": [1, {"b": 2}]}"#).unwrap();
    assert_eq!(s, vec![Scalar::Null, Scalar::Null, Scalar::Null]);
    let s = read(r#"{"n": ""}"#).unwrap();
    assert_eq!(s, vec![Scalar::Null, Scalar::Null, Scalar::Null]);
}

#[test]
fn wrong_shapes_are_bad_below() {
    let s = read(r#"{"a": {"q": 1}, "n": 5}"#).unwrap();
    assert_eq!(s, vec![Scalar::Bad, Scalar::Bad, Scalar::Bad]);
    let s = read(r#"{"a": [1], "n": "{not json"}"#).unwrap();
    assert_eq!(s, vec![Scalar::Bad, Scalar::Bad, Scalar::Bad]);
    let s = read(r#"{"n": {"x": 1, "m": "[1]"}}"#).unwrap();
    assert_eq!(s, vec![Scalar::Null, Scalar::Int(1), Scalar::Bad]);
}

#[test]
fn fast_reader_agrees_with_serde() {
    let cases = [
        r#"{"a": 1, "n": {"x": "2", "m": {"y": 3}}}"#,
        r#"{"a": 1, "n": "{\"x\": \"2\", \"m\": \"{\\\"y\\\": 3}\"}"}"#,
        r#"{"a": -0, "n": {"x": -5}}"#,
        r#"{"a": 0, "n": {"x": 00}}"#,
        r#"{"a": 1.5}"#,
        r#"{"a": 1e3}"#,
        r#"{"a": 18446744073709551615}"#,
        r#"{"a": 9223372036854775807, "n": {"x": -9223372036854775808}}"#,
        r#"{"a": "\u00e9\n\t\/", "n": "{\"x\": \"\\ud83d\\ude00\"}"}"#,
        r#"{"a": "\ud800"}"#,
        r#"{"a": "tab	here"}"#,
        r#"{"a": [1, {"b": [true, false, null]}], "n": [], "z": {}}"#,
        r#"{"a": {"q": 1}, "n": 5}"#,
        r#"{"n": "[1]"}"#,
        r#"{"n": "5"}"#,
        r#"{"n": "{not json"}"#,
        r#"{"n": ""}"#,
        r#"{"n": null, "a": null}"#,
        r#"{"n": true}"#,
        r#"{"a": 1,}"#,
        r#"{"a": 1} x"#,
        r#"{"a": 1 "b": 2}"#,
        r#"{"a": tru}"#,
        r#"{"a": nul}"#,
        r#" {"a":1} "#,
        r#"{"zz": -}"#,
        r#"{"zz": 1.}"#,
        r#"{"zz": 1e400}"#,
        r#"{"zz": "\q"}"#,
        r#"{"a": 1, "a": 2, "n": {"x": 1}, "n": "{}"}"#,
        r#"[1]"#,
        r#""x""#,
        "",
        "{",
    ];
    for case in cases {
        let fast = read_paths_fast(case, &PathSet::new(PATHS));
        let slow = slow_read(case, PATHS);
        if let Some(f) = fast {
            assert_eq!(Ok(f), slow, "{case}");
        }
    }
    let deep = format!("{{\"z\": {}1{}}}", "[".repeat(200), "]".repeat(200));
    assert!(read_paths_fast(&deep, &PathSet::new(PATHS)).is_none());
    assert_eq!(read(&deep), slow_read(&deep, PATHS));
}

/// Nested strings read in place, one escape level deeper each, against values derived by hand.
#[test]
fn nested_strings_are_read_in_place() {
    let set = PathSet::new(PATHS);
    let cases: &[(&str, [Scalar<'_>; 3])] = &[
        // Level 1 and level 2 strings with no escapes of their own: borrowed.
        (
            r#"{"a": "v", "n": "{\"x\": \"w\", \"m\": \"{\\\"y\\\": \\\"z\\\"}\"}"}"#,
            [Scalar::Str("v".into()), Scalar::Str("w".into()), Scalar::Str("z".into())],
        ),
        // An escaped quote in a level-2 value: 7 backslashes = one level-2 `\"`.
        (
            r#"{"n": "{\"m\": \"{\\\"y\\\": \\\"q\\\\\\\"r\\\"}\"}"}"#,
            [Scalar::Null, Scalar::Null, Scalar::Str("q\"r".into())],
        ),
        // A newline, a slash and a \u escape inside a level-1 value.
        (r#"{"n": "{\"x\": \"a\\nb\\/c\\u00e9\"}"}"#, [Scalar::Null, Scalar::Str("a\nb/c\u{e9}".into()), Scalar::Null]),
        // Integers, spaces, an empty level-2 string (NULL) and skipped members at level 1.
        (
            r#"{"n": " { \"z\" : [1, {\"q\": \"\\\"\"}] , \"x\" : -12 , \"m\" : \"\" } "}"#,
            [Scalar::Null, Scalar::Int(-12), Scalar::Null],
        ),
        // A level-1 object that is not a string: Bad below it; a level-2 null.
        (r#"{"n": "{\"x\": 5, \"m\": {\"y\": null}}", "a": 7}"#, [Scalar::Int(7), Scalar::Int(5), Scalar::Null]),
        (r#"{"n": "{\"m\": 3}"}"#, [Scalar::Null, Scalar::Null, Scalar::Bad]),
    ];
    for (text, want) in cases {
        assert_eq!(read_paths_fast(text, &set).as_deref(), Some(&want[..]), "{text}");
        assert_eq!(slow_read(text, PATHS).as_deref(), Ok(&want[..]), "{text}");
    }
}

/// Every byte the string scanner must stop at (or pass), at every place in its 16- and
/// 8-byte steps, at escape levels 0 and 1: wherever the fast reader answers, it agrees with serde.
#[test]
fn string_scanner_stops_where_serde_would_at_every_offset() {
    let paths: &[&[&str]] = &[&["s"], &["n", "s"], &["z"]];
    let set = PathSet::new(paths);
    let bytes: [&str; 10] = ["\u{0}", "\u{1}", "\u{1f}", " ", "\u{7f}", "\"", "\\", "\\\"", "é", "课"];
    let mut answered = 0;
    for len in [15, 16, 17, 40] {
        for at in 0..len {
            for b in bytes {
                let mut value = "v".repeat(len);
                value.replace_range(at..at + 1, b);
                let plain = format!(r#"{{"s":"{value}","z":1}}"#);
                let nested = format!(r#"{{"n":"{{\"s\":\"{value}\"}}","z":1}}"#);
                for text in [plain, nested] {
                    if let Some(fast) = read_paths_fast(&text, &set) {
                        answered += 1;
                        assert_eq!(Ok(fast), slow_read(&text, paths), "{text:?}");
                    }
                }
            }
        }
    }
    assert!(answered > 700, "{answered}");
}

const MUTATION_PATHS: &[&[&str]] =
    &[&["t"], &["d", "u"], &["d", "m", "k"], &["d", "m", "g", "a"], &["d", "m", "g", "b"]];

/// Nested messages in the shapes of the timeline topic, objects and strings at every level.
const MUTATION_BASES: [&str; 4] = [
    r#"{"t":"2025-12-02 08:00:00.725","d":{"m":"{\"g\":\"{\\\"a\\\":\\\"move\\\",\\\"b\\\":\\\"15\\\",\\\"c\\\":\\\"x\\\"}\",\"k\":116}","u":"900022"}}"#,
    r#"{"t":"x","d":"{\"m\":\"{\\\"g\\\":\\\"{\\\\\\\"a\\\\\\\":\\\\\\\"m\\\\\\\",\\\\\\\"b\\\\\\\":\\\\\\\"3\\\\\\\"}\\\",\\\"k\\\":\\\"116\\\"}\",\"u\":\"100185\"}"}"#,
    r#"{"t": "y", "d": "{\"m\": {\"g\": {\"a\": \"q\\\"r\", \"b\": 11}, \"k\": \"116\"}, \"u\": 100181}"}"#,
    r#"{"d":{"m":{"g":{"a":"add","b":"2"},"k":116},"u":100156},"t":"2025"}"#,
];

/// `per_base` seeded mutations (one to three bytes removed, inserted or replaced) of each
/// base, round-robin over the bases; those that are still UTF-8.
fn mutations(per_base: usize) -> Vec<String> {
    let alphabet = b"\\\"{}[],: nu0/\n9a";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut out = Vec::new();
    for _ in 0..per_base {
        for base in MUTATION_BASES {
            let mut bytes = base.as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(bytes.len());
                match next(3) {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[next(alphabet.len())]),
                    _ => bytes[at] = alphabet[next(alphabet.len())],
                }
            }
            out.extend(String::from_utf8(bytes).ok());
        }
    }
    out
}

/// Seeded mutations of nested messages: wherever the fast reader answers, it agrees with serde.
#[test]
fn fast_reader_agrees_with_serde_on_mutations() {
    let set = PathSet::new(MUTATION_PATHS);
    for base in MUTATION_BASES {
        assert!(read_paths_fast(base, &set).is_some(), "{base}");
    }
    let texts = mutations(3000);
    let mut answered = 0;
    for text in &texts {
        if let Some(fast) = read_paths_fast(text, &set) {
            answered += 1;
            assert_eq!(Ok(fast), slow_read(text, MUTATION_PATHS), "{text}");
        }
    }
    // The mutations must leave the fast reader enough to answer for the test to mean anything.
    assert!(answered * 20 > texts.len(), "fast reader answered {answered} of {}", texts.len());
}

/// `text` read through `scratch` (with what it learned before), as owned scalars.
fn read_kept(text: &str, set: &PathSet<'_>, scratch: &mut Scratch) -> Result<Vec<Scalar<'static>>, Reject> {
    read_slots_with(text.as_bytes(), set, scratch).map(|slots| {
        let scalars = (0..set.paths.len()).map(|i| into_owned(slots.view(i))).collect();
        slots.recycle(scratch);
        scalars
    })
}

/// The same mutations read one after another through one kept scratch, so that every
/// message is read with the keys learned from the others (mostly wrong guesses, and right
/// ones on bytes that differ just after the key): each reads as it does afresh, and as
/// serde reads it.
#[test]
fn learned_keys_never_change_what_is_read() {
    let set = PathSet::new(MUTATION_PATHS);
    let mut scratch = Scratch::default();
    let texts = mutations(1500);
    for text in &texts {
        let kept = read_kept(text, &set, &mut scratch);
        assert_eq!(
            kept,
            read_path_set(text.as_bytes(), &set).map(|v| v.into_iter().map(into_owned).collect()),
            "{text}"
        );
        assert_eq!(kept, slow_read(text, MUTATION_PATHS).map(|v| v.into_iter().map(into_owned).collect()), "{text}");
    }
    // The guesses were taken (the memo was used, so the comparison means something).
    assert!(scratch.keys.hits > texts.len(), "{} hits over {} messages", scratch.keys.hits, texts.len());
}

/// Learned keys against keys that extend them, share their prefix, come in another order,
/// with whitespace, at another level or object, repeated, escaped, near the end of the
/// message, and at the longest pattern learned; values by hand.
#[test]
fn learned_keys_match_only_themselves() {
    let long = "k".repeat(super::memo::PATTERN - 3); // `"k…k":` is exactly PATTERN bytes
    let longer = "k".repeat(super::memo::PATTERN - 2); // one byte too long to learn
    let paths: &[&[&str]] = &[&["ab"], &["abc"], &["n", "ab"], &[long.as_str()], &[longer.as_str()]];
    let set = PathSet::new(paths);
    let mut scratch = Scratch::default();
    let int = Scalar::Int;
    let null = || Scalar::Null;
    let cases: Vec<(String, Vec<Scalar<'static>>)> = vec![
        (r#"{"ab":1,"abc":2}"#.into(), vec![int(1), int(2), null(), null(), null()]),
        (r#"{"abc":3,"ab":4}"#.into(), vec![int(4), int(3), null(), null(), null()]),
        (r#"{"ab":5,"abc":6}"#.into(), vec![int(5), int(6), null(), null(), null()]),
        (r#"{"ab" :7,"abc": 8}"#.into(), vec![int(7), int(8), null(), null(), null()]),
        (r#"{"abd":1,"ab":2,"abcd":3}"#.into(), vec![int(2), null(), null(), null(), null()]),
        (r#"{"n":"{\"ab\":9}","ab":10}"#.into(), vec![int(10), null(), int(9), null(), null()]),
        (r#"{"n":{"ab":11},"ab":12}"#.into(), vec![int(12), null(), int(11), null(), null()]),
        (r#"{"n":{"abc":11},"ab":12}"#.into(), vec![int(12), null(), null(), null(), null()]),
        (r#"{"ab":1,"ab":2}"#.into(), vec![int(2), null(), null(), null(), null()]),
        (r#"{"a\u0062":13}"#.into(), vec![int(13), null(), null(), null(), null()]),
        (r#"{"ab":14}"#.into(), vec![int(14), null(), null(), null(), null()]),
        (r#"{"ab":15}"#.into(), vec![int(15), null(), null(), null(), null()]),
        (r#"{"abc":16}"#.into(), vec![null(), int(16), null(), null(), null()]),
        (format!(r#"{{"{long}":1,"{longer}":2}}"#), vec![null(), null(), null(), int(1), int(2)]),
        (format!(r#"{{"{long}":3,"{longer}":4}}"#), vec![null(), null(), null(), int(3), int(4)]),
        (format!(r#"{{"{long}k":5,"{long}":6}}"#), vec![null(), null(), null(), int(6), int(5)]),
        // Same length as the learned key, one byte different at its end.
        (format!(r#"{{"{}j":5}}"#, &long[1..]), vec![null(), null(), null(), null(), null()]),
        (format!(r#"{{"{longer}":7,"{long}":8,"ab":9}}"#), vec![int(9), null(), null(), int(8), int(7)]),
    ];
    for (text, want) in &cases {
        assert_eq!(read_kept(text, &set, &mut scratch).as_ref(), Ok(want), "{text}");
    }
    assert!(scratch.keys.hits >= 8, "{} hits", scratch.keys.hits);
}

/// `text_is` agrees with comparing the text made by `text`, for every kind of slot and
/// from both readers (a float sends the message to the reference reader).
#[test]
fn text_is_agrees_with_the_text() {
    let paths: &[&[&str]] = &[&["v"]];
    let set = PathSet::new(paths);
    let values = [
        "305",
        r#""305""#,
        r#""0305""#,
        "-305",
        r#""30""#,
        r#""\u0033\u00305""#,
        "true",
        r#""true""#,
        "null",
        r#""""#,
        "{}",
        "[305]",
        "305.0",
        r#""课""#,
        "0",
        "-0",
        "9223372036854775807",
        "-9223372036854775808",
        "10",
        "99",
    ];
    for value in values {
        for tail in ["", r#", "f": 1.5"#] {
            let msg = format!(r#"{{"v": {value}{tail}}}"#);
            let slots = read_slots(msg.as_bytes(), &set).unwrap();
            let wants = [
                "305", "true", "30", "305.0", "课", "", "+305", "0305", "-305", "0", "-0", "+0", "00", "10", "010",
                "99",
            ];
            let extremes =
                ["9223372036854775807", "-9223372036854775808", "09223372036854775807", "-09223372036854775808"];
            for want in wants.into_iter().chain(extremes) {
                let text = slots.text(0);
                let expected = text.clone().map(|t| t == want);
                assert_eq!(slots.text_is(0, &Wanted::new(want)), expected, "{msg} is {want:?} (text {text:?})");
            }
        }
    }
}

/// `parse_int` reads what `str::parse` reads, for every length around the eight-digit
/// chunks and the 18-digit limit, with a stray byte (the neighbours of the digits
/// among them) at every position.
#[test]
fn parse_int_agrees_with_std() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let strays = ["/", ":", "+", "-", " ", "a", "\0", "é", "\u{ff}", "0", "9", "\u{fa}"];
    let mut cases: Vec<String> =
        ["", "+", "-", "+0", "-0", "007", "9223372036854775807", "9223372036854775808", "-9223372036854775808"]
            .map(String::from)
            .to_vec();
    for len in 1..=21 {
        for _ in 0..200 {
            let digits: String = (0..len).map(|_| char::from(b'0' + next(10) as u8)).collect();
            cases.push(digits.clone());
            cases.push(format!("-{digits}"));
            cases.push(format!("+{digits}"));
            let at = next(len as u64 + 1) as usize;
            let stray = strays[next(strays.len() as u64) as usize];
            cases.push(format!("{}{stray}{}", &digits[..at], &digits[at..]));
            let at = next(len as u64) as usize;
            cases.push(format!("{}{stray}{}", &digits[..at], &digits[at + 1..]));
        }
        cases.push("9".repeat(len));
    }
    for text in &cases {
        assert_eq!(parse_int(text), text.parse::<i64>().ok(), "{text:?}");
    }
}

/// The integer a wanted text spells is the one whose digits `itoa` writes as that text.
#[test]
fn wanted_integers_are_exactly_their_digits() {
    let values = (-1100..=1100).chain([i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1, 9_999_999_999, -10_000_000_000]);
    for v in values {
        let plain = itoa::Buffer::new().format(v).to_owned();
        let digits = plain.trim_start_matches('-').to_owned();
        let spellings = [
            plain.clone(),
            format!("+{plain}"),
            format!("0{digits}"),
            format!("-0{digits}"),
            format!("{plain}0"),
            format!("{plain} "),
            digits,
        ];
        for text in spellings {
            let text: &'static str = Box::leak(text.into_boxed_str());
            let expected = text.parse::<i64>().ok().filter(|w| itoa::Buffer::new().format(*w) == text);
            assert_eq!(Wanted::new(text).int, expected, "{text:?}");
        }
    }
    for text in [
        "",
        "-",
        "+",
        "0",
        "-0",
        "00",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
        "1e3",
        "١٢",
    ] {
        let expected = text.parse::<i64>().ok().filter(|w| itoa::Buffer::new().format(*w) == text);
        assert_eq!(Wanted::new(text).int, expected, "{text:?}");
    }
}

/// Typed fields made from slots equal the conversions of the same values as scalars.
#[test]
fn typed_slots_equal_scalar_conversions() {
    let set = PathSet::new(PATHS);
    for msg in [
        r#"{"a": "305", "n": {"x": 305, "m": {"y": true}}}"#,
        r#"{"a": "x\ty", "n": "{\"x\": \"12\", \"m\": \"{\\\"y\\\": [1]}\"}"}"#,
        r#"{"a": 1.5, "n": {"x": -7, "m": {"y": "\u00e9"}}}"#,
        r#"{"a": 18446744073709551615, "n": null}"#,
    ] {
        let scalars = read_path_set(msg.as_bytes(), &set).unwrap();
        let slots = read_slots(msg.as_bytes(), &set).unwrap();
        for (i, scalar) in scalars.into_iter().enumerate() {
            assert_eq!(slots.text(i), Field::from_str_scalar(scalar.clone()), "{msg} text {i}");
            assert_eq!(slots.int(i), Field::from_int_scalar(scalar), "{msg} int {i}");
        }
    }
}

/// Keys are compared a word at a time: keys of 1 to 25 bytes match only themselves,
/// not a key that differs in any one byte, nor one a byte longer or shorter.
#[test]
fn keys_of_every_length_match_exactly() {
    for len in 1..=25 {
        let key: String = (0..len).map(|i| char::from(b'a' + i as u8)).collect();
        let paths: &[&[&str]] = &[&[key.as_str()]];
        let set = PathSet::new(paths);
        let read_key =
            |k: &str| into_owned(read_path_set(format!(r#"{{"{k}": 7}}"#).as_bytes(), &set).unwrap()[0].clone());
        assert_eq!(read_key(&key), Scalar::Int(7), "{key}");
        for at in 0..len {
            let mut other = key.clone().into_bytes();
            other[at] = b'Z';
            assert_eq!(read_key(std::str::from_utf8(&other).unwrap()), Scalar::Null, "{key} at {at}");
        }
        assert_eq!(read_key(&format!("{key}z")), Scalar::Null, "{key}z");
        assert_eq!(read_key(&key[..len - 1]), Scalar::Null, "{key} shortened");
    }
}

#[test]
fn duplicate_key_last_wins() {
    assert_eq!(read(r#"{"a": 1, "a": 2}"#).unwrap()[0], Scalar::Int(2));
}

#[test]
fn rejects() {
    for bad in ["", "   ", "{", r#"{"a": 1"#, r#"{"a": 1} x"#, "nul", "{'a': 1}"] {
        assert_eq!(read(bad), Err(Reject::NotJson), "{bad:?}");
    }
    for not_obj in ["[1, 2]", "42", "\"x\"", "null", "true", " [] "] {
        assert_eq!(read(not_obj), Err(Reject::NotObject), "{not_obj:?}");
    }
    assert_eq!(read_paths(b"{\"a\": \"\xff\"}", PATHS), Err(Reject::NotJson));
    assert_eq!(read_paths(b"{\"skipped\": \"\xc3\x28\"}", PATHS), Err(Reject::NotJson));
}

/// Long messages take the vectorised validator's path: invalid UTF-8 anywhere in them
/// (overlong forms, surrogates, truncated or stray continuation bytes, bytes above
/// U+10FFFF) is still not JSON, as `std` judges it, and valid multi-byte text is kept.
#[test]
fn long_messages_are_validated_like_std() {
    let invalid: [&[u8]; 7] =
        [b"\xc0\xaf", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80", b"\xf4\x90\x80\x80", b"\xff", b"\xf0\x9f\x98"];
    for at in [0, 31, 32, 63, 100] {
        for bad in invalid {
            let mut msg = format!("{{\"skipped\": \"{}", "x".repeat(at)).into_bytes();
            msg.extend_from_slice(bad);
            msg.extend_from_slice(format!("{}\", \"a\": 1}}", "y".repeat(80)).as_bytes());
            assert!(std::str::from_utf8(&msg).is_err());
            assert_eq!(read_paths(&msg, PATHS), Err(Reject::NotJson), "{bad:?} at {at}");
        }
    }
    let good = format!("{{\"skipped\": \"{}\", \"a\": \"{}课程😀\"}}", "x".repeat(70), "z".repeat(40));
    assert_eq!(read(&good).unwrap()[0], Scalar::Str(format!("{}课程😀", "z".repeat(40)).into()));
}

#[test]
fn typed_fields() {
    assert_eq!(Field::from_int_scalar(Scalar::Str("305".into())), Field::Val(305));
    assert_eq!(Field::from_int_scalar(Scalar::Int(305)), Field::Val(305));
    assert_eq!(Field::from_int_scalar(Scalar::Str("abc".into())), Field::Bad);
    assert_eq!(Field::from_int_scalar(Scalar::Num("1.5".into())), Field::Bad);
    assert_eq!(Field::from_int_scalar(Scalar::Null), Field::<i64>::Null);
    assert_eq!(Field::from_str_scalar(Scalar::Int(305)), Field::Val(crate::Text::from("305")));
    assert_eq!(Field::from_str_scalar(Scalar::Bad), Field::<crate::Text>::Bad);
}

#[test]
fn last_value_merge_keeps_older_on_null() {
    let mut f = Field::Val(1);
    f.merge_last(Field::Null);
    assert_eq!(f, Field::Val(1));
    f.merge_last(Field::Bad);
    assert_eq!(f, Field::Val(1));
    f.merge_last(Field::Val(2));
    assert_eq!(f, Field::Val(2));
}
