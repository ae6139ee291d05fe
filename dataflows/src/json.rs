//! Sloppy JSON reading, written once for every topic (SPEC §1).
//!
//! A topic declares the JSON paths it reads (`["data", "msg", "msgtype"]`);
//! [`read_paths`] walks a message once, with serde's streaming visitors and no
//! `serde_json::Value` tree, and fills one [`Scalar`] slot per path:
//!
//! * a nested object may arrive as an object **or** as a string holding JSON,
//!   at any level (the string is parsed with the same walker);
//! * `""`, `null` and a missing key are all [`Scalar::Null`];
//! * unknown keys are skipped without being materialised;
//! * a duplicate key: the last occurrence wins, as in most JSON readers;
//! * a value of the wrong shape (an object where a scalar is wanted, or a
//!   number where an object is wanted) is [`Scalar::Bad`] for every path below
//!   it, so that only the metrics that need that field reject the record.
//!
//! Typed access goes through [`Field`]: [`Field::from_str_scalar`] accepts any
//! scalar as text, [`Field::from_int_scalar`] accepts a JSON integer or a
//! string holding one (`"305"` or `305`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

mod memo;

pub use memo::KeyMemo;

/// Why a message could not be read at all (SPEC §4 reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not valid UTF-8 JSON (truncated, empty, trailing garbage, invalid bytes).
    NotJson,
    /// Valid JSON, but not an object (array, string, number, `null`).
    NotObject,
}

impl Reject {
    /// The dead-letter reason text.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::NotJson => "not_json",
            Reject::NotObject => "not_object",
        }
    }
}

/// One leaf value as found in the message, before typing.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// Missing, `null` or `""`.
    Null,
    /// A JSON string (non-empty).
    Str(Cow<'a, str>),
    /// A JSON integer that fits in `i64`.
    Int(i64),
    /// Any other JSON number, kept as its text.
    Num(String),
    /// `true` or `false`.
    Bool(bool),
    /// An object or array where a scalar was expected, or a malformed parent.
    Bad,
}

/// A typed field of a record: NULL, a value, or present but unreadable as its type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub enum Field<T> {
    /// Missing, `null` or `""`.
    #[default]
    Null,
    /// A readable value.
    Val(T),
    /// Present but not readable as the field's type.
    Bad,
}

impl<T> Field<T> {
    /// The value, if readable and not NULL.
    pub fn val(&self) -> Option<&T> {
        match self {
            Field::Val(v) => Some(v),
            _ => None,
        }
    }

    /// `Ok(Some(v))`, `Ok(None)` for NULL, or `Err(name)` when unreadable.
    pub fn read(&self, name: &'static str) -> Result<Option<&T>, &'static str> {
        match self {
            Field::Val(v) => Ok(Some(v)),
            Field::Null => Ok(None),
            Field::Bad => Err(name),
        }
    }

    /// [`Self::read`], by value.
    pub fn into_read(self, name: &'static str) -> Result<Option<T>, &'static str> {
        match self {
            Field::Val(v) => Ok(Some(v)),
            Field::Null => Ok(None),
            Field::Bad => Err(name),
        }
    }

    /// A non-NULL readable value, or `Err(name)` (NULL counts as bad here).
    pub fn require(&self, name: &'static str) -> Result<&T, &'static str> {
        match self {
            Field::Val(v) => Ok(v),
            _ => Err(name),
        }
    }

    /// The value changed by `f`; NULL and unreadable stay so.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Field::Val(v) => Field::Val(f(v)),
            Field::Null => Field::Null,
            Field::Bad => Field::Bad,
        }
    }

    /// Per-column LAST_VALUE: a later non-NULL value replaces, a later NULL keeps.
    pub fn merge_last(&mut self, later: Field<T>) {
        if let Field::Val(_) = later {
            *self = later;
        }
    }
}

impl Field<crate::Text> {
    /// Any scalar read as text (`305` becomes `"305"`).
    #[inline]
    pub fn from_str_scalar(s: Scalar<'_>) -> Self {
        match s {
            Scalar::Null => Field::Null,
            Scalar::Str(s) => Field::Val(crate::Text::from(&*s)),
            Scalar::Int(i) => Field::Val(int_text(i)),
            Scalar::Num(n) => Field::Val(crate::Text::from(n)),
            Scalar::Bool(b) => Field::Val(bool_text(b)),
            Scalar::Bad => Field::Bad,
        }
    }

