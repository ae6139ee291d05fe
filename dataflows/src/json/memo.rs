//! Learned keys: the fast reader recognises a member's key with one comparison.
//!
//! Messages of a topic repeat their shapes: the same keys, mostly in the same
//! order, with optional keys coming and going. For every object of a path set's
//! trie, at every escape level, a [`KeyMemo`] remembers the keys read there, each
//! as its exact bytes from the opening quote through the `:` after the closing
//! quote (at most [`PATTERN`] bytes), together with the expected key it is (if
//! any) and the key that followed it the last time. At the next member the
//! reader compares the input with the key that followed the previous member (or
//! opened the object) last time: on a match it moves past the key and its colon
//! at once, instead of scanning the key, reading its words and searching the
//! expected keys; otherwise it reads the key in full and learns it.
//!
//! **What is read does not depend on what was learned.** A key is learned only
//! when the full reading found no escapes in it and nothing between its closing
//! quote and the colon, so a pattern is: the quote of its level (one spelling
//! per level), bytes that are none of `"`, `\` and control bytes, that quote
//! again, and `:`. Wherever the input holds exactly those bytes where a key must
//! start, the full reading would read the same quote, the same key and the same
//! colon, and find the same expected key (patterns are kept per trie node and
//! level, so "expected" means the same thing). A guess that does not match costs
//! one comparison. A memo is tied to the [`PathSet`] it learned from; given
//! another, it starts over.
//!
//! Tie-breaks: the successor of a key is the one seen after it most recently; a
//! table that reaches [`MAX_KEYS`] keys (a topic with ever-new keys) is emptied
//! and learns again.

use super::paths::PathSet;

/// The longest pattern learned, in bytes (a level-3 quote is 8 bytes, twice, plus the key and `:`).
pub(super) const PATTERN: usize = 32;

/// The most keys a table keeps before it starts over.
pub(super) const MAX_KEYS: usize = 64;

/// At most this many escape levels are read in place (by the fast reader, so a memo
/// keeps tables for them).
pub(super) const MAX_LEVEL: u32 = 8;

/// Escape levels per trie node (the fast reader reads levels `0..=MAX_LEVEL`).
const LEVELS: usize = MAX_LEVEL as usize + 1;

/// The keys learned from the messages read with one [`PathSet`].
#[derive(Clone, Debug, Default)]
pub struct KeyMemo {
    /// The path set learned from ([`PathSet::id`]).
    set: Option<u64>,
    /// One table per trie node and escape level (`node * LEVELS + level`).
    tables: Vec<Table>,
    /// Guesses that matched (tests check that the memo is used at all).
    #[cfg(test)]
    pub(super) hits: usize,
}

/// The keys learned in one object (trie node) at one escape level.
#[derive(Clone, Debug, Default)]
struct Table {
    /// The key that opened the object last time.
    first: Option<u8>,
    keys: Vec<Learned>,
}

/// One learned key.
#[derive(Clone, Debug)]
pub(super) struct Learned {
    /// The pattern's bytes as little-endian words, zero past its length.
    words: [u64; 4],
    /// Which bytes of each word belong to the pattern.
    masks: [u64; 4],
    len: u8,
    /// The expected key it is: an index into the node's edges.
    edge: Option<u8>,
    /// The key that followed it last time.
    next: Option<u8>,
}

/// Where the reader is in an object, for guessing the next key.
#[derive(Clone, Copy, Debug)]
pub(super) enum Prev {
    /// Before the first member.
    Start,
    /// After the member with this learned key.
    Key(u8),
    /// After a key that was not learned: no guess.
    Lost,
}

impl KeyMemo {
    /// Makes the memo ready for `set` (emptied if it learned from another).
    pub(super) fn prepare(&mut self, set: &PathSet<'_>) {
        if self.set != Some(set.id) {
            self.set = Some(set.id);
            self.tables.clear();
            self.tables.resize(set.nodes.len() * LEVELS, Table::default());
        }
    }

    /// The table of trie node `node` at escape level `level`.
    #[inline]
    pub(super) fn table(node: usize, level: u32) -> usize {
        node * LEVELS + level as usize
    }

