//! The SQL functions of a connection: `edu_upper()`, and the PostgreSQL functions and
//! settings `psql` and Grafana call (constant answers for what edu-rtdw has no notion of:
//! privileges are granted, sizes are 0, descriptions and definitions of objects that do
//! not exist are NULL).

use std::sync::Arc;

use regex::Regex;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{FromSql, Value};
use rusqlite::{Connection, Error};

use dataflows::output::SqlValue;

use super::catalog::{DATABASE, TYPES, relations, view_definition};
use super::frame::{SharedFrame, lock};

/// The PostgreSQL version edu-rtdw says it speaks (`server_version`), which decides the
/// catalog queries `psql` sends.
pub const SERVER_VERSION: &str = "16.6";
/// [`SERVER_VERSION`] as `server_version_num`.
const SERVER_VERSION_NUM: &str = "160006";

/// The value of setting `name` (`SHOW`, `current_setting`), if edu-rtdw has one.
pub fn setting(name: &str) -> Option<String> {
    let value = match name.to_ascii_lowercase().as_str() {
        "server_version" => SERVER_VERSION,
        "server_version_num" => SERVER_VERSION_NUM,
        "search_path" => "\"$user\", public",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "transaction_isolation" | "default_transaction_isolation" | "transaction isolation level" => "repeatable read",
        "timezone" => "UTC",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "max_identifier_length" => "63",
        "lc_collate" | "lc_ctype" => "C.UTF-8",
        "statement_timeout" | "lock_timeout" => "0",
        "application_name" => "",
        _ => return None,
    };
    Some(value.to_string())
}

/// `version()`.
fn version() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} on x86_64-pc-linux-gnu, served by edu-rtdw {} (SQLite {}; read-only)",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version()
    )
}

/// Argument `i`, or `None` when the call has fewer.
fn arg<T: FromSql>(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<T>> {
    if i < ctx.len() { ctx.get::<Option<T>>(i) } else { Ok(None) }
}

/// An error a function reports to the statement.
fn user_error(message: String) -> Error {
    Error::UserFunctionError(message.into())
}

/// Registers every function on `conn`; `user` is the connected user.
pub fn register(conn: &Connection, frame: &SharedFrame, user: &str) -> rusqlite::Result<()> {
    let constant = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let volatile = FunctionFlags::SQLITE_UTF8;
    let text =
        |name: &str, n: i32, value: String| conn.create_scalar_function(name, n, constant, move |_| Ok(value.clone()));
    rusqlite::vtab::series::load_module(conn)?;
    text("version", 0, version())?;
    for name in ["current_schema", "pg_my_temp_schema"] {
        text(name, 0, "public".into())?;
    }
    for name in ["current_database", "current_catalog"] {
        text(name, 0, DATABASE.into())?;
    }
    for name in ["current_user", "session_user", "current_role"] {
        text(name, 0, user.into())?;
    }
    text("pg_get_userbyid", 1, DATABASE.into())?;
    text("pg_encoding_to_char", 1, "UTF8".into())?;
    let one = |name: &str, n: i32| conn.create_scalar_function(name, n, constant, |_| Ok(1_i64));
    for name in ["pg_table_is_visible", "pg_type_is_visible", "pg_function_is_visible", "pg_collation_is_visible"] {
        one(name, 1)?;
    }
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
    ] {
        one(name, -1)?;
    }
    let zero = |name: &str| conn.create_scalar_function(name, -1, constant, |_| Ok(0_i64));
    for name in [
        "pg_relation_size",
        "pg_table_size",
        "pg_total_relation_size",
        "pg_indexes_size",
        "pg_database_size",
        "pg_is_in_recovery",
        "pg_relation_is_publishable",
    ] {
        zero(name)?;
    }
    let null = |name: &str| conn.create_scalar_function(name, -1, constant, |_| Ok(None::<String>));
    for name in [
        "obj_description",
        "col_description",
        "shobj_description",
        "pg_get_expr",
        "pg_get_indexdef",
        "pg_get_constraintdef",
        "pg_get_triggerdef",
        "pg_get_ruledef",
        "pg_get_partkeydef",
        "pg_get_partition_constraintdef",
        "pg_get_statisticsobjdef_columns",
        "pg_get_serial_sequence",
        "pg_tablespace_location",
        "array_upper",
        "array_lower",
    ] {
        null(name)?;
    }
    register_pg(conn, constant, volatile)?;
    register_edu(conn, frame, constant, volatile)
}

