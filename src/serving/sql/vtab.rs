//! The output tables as read-only SQLite virtual tables (module `edu_rtdw`), reading
//! through the statement's [`Frame`](super::frame::Frame): a scan is every row of the
//! output at the statement's frontier, or, for an equality on a column, the rows the
//! column's index finds (SQLite checks the constraint again).

use std::ffi::c_int;
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::vtab::{
    Context, CreateVTab, Filters, IndexConstraintOp, IndexInfo, VTab, VTabConnection, VTabCursor, VTabKind,
};
use rusqlite::{Error, ffi};

use dataflows::output::{ColumnType, Output};

use super::frame::{Loaded, Lookup, SharedFrame, lock, lookup, sqlite_type};

/// The virtual table of one output.
#[repr(C)]
pub struct OutputTable {
    /// SQLite's part; must come first.
    base: ffi::sqlite3_vtab,
    frame: SharedFrame,
    output: Output,
}

// SAFETY: `OutputTable` is `repr(C)` with `sqlite3_vtab` first, as rusqlite requires.
unsafe impl<'vtab> VTab<'vtab> for OutputTable {
    type Aux = SharedFrame;
    type Cursor = OutputCursor;

    /// `CREATE VIRTUAL TABLE <table> USING edu_rtdw`: the output whose table name it is.
    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&SharedFrame>,
        args: &[&[u8]],
    ) -> rusqlite::Result<(String, Self)> {
        let name = args.get(2).map(|a| String::from_utf8_lossy(a).trim_matches('"').to_string()).unwrap_or_default();
        let output = Output::from_name(&name).ok_or_else(|| Error::ModuleError(format!("no output table `{name}`")))?;
        let frame = aux.cloned().ok_or_else(|| Error::ModuleError("the module has no frame".into()))?;
        let columns: Vec<String> =
            output.table().columns.iter().map(|(name, t)| format!("\"{name}\" {}", sqlite_type(*t))).collect();
        let schema = format!("CREATE TABLE x({})", columns.join(", "));
        Ok((schema, OutputTable { base: ffi::sqlite3_vtab::default(), frame, output }))
    }

    /// An equality on a column is answered from an index; anything else scans.
    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        let columns = self.output.table().columns;
        let usable = info.constraints().enumerate().find_map(|(i, c)| {
            let column = usize::try_from(c.column()).ok()?;
            let indexable = columns.get(column).is_some_and(|(_, t)| *t != ColumnType::Bytes);
            (c.is_usable() && c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ && indexable)
                .then_some((i, column))
        });
        let usable = usable.filter(|&(i, _)| info.collation(i).is_ok_and(|c| c.eq_ignore_ascii_case("BINARY")));
        match usable {
            Some((i, column)) => {
                let mut usage = info.constraint_usage(i);
                usage.set_argv_index(1);
                usage.set_omit(false);
                info.set_idx_num(column as c_int + 1);
                info.set_estimated_cost(10.0);
                info.set_estimated_rows(10);
            }
            None => {
                info.set_idx_num(0);
                info.set_estimated_cost(1_000_000.0);
                info.set_estimated_rows(1_000_000);
            }
        }
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<OutputCursor> {
        Ok(OutputCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            frame: Arc::clone(&self.frame),
            output: self.output,
            loaded: None,
            positions: None,
            at: 0,
        })
    }
}

impl CreateVTab<'_> for OutputTable {
    const KIND: VTabKind = VTabKind::Default;
}

/// A scan of an output table.
#[repr(C)]
pub struct OutputCursor {
    /// SQLite's part; must come first.
    base: ffi::sqlite3_vtab_cursor,
    frame: SharedFrame,
    output: Output,
    loaded: Option<Arc<Loaded>>,
    /// The rows an index lookup selected (`None`: every row).
    positions: Option<Vec<u32>>,
    at: usize,
}

impl OutputCursor {
    /// The position of the current row in the table's rows.
    fn row(&self) -> Option<&Vec<Value>> {
        let loaded = self.loaded.as_ref()?;
        let position = match &self.positions {
            Some(positions) => *positions.get(self.at)? as usize,
            None => self.at,
        };
        loaded.rows.get(position)
    }
}

// SAFETY: `OutputCursor` is `repr(C)` with `sqlite3_vtab_cursor` first, as rusqlite requires.
unsafe impl VTabCursor for OutputCursor {
    fn filter(&mut self, idx_num: c_int, _idx_str: Option<&str>, args: &Filters<'_>) -> rusqlite::Result<()> {
        let loaded = lock(&self.frame).load(self.output).map_err(Error::ModuleError)?;
        let column = usize::try_from(idx_num - 1).ok();
        let column_type = column.and_then(|c| self.output.table().columns.get(c)).map(|(_, t)| *t);
        self.positions = match (column, column_type, args.len()) {
            (Some(column), Some(t), 1..) => match lookup(args.get::<Value>(0)?, t) {
                Lookup::Key(k) => Some(loaded.matching(column, &k)),
                Lookup::Nothing => Some(Vec::new()),
                Lookup::Scan => None,
            },
            _ => None,
        };
        self.loaded = Some(loaded);
        self.at = 0;
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.at += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.row().is_none()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let cell = usize::try_from(i).ok().and_then(|i| self.row()?.get(i));
        ctx.set_result(cell.unwrap_or(&Value::Null))
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.at as i64)
    }
}