    /// The text as `&str`, NULL and bad values as `None`.
    pub fn as_str(&self) -> Option<&str> {
        self.val().map(crate::Text::as_str)
    }
}

/// An integer read as text (`305` becomes `"305"`).
fn int_text(i: i64) -> crate::Text {
    crate::Text::new(itoa::Buffer::new().format(i))
}

/// `text` as an `i64`, exactly as `str::parse` reads it. A text of at most 18 plain
/// digits (too few to overflow), the common case of a number sent as a string, is
/// read eight digits at a time; anything else is left to `str::parse`.
pub fn parse_int(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 18 {
        return text.parse().ok();
    }
    let mut value = 0u64;
    let (chunks, rest) = bytes.as_chunks::<8>();
    for chunk in chunks {
        match eight_digits(u64::from_le_bytes(*chunk)) {
            Some(digits) => value = value * 100_000_000 + digits,
            None => return text.parse().ok(),
        }
    }
    for &c in rest {
        if !c.is_ascii_digit() {
            return text.parse().ok();
        }
        value = value * 10 + u64::from(c - b'0');
    }
    // At most 18 digits: below 10^18 < i64::MAX.
    Some(value as i64)
}

/// The value of eight ASCII digits loaded little-endian (the first digit in the lowest
/// byte), or `None` if any byte is not a digit (the SWAR check and conversion of
/// simdjson's `parse_eight_digits_unrolled`).
#[inline]
fn eight_digits(word: u64) -> Option<u64> {
    // A digit is 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3. (A carry out
    // of a byte needs the byte at 0xFA or above, whose own high nibble already fails.)
    let high = word & 0xF0F0_F0F0_F0F0_F0F0;
    let high_after_six = (word.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4;
    if high | high_after_six != 0x3333_3333_3333_3333 {
        return None;
    }
    let pairs = ((word & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    let quads = ((pairs & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    Some(((quads & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32)
}

/// A constant text that [`Slots::text_is`] compares with, and the integer it is the
/// text of, if any (worked out once, when compiled, where the constant is known then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    text: &'static str,
    /// `Some(v)` exactly when `text` is how the integer `v` reads as text: `-` for a
    /// negative number, then its digits, without a leading zero.
    int: Option<i64>,
}

impl Wanted {
    /// `text`, and the integer it spells.
    pub const fn new(text: &'static str) -> Self {
        Wanted { text, int: integer_spelled(text) }
    }
}

/// The integer whose text (`int_text`) is `text`, if any: what `str::parse` reads,
/// except for the other spellings it accepts (`+5`, `05`, `-0`), which spell none.
const fn integer_spelled(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let first = matches!(bytes.first(), Some(b'-')) as usize;
    if bytes.len() <= first || bytes[first] == b'+' || (bytes[first] == b'0' && (bytes.len() > 1 || first == 1)) {
        return None;
    }
    match i64::from_str_radix(text, 10) {
        Ok(value) => Some(value),
        Err(_) => None,
    }
}

/// A boolean read as text.
fn bool_text(b: bool) -> crate::Text {
    crate::Text::const_new(if b { "true" } else { "false" })
}

impl Field<i64> {
    /// A JSON integer, or a string holding exactly an integer.
    #[inline]
    pub fn from_int_scalar(s: Scalar<'_>) -> Self {
        match s {
            Scalar::Null => Field::Null,
            Scalar::Int(i) => Field::Val(i),
            Scalar::Str(s) => s.parse::<i64>().map_or(Field::Bad, Field::Val),
            Scalar::Num(_) | Scalar::Bool(_) | Scalar::Bad => Field::Bad,
        }
    }
}

/// Reads the values at `paths` from one JSON message.
///
/// Returns one slot per path, in order. Fails only when the message is not
/// JSON or not a JSON object; every field-level problem is a [`Scalar::Bad`].
///
/// ```
/// use dataflows::json::{read_paths, Scalar};
/// let paths: &[&[&str]] = &[&["data", "userid"], &["data", "msg", "msgtype"], &["id"]];
/// let msg = br#"{"data": "{\"userid\": 7, \"msg\": \"{\\\"msgtype\\\": \\\"116\\\"}\"}", "id": ""}"#;
/// let slots = read_paths(msg, paths).unwrap();
/// assert_eq!(slots[0], Scalar::Int(7));
/// assert_eq!(slots[1], Scalar::Str("116".into()));
/// assert_eq!(slots[2], Scalar::Null);
/// ```
pub fn read_paths<'a>(bytes: &'a [u8], paths: &[&[&str]]) -> Result<Vec<Scalar<'a>>, Reject> {
    read_path_set(bytes, &PathSet::new(paths))
}

/// [`read_paths`] with the paths compiled once (topics keep theirs in a static).
///
/// ```
/// use dataflows::json::{read_path_set, PathSet, Scalar};
/// let set = PathSet::new(&[&["a", "b"], &["c"]]);
/// let slots = read_path_set(br#"{"a": "{\"b\": 1}", "c": "x"}"#, &set).unwrap();
/// assert_eq!(slots, vec![Scalar::Int(1), Scalar::Str("x".into())]);
/// ```
pub fn read_path_set<'a>(bytes: &'a [u8], set: &PathSet<'_>) -> Result<Vec<Scalar<'a>>, Reject> {
    read_slots(bytes, set).map(Slots::into_scalars)
}

/// The values a message holds at a path set's paths, one slot per path.
///
/// What [`read_path_set`] returns as [`Scalar`]s, kept as read so that a typed
/// field is made straight from it ([`Slots::text`], [`Slots::int`]) with the
/// same conversions as [`Field::from_str_scalar`] and [`Field::from_int_scalar`].
pub struct Slots<'a>(SlotsRepr<'a>);

enum SlotsRepr<'a> {
    /// From the fast reader: slots and the decoded strings they point into.
    Fast(Vec<Slot<'a>>, Vec<String>),
    /// From the reference reader.
    Slow(Vec<Scalar<'a>>),
}

impl<'a> Slots<'a> {
    /// Slot `i` as text ([`Field::from_str_scalar`]; from the fast reader's slots
    /// directly, without an intermediate [`Scalar`]).
    pub fn text(&self, i: usize) -> Field<crate::Text> {
        let SlotsRepr::Fast(slots, owned) = &self.0 else {
            return Field::from_str_scalar(self.view(i));
        };
        match slots[i] {
            Slot::Null => Field::Null,
            Slot::Str(s) => Field::Val(crate::Text::from(s)),
            Slot::Owned(j) => Field::Val(crate::Text::from(owned[j].as_str())),
            Slot::Int(v) => Field::Val(int_text(v)),
            Slot::Bool(b) => Field::Val(bool_text(b)),
            Slot::Bad => Field::Bad,
        }
    }

    /// Whether slot `i`, as text ([`Self::text`]), is `want`: NULL and unreadable
    /// values stay so. Compares without making the text (an integer slot, without
    /// writing its digits either).
    pub fn text_is(&self, i: usize, want: &Wanted) -> Field<bool> {
        let SlotsRepr::Fast(slots, owned) = &self.0 else {
            return Field::from_str_scalar(self.view(i)).map(|text| text == want.text);
        };
        match slots[i] {
            Slot::Null => Field::Null,
            Slot::Str(s) => Field::Val(s == want.text),
            Slot::Owned(j) => Field::Val(owned[j] == want.text),
            Slot::Int(v) => Field::Val(want.int == Some(v)),
            Slot::Bool(b) => Field::Val(bool_text(b) == want.text),
            Slot::Bad => Field::Bad,
        }
    }

    /// Slot `i` as an integer ([`Field::from_int_scalar`]; from the fast reader's slots
    /// directly).
    pub fn int(&self, i: usize) -> Field<i64> {
        let SlotsRepr::Fast(slots, owned) = &self.0 else {
            return Field::from_int_scalar(self.view(i));
        };
        let int = |text: &str| parse_int(text).map_or(Field::Bad, Field::Val);
        match slots[i] {
            Slot::Null => Field::Null,
            Slot::Int(v) => Field::Val(v),
            Slot::Str(s) => int(s),
            Slot::Owned(j) => int(&owned[j]),
            Slot::Bool(_) | Slot::Bad => Field::Bad,
        }
    }

    /// Slot `i` as a [`Scalar`] that borrows its string (nothing is copied).
    #[inline(always)]
    fn view(&self, i: usize) -> Scalar<'_> {
        match &self.0 {
            SlotsRepr::Fast(slots, owned) => slots[i].scalar(|j| Cow::Borrowed(owned[j].as_str())),
            SlotsRepr::Slow(scalars) => match &scalars[i] {
                Scalar::Str(s) => Scalar::Str(Cow::Borrowed(s)),
                scalar => scalar.clone(),
            },
        }
    }

    /// Gives the slot buffer back to `scratch` for the next message.
    pub fn recycle(self, scratch: &mut Scratch) {
        if let SlotsRepr::Fast(slots, _) = self.0 {
            scratch.slots = relabel(slots);
        }
    }

    /// Every slot as a [`Scalar`].
    pub fn into_scalars(self) -> Vec<Scalar<'a>> {
        match self.0 {
            SlotsRepr::Fast(slots, mut owned) => {
                slots.into_iter().map(|slot| slot.scalar(|j| Cow::Owned(std::mem::take(&mut owned[j])))).collect()
            }
            SlotsRepr::Slow(scalars) => scalars,
        }
    }
}

/// [`read_path_set`] as [`Slots`], for typed records.
pub fn read_slots<'a>(bytes: &'a [u8], set: &PathSet<'_>) -> Result<Slots<'a>, Reject> {
    read_slots_with(bytes, set, &mut Scratch::default())
}

/// [`read_slots`] into the slot buffer that `scratch` keeps from an earlier message
/// (give it back with [`Slots::recycle`]), so that reading a message allocates nothing.
pub fn read_slots_with<'a>(bytes: &'a [u8], set: &PathSet<'_>, scratch: &mut Scratch) -> Result<Slots<'a>, Reject> {
    // Messages are UTF-8 JSON: invalid bytes anywhere (even in a skipped value) make it not JSON.
    // (simdutf8 validates 32 bytes at a time where the CPU allows; same verdict as `std`.)
    let text = simdutf8::basic::from_utf8(bytes).map_err(|_| Reject::NotJson)?;
    // The common case (an object of plain strings, integers and nesting) is read by a borrowed
    // hand-rolled scanner; anything it is not sure about (floats, big numbers, surrogate escapes,
    // malformed input) is read again by the serde walker below, which has the last word.
    if let Some((slots, owned)) =
        fast::read_slots(text, set, relabel(std::mem::take(&mut scratch.slots)), &mut scratch.keys)
    {
        return Ok(Slots(SlotsRepr::Fast(slots, owned)));
    }
    slow_read(text, set.paths).map(|scalars| Slots(SlotsRepr::Slow(scalars)))
}

/// Buffers kept from one message to the next by a reader of many (one per source
/// partition): the slot vector's allocation, and the keys learned so far ([`KeyMemo`]).
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    slots: Vec<Slot<'static>>,
    keys: KeyMemo,
}

/// `slots`' allocation, emptied, for slots that borrow from another message. (An
/// empty vector collected in place: no allocation and no `unsafe`; were std ever to
/// stop collecting in place, this would only allocate again per message.)
fn relabel<'a, 'b>(mut slots: Vec<Slot<'a>>) -> Vec<Slot<'b>> {
    slots.clear();
    slots.into_iter().map(|_| Slot::Null).collect()
}

/// A slot while reading: like [`Scalar`] but `Copy` (no drop glue), so that
/// filling one is a plain store; decoded strings wait in the reader's `owned`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot<'a> {
    Null,
    Str(&'a str),
    /// Index into `owned`.
    Owned(usize),
    Int(i64),
    Bool(bool),
    Bad,
}

impl<'a> Slot<'a> {
    /// The slot as a [`Scalar`]; `decoded(i)` gives decoded string `i` (moved or borrowed).
    fn scalar<'b>(self, decoded: impl FnOnce(usize) -> Cow<'b, str>) -> Scalar<'b>
    where
        'a: 'b,
    {
        match self {
            Slot::Null => Scalar::Null,
            Slot::Str(s) => Scalar::Str(Cow::Borrowed(s)),
            Slot::Owned(i) => Scalar::Str(decoded(i)),
            Slot::Int(v) => Scalar::Int(v),
            Slot::Bool(b) => Scalar::Bool(b),
            Slot::Bad => Scalar::Bad,
        }
    }
}

/// The fast reader alone: `None` where it leaves the message to the reference reader.
#[doc(hidden)]
pub fn read_paths_fast<'a>(text: &'a str, set: &PathSet<'_>) -> Option<Vec<Scalar<'a>>> {
    fast::read(text, set)
}

/// A set of JSON paths compiled into a trie of keys, read by one walk.
///
/// Paths that share a prefix share its nodes, so each key of a message is
/// compared once per distinct key expected at its place, not once per path.
/// When a key ends one path and continues another, the ending path wins (the
/// value is read as a leaf); when the same path is listed twice, the later
/// one gets the value.
#[derive(Debug)]
pub struct PathSet<'p> {
    paths: &'p [&'p [&'p str]],
    nodes: Vec<Node<'p>>,
    /// Unique per compiled set: what a [`KeyMemo`] learned from.
    id: u64,
}

/// A trie node: the keys expected in one object, and the paths below it.
#[derive(Debug)]
struct Node<'p> {
    /// The paths that go through this node (bit `i` for path `i`).
    mask: u64,
    edges: Vec<Edge<'p>>,
}

/// One expected key: the path that ends at it, and the node of those that go on.
#[derive(Debug)]
struct Edge<'p> {
    key: &'p str,
    /// The key's first (up to) eight bytes, as [`key_head`] reads them from a message.
    head: u64,
    /// Its next (up to) eight bytes, likewise (zero for keys of at most eight bytes).
    tail: u64,
    leaf: Option<usize>,
    child: Option<usize>,
}