/// PostgreSQL functions with real answers.
fn register_pg(conn: &Connection, constant: FunctionFlags, volatile: FunctionFlags) -> rusqlite::Result<()> {
    conn.create_scalar_function("current_setting", -1, constant, |ctx| {
        let name: String = arg(ctx, 0)?.unwrap_or_default();
        let missing_ok = arg::<i64>(ctx, 1)?.unwrap_or(0) != 0;
        match setting(&name) {
            Some(value) => Ok(Some(value)),
            None if missing_ok => Ok(None),
            None => Err(user_error(format!("unrecognized configuration parameter \"{name}\""))),
        }
    })?;
    conn.create_scalar_function("format_type", -1, constant, |ctx| {
        let oid: Option<i64> = arg(ctx, 0)?;
        Ok(oid.map(|oid| TYPES.iter().find(|t| t.oid == oid).map_or("???", |t| t.sql_name).to_string()))
    })?;
    conn.create_scalar_function("pg_get_viewdef", -1, constant, |ctx| {
        let relation: Option<Value> = arg(ctx, 0)?;
        Ok(relation.and_then(|r| find_relation(&r)).filter(|r| r.view).map(|r| view_definition(&r)))
    })?;
    for name in ["edu_regclass", "to_regclass"] {
        let strict = name == "edu_regclass";
        conn.create_scalar_function(name, 1, constant, move |ctx| {
            let Some(relation) = arg::<Value>(ctx, 0)? else { return Ok(None) };
            match find_relation(&relation) {
                Some(r) => Ok(Some(r.oid)),
                None if strict => Err(user_error(format!("relation {} does not exist", describe(&relation)))),
                None => Ok(None),
            }
        })?;
    }
    for (name, ends) in
        [("edu_trim_leading", (true, false)), ("edu_trim_trailing", (false, true)), ("edu_trim_both", (true, true))]
    {
        conn.create_scalar_function(name, 2, constant, move |ctx| {
            let (Some(chars), Some(s)) = (arg::<String>(ctx, 0)?, arg::<String>(ctx, 1)?) else { return Ok(None) };
            let trimmed = if ends.0 { s.trim_start_matches(|c| chars.contains(c)) } else { &s };
            let trimmed = if ends.1 { trimmed.trim_end_matches(|c| chars.contains(c)) } else { trimmed };
            Ok(Some(trimmed.to_string()))
        })?;
    }
    conn.create_scalar_function("pg_size_pretty", 1, constant, |ctx| {
        Ok(arg::<i64>(ctx, 0)?.map(|n| format!("{n} bytes")))
    })?;
    conn.create_scalar_function("quote_ident", 1, constant, |ctx| Ok(arg::<String>(ctx, 0)?.map(|s| quote_ident(&s))))?;
    conn.create_scalar_function("array_to_string", -1, constant, |ctx| arg::<Value>(ctx, 0).map(|v| v.map(text)))?;
    conn.create_scalar_function("pg_backend_pid", 0, constant, |_| Ok(i64::from(std::process::id())))?;
    for name in ["now", "transaction_timestamp", "statement_timestamp", "clock_timestamp"] {
        conn.create_scalar_function(name, 0, volatile, |_| {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            Ok(SqlValue::timestamp_text(ms))
        })?;
    }
    conn.create_scalar_function("regexp", 2, constant, |ctx| {
        if arg::<Value>(ctx, 0)?.is_none() {
            return Ok(None);
        }
        let regex: Arc<Regex> = ctx.get_or_create_aux(0, |pattern| -> Result<Regex, String> {
            let pattern = pattern.as_str().map_err(|e| e.to_string())?;
            Regex::new(pattern).map_err(|e| format!("invalid regular expression: {e}"))
        })?;
        Ok(arg::<String>(ctx, 1)?.map(|s| regex.is_match(&s)))
    })
}

/// edu-rtdw's own functions: `edu_upper()` and the helpers of rewritten Grafana queries.
fn register_edu(
    conn: &Connection,
    frame: &SharedFrame,
    constant: FunctionFlags,
    volatile: FunctionFlags,
) -> rusqlite::Result<()> {
    let frame = Arc::clone(frame);
    conn.create_scalar_function("edu_upper", 0, volatile, move |_| {
        let upper = lock(&frame).upper().map_err(user_error)?;
        i64::try_from(upper).map_err(|_| user_error(format!("logical upper {upper} does not fit a bigint")))
    })?;
    conn.create_scalar_function("edu_ident_len", 1, constant, |ctx| {
        Ok(arg::<String>(ctx, 0)?.map(|s| ident_parts(&s).len() as i64))
    })?;
    conn.create_scalar_function("edu_ident_part", 2, constant, |ctx| {
        let (Some(s), Some(i)) = (arg::<String>(ctx, 0)?, arg::<i64>(ctx, 1)?) else { return Ok(None) };
        let part =
            i.checked_sub(1).and_then(|i| usize::try_from(i).ok()).and_then(|i| ident_parts(&s).into_iter().nth(i));
        Ok(part.map(|p| quote_ident(&p)))
    })
}

/// The served relation `v` names: an OID, or a (possibly `public.`-qualified, possibly quoted) name.
fn find_relation(v: &Value) -> Option<super::catalog::Relation> {
    let oid = match v {
        Value::Integer(i) => Some(*i),
        Value::Text(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let name = match (v, oid) {
        (Value::Text(s), None) => ident_parts(s).last().cloned(),
        _ => None,
    };
    relations().into_iter().find(|r| Some(r.oid) == oid || name.as_deref() == Some(r.name))
}

/// A value for a message.
fn describe(v: &Value) -> String {
    format!("\"{}\"", text(v.clone()))
}

/// A value as text.
fn text(v: Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s,
        Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
    }
}

/// The parts of a dotted identifier (`a."B.c"` → `a`, `B.c`); unquoted parts are lowercased.
fn ident_parts(s: &str) -> Vec<String> {
    let (mut parts, mut part, mut quoted, mut was_quoted) = (Vec::new(), String::new(), false, false);
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                part.push('"');
                chars.next();
            }
            '"' => (quoted, was_quoted) = (!quoted, true),
            '.' if !quoted => {
                parts.push(finish(std::mem::take(&mut part), was_quoted));
                was_quoted = false;
            }
            c => part.push(c),
        }
    }
    parts.push(finish(part, was_quoted));
    parts
}

fn finish(part: String, quoted: bool) -> String {
    if quoted { part } else { part.trim().to_lowercase() }
}

/// `quote_ident`: quoted unless a lower-case identifier.
pub fn quote_ident(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { s.to_string() } else { format!("\"{}\"", s.replace('"', "\"\"")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(ident_parts("public.Games"), vec!["public", "games"]);
        assert_eq!(ident_parts("a.\"B.c\""), vec!["a", "B.c"]);
        assert_eq!(quote_ident("staff_index"), "staff_index");
        assert_eq!(quote_ident("timeStamp"), "\"timeStamp\"");
    }
}
