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
//!
//! The parts, each in its own file: `field` (what a path holds, typed: [`Scalar`],
//! [`Field`], [`Wanted`]), `int` ([`parse_int`]), `paths` (the trie of expected keys,
//! [`PathSet`]), `slots` (the entry points, and [`Slots`], what one message holds at a
//! path set's paths), `reference` (serde's streaming walker, which has the last word),
//! `fast` (the borrowing scanner that reads the common case; `fast::strings` its
//! strings at every escape level) and `memo` (the keys it learns, [`KeyMemo`]). This
//! file only re-exports their public items.

mod fast;
mod field;
mod int;
mod memo;
mod paths;
mod reference;
mod slots;

#[cfg(test)]
mod tests;

pub use field::{Field, Reject, Scalar, Wanted};
pub use int::parse_int;
pub use memo::KeyMemo;
pub use paths::PathSet;
#[doc(hidden)]
pub use slots::read_paths_fast;

/// The reference reader alone (serde's streaming walker), the oracle of the fast scanner:
/// for the fuzz targets (`fuzz/`) and tests.
#[doc(hidden)]
pub fn reference_read<'a>(text: &'a str, paths: &[&[&str]]) -> Result<Vec<Scalar<'a>>, Reject> {
    reference::slow_read(text, paths)
}
pub use slots::{Scratch, Slots, read_path_set, read_paths, read_slots, read_slots_with};
