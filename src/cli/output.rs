//! Trajectory writers: CSV, JSON and NPY, chosen by the file extension.
//!
//! A file is written under a temporary name beside its destination and
//! renamed when the run ends well, so that an interrupted or failed run never
//! leaves a complete-looking file. The temporary name is new for every file
//! (`.NAME.PID-N-RANDOM.partial`) and created exclusively (`O_CREAT|O_EXCL`),
//! so that two runs never share one and a planted symbolic link is never
//! followed. CSV rows are streamed; JSON and NPY are written at the end (NPY
//! needs the row count in its header).
//!
//! A row costs no allocation: CSV text is built in one reused line by
//! [`super::float_text`] and goes through a [`OUTPUT_BUFFER`]-byte buffer;
//! JSON and NPY keep the values in one vector and write them in chunks at the
//! end (docs/numerics.md §Row output).

use super::float_text::{push_csv, push_json};
use crate::drive::{RowSink, SinkError};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The bytes an output holds before it writes them: a write per megabyte,
/// not per row.
pub const OUTPUT_BUFFER: usize = 1 << 20;

/// Values per chunk of the JSON and NPY bodies (NPY: 512 kB of bytes).
const CHUNK_VALUES: usize = 1 << 16;

/// The most bytes of one chunk's text or bytes: JSON's longest number
/// (`-1.2345678901234567e-308`) and its separator, per value.
pub const CHUNK_BYTES: usize = CHUNK_VALUES * 25;

/// How many temporary names one process has made: with the process id, it
/// makes each name new.
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// A file under its temporary name, and the name it will take. Dropped
/// before [`Temporary::commit`] or [`Temporary::keep`], it removes the
/// temporary file.
pub struct Temporary {
    tmp: PathBuf,
    path: PathBuf,
    armed: bool,
}

