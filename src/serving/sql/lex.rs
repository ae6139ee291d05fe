//! Query text cut into pieces: code, string literals (also dollar-quoted), quoted
//! identifiers, comments and statement-ending semicolons. An unterminated quote or comment
//! is an error. Linear in the text.

/// A piece of query text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Plain SQL.
    Code,
    /// A string literal (`'...'`; in `E'...'` a `\'` is not understood) or a dollar-quoted string.
    Literal,
    /// A quoted identifier.
    Ident,
    /// A comment.
    Comment,
    /// A statement-ending semicolon.
    End,
}

/// `text` cut into pieces; an unterminated quote or comment is an error.
pub fn lex(text: &str) -> Result<Vec<(Piece, &str)>, String> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let (mut i, mut code_start) = (0, 0);
    while i < bytes.len() {
        let quoted = match bytes[i] {
            b'\'' => Some((Piece::Literal, quote_end(bytes, i, b'\'').ok_or("unterminated string literal")?)),
            b'"' => Some((Piece::Ident, quote_end(bytes, i, b'"').ok_or("unterminated quoted identifier")?)),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                Some((Piece::Comment, text[i..].find('\n').map_or(text.len(), |n| i + n + 1)))
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                Some((Piece::Comment, block_comment_end(bytes, i).ok_or("unterminated /* comment")?))
            }
            b'$' => dollar_quote_end(text, i)?.map(|end| (Piece::Literal, end)),
            b';' => Some((Piece::End, i + 1)),
            _ => None,
        };
        match quoted {
            Some((piece, end)) => {
                if code_start < i {
                    pieces.push((Piece::Code, &text[code_start..i]));
                }
                pieces.push((piece, &text[i..end]));
                (i, code_start) = (end, end);
            }
            None => i += 1,
        }
    }
    if code_start < text.len() {
        pieces.push((Piece::Code, &text[code_start..]));
    }
    Ok(pieces)
}

/// The end (exclusive) of the quoted text opening at `start`; a doubled quote is an escape.
fn quote_end(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// The end of the `/* */` comment opening at `start` (they nest, as in PostgreSQL).
fn block_comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    let (mut depth, mut i) = (0usize, start);
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => (depth, i) = (depth + 1, i + 2),
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The end of a `$tag$ ... $tag$` string opening at `start`, if one opens there (`$1` does not).
fn dollar_quote_end(text: &str, start: usize) -> Result<Option<usize>, String> {
    let rest = &text[start + 1..];
    let Some(close) = rest.find('$') else { return Ok(None) };
    let tag = &rest[..close];
    let starts_ok = tag.chars().next().is_none_or(|c| c.is_alphabetic() || c == '_');
    if !starts_ok || !tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Ok(None);
    }
    let delimiter = &text[start..start + close + 2];
    let body = start + delimiter.len();
    match text[body..].find(delimiter) {
        Some(n) => Ok(Some(body + n + delimiter.len())),
        None => Err("unterminated dollar-quoted string".into()),
    }
}

/// The statements of `text` without their comments.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut statements = vec![String::new()];
    for (piece, s) in lex(text)? {
        match piece {
            Piece::End => statements.push(String::new()),
            Piece::Comment => statements.last_mut().map_or((), |t| t.push(' ')),
            _ => statements.last_mut().map_or((), |t| t.push_str(s)),
        }
    }
    Ok(statements)
}
