//! The paths a topic reads, compiled into a trie of expected keys ([`PathSet`]).
//!
//! Paths that share a prefix share its nodes; each node knows the paths that go
//! through it (a bit mask, so at most 64 paths) and its expected keys, each held
//! with its first sixteen bytes as two words so that a message's key is compared
//! with it a word at a time.

/// A set of JSON paths compiled into a trie of keys, read by one walk.
///
/// Paths that share a prefix share its nodes, so each key of a message is
/// compared once per distinct key expected at its place, not once per path.
/// When a key ends one path and continues another, the ending path wins (the
/// value is read as a leaf); when the same path is listed twice, the later
/// one gets the value.
#[derive(Debug)]
pub struct PathSet<'p> {
    pub(super) paths: &'p [&'p [&'p str]],
    pub(super) nodes: Vec<Node<'p>>,
    /// Unique per compiled set: what a [`KeyMemo`] learned from.
    pub(super) id: u64,
}

/// A trie node: the keys expected in one object, and the paths below it.
#[derive(Debug)]
pub(super) struct Node<'p> {
    /// The paths that go through this node (bit `i` for path `i`).
    pub(super) mask: u64,
    pub(super) edges: Vec<Edge<'p>>,
}

/// One expected key: the path that ends at it, and the node of those that go on.
#[derive(Debug)]
pub(super) struct Edge<'p> {
    key: &'p str,
    /// The key's first (up to) eight bytes, as [`key_head`] reads them from a message.
    head: u64,
    /// Its next (up to) eight bytes, likewise (zero for keys of at most eight bytes).
    tail: u64,
    pub(super) leaf: Option<usize>,
    pub(super) child: Option<usize>,
}

/// A key of a message, read once for comparison with every expected key at its place.
pub(super) struct KeyProbe<'t> {
    /// The key's raw text.
    text: &'t [u8],
    /// Its first and next (up to) eight bytes, as in [`Edge`].
    head: u64,
    tail: u64,
}

impl<'t> KeyProbe<'t> {
    /// The key `text[start..end]`.
    #[inline]
    pub(super) fn new(text: &'t [u8], start: usize, end: usize) -> Self {
        let len = end - start;
        let tail = if len > 8 { key_head(text, start + 8, len - 8) } else { 0 };
        KeyProbe { text: &text[start..end], head: key_head(text, start, len), tail }
    }
}

impl Edge<'_> {
    /// Whether `probe` is this edge's key (compared a word at a time; bytes past the
    /// sixteenth, rare in keys, one by one).
    #[inline]
    pub(super) fn is(&self, probe: &KeyProbe<'_>) -> bool {
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

pub(super) fn full_mask(n: usize) -> u64 {
    assert!(n <= 64, "at most 64 paths per topic");
    if n == 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// The indices of the set bits of `mask`, lowest first.
pub(super) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}
