//! From a client's query text to statements SQLite can run.
//!
//! The text is split at top-level semicolons (quotes, quoted identifiers, dollar quotes
//! and comments respected; comments are dropped). Each statement is classified by its
//! first keyword: queries (`SELECT`, `WITH`, `VALUES`, `EXPLAIN`) go to SQLite; the
//! session commands clients send unasked (`SET`, `RESET`, `BEGIN`, `COMMIT`, `ROLLBACK`,
//! `DISCARD`, `DEALLOCATE`) are accepted and do nothing; `SHOW` answers a few settings;
//! writes, schema changes and server commands are refused by name; any other text goes to
//! SQLite, which runs it only if it is a read-only query (see `engine`). A trailing `AS OF <integer>` is taken off a query and
//! becomes its frontier.
//!
//! Queries are then rewritten, outside string literals and quoted identifiers, from the
//! PostgreSQL forms `psql` and Grafana send to SQLite's: `OPERATOR(pg_catalog.~)`, `~`
//! and `!~` against a literal become `REGEXP` / `NOT REGEXP`; `COLLATE pg_catalog.default`
//! and casts to the common scalar types (`::text`, `::oid`, `::regclass`, ...) are dropped,
//! except that a literal cast to `regclass` becomes `edu_regclass('name')`;
//! `pg_catalog.f(` becomes `f(`; `current_user`, `current_schema` and their kin get their
//! parentheses; `ILIKE` becomes `LIKE` (SQLite's `LIKE` ignores ASCII case). Grafana's
//! search-path subquery becomes `SELECT 'public'` and its `parse_ident` array forms become
//! `edu_ident_len` / `edu_ident_part` calls.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use dataflows::Time;

use super::lex::{Piece, lex, split};

/// What a statement is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A query for SQLite.
    Query,
    /// A session command accepted and ignored; its command tag.
    Ignored(&'static str),
    /// `SHOW name`.
    Show(String),
    /// A statement edu-rtdw does not run; its first keyword.
    Refused(String),
}

/// One statement of a query text, ready for SQLite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The rewritten text (for [`Kind::Query`]).
    pub sql: String,
    /// The frontier of a trailing `AS OF N`.
    pub as_of: Option<Time>,
    /// What it is.
    pub kind: Kind,
}

/// The longest query text taken, in bytes.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// The statements of `text`, in order (none for a text of only blanks and comments).
pub fn statements(text: &str) -> Result<Vec<Statement>, String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!("the query text is longer than {MAX_TEXT_BYTES} bytes"));
    }
    split(text)?.iter().filter(|s| !s.trim().is_empty()).map(|s| statement(s)).collect()
}

/// One statement (comments already removed).
fn statement(text: &str) -> Result<Statement, String> {
    let text = special_forms(text.trim());
    let (text, as_of) = strip_as_of(&text)?;
    let kind = classify(&text);
    let sql = if kind == Kind::Query { rewrite(&text)? } else { text };
    Ok(Statement { sql, as_of, kind })
}

/// `regex` compiled once (the patterns are constants).
macro_rules! re {
    ($pattern:expr) => {{
        static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new($pattern).expect("a valid constant pattern"));
        &*RE
    }};
}

/// `text` without a trailing `AS OF <integer>`, and that integer.
fn strip_as_of(text: &str) -> Result<(String, Option<Time>), String> {
    let Some(c) = re!(r"(?is)^(.*?)\s+AS\s+OF\s+([0-9]+)\s*$").captures(text) else {
        return Ok((text.to_string(), None));
    };
    let n = c[2].parse::<Time>().map_err(|_| format!("AS OF {}: not a logical time", &c[2]))?;
    Ok((c[1].to_string(), Some(n)))
}

/// The first keywords of statements that are refused by name (SQLite's and PostgreSQL's
/// writes, schema changes and session or server commands).
const WRITES: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "MERGE",
    "UPSERT",
    "TRUNCATE",
    "COPY",
    "CREATE",
    "DROP",
    "ALTER",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "ANALYSE",
    "SAVEPOINT",
    "RELEASE",
    "GRANT",
    "REVOKE",
    "CALL",
    "DO",
    "LOCK",
    "LISTEN",
    "UNLISTEN",
    "NOTIFY",
    "PREPARE",
    "EXECUTE",
    "COMMENT",
    "CLUSTER",
    "REFRESH",
    "SECURITY",
    "IMPORT",
    "LOAD",
    "CHECKPOINT",
    "DECLARE",
    "FETCH",
    "MOVE",
    "CLOSE",
    "REASSIGN",
];

