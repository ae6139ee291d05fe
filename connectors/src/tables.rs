//! The output tables as the SQL sinks index them.
//!
//! The tables themselves are declared once, beside their metrics
//! ([`dataflows::output`]: each row type's [`dataflows::output::Row`]); this
//! module only lays them out by index for the sinks, in [`Output::ALL`] order.

use dataflows::OutputRow;
pub use dataflows::output::{ColumnType, Output, OutputSet, SqlValue, StampKind, Table, dead_letter_metric};

/// Every output table, in [`Output::ALL`] order; [`encode`] returns indices into this.
pub static ALL: [Table; Output::ALL.len()] = {
    let mut all = [*Output::DeadLetters.table(); Output::ALL.len()];
    let mut i = 0;
    while i < all.len() {
        all[i] = *Output::ALL[i].table();
        i += 1;
    }
    all
};

/// A row's table, as an index into [`ALL`].
pub fn table_index(row: &OutputRow) -> usize {
    row.output().index()
}

/// A row's table (index into [`ALL`]) and its column values in table order.
pub fn encode(row: &OutputRow) -> (usize, Vec<SqlValue>) {
    let values = row.values();
    debug_assert_eq!(values.len(), ALL[table_index(row)].columns.len());
    (table_index(row), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_is_the_outputs_order() {
        for (i, output) in Output::ALL.into_iter().enumerate() {
            assert_eq!(ALL[i].name, output.table().name);
        }
    }
}
