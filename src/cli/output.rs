//! Trajectory writers: CSV, JSON and NPY, chosen by the file extension.
//!
//! A file is written under a temporary name beside its destination and
//! renamed when the run ends, so that an interrupted run never leaves a
//! complete-looking file. CSV rows are streamed; JSON and NPY are written at
//! the end (NPY needs the row count in its header).

use crate::drive::{RowSink, SinkError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Csv,
    Json,
    Npy,
}

impl Kind {
    /// The format of a path, from its extension.
    pub fn of(path: &Path) -> Result<Kind, String> {
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("csv") => Ok(Kind::Csv),
            Some("json") => Ok(Kind::Json),
            Some("npy") => Ok(Kind::Npy),
            _ => Err(format!("--out {}: the extension must be .csv, .json or .npy", path.display())),
        }
    }
}

/// Writes rows to a file or to standard output.
pub struct Writer {
    kind: Kind,
    columns: Vec<String>,
    out: Box<dyn Write>,
    /// (temporary path, final path) for file output.
    paths: Option<(PathBuf, PathBuf)>,
    buffered: Vec<f64>,
    rows: usize,
    /// One CSV line, reused from row to row.
    line: String,
}

impl Writer {
    /// CSV on standard output.
    pub fn stdout(columns: Vec<String>) -> Result<Writer, String> {
        let mut w = Writer {
            kind: Kind::Csv,
            columns,
            out: Box::new(BufWriter::new(std::io::stdout())),
            paths: None,
            buffered: vec![],
            rows: 0,
            line: String::new(),
        };
        w.header()?;
        Ok(w)
    }

    /// A file, created under a temporary name now.
    pub fn file(path: &Path, columns: Vec<String>) -> Result<Writer, String> {
        let kind = Kind::of(path)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let tmp = path.with_file_name(format!(".{name}.partial"));
        let f = File::create(&tmp).map_err(|e| format!("--out {}: cannot write there: {e}", path.display()))?;
        let mut w = Writer {
            kind,
            columns,
            out: Box::new(BufWriter::new(f)),
            paths: Some((tmp, path.to_path_buf())),
            buffered: vec![],
            rows: 0,
            line: String::new(),
        };
        w.header()?;
        Ok(w)
    }

    fn header(&mut self) -> Result<(), String> {
        if self.kind == Kind::Csv {
            let line = self.columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
            writeln!(self.out, "{line}").map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Finishes the output (JSON/NPY body, flush) and moves a file into place.
    pub fn finish(self) -> Result<(), String> {
        let paths = self.complete()?;
        if let Some((tmp, path)) = paths {
            std::fs::rename(&tmp, &path).map_err(|e| format!("cannot move the output to {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Writes what there is but leaves a file under its temporary name, so
    /// that an interrupted run's output cannot be taken for a complete one.
    /// Returns that name.
    pub fn abandon(self) -> Result<Option<PathBuf>, String> {
        Ok(self.complete()?.map(|(tmp, _)| tmp))
    }

    /// Writes the body and flushes; returns the (temporary, final) paths.
    fn complete(mut self) -> Result<Option<(PathBuf, PathBuf)>, String> {
        match self.kind {
            Kind::Csv => {}
            Kind::Json => {
                let rows: Vec<serde_json::Value> = self
                    .buffered
                    .chunks(self.columns.len())
                    .map(|r| r.iter().map(|&x| json_number(x)).collect())
                    .collect();
                let v = serde_json::json!({ "columns": self.columns, "rows": rows });
                serde_json::to_writer(&mut self.out, &v).map_err(|e| e.to_string())?;
                writeln!(self.out).map_err(|e| e.to_string())?;
            }
            Kind::Npy => {
                let header = format!(
                    "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
                    self.rows,
                    self.columns.len()
                );
                let mut h = header.into_bytes();
                let total = 10 + h.len() + 1;
                let pad = (64 - total % 64) % 64;
                h.extend(std::iter::repeat_n(b' ', pad));
                h.push(b'\n');
                let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
                bytes.extend((h.len() as u16).to_le_bytes());
                bytes.extend(h);
                for x in &self.buffered {
                    bytes.extend(x.to_le_bytes());
                }
                self.out.write_all(&bytes).map_err(|e| e.to_string())?;
            }
        }
        self.out.flush().map_err(|e| e.to_string())?;
        drop(self.out);
        Ok(self.paths)
    }
}

fn json_number(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl RowSink for Writer {
    fn row(&mut self, values: &[f64]) -> Result<(), SinkError> {
        self.rows += 1;
        match self.kind {
            Kind::Csv => {
                self.line.clear();
                for (i, &x) in values.iter().enumerate() {
                    if i > 0 {
                        self.line.push(',');
                    }
                    crate::sym::write_float(&mut self.line, x);
                }
                self.line.push('\n');
                self.out.write_all(self.line.as_bytes()).map_err(|e| SinkError(format!("writing output: {e}")))
            }
            Kind::Json | Kind::Npy => {
                self.buffered.extend_from_slice(values);
                Ok(())
            }
        }
    }
}