/// What the statement is, by its first keyword.
fn classify(text: &str) -> Kind {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let start = text.find(word).unwrap_or(text.len());
    let end = text[start..].find(|c: char| !word(c)).map_or(text.len(), |n| start + n);
    let first = text[start..end].to_ascii_uppercase();
    match first.as_str() {
        "SELECT" | "WITH" | "VALUES" | "EXPLAIN" => Kind::Query,
        "SET" => Kind::Ignored("SET"),
        "RESET" => Kind::Ignored("RESET"),
        "BEGIN" | "START" => Kind::Ignored("BEGIN"),
        "COMMIT" | "END" => Kind::Ignored("COMMIT"),
        "ROLLBACK" | "ABORT" => Kind::Ignored("ROLLBACK"),
        "DISCARD" => Kind::Ignored("DISCARD ALL"),
        "DEALLOCATE" => Kind::Ignored("DEALLOCATE"),
        "SHOW" => Kind::Show(text[end..].trim().trim_matches('"').to_ascii_lowercase()),
        _ if WRITES.contains(&first.as_str()) => Kind::Refused(first),
        // Not a statement SQLite knows either: its syntax error says so.
        _ => Kind::Query,
    }
}

/// Whole-statement forms: psql's toast options and `trim(trailing ';' from x)`, Grafana's
/// search-path subquery and
/// `parse_ident` arrays.
fn special_forms(text: &str) -> String {
    let toast = re!(concat!(
        r"(?is)\|\|\s*array\s*\(\s*select\s+'toast\.'\s*\|\|\s*x\s+from\s+(pg_catalog\s*\.\s*)?unnest",
        r"\s*\(\s*tc\.reloptions\s*\)\s*x\s*\)"
    ));
    let text = toast.replace_all(text, "");
    let trim = re!(r"(?is)\btrim\(\s*(leading|trailing|both)\s+('(?:[^']|'')*')\s+from\s+");
    let text = trim.replace_all(&text, |c: &Captures| format!("edu_trim_{}({}, ", c[1].to_ascii_lowercase(), &c[2]));
    let search_path = re!(concat!(
        r#"(?is)SELECT\s+CASE\s+WHEN\s+trim\(s\[i\]\)\s*=\s*'"\$user"'\s+THEN\s+user\s+ELSE\s+trim\(s\[i\]\)\s+END"#,
        r#"\s+FROM\s+generate_series\(.*?\)\s+as\s+i\s*,\s*string_to_array\(\s*current_setting\(\s*'search_path'\s*\)"#,
        r#"\s*,\s*','\s*\)\s+s\b"#
    ));
    let text = search_path.replace_all(&text, "SELECT 'public'");
    let len = re!(r"(?is)array_length\(\s*parse_ident\(\s*('(?:[^']|'')*')\s*\)\s*,\s*1\s*\)");
    let text = len.replace_all(&text, "edu_ident_len($1)");
    let part = re!(r"(?is)\(\s*parse_ident\(\s*('(?:[^']|'')*')\s*\)\s*\)\s*\[\s*([0-9]+)\s*\]");
    part.replace_all(&text, "edu_ident_part($1, $2)").into_owned()
}

/// The query with PostgreSQL-only forms outside literals rewritten for SQLite.
fn rewrite(text: &str) -> Result<String, String> {
    let pieces = lex(text)?;
    let mut out: Vec<String> = Vec::with_capacity(pieces.len());
    for (i, &(piece, s)) in pieces.iter().enumerate() {
        let next = pieces.get(i + 1).map(|&(p, t)| (p, t));
        match piece {
            Piece::Code => code(s, &mut out, next),
            Piece::Literal if escape_prefix(&mut out) => out.push(unescape(s)),
            Piece::Ident if cast_target(&out) => {
                // `::"char"`: the cast's `::` was left at the end of the previous code piece.
                strip_cast_tail(&mut out);
            }
            _ => out.push(s.to_string()),
        }
    }
    Ok(out.concat())
}

