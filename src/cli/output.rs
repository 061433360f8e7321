//! Trajectory writers: CSV, JSON and NPY, chosen by the file extension.
//!
//! A file is written under a temporary name beside its destination and
//! renamed when the run ends well, so that an interrupted or failed run never
//! leaves a complete-looking file. The temporary name is new for every file
//! (`.NAME.PID-N-RANDOM.partial`) and created exclusively (`O_CREAT|O_EXCL`),
//! so that two runs never share one and a planted symbolic link is never
//! followed. CSV and JSON rows are streamed; NPY is written at the end (it needs
//! the row count in its header).
//!
//! Text is formatted on a thread of its own while the run computes the next
//! rows: the run appends each row's values to a block, and a full block of
//! [`BLOCK_VALUES`] goes through a channel to the formatting thread, which turns
//! it into text ([`super::float_text`]), writes it, and hands the block back to
//! be filled again. When [`AHEAD`] blocks already wait for the thread, the run
//! formats its next block itself and hands over only the text, so that both
//! cores format when formatting is the slower half, and the thread is never
//! more than a few blocks behind when the run ends. While blocks come fast,
//! the thread waits for the next one awake for up to [`SPIN`] before it
//! sleeps, since waking a sleeping thread can take longer than the run takes to
//! fill a block; once it had to sleep, it sleeps at once. A row
//! costs no allocation; NPY keeps the values in one vector and writes them
//! through an [`OUTPUT_BUFFER`]-byte buffer at the end (docs/numerics.md §Row
//! output).

use super::float_text::{push_csv, push_json};
use crate::drive::{RowSink, SinkError};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The bytes an output holds before it writes them: a write per megabyte,
/// not per row.
pub const OUTPUT_BUFFER: usize = 1 << 20;

/// Values per chunk of the NPY body (512 kB of bytes).
const CHUNK_VALUES: usize = 1 << 16;

/// A bound on the bytes of one chunk of the NPY body as the memory estimate counts it:
/// 25 per value, though the chunk holds 8.
pub const CHUNK_BYTES: usize = CHUNK_VALUES * 25;

/// Values per block of rows handed to the formatting thread (32 kB); a row wider
/// than a block is a block of its own.
const BLOCK_VALUES: usize = 1 << 12;

/// Rows per block when rows have no values.
const BLOCK_ROWS: usize = 1 << 12;

/// Blocks that may wait for the formatting thread before the run formats its next block
/// itself: enough to ride out a short stall of either thread, few enough that the thread
/// finishes soon after the run.
const AHEAD: usize = 4;

/// Chunks the channel holds, most of them text the run formatted itself; past them the run
/// waits for the output (a slow disk is waited for, not buffered without end).
const CHUNKS_IN_FLIGHT: usize = 64;

/// How long the formatting thread waits for the next block awake (yielding its core to any
/// other thread that wants it) before it sleeps: a block of the double pendulum's rows takes
/// the run about 0.05–0.2 ms, and on a virtual machine a thread that slept whenever the run
/// paused for 2 ms was measured asleep for a third of the run, 7–10 ms a time, while the
/// run formatted its blocks.
const SPIN: Duration = Duration::from_millis(20);

/// Where text goes: a buffered file or standard output.
type Out = Box<dyn Write + Send>;

/// What the run hands the formatting thread, in row order.
enum Chunk {
    /// A block of values and the number of rows in it; `first` when its first row is the
    /// output's first.
    Values { block: Vec<f64>, rows: usize, first: bool },
    /// Text the run formatted itself.
    Text(Vec<u8>),
}

/// The formatting thread of a CSV or JSON output and the block being filled.
struct Pipe {
    kind: Kind,
    width: usize,
    tx: Option<SyncSender<Chunk>>,
    /// Blocks and texts the thread is done with, to be filled again.
    spare: Receiver<Chunk>,
    /// What came back on `spare`, kept until it is needed.
    blocks: Vec<Vec<f64>>,
    texts: Vec<Vec<u8>>,
    block: Vec<f64>,
    /// Rows in `block`, and rows handed over before it.
    rows: usize,
    sent: usize,
    thread: Option<JoinHandle<(Out, std::io::Result<()>)>>,
    /// The thread's error, once it has stopped at one: every later row and the end report it.
    failed: Option<(std::io::ErrorKind, String)>,
    /// Blocks handed to the thread and not yet formatted.
    waiting: Arc<AtomicUsize>,
    /// Blocks the run formatted itself.
    formatted_here: usize,
}