    /// The key expected after `prev` in table `t`, if one was learned.
    #[inline]
    pub(super) fn guess(&self, t: usize, prev: Prev) -> Option<(Prev, &Learned)> {
        let table = self.tables.get(t)?;
        let g = match prev {
            Prev::Start => table.first?,
            Prev::Key(p) => table.keys.get(usize::from(p))?.next?,
            Prev::Lost => return None,
        };
        Some((Prev::Key(g), table.keys.get(usize::from(g))?))
    }

    /// Learns that the key `pattern` (its bytes from the opening quote through the colon,
    /// `None` when it had whitespace or escapes) followed `prev` in table `t` and is
    /// expected key `edge`. Returns where the reader now is.
    pub(super) fn learn(&mut self, t: usize, prev: Prev, pattern: Option<&[u8]>, edge: Option<usize>) -> Prev {
        let (Some(table), Some(learned)) = (self.tables.get_mut(t), pattern.and_then(|p| Learned::new(p, edge))) else {
            return Prev::Lost;
        };
        let mut prev = prev;
        let g = match table.keys.iter().position(|k| k.words == learned.words && k.len == learned.len) {
            Some(g) => g,
            None => {
                if table.keys.len() == MAX_KEYS {
                    *table = Table::default();
                    prev = Prev::Start;
                }
                table.keys.push(learned);
                table.keys.len() - 1
            }
        };
        // `g < MAX_KEYS <= u8::MAX`.
        let g = g as u8;
        match prev {
            Prev::Start => table.first = Some(g),
            Prev::Key(p) => {
                if let Some(k) = table.keys.get_mut(usize::from(p)) {
                    k.next = Some(g);
                }
            }
            Prev::Lost => {}
        }
        Prev::Key(g)
    }
}

impl Learned {
    fn new(pattern: &[u8], edge: Option<usize>) -> Option<Self> {
        if pattern.len() > PATTERN {
            return None;
        }
        let edge = match edge {
            Some(e) => Some(u8::try_from(e).ok()?),
            None => None,
        };
        let mut bytes = [0u8; PATTERN];
        bytes[..pattern.len()].copy_from_slice(pattern);
        let mut words = [0; 4];
        let mut masks = [0; 4];
        for (k, chunk) in bytes.as_chunks::<8>().0.iter().enumerate() {
            words[k] = u64::from_le_bytes(*chunk);
            let here = pattern.len().saturating_sub(8 * k).min(8);
            masks[k] = if here == 8 { u64::MAX } else { (1u64 << (8 * here)) - 1 };
        }
        Some(Learned { words, masks, len: pattern.len() as u8, edge, next: None })
    }

    /// The pattern's length in bytes.
    #[inline]
    pub(super) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// The expected key it is.
    #[inline]
    pub(super) fn edge(&self) -> Option<usize> {
        self.edge.map(usize::from)
    }

    /// Whether `rest` (the input from where a key must start) begins with the pattern:
    /// four masked word compares, without branches, when 32 bytes remain.
    #[inline(always)]
    pub(super) fn starts(&self, rest: &[u8]) -> bool {
        match rest.first_chunk::<PATTERN>() {
            Some(chunk) => self.equals(chunk),
            None => rest.len() >= self.len() && self.equals_short(rest),
        }
    }

    #[inline(always)]
    fn equals(&self, chunk: &[u8; PATTERN]) -> bool {
        let (words, _) = chunk.as_chunks::<8>();
        let diff = words.iter().zip(self.words.iter().zip(&self.masks));
        diff.fold(0, |acc, (word, (want, mask))| acc | ((u64::from_le_bytes(*word) ^ want) & mask)) == 0
    }

    /// [`Self::equals`] near the end of the input (fewer than 32 bytes left).
    #[inline(never)]
    fn equals_short(&self, rest: &[u8]) -> bool {
        let mut chunk = [0u8; PATTERN];
        let n = rest.len().min(PATTERN);
        chunk[..n].copy_from_slice(&rest[..n]);
        self.equals(&chunk)
    }
}
