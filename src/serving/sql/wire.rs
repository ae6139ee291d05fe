//! SQLite values on the wire: result column types, row encoding, parameter decoding.
//!
//! A result column's type is its declared type when SQLite knows it (a table or view
//! column: `INTEGER` → `bigint`, `REAL` → `double precision`, `TEXT` → `text`, `BLOB` →
//! `bytea`, `BOOLEAN` → `boolean`), else the type of its values (integers → `bigint`,
//! any double → `double precision`, mixed or all NULL → `text`). A statement described
//! before it could run (it has parameters) has only declared types, `text` for the rest;
//! its values are then converted to the described types, or the statement fails if one
//! does not convert.

use std::sync::Arc;

use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use rusqlite::types::Value;

use super::engine::{Column, SqlError};

/// The type a declared SQLite column type is served as, if it says.
fn declared(decl: Option<&str>) -> Option<Type> {
    let decl = decl?.to_ascii_uppercase();
    let has = |s: &str| decl.contains(s);
    if has("BOOL") {
        Some(Type::BOOL)
    } else if has("INT") {
        Some(Type::INT8)
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        Some(Type::FLOAT8)
    } else if has("BLOB") {
        Some(Type::BYTEA)
    } else if has("TEXT") || has("CHAR") || has("CLOB") {
        Some(Type::TEXT)
    } else {
        None
    }
}

/// The types of columns described before running: declared, else `text`.
pub fn described_types(columns: &[Column]) -> Vec<Type> {
    columns.iter().map(|c| declared(c.decl.as_deref()).unwrap_or(Type::TEXT)).collect()
}

/// The types of result columns: declared, else those of the values.
pub fn result_types(columns: &[Column], rows: &[Vec<Value>]) -> Vec<Type> {
    let of_values = |i: usize| {
        let mut seen: Option<Type> = None;
        for v in rows.iter().filter_map(|r| r.get(i)) {
            let t = match v {
                Value::Null => continue,
                Value::Integer(_) => Type::INT8,
                Value::Real(_) => Type::FLOAT8,
                Value::Text(_) => Type::TEXT,
                Value::Blob(_) => Type::BYTEA,
            };
            seen = Some(match seen {
                None => t,
                Some(s) if s == t => s,
                Some(s) if [&s, &t].iter().all(|x| **x == Type::INT8 || **x == Type::FLOAT8) => Type::FLOAT8,
                Some(_) => return Type::TEXT,
            });
        }
        seen.unwrap_or(Type::TEXT)
    };
    columns.iter().enumerate().map(|(i, c)| declared(c.decl.as_deref()).unwrap_or_else(|| of_values(i))).collect()
}

/// The format of result column `i` (a client's short list of codes reads as text).
fn field_format(format: &Format, i: usize) -> FieldFormat {
    match format {
        Format::UnifiedText => FieldFormat::Text,
        Format::UnifiedBinary => FieldFormat::Binary,
        Format::Individual(codes) => codes.get(i).map_or(FieldFormat::Text, |&c| FieldFormat::from(c)),
    }
}

/// The row description of `columns` typed `types`, in `format`.
pub fn fields(columns: &[Column], types: &[Type], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (c, t))| FieldInfo::new(c.name.clone(), None, None, t.clone(), field_format(format, i)))
        .collect()
}

/// Rows encoded as `fields` say.
pub fn encode(rows: Vec<Vec<Value>>, fields: &Arc<Vec<FieldInfo>>) -> Result<Vec<DataRow>, SqlError> {
    let mut encoder = DataRowEncoder::new(Arc::clone(fields));
    let options = FormatOptions::default();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        for (v, field) in row.into_iter().zip(fields.iter()) {
            encode_value(&mut encoder, v, field, &options)?;
        }
        out.push(encoder.take_row());
    }
    Ok(out)
}

/// One value, converted to its field's type.
fn encode_value(
    encoder: &mut DataRowEncoder,
    v: Value,
    field: &FieldInfo,
    options: &FormatOptions,
) -> Result<(), SqlError> {
    let (t, format) = (field.datatype(), field.format());
    let column = field.name();
    let encoded = match *t {
        Type::INT8 => encoder.encode_field_with_type_and_format(&as_i64(v, column)?, t, format, options),
        Type::FLOAT8 => encoder.encode_field_with_type_and_format(&as_f64(v, column)?, t, format, options),
        Type::BOOL => encoder.encode_field_with_type_and_format(&as_bool(v, column)?, t, format, options),
        Type::BYTEA => encoder.encode_field_with_type_and_format(&as_bytes(v), t, format, options),
        _ => encoder.encode_field_with_type_and_format(&as_text(v), t, format, options),
    };
    encoded.map_err(|e| SqlError::new("22000", format!("cannot encode column \"{column}\": {e}")))
}