impl Temporary {
    /// Creates a new file beside `path` under a name no other file has: the
    /// file name, this process's id, a counter and a random number, created
    /// with `create_new` (`O_CREAT|O_EXCL`: an existing file or symbolic link
    /// of that name is never opened). When `path` exists its permissions are
    /// given to the new file, so that replacing it keeps its mode.
    pub fn create(path: &Path) -> std::io::Result<(Temporary, File)> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
        let old = std::fs::metadata(path).ok().filter(|m| m.is_file());
        let mut last = None;
        for _ in 0..100 {
            let n = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
            let tag: u32 = rand::random();
            let tmp = path.with_file_name(format!(".{name}.{}-{n}-{tag:08x}.partial", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => {
                    let t = Temporary { tmp, path: path.to_path_buf(), armed: true };
                    if let Some(m) = &old {
                        file.set_permissions(m.permissions())?;
                    }
                    return Ok((t, file));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Moves the file into place.
    pub fn commit(mut self) -> std::io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)?;
        self.armed = false;
        Ok(())
    }

    /// Leaves the file under its temporary name; returns that name.
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        std::mem::take(&mut self.tmp)
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

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
    /// The temporary file of a file output, and its destination.
    file: Option<Temporary>,
    buffered: Vec<f64>,
    rows: usize,
    /// One CSV line, reused from row to row.
    line: Vec<u8>,
    /// Standard output's reader went away (a closed pipe, as in `lagc run m.lag | head`).
    closed: bool,
}

impl Writer {
    /// CSV on standard output.
    pub fn stdout(columns: Vec<String>) -> Result<Writer, String> {
        let mut w = Writer {
            kind: Kind::Csv,
            columns,
            out: Box::new(BufWriter::with_capacity(OUTPUT_BUFFER, std::io::stdout())),
            file: None,
            buffered: vec![],
            rows: 0,
            line: Vec::new(),
            closed: false,
        };
        w.header()?;
        Ok(w)
    }

    /// Whether standard output's reader has gone away: the run stops, and
    /// that is no error (as `ls | head` is none).
    pub fn reader_gone(&self) -> bool {
        self.closed
    }

    /// A file, created under a temporary name now; `flag` names the option
    /// in messages (`--out`, `--dump`).
    pub fn file(flag: &str, path: &Path, columns: Vec<String>) -> Result<Writer, String> {
        let kind = Kind::of(path)?;
        let (tmp, f) =
            Temporary::create(path).map_err(|e| format!("{flag} {}: cannot write there: {e}", path.display()))?;
        let mut w = Writer {
            kind,
            columns,
            out: Box::new(BufWriter::with_capacity(OUTPUT_BUFFER, f)),
            file: Some(tmp),
            buffered: vec![],
            rows: 0,
            line: Vec::new(),
            closed: false,
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

    /// Finishes the output (JSON/NPY body, flush) and moves a file into
    /// place. On an error the temporary file is removed and the destination
    /// is left as it was.
    pub fn finish(self) -> Result<(), String> {
        let what = self.describe();
        if self.file.is_none() && self.closed {
            return Ok(());
        }
        let file = self.complete().map_err(|e| format!("writing {what}: {e}"))?;
        if let Some(t) = file {
            let path = t.path.clone();
            t.commit().map_err(|e| format!("cannot move the output to {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Writes what there is but leaves a file under its temporary name, so
    /// that an interrupted or failed run's output cannot be taken for a
    /// complete one. Returns that name.
    pub fn abandon(self) -> Result<Option<PathBuf>, String> {
        let what = self.describe();
        Ok(self.complete().map_err(|e| format!("writing {what}: {e}"))?.map(Temporary::keep))
    }

    /// Removes a file output's temporary file; the destination is left as it was.
    pub fn discard(self) {
        drop(self.file);
    }

    /// What is written: the temporary file and its destination, or standard output.
    fn describe(&self) -> String {
        match &self.file {
            Some(t) => format!("{} (for {})", t.tmp.display(), t.path.display()),
            None => "standard output".into(),
        }
    }

    /// Writes the body and flushes; returns the temporary file.
    fn complete(mut self) -> Result<Option<Temporary>, String> {
        match self.kind {
            Kind::Csv => {}
            Kind::Json => self.write_json().map_err(|e| e.to_string())?,
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
                self.out.write_all(&bytes).map_err(|e| e.to_string())?;
                // The values as little-endian bytes, a chunk at a time.
                for chunk in self.buffered.chunks(CHUNK_VALUES) {
                    bytes.resize(8 * chunk.len(), 0);
                    for (b, x) in bytes.chunks_exact_mut(8).zip(chunk) {
                        b.copy_from_slice(&x.to_le_bytes());
                    }
                    self.out.write_all(&bytes).map_err(|e| e.to_string())?;
                }
            }
        }
        match self.out.flush() {
            // Standard output's reader went away after the last row: nothing is lost that it wanted.
            Err(e) if self.file.is_none() && e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.map_err(|e| e.to_string())?,
        }
        drop(self.out);
        Ok(self.file)
    }
}

impl Writer {
    /// The JSON body, `{"columns":[…],"rows":[[…],…]}` and a line end, as
    /// serde_json writes it (keys in order, numbers by zmij, `null` for a
    /// value that is not finite), one chunk of rows at a time.
    fn write_json(&mut self) -> std::io::Result<()> {
        let mut text = br#"{"columns":"#.to_vec();
        serde_json::to_writer(&mut text, &self.columns)?;
        text.extend_from_slice(br#","rows":["#);
        let width = self.columns.len().max(1);
        let rows_per_chunk = (CHUNK_VALUES / width).max(1);
        for (c, chunk) in self.buffered.chunks(rows_per_chunk * width).enumerate() {
            for (r, row) in chunk.chunks(width).enumerate() {
                if c > 0 || r > 0 {
                    text.push(b',');
                }
                text.push(b'[');
                for (i, &x) in row.iter().enumerate() {
                    if i > 0 {
                        text.push(b',');
                    }
                    push_json(&mut text, x);
                }
                text.push(b']');
            }
            self.out.write_all(&text)?;
            text.clear();
        }
        text.extend_from_slice(b"]}\n");
        self.out.write_all(&text)
    }
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
                        self.line.push(b',');
                    }
                    push_csv(&mut self.line, x);
                }
                self.line.push(b'\n');
                self.out.write_all(&self.line).map_err(|e| {
                    self.closed = self.file.is_none() && e.kind() == std::io::ErrorKind::BrokenPipe;
                    SinkError(format!("writing {}: {e}", self.describe()))
                })
            }
            Kind::Json | Kind::Npy => {
                self.buffered.extend_from_slice(values);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Temporary;

    #[test]
    fn temporaries_are_new_files_removed_unless_kept_or_committed() {
        let dir = std::env::temp_dir().join(format!("lagc-temporary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.csv");
        let (a, _) = Temporary::create(&path).unwrap();
        let (b, _) = Temporary::create(&path).unwrap();
        let (c, _) = Temporary::create(&path).unwrap();
        let (ta, tb, tc) = (a.tmp.clone(), b.tmp.clone(), c.tmp.clone());
        assert!(ta != tb && tb != tc && ta != tc, "{ta:?} {tb:?} {tc:?}");
        assert!(ta.exists() && tb.exists() && tc.exists());
        drop(a);
        assert!(!ta.exists(), "dropped: removed");
        assert_eq!(b.keep(), tb);
        assert!(tb.exists(), "kept");
        c.commit().unwrap();
        assert!(!tc.exists() && path.is_file(), "committed: moved into place");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
