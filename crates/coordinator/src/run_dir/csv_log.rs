//! `csv/TYPE.csv`: the lines of `metrics.jsonl` as CSV tables, one per kind of line (`train`,
//! `pretrain`, `eval`, `curve`, `selection`), a row per line and a column per field (see
//! [`super::columns`]): the index fields first, then the rest by name. An empty cell is a null
//! (a loss term the strategy does not have), which pandas reads as NaN.
//!
//! A table's columns are those of the lines so far. A line that brings new ones (an evaluation
//! row one longer each time step) rewrites its table with them, the earlier rows' cells empty.
//! The tables are written afresh when the log is opened.

use super::columns::{columns, Column};
use serde_json::Value;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) struct CsvLog {
    dir: PathBuf,
    tables: BTreeMap<String, Table>,
}

struct Table {
    path: PathBuf,
    columns: Vec<Column>,
    file: std::io::BufWriter<std::fs::File>,
}

impl CsvLog {
    /// Removes the run's old tables, then (when `on`) returns a log writing new ones.
    pub fn open(root: &Path, on: bool) -> std::io::Result<Option<CsvLog>> {
        let dir = root.join("csv");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "csv") {
                    std::fs::remove_file(path)?;
                }
            }
        }
        if !on {
            let _ = std::fs::remove_dir(&dir);
            return Ok(None);
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Some(CsvLog { dir, tables: BTreeMap::new() }))
    }

    /// Appends `line` to its table (the run's own line and pictures have none).
    pub fn write(&mut self, line: &Value) -> std::io::Result<()> {
        let Some(kind) = line["type"].as_str() else { return Ok(()) };
        if matches!(kind, "run" | "image") || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Ok(());
        }
        let cells = columns(line);
        let table = match self.tables.entry(kind.to_string()) {
            Entry::Occupied(t) => t.into_mut(),
            Entry::Vacant(v) => v.insert(Table::create(self.dir.join(format!("{kind}.csv")))?),
        };
        table.widen(cells.iter().map(|(c, _)| c))?;
        let row: Vec<String> = table.columns.iter().map(|c| cells.iter().find(|(k, _)| k == c).map_or(String::new(), |(_, v)| cell(v))).collect();
        writeln!(table.file, "{}", row.join(","))?;
        table.file.flush()
    }
}

impl Table {
    fn create(path: PathBuf) -> std::io::Result<Table> {
        let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        Ok(Table { path, columns: Vec::new(), file })
    }

    /// Adds the columns of `seen` the table lacks, rewriting it with them in their place.
    fn widen<'c>(&mut self, seen: impl Iterator<Item = &'c Column>) -> std::io::Result<()> {
        let mut new: Vec<Column> = seen.filter(|c| !self.columns.contains(c)).cloned().collect();
        if new.is_empty() {
            return Ok(());
        }
        self.file.flush()?;
        let old_records = records(&std::fs::read_to_string(&self.path)?);
        let old: Vec<String> = self.columns.iter().map(Column::to_string).collect();
        new.append(&mut self.columns);
        new.sort();
        new.dedup();
        self.columns = new;
        let names: Vec<String> = self.columns.iter().map(|c| quote(&c.to_string())).collect();
        let mut text = names.join(",") + "\n";
        for record in old_records.iter().skip(1) {
            let cells: Vec<&str> = self.columns.iter().map(|c| old.iter().position(|o| *o == c.to_string()).and_then(|i| record.get(i)).map_or("", |s| s.as_str())).collect();
            text += &(cells.iter().map(|s| quote(s)).collect::<Vec<_>>().join(",") + "\n");
        }
        let tmp = self.path.with_extension("csv.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = std::io::BufWriter::new(std::fs::OpenOptions::new().append(true).open(&self.path)?);
        Ok(())
    }
}

/// A leaf's cell: a number as `metrics.jsonl` has it, a null empty.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => quote(s),
        other => other.to_string(),
    }
}

/// `s` quoted as RFC 4180 does where it must be.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The records of a table this module wrote (the inverse of `quote` and the row joins).
fn records(text: &str) -> Vec<Vec<String>> {
    let (mut out, mut row, mut cell, mut quoted) = (Vec::new(), Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                out.push(std::mem::take(&mut row));
            }
            (_, c) => cell.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_longer_row_widens_the_table_and_quoted_cells_survive() {
        let dir = std::env::temp_dir().join(format!("rekindle-csv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = CsvLog::open(&dir, true).unwrap().unwrap();
        log.write(&serde_json::json!({"type": "eval", "step": 0, "accuracy": 0.5, "row": [0.5], "note": "a, \"b\""})).unwrap();
        log.write(&serde_json::json!({"type": "eval", "step": 1, "accuracy": 0.25, "row": [0.3, 0.2], "note": null})).unwrap();
        let text = std::fs::read_to_string(dir.join("csv/eval.csv")).unwrap();
        assert_eq!(text, "step,accuracy,note,row_0,row_1\n0,0.5,\"a, \"\"b\"\"\",0.5,\n1,0.25,,0.3,0.2\n");
        assert_eq!(records(&text)[1], ["0", "0.5", "a, \"b\"", "0.5", ""]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