/// A key of a message, read once for comparison with every expected key at its place.
struct KeyProbe<'t> {
    /// The key's raw text.
    text: &'t [u8],
    /// Its first and next (up to) eight bytes, as in [`Edge`].
    head: u64,
    tail: u64,
}

impl<'t> KeyProbe<'t> {
    /// The key `text[start..end]`.
    #[inline]
    fn new(text: &'t [u8], start: usize, end: usize) -> Self {
        let len = end - start;
        let tail = if len > 8 { key_head(text, start + 8, len - 8) } else { 0 };
        KeyProbe { text: &text[start..end], head: key_head(text, start, len), tail }
    }
}

impl Edge<'_> {
    /// Whether `probe` is this edge's key (compared a word at a time; bytes past the
    /// sixteenth, rare in keys, one by one).
    #[inline]
    fn is(&self, probe: &KeyProbe<'_>) -> bool {
        let len = probe.text.len();
        self.key.len() == len
            && self.head == probe.head
            && self.tail == probe.tail
            && (len <= 16 || self.key.as_bytes()[16..] == probe.text[16..])
    }
}

/// The first `min(len, 8)` bytes at `start` as a little-endian word, the rest zero.
#[inline]
fn key_head(text: &[u8], start: usize, len: usize) -> u64 {
    let mask = if len >= 8 { u64::MAX } else { (1u64 << (8 * len)) - 1 };
    match text.get(start..start + 8).map(<[u8; 8]>::try_from) {
        Some(Ok(word)) => u64::from_le_bytes(word) & mask,
        _ => text[start..start + len.min(8)].iter().rev().fold(0, |acc, &b| (acc << 8) | u64::from(b)),
    }
}

