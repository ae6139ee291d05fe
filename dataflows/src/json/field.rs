//! What a path holds in a message, before and after typing.
//!
//! A [`Scalar`] is a leaf as read; a [`Field`] is a record's typed column (NULL, a
//! value, or present but unreadable as its type), made from a scalar with the
//! conversions stated on [`Field::from_str_scalar`] and [`Field::from_int_scalar`].
//! A [`Wanted`] is a constant text a field is only compared with, with the integer it
//! spells worked out when compiled. [`Reject`] is why a message is no record at all.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

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
pub(super) fn int_text(i: i64) -> crate::Text {
    crate::Text::new(itoa::Buffer::new().format(i))
}

/// A constant text that [`super::Slots::text_is`] compares with, and the integer it is the
/// text of, if any (worked out once, when compiled, where the constant is known then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub(super) text: &'static str,
    /// `Some(v)` exactly when `text` is how the integer `v` reads as text: `-` for a
    /// negative number, then its digits, without a leading zero.
    pub(super) int: Option<i64>,
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
pub(super) fn bool_text(b: bool) -> crate::Text {
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
