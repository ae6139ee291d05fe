//! A hand-rolled, borrowing reader for the common shape of messages.
//!
//! It answers only when it is certain to agree with the serde walker: every
//! string, key and literal is checked as strictly as `serde_json` does, and
//! whatever it does not handle (numbers other than `i64` integers, `\u`
//! surrogates, deep nesting, a nested string that is not an object, any
//! syntax error) makes it give up (`None`), so the slow path decides.
//!
//! **Keys are guessed from earlier messages.** Given a [`KeyMemo`] (a source
//! partition keeps one in its [`super::Scratch`]), the reader first compares each
//! member with the key that came next last time in the same object at the
//! same level, and reads the key in full only when that guess fails
//! ([`super::memo`] states why a guess never changes what is read).
//!
//! Strings, and the nested JSON inside them, are read in place, one escape level
//! deeper per nesting ([`strings`] states how).

use std::borrow::Cow;

use super::field::Scalar;
use super::memo::{KeyMemo, MAX_LEVEL, Prev};
use super::paths::{Edge, KeyProbe, PathSet, bits};

mod strings;

use strings::unescape;

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
    pub(super) fn scalar<'b>(self, decoded: impl FnOnce(usize) -> Cow<'b, str>) -> Scalar<'b>
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

/// Deeper than this, serde_json's recursion limit could apply: give up.
const MAX_DEPTH: u32 = 64;

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