fn mismatch(v: &Value, t: &str, column: &str) -> SqlError {
    SqlError::new("22P02", format!("column \"{column}\" was described as {t} but has the value {v:?}"))
}

fn as_i64(v: Value, column: &str) -> Result<Option<i64>, SqlError> {
    match &v {
        Value::Null => Ok(None),
        Value::Integer(i) => Ok(Some(*i)),
        Value::Real(f) if f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64 => Ok(Some(*f as i64)),
        Value::Text(s) => s.trim().parse().map(Some).map_err(|_| mismatch(&v, "bigint", column)),
        _ => Err(mismatch(&v, "bigint", column)),
    }
}

fn as_f64(v: Value, column: &str) -> Result<Option<f64>, SqlError> {
    match &v {
        Value::Null => Ok(None),
        Value::Integer(i) => Ok(Some(*i as f64)),
        Value::Real(f) => Ok(Some(*f)),
        Value::Text(s) => s.trim().parse().map(Some).map_err(|_| mismatch(&v, "double precision", column)),
        Value::Blob(_) => Err(mismatch(&v, "double precision", column)),
    }
}

fn as_bool(v: Value, column: &str) -> Result<Option<bool>, SqlError> {
    match &v {
        Value::Null => Ok(None),
        Value::Integer(i) => Ok(Some(*i != 0)),
        Value::Real(f) => Ok(Some(*f != 0.0)),
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "on" | "yes" => Ok(Some(true)),
            "f" | "false" | "0" | "off" | "no" => Ok(Some(false)),
            _ => Err(mismatch(&v, "boolean", column)),
        },
        Value::Blob(_) => Err(mismatch(&v, "boolean", column)),
    }
}

fn as_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::Blob(b) => Some(b),
        other => as_text(other).map(String::into_bytes),
    }
}

/// A value as PostgreSQL would print it as text.
pub fn as_text(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) if f.is_finite() && f != 0.0 && !(1e-5..1e16).contains(&f.abs()) => Some(format!("{f:e}")),
        Value::Real(f) => Some(f.to_string()),
        Value::Text(s) => Some(s),
        Value::Blob(b) => Some(b.iter().fold(String::from("\\x"), |mut s, byte| {
            s.push_str(&format!("{byte:02x}"));
            s
        })),
    }
}

/// Whether parameter `i` is sent in binary (a client's short list of codes reads as text).
fn binary(format: &Format, i: usize) -> bool {
    field_format(format, i) == FieldFormat::Binary
}

/// Parameter `i` (0-based) of a bound statement as a SQLite value.
pub fn parameter(raw: Option<&[u8]>, t: &Type, format: &Format, i: usize) -> Result<Value, SqlError> {
    let Some(raw) = raw else { return Ok(Value::Null) };
    let bad = |what: &str| SqlError::new("22P02", format!("parameter ${}: {what}", i + 1));
    if binary(format, i) {
        let fixed = |n: usize| -> Result<&[u8], SqlError> {
            (raw.len() == n).then_some(raw).ok_or_else(|| bad(&format!("expected {n} bytes for {t}")))
        };
        return match *t {
            Type::INT2 => Ok(Value::Integer(i16::from_be_bytes(to_array(fixed(2)?)).into())),
            Type::INT4 => Ok(Value::Integer(i32::from_be_bytes(to_array(fixed(4)?)).into())),
            Type::INT8 => Ok(Value::Integer(i64::from_be_bytes(to_array(fixed(8)?)))),
            Type::FLOAT4 => Ok(Value::Real(f32::from_be_bytes(to_array(fixed(4)?)).into())),
            Type::FLOAT8 => Ok(Value::Real(f64::from_be_bytes(to_array(fixed(8)?)))),
            Type::BOOL => Ok(Value::Integer(i64::from(fixed(1)?[0] != 0))),
            Type::BYTEA => Ok(Value::Blob(raw.to_vec())),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
                String::from_utf8(raw.to_vec()).map(Value::Text).map_err(|_| bad("not UTF-8"))
            }
            _ => Err(bad(&format!("type {t} is not supported"))),
        };
    }
    let text = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
    match *t {
        Type::INT2 | Type::INT4 | Type::INT8 => {
            text.trim().parse().map(Value::Integer).map_err(|_| bad(&format!("`{text}` is not an integer")))
        }
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
            text.trim().parse().map(Value::Real).map_err(|_| bad(&format!("`{text}` is not a number")))
        }
        Type::BOOL => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "on" | "yes" => Ok(Value::Integer(1)),
            "f" | "false" | "0" | "off" | "no" => Ok(Value::Integer(0)),
            _ => Err(bad(&format!("`{text}` is not a boolean"))),
        },
        _ => Ok(Value::Text(text.to_string())),
    }
}

/// The first `N` bytes (the caller checked the length).
fn to_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.iter_mut().zip(bytes).for_each(|(o, b)| *o = *b);
    out
}