/// Whether the text so far ends with the `E` of an `E'...'` string (then taken off).
fn escape_prefix(out: &mut [String]) -> bool {
    let Some(last) = out.last_mut() else { return false };
    let prefixed = re!(r"(?:^|[^A-Za-z0-9_$])[eE]$").is_match(last);
    if prefixed {
        last.pop();
    }
    prefixed
}

/// An `E'...'` literal's body with its backslash escapes resolved, as a plain literal.
fn unescape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\'') => out.push_str("''"),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Whether the text so far ends with `::` (optionally `pg_catalog.`): a cast to a quoted type.
fn cast_target(out: &[String]) -> bool {
    out.last().is_some_and(|s| re!(r"(?is)::\s*(pg_catalog\s*\.\s*)?$").is_match(s))
}

/// Drops a dangling `::` / `::pg_catalog.` from the end of the text so far.
fn strip_cast_tail(out: &mut [String]) {
    if let Some(last) = out.last_mut() {
        *last = re!(r"(?is)::\s*(pg_catalog\s*\.\s*)?$").replace(last, "").into_owned();
    }
}

/// Rewrites one code piece into `out`; `next` is the piece after it.
fn code(s: &str, out: &mut Vec<String>, next: Option<(Piece, &str)>) {
    let mut s = s.to_string();
    // `'name'::regclass`: the literal was just written; wrap it.
    if let Some(c) = re!(r"(?is)^\s*::\s*(pg_catalog\s*\.\s*)?regclass\b").find(&s)
        && out.last().is_some_and(|l| l.starts_with('\''))
        && let Some(literal) = out.pop()
    {
        out.push(format!("edu_regclass({literal})"));
        s = s[c.end()..].to_string();
    }
    let s = re!(r"(?is)OPERATOR\s*\(\s*pg_catalog\s*\.\s*(!?)~\*?\s*\)")
        .replace_all(&s, |c: &Captures| if c[1].is_empty() { " REGEXP " } else { " NOT REGEXP " });
    let s = re!(r"(?is)COLLATE\s+pg_catalog\s*\.\s*default\b").replace_all(&s, " ");
    let s = re!(r"(?is)::\s*(pg_catalog\s*\.\s*)?(regclass|regtype|regproc|regprocedure|regnamespace|regrole|oid|text|name|int2|int4|int8|integer|int|bigint|smallint|bool|boolean|float4|float8|real|numeric|double\s+precision|character\s+varying|varchar|bpchar|char)\b(\s*\[\s*\])?")
        .replace_all(&s, "");
    let s = re!(r"(?is)\bpg_catalog\s*\.\s*([a-z_][a-z0-9_]*)\s*\(").replace_all(&s, "$1(");
    let s = re!(r"(?is)\bILIKE\b").replace_all(&s, "LIKE");
    // `x = any (array)`, `array(subquery)`, `a[i]`: the catalog has no arrays (its array
    // columns are NULL or one value).
    let s = re!(r"(?is)=\s*any\s*\(").replace_all(&s, " IN (");
    let s = re!(r"(?is)\barray\s*\(").replace_all(&s, "(");
    let s = re!(r"(?is)\b([a-z_][a-z0-9_.]*)\[([^\[\]]+)\]").replace_all(&s, "NULL");
    let mut s = parenthesize_keywords(&s);
    if matches!(next, Some((Piece::Literal, _))) {
        // `x ~ 'pattern'` and `x !~ 'pattern'` (a bare `~` before anything else is SQLite's bitwise not).
        s = re!(r"(?s)(!?)~\*?\s*$")
            .replace(&s, |c: &Captures| if c[1].is_empty() { " REGEXP " } else { " NOT REGEXP " })
            .into_owned();
    }
    out.push(s);
}