impl<'p> PathSet<'p> {
    /// Compiles `paths` (at most 64, none empty).
    pub fn new(paths: &'p [&'p [&'p str]]) -> Self {
        let mut nodes = vec![Node { mask: full_mask(paths.len()), edges: Vec::new() }];
        for (i, path) in paths.iter().enumerate() {
            assert!(!path.is_empty(), "an empty JSON path");
            let mut node = 0;
            for (depth, key) in path.iter().enumerate() {
                let edge = match nodes[node].edges.iter().position(|e| e.key == *key) {
                    Some(e) => e,
                    None => {
                        let KeyProbe { head, tail, .. } = KeyProbe::new(key.as_bytes(), 0, key.len());
                        nodes[node].edges.push(Edge { key, head, tail, leaf: None, child: None });
                        nodes[node].edges.len() - 1
                    }
                };
                if depth + 1 == path.len() {
                    nodes[node].edges[edge].leaf = Some(i);
                } else {
                    let child = match nodes[node].edges[edge].child {
                        Some(c) => c,
                        None => {
                            nodes.push(Node { mask: 0, edges: Vec::new() });
                            nodes[node].edges[edge].child = Some(nodes.len() - 1);
                            nodes.len() - 1
                        }
                    };
                    nodes[child].mask |= 1 << i;
                    node = child;
                }
            }
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PathSet { paths, nodes, id }
    }

    /// The paths, in slot order.
    pub fn paths(&self) -> &'p [&'p [&'p str]] {
        self.paths
    }
}

/// The reference reader: serde_json's streaming visitors.
fn slow_read<'a>(text: &'a str, paths: &[&[&str]]) -> Result<Vec<Scalar<'a>>, Reject> {
    let mut slots = vec![Scalar::Null; paths.len()];
    let all = full_mask(paths.len());
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Root(Walk { paths, depth: 0, active: all, slots: &mut slots });
    match seed.deserialize(&mut de) {
        Ok(true) => {}
        Ok(false) => {
            de.end().map_err(|_| Reject::NotJson)?;
            return Err(Reject::NotObject);
        }
        Err(_) => return Err(Reject::NotJson),
    }
    de.end().map_err(|_| Reject::NotJson)?;
    Ok(slots)
}

fn full_mask(n: usize) -> u64 {
    assert!(n <= 64, "at most 64 paths per topic");
    if n == 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// The indices of the set bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

/// The part of the path set below one object: which paths are still possible.
struct Walk<'p, 's, 'a> {
    paths: &'p [&'p [&'p str]],
    depth: usize,
    active: u64,
    slots: &'s mut [Scalar<'a>],
}

impl<'a> Walk<'_, '_, 'a> {
    /// Paths under the current prefix whose next segment is `key`, and whether one ends there.
    fn step(&self, key: &str) -> (u64, Option<usize>) {
        let mut next = 0u64;
        let mut leaf = None;
        for i in bits(self.active) {
            let path = self.paths[i];
            if path.get(self.depth) == Some(&key) {
                if path.len() == self.depth + 1 {
                    leaf = Some(i);
                } else {
                    next |= 1 << i;
                }
            }
        }
        (next, leaf)
    }

    /// Sets every leaf below the current prefix to `value` (NULL or Bad parents).
    fn fill(&mut self, value: Scalar<'a>) {
        for i in bits(self.active) {
            // Slots start NULL: only a repeated key has anything to overwrite.
            if self.slots[i] != value {
                self.slots[i] = value.clone();
            }
        }
    }

