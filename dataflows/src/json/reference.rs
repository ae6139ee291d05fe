//! The reference reader: serde_json's streaming visitors, no `Value` tree.
//!
//! It reads every message the fast scanner leaves to it (floats, big numbers,
//! surrogate escapes, deep nesting, malformed input) and has the last word: its
//! verdict, slot by slot, is the contract of the module docs of [`super`], and the
//! fast scanner answers only where it agrees with it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::field::{Reject, Scalar};
use super::paths::{bits, full_mask};

/// The reference reader: serde_json's streaming visitors.
pub(super) fn slow_read<'a>(text: &'a str, paths: &[&[&str]]) -> Result<Vec<Scalar<'a>>, Reject> {
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
        // Valid JSON that serde_json's number parser refuses at the top (`1e400`) is no object.
        Err(_) if serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok() => return Err(Reject::NotObject),
        Err(_) => return Err(Reject::NotJson),
    }
    de.end().map_err(|_| Reject::NotJson)?;
    Ok(slots)
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
    /// Read as raw text first: a number there (even one beyond `f64`) makes its leaves Bad
    /// rather than the record `not_json`; anything else is walked from that text.
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let raw = <&'de serde_json::value::RawValue as serde::Deserialize>::deserialize(d)?.get().trim();
        if matches!(raw.as_bytes().first(), Some(b'-' | b'0'..=b'9')) {
            self.0.fill(Scalar::Bad);
            return Ok(());
        }
        let mut inner = serde_json::Deserializer::from_str(raw);
        inner.deserialize_any(self).map_err(serde::de::Error::custom)
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

pub(super) fn into_owned(s: Scalar<'_>) -> Scalar<'static> {
    match s {
        Scalar::Str(c) => Scalar::Str(Cow::Owned(c.into_owned())),
        Scalar::Null => Scalar::Null,
        Scalar::Int(i) => Scalar::Int(i),
        Scalar::Num(n) => Scalar::Num(n),
        Scalar::Bool(b) => Scalar::Bool(b),
        Scalar::Bad => Scalar::Bad,
    }
}

/// A leaf value: any scalar; objects and arrays are [`Scalar::Bad`]. Read as its raw text
/// (serde_json has checked it is valid JSON) rather than through serde_json's number
/// parser, which refuses a valid number beyond `f64` (`1e400`) and would make the whole
/// record `not_json`: such a number is [`Scalar::Num`] with its text, so a typed field says
/// `bad_field` and a field that takes any scalar keeps the text.
struct LeafSeed;

impl<'de> DeserializeSeed<'de> for LeafSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        let raw = <&'de serde_json::value::RawValue as serde::Deserialize>::deserialize(d)?;
        Ok(leaf(raw.get().trim()))
    }
}

/// The scalar of a leaf's raw JSON text.
fn leaf(raw: &str) -> Scalar<'_> {
    match raw.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<&str>(raw) {
            Ok("") => Scalar::Null,
            Ok(text) => Scalar::Str(Cow::Borrowed(text)),
            // Escapes: decoded into an owned string (valid JSON, so this succeeds).
            Err(_) => match serde_json::from_str::<String>(raw) {
                Ok(text) if text.is_empty() => Scalar::Null,
                Ok(text) => Scalar::Str(Cow::Owned(text)),
                Err(_) => Scalar::Bad,
            },
        },
        Some(b'{' | b'[') => Scalar::Bad,
        Some(b't') => Scalar::Bool(true),
        Some(b'f') => Scalar::Bool(false),
        Some(b'n') | None => Scalar::Null,
        Some(_) => number(raw),
    }
}

/// A JSON number: an `i64` when it is one, a larger `u64` as its digits, else its `f64`
/// text as serde_json would give it, else (beyond `f64`) its own text.
fn number(text: &str) -> Scalar<'static> {
    if let Ok(i) = text.parse::<i64>() {
        return Scalar::Int(i);
    }
    if let Ok(u) = text.parse::<u64>() {
        return Scalar::Num(u.to_string());
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Scalar::Num(f.to_string()),
        _ => Scalar::Num(text.to_string()),
    }
}
