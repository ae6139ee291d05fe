//! The frame of one statement: what it has read, at which frontier.
//!
//! The first table a statement scans (or `edu_upper()`, whichever comes first) is read at
//! the statement's `AS OF` frontier, or the latest one, and fixes the statement's `upper`;
//! every other table of the statement is read at exactly that `upper`, so a statement is
//! consistent at one frontier. Rows are read once per statement and table (SQLite's
//! nested-loop joins re-open inner tables once per outer row) and dropped when the
//! statement ends. An equality on a column (a join key, a `WHERE k = v`) is answered from
//! a hash index built on first use, so joins are not quadratic.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::types::Value;

use dataflows::output::{ColumnType, Output, SqlValue};
use dataflows::{OutputRow, Time};

use crate::serving::{Answer, AsOf, Reader};

/// A statement's frame, shared by the connection's virtual tables and functions.
pub type SharedFrame = Arc<Mutex<Frame>>;

/// What the running statement has read.
pub struct Frame {
    reader: Arc<dyn Reader>,
    /// The statement's `AS OF`, or the latest frontier.
    as_of: AsOf,
    /// The frontier of the statement's first read.
    upper: Option<Time>,
    tables: HashMap<Output, Arc<Loaded>>,
}

/// A table's rows as SQLite values, and its column indexes built so far.
pub struct Loaded {
    /// The rows, in the reader's order.
    pub rows: Vec<Vec<Value>>,
    indexes: Mutex<HashMap<usize, Arc<Index>>>,
}

/// A column's index: the positions of the rows with each key.
type Index = HashMap<Key, Vec<u32>>;

impl Frame {
    /// A frame between statements.
    pub fn new(reader: Arc<dyn Reader>) -> Frame {
        Frame { reader, as_of: AsOf::Latest, upper: None, tables: HashMap::new() }
    }

    /// Starts a statement read at `as_of` (`None`: the latest frontier).
    pub fn begin(&mut self, as_of: Option<Time>) {
        self.as_of = as_of.map_or(AsOf::Latest, AsOf::Upper);
        self.upper = None;
        self.tables.clear();
    }

    /// Ends the statement: drops its rows, returns its frontier if it read one.
    pub fn end(&mut self) -> Option<Time> {
        self.tables.clear();
        self.upper.take()
    }

    /// Where the next read is: the statement's frontier once it has one.
    fn frontier(&self) -> AsOf {
        self.upper.map_or(self.as_of, AsOf::Upper)
    }

    /// Reads `outputs` at the statement's frontier, fixing it on the first read.
    fn read(&mut self, outputs: &[Output]) -> Result<Answer, String> {
        let as_of = self.frontier();
        let reader = &self.reader;
        let answer = catch_unwind(AssertUnwindSafe(|| reader.read(outputs, as_of)))
            .map_err(|_| "the read failed (the reader panicked)".to_string())??;
        match self.upper {
            Some(upper) if upper != answer.upper => {
                Err(format!("the read answered at logical upper {} instead of {upper}", answer.upper))
            }
            _ => {
                self.upper = Some(answer.upper);
                Ok(answer)
            }
        }
    }

    /// The statement's frontier (read now if no table was read yet).
    pub fn upper(&mut self) -> Result<Time, String> {
        match self.upper {
            Some(upper) => Ok(upper),
            None => self.read(&[]).map(|answer| answer.upper),
        }
    }

    /// The rows of `output` at the statement's frontier.
    pub fn load(&mut self, output: Output) -> Result<Arc<Loaded>, String> {
        if let Some(loaded) = self.tables.get(&output) {
            return Ok(Arc::clone(loaded));
        }
        let answer = self.read(&[output])?;
        let rows = answer.tables.into_iter().find(|(o, _)| *o == output).map(|(_, rows)| rows).unwrap_or_default();
        let loaded = Arc::new(Loaded { rows: rows.iter().map(values).collect(), indexes: Mutex::default() });
        self.tables.insert(output, Arc::clone(&loaded));
        Ok(loaded)
    }
}

/// A lock that survives a panic elsewhere (the data is replaced per statement anyway).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A row's values as SQLite stores them (timestamps as text, as the SQLite sink does).
fn values(row: &OutputRow) -> Vec<Value> {
    row.values().into_iter().map(value).collect()
}

/// One value as SQLite stores it.
pub fn value(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(i) => Value::Integer(i),
        SqlValue::Double(d) => Value::Real(d),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Millis(ms) => Value::Text(SqlValue::timestamp_text(ms)),
        SqlValue::Bytes(b) => Value::Blob(b),
    }
}

/// The SQLite type a column is declared with.
pub fn sqlite_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Text | ColumnType::Timestamp => "TEXT",
        ColumnType::BigInt | ColumnType::Int | ColumnType::TinyInt => "INTEGER",
        ColumnType::Double => "REAL",
        ColumnType::Bytes => "BLOB",
    }
}

/// A value as a hash key: what SQLite's `=` (binary collation) can find equal.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Key {
    Int(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

/// The key of a stored value (`None` for NULL, which equals nothing).
fn key(v: &Value) -> Option<Key> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(Key::Int(*i)),
        Value::Real(f) => Some(real_key(*f)),
        Value::Text(s) => Some(Key::Text(s.clone())),
        Value::Blob(b) => Some(Key::Blob(b.clone())),
    }
}

/// An integral double equals the integer.
fn real_key(f: f64) -> Key {
    if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
        Key::Int(f as i64)
    } else {
        Key::Real(f.to_bits())
    }
}

/// How a looked-up value compares with a column of type `column`.
pub enum Lookup {
    /// Rows whose key is this.
    Key(Key),
    /// No row (`= NULL`).
    Nothing,
    /// Not answerable from the index: every row (SQLite checks the constraint again).
    Scan,
}

/// The key to look `v` up with, after SQLite's comparison affinity for the column.
pub fn lookup(v: Value, column: ColumnType) -> Lookup {
    let numeric = sqlite_type(column) != "TEXT";
    match (v, numeric) {
        (Value::Null, _) => Lookup::Nothing,
        (Value::Text(s), true) => match (s.trim().parse::<i64>(), s.trim().parse::<f64>()) {
            (Ok(i), _) => Lookup::Key(Key::Int(i)),
            (_, Ok(f)) => Lookup::Key(real_key(f)),
            _ => Lookup::Key(Key::Text(s)),
        },
        (Value::Integer(i), false) => Lookup::Key(Key::Text(i.to_string())),
        (Value::Real(_), false) => Lookup::Scan,
        (v, _) => key(&v).map_or(Lookup::Nothing, Lookup::Key),
    }
}

impl Loaded {
    /// The positions of the rows whose column `column` has key `k`.
    pub fn matching(&self, column: usize, k: &Key) -> Vec<u32> {
        let index = {
            let mut indexes = lock(&self.indexes);
            let index = indexes.entry(column).or_insert_with(|| Arc::new(self.index(column)));
            Arc::clone(index)
        };
        index.get(k).cloned().unwrap_or_default()
    }

    fn index(&self, column: usize) -> Index {
        let mut index = Index::new();
        for (i, row) in self.rows.iter().enumerate() {
            if let Some(k) = row.get(column).and_then(key) {
                index.entry(k).or_default().push(i as u32);
            }
        }
        index
    }
}