    fn visit_object<'de: 'a, M: MapAccess<'de>>(&mut self, mut map: M) -> Result<(), M::Error> {
        while let Some((next, leaf)) = map.next_key_seed(KeyStep(self))? {
            if let Some(i) = leaf {
                self.slots[i] = map.next_value_seed(LeafSeed)?;
            } else if next != 0 {
                let mut child = Walk { paths: self.paths, depth: self.depth + 1, active: next, slots: self.slots };
                map.next_value_seed(NestedSeed(&mut child))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Reads an object key without allocating and resolves it against the active paths.
struct KeyStep<'w, 'p, 's, 'a>(&'w Walk<'p, 's, 'a>);

impl<'de> DeserializeSeed<'de> for KeyStep<'_, '_, '_, '_> {
    type Value = (u64, Option<usize>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyStep<'_, '_, '_, '_> {
    type Value = (u64, Option<usize>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.step(key))
    }
}

/// The top level: an object is walked, anything else is reported as "not an object".
struct Root<'p, 's, 'a>(Walk<'p, 's, 'a>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for Root<'_, '_, 'a> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Root<'_, '_, 'a> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<M: MapAccess<'de>>(mut self, map: M) -> Result<bool, M::Error> {
        self.0.visit_object(map)?;
        Ok(true)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<bool, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A value where a nested object is expected: an object, a JSON string holding one, or NULL.
struct NestedSeed<'w, 'p, 's, 'a>(&'w mut Walk<'p, 's, 'a>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for NestedSeed<'_, '_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for NestedSeed<'_, '_, '_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or a string holding one")
    }
    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<(), M::Error> {
        self.0.fill(Scalar::Null);
        self.0.visit_object(map)
    }
    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        self.0.fill(Scalar::Null);
        if text.is_empty() {
            return Ok(());
        }
        // The string holds JSON: walk it with the same paths, owning what it yields.
        match walk_text(self.0.paths, self.0.depth, self.0.active, text) {
            Some(mut inner) => {
                for (i, slot) in inner.iter_mut().enumerate() {
                    if self.0.active & (1 << i) != 0 {
                        self.0.slots[i] = into_owned(std::mem::replace(slot, Scalar::Null));
                    }
                }
            }
            None => self.0.fill(Scalar::Bad),
        }
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.fill(Scalar::Null);
        Ok(())
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.0.fill(Scalar::Bad);
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.fill(Scalar::Bad);
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.0.fill(Scalar::Bad);
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.0.fill(Scalar::Bad);
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.0.fill(Scalar::Bad);
        Ok(())
    }
}

/// Walks a string that should hold a JSON object; `None` when it does not.
fn walk_text<'t>(paths: &[&[&str]], depth: usize, active: u64, text: &'t str) -> Option<Vec<Scalar<'t>>> {
    let mut inner = vec![Scalar::Null; paths.len()];
    let mut de = serde_json::Deserializer::from_str(text);
    let is_object = Root(Walk { paths, depth, active, slots: &mut inner }).deserialize(&mut de).ok()?;
    de.end().ok()?;
    is_object.then_some(inner)
}