impl Pipe {
    fn start(kind: Kind, columns: &[String], out: Out) -> Pipe {
        let (tx, rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        let waiting = Arc::new(AtomicUsize::new(0));
        let (back, spare) = mpsc::channel();
        let width = columns.len();
        let prefix = match kind {
            Kind::Json => {
                let mut text = br#"{"columns":"#.to_vec();
                serde_json::to_writer(&mut text, columns).expect("strings serialise");
                text.extend_from_slice(br#","rows":["#);
                text
            }
            _ => {
                let line = columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
                format!("{line}\n").into_bytes()
            }
        };
        let thread = std::thread::Builder::new()
            .name("lagc-rows".into())
            .spawn({
                let waiting = waiting.clone();
                move || write_chunks(kind, width, prefix, out, rx, back, &waiting)
            })
            .expect("a thread for the output");
        Pipe {
            kind,
            width,
            tx: Some(tx),
            spare,
            blocks: Vec::new(),
            texts: Vec::new(),
            block: Vec::with_capacity(BLOCK_VALUES),
            rows: 0,
            sent: 0,
            thread: Some(thread),
            failed: None,
            waiting,
            formatted_here: 0,
        }
    }

    /// Appends one row; hands the block over when it is full. An error is the thread's: it
    /// stopped.
    fn row(&mut self, values: &[f64]) -> Result<(), std::io::Error> {
        self.block.extend_from_slice(values);
        self.rows += 1;
        if self.block.len() >= BLOCK_VALUES || self.rows >= BLOCK_ROWS {
            self.send()?;
        }
        Ok(())
    }

    /// Hands the block to the thread, or formats it here when the thread is behind.
    fn send(&mut self) -> Result<(), std::io::Error> {
        while let Ok(c) = self.spare.try_recv() {
            match c {
                Chunk::Values { block, .. } => self.blocks.push(block),
                Chunk::Text(t) => self.texts.push(t),
            }
        }
        let rows = std::mem::take(&mut self.rows);
        let first = self.sent == 0;
        self.sent += rows;
        let Some(tx) = self.tx.as_ref().filter(|_| self.failed.is_none()) else { return Err(self.stopped()) };
        let sent = if self.waiting.load(Ordering::Relaxed) < AHEAD {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let block = std::mem::replace(
                &mut self.block,
                self.blocks.pop().unwrap_or_else(|| Vec::with_capacity(BLOCK_VALUES)),
            );
            tx.send(Chunk::Values { block, rows, first })
        } else {
            // The thread is behind: this block's text is made here, and the block is filled
            // again.
            let mut text = self.texts.pop().unwrap_or_default();
            format_rows(self.kind, self.width, &self.block, rows, first, &mut text);
            self.formatted_here += 1;
            self.block.clear();
            tx.send(Chunk::Text(text))
        };
        sent.map_err(|_| self.stopped())
    }

    /// The error the thread stopped at.
    fn stopped(&mut self) -> std::io::Error {
        let (_, e) = self.stop();
        e.err().unwrap_or_else(|| std::io::Error::other("the output stopped"))
    }

    /// Hands over what is left, waits for the text to be written and returns the output.
    fn stop(&mut self) -> (Option<Out>, std::io::Result<()>) {
        if self.rows > 0 && self.failed.is_none() {
            if let Some(tx) = &self.tx {
                let block = std::mem::take(&mut self.block);
                let rows = std::mem::take(&mut self.rows);
                // Counted as every block handed over is, which the thread uncounts.
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(Chunk::Values { block, rows, first: self.sent == 0 });
                self.sent += rows;
            }
        }
        self.tx = None;
        let (out, r) = match self.thread.take().map(JoinHandle::join) {
            Some(Ok((out, r))) => (Some(out), r),
            Some(Err(_)) => (None, Err(std::io::Error::other("the thread writing the rows failed"))),
            None => (None, Ok(())),
        };
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| (e.kind(), e.to_string()));
        }
        match &self.failed {
            Some((kind, message)) => (out, Err(std::io::Error::new(*kind, message.clone()))),
            None => (out, r),
        }
    }
}

