//! The fast reader's strings: quotes, escapes and the bytes between them, at any escape level.
//!
//! **Nested JSON inside strings is read in place.** A string that holds an
//! object is not unescaped and parsed again: the reader goes on over the same
//! bytes one *escape level* deeper. At level `L` (0 for the message itself),
//! every byte of the nested text other than `"` and `\` appears as itself,
//! and a run of `k` backslashes followed by a byte `c` stands, after `L`
//! rounds of unescaping, for `k >> L` backslashes followed by `c` (each round
//! halves the run; an odd run escapes `c`, which must then be `"` or `/` for
//! the text to stay readable at the next level, and an even run followed by
//! `"` would have ended an enclosing string). So the quote that opens or
//! closes a string at level `L` is the run of `2^L - 1` backslashes and `"`,
//! and a string value without escapes of its own is the raw bytes between
//! its quotes: it is borrowed, never copied. Only values that hold escapes
//! at their own level are decoded, by unescaping their raw text `L + 1`
//! times.

use super::Reader;

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

impl<'a> Reader<'a, '_> {
    /// Whether a string starts here at level `lvl`.
    #[inline]
    pub(super) fn at_string(&self, lvl: u32) -> bool {
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
    pub(super) fn quote(&mut self, lvl: u32) -> Option<()> {
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
    pub(super) fn string_body(&mut self, lvl: u32) -> Option<(usize, usize, bool)> {
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
    pub(super) fn key(&mut self, lvl: u32) -> Option<(usize, usize)> {
        self.quote(lvl)?;
        let (start, end, escaped) = self.string_body(lvl)?;
        (!escaped).then_some((start, end))
    }
}

/// Unescapes `raw` (the content of a JSON string, already validated) `times` times.
pub(super) fn unescape(raw: &str, times: u32) -> Option<String> {
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