fn into_owned(s: Scalar<'_>) -> Scalar<'static> {
    match s {
        Scalar::Str(c) => Scalar::Str(Cow::Owned(c.into_owned())),
        Scalar::Null => Scalar::Null,
        Scalar::Int(i) => Scalar::Int(i),
        Scalar::Num(n) => Scalar::Num(n),
        Scalar::Bool(b) => Scalar::Bool(b),
        Scalar::Bad => Scalar::Bad,
    }
}

/// A hand-rolled, borrowing reader for the common shape of messages.
///
/// It answers only when it is certain to agree with the serde walker: every
/// string, key and literal is checked as strictly as `serde_json` does, and
/// whatever it does not handle (numbers other than `i64` integers, `\u`
/// surrogates, deep nesting, a nested string that is not an object, any
/// syntax error) makes it give up (`None`), so the slow path decides.
///
/// **Nested JSON inside strings is read in place.** A string that holds an
/// object is not unescaped and parsed again: the reader goes on over the same
/// bytes one *escape level* deeper. At level `L` (0 for the message itself),
/// every byte of the nested text other than `"` and `\` appears as itself,
/// and a run of `k` backslashes followed by a byte `c` stands, after `L`
/// rounds of unescaping, for `k >> L` backslashes followed by `c` (each round
/// halves the run; an odd run escapes `c`, which must then be `"` or `/` for
/// the text to stay readable at the next level, and an even run followed by
/// `"` would have ended an enclosing string). So the quote that opens or
/// closes a string at level `L` is the run of `2^L - 1` backslashes and `"`,
/// and a string value without escapes of its own is the raw bytes between
/// its quotes: it is borrowed, never copied. Only values that hold escapes
/// at their own level are decoded, by unescaping their raw text `L + 1`
/// times.
///
/// **Keys are guessed from earlier messages.** Given a [`KeyMemo`] (a source
/// partition keeps one in its [`Scratch`]), the reader first compares each
/// member with the key that came next last time in the same object at the
/// same level, and reads the key in full only when that guess fails
/// ([`memo`] states why a guess never changes what is read).
mod fast {
    use super::memo::{KeyMemo, Prev};
    use super::{bits, Edge, KeyProbe, PathSet, Scalar, Slot};

    /// The bytes of the little-endian word `w` that are `"`, `\\` or below 0x20, as
    /// their top bits (SWAR: `(b - 1) & !b` has its top bit set when `b` is zero;
    /// borrows can flag bytes above a flagged one, so only the lowest is exact).
    #[inline]
    fn special_bytes(w: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        zero_byte(w ^ (ONES * u64::from(b'"'))) | zero_byte(w ^ (ONES * u64::from(b'\\'))) | below_space
    }

    /// The bytes of `chunk` (16 of them) that are `"`, `\\` or below 0x20, as a bit mask
    /// (bit `i` for byte `i`), with SSE2.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[inline(always)]
    fn special_bytes_16(chunk: &[u8]) -> u32 {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        assert!(chunk.len() >= 16);
        // SAFETY: the build enables SSE2 (the cfg above; it is part of the x86_64
        // baseline), so the intrinsics' target feature is present; `chunk` holds at
        // least 16 readable bytes, and `loadu` needs no alignment.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned `b < 0x20` is `min(b, 0x1f) == b`.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        }
    }

    /// Deeper than this, serde_json's recursion limit could apply: give up.
    const MAX_DEPTH: u32 = 64;

    /// At most this many escape levels are read in place.
    pub(super) const MAX_LEVEL: u32 = 8;

    pub(super) fn read<'a>(text: &'a str, set: &PathSet<'_>) -> Option<Vec<Scalar<'a>>> {
        let (slots, owned) = read_slots(text, set, Vec::new(), &mut KeyMemo::default())?;
        Some(super::Slots(super::SlotsRepr::Fast(slots, owned)).into_scalars())
    }

    /// The slots and the decoded strings they point into; the slots are written into `slots`
    /// (an empty buffer, kept for its allocation). Keys are guessed from, and learned into, `memo`.
    pub(super) fn read_slots<'a>(
        text: &'a str,
        set: &PathSet<'_>,
        mut slots: Vec<Slot<'a>>,
        memo: &mut KeyMemo,
    ) -> Option<(Vec<Slot<'a>>, Vec<String>)> {
        slots.resize(set.paths.len(), Slot::Null);
        memo.prepare(set);
        let mut r = Reader { s: text, b: text.as_bytes(), i: 0, depth: 0, slots, written: 0, owned: Vec::new(), memo };
        r.ws(0);
        if r.peek()? != b'{' {
            return None;
        }
        r.object(set, 0, 0)?;
        r.ws(0);
        if r.i != r.b.len() {
            return None;
        }
        Some((r.slots, r.owned))
    }

    struct Reader<'a, 'm> {
        s: &'a str,
        b: &'a [u8],
        i: usize,
        depth: u32,
        slots: Vec<Slot<'a>>,
        /// Decoded string values (those with escapes of their own).
        owned: Vec<String>,
        /// The slots that are not NULL.
        written: u64,
        /// Keys learned from earlier messages.
        memo: &'m mut KeyMemo,
    }

    impl<'a> Reader<'a, '_> {
        /// Whitespace at level `lvl`: nested text keeps only plain spaces (an
        /// escaped newline there is left to serde).
        #[inline(always)]
        fn ws(&mut self, lvl: u32) {
            while let Some(&c) = self.b.get(self.i) {
                if c > b' ' {
                    return;
                }
                if c == b' ' || (lvl == 0 && (c == b'\n' || c == b'\t' || c == b'\r')) {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }

        #[inline]
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }

        #[inline]
        fn eat(&mut self, c: u8) -> Option<()> {
            if self.peek()? == c {
                self.i += 1;
                Some(())
            } else {
                None
            }
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            if self.b.get(self.i..self.i + word.len())? == word {
                self.i += word.len();
                Some(())
            } else {
                None
            }
        }

        /// Whether a string starts here at level `lvl`.
        #[inline]
        fn at_string(&self, lvl: u32) -> bool {
            self.peek() == Some(if lvl == 0 { b'"' } else { b'\\' })
        }

        /// A run of backslashes and the byte after it, seen at level `lvl`: how many
        /// backslashes it stands for there, and the byte. `None` when a round of
        /// unescaping would end an enclosing string or meet an escape other than
        /// `\"` and `\/` (left to serde).
        #[inline]
        fn run(&mut self, lvl: u32) -> Option<(usize, u8)> {
            let start = self.i;
            while self.b.get(self.i) == Some(&b'\\') {
                self.i += 1;
            }
            let mut k = self.i - start;
            let c = *self.b.get(self.i)?;
            if c < 0x20 {
                return None;
            }
            self.i += 1;
            for _ in 0..lvl {
                if k & 1 == 1 {
                    if c != b'"' && c != b'/' {
                        return None;
                    }
                } else if c == b'"' {
                    return None;
                }
                k >>= 1;
            }
            Some((k, c))
        }

        /// The quote that opens or closes a string at level `lvl`.
        #[inline(always)]
        fn quote(&mut self, lvl: u32) -> Option<()> {
            if lvl == 0 {
                return self.eat(b'"');
            }
            if self.level_quote(lvl) {
                return Some(());
            }
            self.quote_run(lvl)
        }

        /// [`Self::quote`] past levels 0–2's common spelling.
        #[inline(never)]
        fn quote_run(&mut self, lvl: u32) -> Option<()> {
            if self.peek()? != b'\\' {
                return None;
            }
            matches!(self.run(lvl)?, (0, b'"')).then_some(())
        }

        /// Moves past the quote of level 1 or 2 if it is here, spelled out: a run of
        /// exactly `2^lvl - 1` backslashes (the run cannot start earlier: callers stand
        /// on its first backslash) and `"`, which [`Self::run`] reads as `(0, b'"')`.
        /// `false` leaves the general case to `run`.
        #[inline(always)]
        fn level_quote(&mut self, lvl: u32) -> bool {
            let len = match lvl {
                1 if self.looking_at(br#"\""#) => 2,
                2 if self.looking_at(br#"\\\""#) => 4,
                _ => return false,
            };
            self.i += len;
            true
        }

        /// Whether the input continues with `pattern` (of a length known when compiled,
        /// so the comparison is one or two integer compares, not a `memcmp` call).
        #[inline(always)]
        fn looking_at<const N: usize>(&self, pattern: &[u8; N]) -> bool {
            self.b.get(self.i..self.i + N).is_some_and(|here| here == pattern)
        }

        /// Four hex digits of a `\u` escape; surrogates are left to serde.
        fn hex4(&mut self) -> Option<()> {
            let hex = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
            self.i += 4;
            Some(())
        }

        /// The rest of a string at level `lvl` after its opening quote: the raw span
        /// of its content and whether it holds escapes of its own.
        #[inline(always)]
        fn string_body(&mut self, lvl: u32) -> Option<(usize, usize, bool)> {
            let start = self.i;
            self.plain_run();
            // The common case: no escape before the closing quote.
            match self.b.get(self.i) {
                Some(b'"') if lvl == 0 => {
                    self.i += 1;
                    return Some((start, self.i - 1, false));
                }
                Some(b'\\') if lvl > 0 => {
                    let at = self.i;
                    if self.level_quote(lvl) {
                        return Some((start, at, false));
                    }
                    if let Some((0, b'"')) = self.run(lvl) {
                        return Some((start, at, false));
                    }
                    self.i = at;
                }
                _ => {}
            }
            self.string_rest(start, lvl)
        }

        /// [`Self::string_body`] past its common case.
        #[inline(never)]
        fn string_rest(&mut self, start: usize, lvl: u32) -> Option<(usize, usize, bool)> {
            let mut escaped = false;
            loop {
                self.plain_run();
                let c = *self.b.get(self.i)?;
                if c == b'"' {
                    if lvl > 0 {
                        return None;
                    }
                    self.i += 1;
                    return Some((start, self.i - 1, escaped));
                }
                if c == b'\\' {
                    let at = self.i;
                    match self.run(lvl)? {
                        (0, b'"') => return Some((start, at, escaped)),
                        // Backslashes at the end of the value: left to serde.
                        (k, b'"') if k & 1 == 0 => return None,
                        (k, e) => {
                            escaped = true;
                            if k & 1 == 1 {
                                match e {
                                    b'"' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                                    b'u' => self.hex4()?,
                                    _ => return None,
                                }
                            }
                        }
                    }
                    continue;
                }
                if c < 0x20 {
                    return None;
                }
                self.i += 1;
            }
        }

        /// Moves to the next `"`, `\\` or control byte, 16 and then 8 bytes at a
        /// time, or to the last few bytes of the input.
        #[inline(always)]
        fn plain_run(&mut self) {
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            while let Some(chunk) = self.b.get(self.i..self.i + 16) {
                let special = special_bytes_16(chunk);
                if special != 0 {
                    self.i += special.trailing_zeros() as usize;
                    return;
                }
                self.i += 16;
            }
            while let Some(Ok(word)) = self.b.get(self.i..self.i + 8).map(<[u8; 8]>::try_from) {
                let special = special_bytes(u64::from_le_bytes(word));
                if special != 0 {
                    self.i += (special.trailing_zeros() / 8) as usize;
                    return;
                }
                self.i += 8;
            }
        }

        /// An object key at level `lvl`, as its raw span (keys with escapes are left to serde).
        fn key(&mut self, lvl: u32) -> Option<(usize, usize)> {
            self.quote(lvl)?;
            let (start, end, escaped) = self.string_body(lvl)?;
            (!escaped).then_some((start, end))
        }

        /// An integer of at most 18 digits; anything else (fractions, exponents, longer
        /// numbers) gives up.
        fn integer(&mut self) -> Option<i64> {
            let negative = self.peek() == Some(b'-');
            if negative {
                self.i += 1;
            }
            let digits = self.i;
            let mut value = 0i64;
            match self.peek()? {
                b'0' => self.i += 1,
                b'1'..=b'9' => {
                    while let Some(&c) = self.b.get(self.i) {
                        if !c.is_ascii_digit() {
                            break;
                        }
                        if self.i - digits == 18 {
                            return None;
                        }
                        value = value * 10 + i64::from(c - b'0');
                        self.i += 1;
                    }
                }
                _ => return None,
            }
            if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'0'..=b'9')) {
                return None;
            }
            match (negative, value) {
                // serde_json reads `-0` as a float.
                (true, 0) => None,
                (true, v) => Some(-v),
                (false, v) => Some(v),
            }
        }

        fn enter(&mut self) -> Option<()> {
            self.depth += 1;
            (self.depth <= MAX_DEPTH).then_some(())
        }

        /// Any value at level `lvl`, validated and ignored.
        fn skip(&mut self, lvl: u32) -> Option<()> {
            if self.at_string(lvl) {
                self.quote(lvl)?;
                return self.string_body(lvl).map(drop);
            }
            match self.peek()? {
                open @ (b'{' | b'[') => self.skip_container(open, lvl),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                _ => self.integer().map(drop),
            }
        }

        /// An object or array at `open`, every member validated and ignored.
        fn skip_container(&mut self, open: u8, lvl: u32) -> Option<()> {
            let close = if open == b'{' { b'}' } else { b']' };
            self.enter()?;
            self.i += 1;
            self.ws(lvl);
            if self.peek()? == close {
                self.i += 1;
            } else {
                loop {
                    self.ws(lvl);
                    if open == b'{' {
                        self.quote(lvl)?;
                        self.string_body(lvl)?;
                        self.ws(lvl);
                        self.eat(b':')?;
                        self.ws(lvl);
                    }
                    self.skip(lvl)?;
                    self.ws(lvl);
                    match self.peek()? {
                        b',' => self.i += 1,
                        c if c == close => {
                            self.i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            self.depth -= 1;
            Some(())
        }

        /// A leaf value at level `lvl` into slot `i`: any scalar; objects and arrays are `Bad`.
        fn leaf(&mut self, lvl: u32, i: usize) -> Option<()> {
            self.written |= 1 << i;
            if self.at_string(lvl) {
                self.quote(lvl)?;
                let (start, end, escaped) = self.string_body(lvl)?;
                let raw = self.s.get(start..end)?;
                if raw.is_empty() {
                    self.slots[i] = Slot::Null;
                } else if escaped {
                    self.owned.push(unescape(raw, lvl + 1)?);
                    self.slots[i] = Slot::Owned(self.owned.len() - 1);
                } else {
                    self.slots[i] = Slot::Str(raw);
                }
                return Some(());
            }
            match self.peek()? {
                b'{' | b'[' => {
                    self.skip(lvl)?;
                    self.slots[i] = Slot::Bad;
                }
                b't' => {
                    self.literal(b"true")?;
                    self.slots[i] = Slot::Bool(true);
                }
                b'f' => {
                    self.literal(b"false")?;
                    self.slots[i] = Slot::Bool(false);
                }
                b'n' => {
                    self.literal(b"null")?;
                    self.slots[i] = Slot::Null;
                }
                _ => {
                    let v = self.integer()?;
                    self.slots[i] = Slot::Int(v);
                }
            }
            Some(())
        }

        /// Sets every slot of `mask` to NULL (only a repeated key has anything to clear).
        fn clear(&mut self, mask: u64) {
            for i in bits(mask & self.written) {
                self.slots[i] = Slot::Null;
            }
            self.written &= !mask;
        }

        /// Sets every slot of `mask` to `Bad` (an unreadable parent).
        fn spoil(&mut self, mask: u64) {
            for i in bits(mask) {
                self.slots[i] = Slot::Bad;
            }
            self.written |= mask;
        }

        /// A value at level `lvl` where the object of trie node `node` is expected:
        /// an object, a string holding one (read in place one level deeper), or NULL.
        fn nested(&mut self, set: &PathSet<'_>, node: usize, lvl: u32) -> Option<()> {
            let mask = set.nodes[node].mask;
            if self.at_string(lvl) {
                self.quote(lvl)?;
                self.clear(mask);
                if self.at_string(lvl) {
                    // The empty string is NULL; any other string starting with a quote is no object.
                    return self.quote(lvl);
                }
                let inner = lvl + 1;
                if inner > MAX_LEVEL {
                    return None;
                }
                self.ws(inner);
                if self.peek()? != b'{' {
                    return None;
                }
                self.object(set, node, inner)?;
                self.ws(inner);
                return self.quote(lvl);
            }
            match self.peek()? {
                b'{' => {
                    self.clear(mask);
                    self.object(set, node, lvl)
                }
                b'n' => {
                    self.literal(b"null")?;
                    self.clear(mask);
                    Some(())
                }
                _ => {
                    self.skip(lvl)?;
                    self.spoil(mask);
                    Some(())
                }
            }
        }

        /// A member's key and its colon, read in full at level `lvl` in the object of trie node
        /// `node`: which expected key it is, and the span of its bytes from the opening quote
        /// through the colon if it can be learned ([`super::memo`]: no escapes, no whitespace).
        #[allow(clippy::type_complexity)]
        fn member_key(
            &mut self,
            set: &PathSet<'_>,
            node: usize,
            lvl: u32,
        ) -> Option<(Option<usize>, Option<(usize, usize)>)> {
            let from = self.i;
            let (start, end) = self.key(lvl)?;
            let closed = self.i;
            self.ws(lvl);
            self.eat(b':')?;
            let probe = KeyProbe::new(self.b, start, end);
            let edge = set.nodes[node].edges.iter().position(|e| e.is(&probe));
            Some((edge, (self.i == closed + 1).then_some((from, self.i))))
        }

        /// An object at `{` on level `lvl`, filling the slots of the paths below trie node `node`.
        fn object(&mut self, set: &PathSet<'_>, node: usize, lvl: u32) -> Option<()> {
            self.enter()?;
            self.i += 1;
            self.ws(lvl);
            if self.peek()? == b'}' {
                self.i += 1;
                self.depth -= 1;
                return Some(());
            }
            let edges = &set.nodes[node].edges;
            let table = KeyMemo::table(node, lvl);
            let mut prev = Prev::Start;
            loop {
                // A learned key starts with its quote: whitespace before it makes the guess
                // fail, and the full reading below skips it.
                let edge = match self.memo.guess(table, prev) {
                    Some((here, key)) if key.starts(&self.b[self.i..]) => {
                        self.i += key.len();
                        prev = here;
                        let edge = key.edge();
                        #[cfg(test)]
                        {
                            self.memo.hits += 1;
                        }
                        edge
                    }
                    _ => {
                        self.ws(lvl);
                        let (edge, learned) = self.member_key(set, node, lvl)?;
                        prev = self.memo.learn(table, prev, learned.map(|(from, to)| &self.b[from..to]), edge);
                        edge
                    }
                };
                self.ws(lvl);
                match edge.map(|e| &edges[e]) {
                    Some(&Edge { leaf: Some(i), .. }) => self.leaf(lvl, i)?,
                    Some(&Edge { child: Some(child), .. }) => self.nested(set, child, lvl)?,
                    _ => self.skip(lvl)?,
                }
                self.ws(lvl);
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            self.depth -= 1;
            Some(())
        }
    }

    /// Unescapes `raw` (the content of a JSON string, already validated) `times` times.
    fn unescape(raw: &str, times: u32) -> Option<String> {
        let mut text = unescape_once(raw)?;
        for _ in 1..times {
            text = unescape_once(&text)?;
        }
        Some(text)
    }

    fn unescape_once(raw: &str) -> Option<String> {
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            out.push(match chars.next()? {
                '"' => '"',
                '\\' => '\\',
                '/' => '/',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex.len() != 4 || !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                        return None;
                    }
                    char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                }
                _ => return None,
            });
        }
        Some(out)
    }
}

/// A leaf value: any scalar; objects and arrays are [`Scalar::Bad`].
struct LeafSeed;

impl<'de> DeserializeSeed<'de> for LeafSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(LeafVisitor)
    }
}

