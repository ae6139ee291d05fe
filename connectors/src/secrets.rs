//! Passwords in connection strings, masked before anything is shown.
//!
//! Every place that shows a database's address (errors, the log, `init`'s
//! output) shows [`mask`] of it, the one masking path. Two forms name a
//! database, and each is parsed by its own rules, never by guessing:
//!
//! * **A URL** (`mysql://user:pass@host/db?opt=v`, `postgres://…`), parsed
//!   with the `url` crate: the password of the userinfo and the value of every
//!   query parameter named `password`, `pass` or `pwd` (any case) become
//!   `***`. A string with `://` that the `url` crate refuses (a password
//!   holding an unescaped `/`, `?` or `#` ends the authority early, so the
//!   rest is no valid port) is masked conservatively: everything between the
//!   first `:` after the scheme and the *last* `@` is the password, and so
//!   is every `password=`-like query value; this may hide more than the
//!   password, never less.
//! * **A libpq key-value string** (`host=x user=y password = 'a b'`), read by
//!   libpq's grammar: a keyword, optional whitespace (spaces, tabs,
//!   newlines), `=`, optional whitespace, then a value that is either bare (up
//!   to whitespace, `\` escaping the next character) or single-quoted (`\'`
//!   and `\\` escaped). Every other byte is kept as written. An unterminated
//!   quote after a password keyword hides the rest of the string.
//!
//! ```
//! use connectors::secrets::mask;
//!
//! assert_eq!(mask("mysql://edu:s3cret@db:3306/x"), "mysql://edu:***@db:3306/x");
//! assert_eq!(mask("mysql://db/x?user=edu&password=s3cret"), "mysql://db/x?user=edu&password=***");
//! assert_eq!(mask("host=db password = 'a b'\tuser=edu"), "host=db password = ***\tuser=edu");
//! ```

/// What replaces a password.
const MASK: &str = "***";

/// `conn` (a URL or a libpq key-value string) with every password replaced by `***`.
pub fn mask(conn: &str) -> String {
    if conn.contains("://") { mask_url(conn) } else { mask_key_value(conn) }
}

/// Whether a URL query parameter or libpq keyword holds a password.
fn is_password_key(key: &str) -> bool {
    ["password", "pass", "pwd"].iter().any(|k| key.eq_ignore_ascii_case(k))
}

fn mask_url(conn: &str) -> String {
    let Ok(mut url) = url::Url::parse(conn) else { return mask_url_conservatively(conn) };
    if url.password().is_some() && url.set_password(Some(MASK)).is_err() {
        return mask_url_conservatively(conn);
    }
    if url.query_pairs().any(|(k, _)| is_password_key(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_password_key(&k) { MASK.to_string() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// A URL the `url` crate refuses: the userinfo runs to the last `@`.
fn mask_url_conservatively(conn: &str) -> String {
    let start = conn.find("://").map_or(0, |i| i + 3);
    let (head, rest) = conn.split_at(start);
    let rest = match rest.rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}:{MASK}{}", &rest[..colon], &rest[at..]),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let (before, query) = match rest.find('?') {
        Some(q) => rest.split_at(q + 1),
        None => return format!("{head}{rest}"),
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_password_key(k) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}{before}{}", query.join("&"))
}

fn mask_key_value(conn: &str) -> String {
    let bytes = conn.as_bytes();
    let mut out = String::with_capacity(conn.len());
    let mut i = 0;
    while i < bytes.len() {
        // Whitespace between pairs, kept.
        let ws = skip_whitespace(bytes, i);
        out.push_str(&conn[i..ws]);
        i = ws;
        if i == bytes.len() {
            break;
        }
        // The keyword, then whitespace, `=` and whitespace, all kept.
        let key_end =
            (i..bytes.len()).find(|&j| bytes[j] == b'=' || bytes[j].is_ascii_whitespace()).unwrap_or(bytes.len());
        let keyword = &conn[i..key_end];
        let eq = skip_whitespace(bytes, key_end);
        if bytes.get(eq) != Some(&b'=') {
            // Not `keyword = value`: libpq refuses it; keep it as written up to the next space.
            out.push_str(&conn[i..key_end]);
            i = key_end;
            continue;
        }
        let value = skip_whitespace(bytes, eq + 1);
        out.push_str(&conn[i..value]);
        let (end, terminated) = value_end(bytes, value);
        if is_password_key(keyword) {
            out.push_str(MASK);
            if !terminated {
                break;
            }
        } else {
            out.push_str(&conn[value..end]);
        }
        i = end;
    }
    out
}

fn skip_whitespace(bytes: &[u8], from: usize) -> usize {
    (from..bytes.len()).find(|&j| !bytes[j].is_ascii_whitespace()).unwrap_or(bytes.len())
}

/// Where the value starting at `from` ends, and whether it was well formed.
fn value_end(bytes: &[u8], from: usize) -> (usize, bool) {
    let quoted = bytes.get(from) == Some(&b'\'');
    let mut j = from + usize::from(quoted);
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'\'' if quoted => return (j + 1, true),
            b if !quoted && b.is_ascii_whitespace() => return (j, true),
            _ => j += 1,
        }
    }
    (bytes.len(), !quoted)
}

#[cfg(test)]
mod tests {
    use super::mask;

    /// Each form the reliability probe found printed in full, and the ordinary ones.
    #[test]
    fn every_form_of_password_is_masked() {
        let cases = [
            ("mysql://edu:secret@127.0.0.1:3306/edu_rtdw", "mysql://edu:***@127.0.0.1:3306/edu_rtdw"),
            ("postgres://edu:p@ss@host/db?x=1", "postgres://edu:***@host/db?x=1"),
            ("postgres://edu@host/db", "postgres://edu@host/db"),
            ("postgres://host/db", "postgres://host/db"),
            // Query parameters.
            ("mysql://127.0.0.1/db?user=edu&password=secret", "mysql://127.0.0.1/db?user=edu&password=***"),
            (
                "postgres://h/db?user=edu&PASSWORD=secret&sslmode=disable",
                "postgres://h/db?user=edu&PASSWORD=***&sslmode=disable",
            ),
            // Passwords holding `/`, `?` or `#`: the url crate refuses these.
            ("mysql://edu:se/cret@127.0.0.1:3306/db", "mysql://edu:***@127.0.0.1:3306/db"),
            ("mysql://edu:se?cret@127.0.0.1/db", "mysql://edu:***@127.0.0.1/db"),
            ("postgres://edu:a/b?c#d@h:5432/db?password=x", "postgres://edu:***@h:5432/db?password=***"),
            // libpq key-value strings.
            ("host=x password=y user=z", "host=x password=*** user=z"),
            ("host=x password = y user=z", "host=x password = *** user=z"),
            ("host=x\tpassword\t=\ty\tuser=z", "host=x\tpassword\t=\t***\tuser=z"),
            ("host=x password='a b c' user=z", "host=x password=*** user=z"),
            ("host=x password='it\\'s' user=z", "host=x password=*** user=z"),
            ("password=a\\ b user=z", "password=*** user=z"),
            ("host=x password='unterminated user=z", "host=x password=***"),
            ("host=x PASSWORD=y", "host=x PASSWORD=***"),
            ("user=z", "user=z"),
        ];
        for (conn, want) in cases {
            let masked = mask(conn);
            assert_eq!(masked, want, "{conn:?}");
            for secret in ["secret", "se/cret", "se?cret", "'a b c'", "it\\'s", "a/b?c#d", "a\\ b"] {
                assert!(!masked.contains(secret), "{conn:?} shows {secret:?}: {masked:?}");
            }
        }
    }
}
