//! Reading one message at a path set's paths: the entry points, and [`Slots`].
//!
//! A message is checked as UTF-8 first (invalid bytes anywhere make it not JSON),
//! then read by the fast scanner (`super::fast`); whatever that one is not sure of
//! is read again by the reference reader (`super::reference`), which has the last
//! word, so the two never disagree on what a message holds. [`Slots`] keeps what
//! was read as it came, one slot per path, and types a slot on demand; a
//! [`Scratch`] carries the slot buffer and the learned keys from one message to the next.

use std::borrow::Cow;

use super::fast::{self, Slot};
use super::field::{Field, Reject, Scalar, Wanted, bool_text, int_text};
use super::int::parse_int;
use super::memo::KeyMemo;
use super::paths::PathSet;
use super::reference::slow_read;

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
    pub(super) fn view(&self, i: usize) -> Scalar<'_> {
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
    pub(super) slots: Vec<Slot<'static>>,
    pub(super) keys: KeyMemo,
}

/// `slots`' allocation, emptied, for slots that borrow from another message. (An
/// empty vector collected in place: no allocation and no `unsafe`; were std ever to
/// stop collecting in place, this would only allocate again per message.)
fn relabel<'a, 'b>(mut slots: Vec<Slot<'a>>) -> Vec<Slot<'b>> {
    slots.clear();
    slots.into_iter().map(|_| Slot::Null).collect()
}

/// The fast reader alone: `None` where it leaves the message to the reference reader.
#[doc(hidden)]
pub fn read_paths_fast<'a>(text: &'a str, set: &PathSet<'_>) -> Option<Vec<Scalar<'a>>> {
    let (slots, owned) = fast::read_slots(text, set, Vec::new(), &mut KeyMemo::default())?;
    Some(Slots(SlotsRepr::Fast(slots, owned)).into_scalars())
}
