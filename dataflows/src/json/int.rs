//! Integers sent as text: [`parse_int`] reads what `str::parse::<i64>` reads, the
//! common case (at most 18 plain digits) eight digits at a time (SWAR).

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
