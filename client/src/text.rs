//! Plain text tables for terminal output (the CLI and `inlet bench` print the same style):
//! no borders, one space between columns, a header row, figures right-aligned.

use std::fmt::Write;

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};

/// An empty table with `header`; the columns in `left` (text) are left-aligned, the others
/// (figures) right-aligned.
pub fn table(header: &[&str], left: &[usize]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 1));
        column.set_cell_alignment(if left.contains(&i) {
            CellAlignment::Left
        } else {
            CellAlignment::Right
        });
    }
    table
}

/// Appends `table` to `out`, one line per row, without trailing blanks.
pub fn write_table(out: &mut String, table: &Table) {
    for line in table.lines() {
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