/// `current_user` → `current_user()` (and `session_user`, `current_role`, `current_schema`,
/// `current_catalog`), unless already called.
fn parenthesize_keywords(s: &str) -> String {
    let words = re!(r"(?i)\b(current_user|session_user|current_role|current_schema|current_catalog)\b");
    let mut out = String::with_capacity(s.len() + 8);
    let mut last = 0;
    for m in words.find_iter(s) {
        let preceded_by_dot = s[..m.start()].trim_end().ends_with('.');
        let called = s[m.end()..].trim_start().starts_with('(');
        out.push_str(&s[last..m.end()]);
        if !called && !preceded_by_dot {
            out.push_str("()");
        }
        last = m.end();
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Statement {
        let mut all = statements(text).expect("statements");
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let all = statements("select ';' as a; -- c;\n select \"x;y\" from t /* ; */; ;").expect("split");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].sql, "select ';' as a");
        assert_eq!(all[1].sql.trim(), "select \"x;y\" from t");
        assert!(statements(" -- only a comment").expect("split").is_empty());
        assert!(statements("select 'open").is_err());
        assert_eq!(one("select $$a;b$$, $1").sql, "select $$a;b$$, $1");
    }

    #[test]
    fn as_of_is_taken_off() {
        let s = one("SELECT * FROM staff_index AS OF 42");
        assert_eq!((s.sql.as_str(), s.as_of), ("SELECT * FROM staff_index", Some(42)));
        assert_eq!(one("select 1 as of").as_of, None);
        assert_eq!(one("select 'AS OF 3'").as_of, None);
        assert!(statements("select 1 as of 99999999999999999999999").is_err());
    }

    #[test]
    fn statements_are_classified() {
        assert_eq!(one("insert into t values (1)").kind, Kind::Refused("INSERT".into()));
        assert_eq!(one("attach ':memory:' as x").kind, Kind::Refused("ATTACH".into()));
        assert_eq!(one("SET extra_float_digits = 3").kind, Kind::Ignored("SET"));
        assert_eq!(one("show search_path").kind, Kind::Show("search_path".into()));
        assert_eq!(one("with a as (select 1) select * from a").kind, Kind::Query);
    }

    #[test]
    fn postgres_forms_become_sqlite() {
        let s = one(
            "SELECT c.oid::pg_catalog.regclass, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_class c \
             WHERE c.relname OPERATOR(pg_catalog.~) '^(x)$' COLLATE pg_catalog.default AND n.nspname !~ '^pg_toast' \
             AND c.oid = 'x'::regclass AND a.attname ILIKE 'y' AND t.typname::\"char\" = 'z' AND current_user = 'u'",
        );
        assert!(!s.sql.contains("::"), "{}", s.sql);
        assert!(s.sql.contains("c.relname  REGEXP  '^(x)$'"), "{}", s.sql);
        assert!(s.sql.contains("n.nspname  NOT REGEXP '^pg_toast'"), "{}", s.sql);
        assert!(s.sql.contains("edu_regclass('x')"), "{}", s.sql);
        assert!(s.sql.contains(" format_type(a.atttypid"), "{}", s.sql);
        assert!(s.sql.contains("FROM pg_catalog.pg_class c"), "{}", s.sql);
        assert!(s.sql.contains("LIKE 'y'") && s.sql.contains("current_user() = 'u'"), "{}", s.sql);
        assert_eq!(one("select ~5, 'a~b'").sql, "select ~5, 'a~b'");
        assert_eq!(one("select trim(trailing ';' from d)").sql, "select edu_trim_trailing(';', d)");
        assert_eq!(
            one(r"select array_to_string(x, E'\n'), e'a\tb', 'c\n'").sql,
            "select array_to_string(x, '\n'), 'a\tb', 'c\\n'"
        );
    }

    #[test]
    fn grafana_metadata_queries_are_rewritten() {
        let s = one("SELECT quote_ident(column_name) FROM information_schema.columns WHERE \
             CASE WHEN array_length(parse_ident('public.t'),1) = 2 \
             THEN quote_ident(table_schema) = (parse_ident('public.t'))[1] ELSE quote_ident(table_schema) IN ( \
             SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM generate_series( \
             array_lower(string_to_array(current_setting('search_path'),','),1), \
             array_upper(string_to_array(current_setting('search_path'),','),1)) as i, \
             string_to_array(current_setting('search_path'),',') s) END");
        assert!(s.sql.contains("edu_ident_len('public.t') = 2"), "{}", s.sql);
        assert!(s.sql.contains("edu_ident_part('public.t', 1)"), "{}", s.sql);
        assert!(s.sql.contains("IN ( SELECT 'public')"), "{}", s.sql);
    }
}