/// Appends the text of `rows` rows of `width` values: CSV lines, or JSON arrays each after a
/// comma unless it is the output's `first`.
fn format_rows(kind: Kind, width: usize, block: &[f64], rows: usize, first: bool, text: &mut Vec<u8>) {
    for r in 0..rows {
        let row = &block[r * width..(r + 1) * width];
        match kind {
            Kind::Csv => {
                for (i, &x) in row.iter().enumerate() {
                    if i > 0 {
                        text.push(b',');
                    }
                    push_csv(text, x);
                }
                text.push(b'\n');
            }
            _ => {
                if !(first && r == 0) {
                    text.push(b',');
                }
                text.push(b'[');
                for (i, &x) in row.iter().enumerate() {
                    if i > 0 {
                        text.push(b',');
                    }
                    push_json(text, x);
                }
                text.push(b']');
            }
        }
    }
}

/// The formatting thread: the text of each chunk as it comes, then the JSON suffix. It stops
/// at the first error, which the run learns at its next block or at the end.
fn write_chunks(
    kind: Kind,
    width: usize,
    prefix: Vec<u8>,
    mut out: Out,
    rx: Receiver<Chunk>,
    back: Sender<Chunk>,
    waiting: &AtomicUsize,
) -> (Out, std::io::Result<()>) {
    let mut text: Vec<u8> = Vec::with_capacity(BLOCK_VALUES * 25);
    text.extend_from_slice(&prefix);
    let mut waited = Duration::ZERO;
    while let Some(chunk) = next_chunk(&rx, &mut waited) {
        let done = match chunk {
            Chunk::Values { mut block, rows, first } => {
                format_rows(kind, width, &block, rows, first, &mut text);
                waiting.fetch_sub(1, Ordering::Relaxed);
                let r = out.write_all(&text);
                text.clear();
                block.clear();
                (r, Chunk::Values { block, rows: 0, first: false })
            }
            Chunk::Text(mut t) => {
                let r = out.write_all(&text).and_then(|()| out.write_all(&t));
                text.clear();
                t.clear();
                (r, Chunk::Text(t))
            }
        };
        if let (Err(e), _) = done {
            return (out, Err(e));
        }
        let _ = back.send(done.1);
    }
    if kind == Kind::Json {
        text.extend_from_slice(b"]}\n");
    }
    let r = out.write_all(&text);
    (out, r)
}

/// The next chunk. When the previous one came while the thread was awake (`waited` is how
/// long it was waited for), it is waited for awake for up to [`SPIN`] and then asleep; when
/// the thread had to sleep for it, asleep at once, since chunks that far apart make a
/// wake-up short beside the wait. `None` once the run has handed over everything.
fn next_chunk(rx: &Receiver<Chunk>, waited: &mut Duration) -> Option<Chunk> {
    let start = Instant::now();
    let spin = if *waited < SPIN { SPIN } else { Duration::ZERO };
    let chunk = loop {
        match rx.try_recv() {
            Ok(chunk) => break Some(chunk),
            Err(mpsc::TryRecvError::Disconnected) => break None,
            Err(mpsc::TryRecvError::Empty) if start.elapsed() >= spin => break rx.recv().ok(),
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    };
    *waited = start.elapsed();
    chunk
}

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
    /// The output, while no formatting thread holds it.
    out: Option<Out>,
    /// The formatting thread of CSV and JSON.
    pipe: Option<Pipe>,
    /// The temporary file of a file output, and its destination.
    file: Option<Temporary>,
    /// NPY's values.
    buffered: Vec<f64>,
    rows: usize,
    /// Standard output's reader went away (a closed pipe, as in `lagc run m.lag | head`).
    closed: bool,
}

impl Writer {
    /// CSV on standard output.
    pub fn stdout(columns: Vec<String>) -> Result<Writer, String> {
        Ok(Writer::start(Kind::Csv, columns, Box::new(std::io::stdout()), None))
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
        Ok(Writer::start(kind, columns, Box::new(f), Some(tmp)))
    }