struct LeafVisitor;

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(if v.is_empty() { Scalar::Null } else { Scalar::Str(Cow::Borrowed(v)) })
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(if v.is_empty() { Scalar::Null } else { Scalar::Str(Cow::Owned(v.to_owned())) })
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(if v.is_empty() { Scalar::Null } else { Scalar::Str(Cow::Owned(v)) })
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(i64::try_from(v).map_or_else(|_| Scalar::Num(v.to_string()), Scalar::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Num(v.to_string()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Scalar<'de>, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Bad)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Scalar<'de>, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Bad)
    }
}

#[cfg(test)]
mod tests {
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
            let fast = fast::read(case, &PathSet::new(PATHS));
            let slow = slow_read(case, PATHS);
            if let Some(f) = fast {
                assert_eq!(Ok(f), slow, "{case}");
            }
        }
        let deep = format!("{{\"z\": {}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(fast::read(&deep, &PathSet::new(PATHS)).is_none());
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
            (
                r#"{"n": "{\"x\": \"a\\nb\\/c\\u00e9\"}"}"#,
                [Scalar::Null, Scalar::Str("a\nb/c\u{e9}".into()), Scalar::Null],
            ),
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
            assert_eq!(fast::read(text, &set).as_deref(), Some(&want[..]), "{text}");
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
                        if let Some(fast) = fast::read(&text, &set) {
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
            assert!(fast::read(base, &set).is_some(), "{base}");
        }
        let texts = mutations(3000);
        let mut answered = 0;
        for text in &texts {
            if let Some(fast) = fast::read(text, &set) {
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
            assert_eq!(
                kept,
                slow_read(text, MUTATION_PATHS).map(|v| v.into_iter().map(into_owned).collect()),
                "{text}"
            );
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
        let values =
            (-1100..=1100).chain([i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1, 9_999_999_999, -10_000_000_000]);
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
}