    /// Starts the formatting thread of CSV and JSON, which writes its text in blocks of rows;
    /// NPY goes through a buffer at the end.
    fn start(kind: Kind, columns: Vec<String>, out: Out, file: Option<Temporary>) -> Writer {
        let (out, pipe): (Option<Out>, _) = match kind {
            Kind::Csv | Kind::Json => (None, Some(Pipe::start(kind, &columns, out))),
            Kind::Npy => (Some(Box::new(BufWriter::with_capacity(OUTPUT_BUFFER, out))), None),
        };
        Writer { kind, columns, out, pipe, file, buffered: vec![], rows: 0, closed: false }
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
    pub fn discard(mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.stop();
        }
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
        if let Some(mut pipe) = self.pipe.take() {
            let (out, r) = pipe.stop();
            self.out = out;
            match r {
                Err(e) if self.file.is_none() && e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.map_err(|e| e.to_string())?,
            }
        }
        let Some(mut out) = self.out.take() else { return Ok(self.file) };
        match self.kind {
            Kind::Csv | Kind::Json => {}
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
                out.write_all(&bytes).map_err(|e| e.to_string())?;
                // The values as little-endian bytes, a chunk at a time.
                for chunk in self.buffered.chunks(CHUNK_VALUES) {
                    bytes.resize(8 * chunk.len(), 0);
                    for (b, x) in bytes.chunks_exact_mut(8).zip(chunk) {
                        b.copy_from_slice(&x.to_le_bytes());
                    }
                    out.write_all(&bytes).map_err(|e| e.to_string())?;
                }
            }
        }
        match out.flush() {
            // Standard output's reader went away after the last row: nothing is lost that it wanted.
            Err(e) if self.file.is_none() && e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.map_err(|e| e.to_string())?,
        }
        drop(out);
        Ok(self.file)
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
        match &mut self.pipe {
            Some(pipe) => pipe.row(values).map_err(|e| {
                self.closed = self.file.is_none() && e.kind() == std::io::ErrorKind::BrokenPipe;
                SinkError(format!("writing {}: {e}", self.describe()))
            }),
            None => {
                self.buffered.extend_from_slice(values);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{format_rows, Kind, Pipe, Temporary};
    use std::sync::{Arc, Mutex};

    /// An output that waits before its first write, so that blocks pile up and the run
    /// formats some of them itself.
    struct Slow {
        text: Arc<Mutex<Vec<u8>>>,
        waited: bool,
    }

    impl std::io::Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.waited {
                std::thread::sleep(std::time::Duration::from_millis(200));
                self.waited = true;
            }
            self.text.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rows_formatted_on_either_thread_come_out_in_order() {
        let columns: Vec<String> = ["t", "x", "y"].map(String::from).to_vec();
        let values: Vec<f64> = (0..60_000).map(|i| (i as f64 * 0.37).sin() * 10f64.powi(i % 9 - 4)).collect();
        for kind in [Kind::Csv, Kind::Json] {
            let text = Arc::new(Mutex::new(Vec::new()));
            let mut pipe = Pipe::start(kind, &columns, Box::new(Slow { text: text.clone(), waited: false }));
            for row in values.chunks(3) {
                pipe.row(row).unwrap();
            }
            // The thread waited, so the run formatted blocks itself.
            assert!(pipe.formatted_here > 0, "{kind:?}");
            let (_, r) = pipe.stop();
            r.unwrap();
            let mut expected = match kind {
                Kind::Json => br#"{"columns":["t","x","y"],"rows":["#.to_vec(),
                _ => b"t,x,y\n".to_vec(),
            };
            format_rows(kind, 3, &values, values.len() / 3, true, &mut expected);
            if kind == Kind::Json {
                expected.extend_from_slice(b"]}\n");
                let parsed: serde_json::Value = serde_json::from_slice(&text.lock().unwrap()).unwrap();
                assert_eq!(parsed["rows"].as_array().unwrap().len(), 20_000);
            }
            assert!(*text.lock().unwrap() == expected, "{kind:?}: the text differs from one formatted in one piece");
        }
    }

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
