//! Resource guards: a run whose output or ensemble would not fit in memory
//! or on disk is refused before any work starts, with the estimate; so is an
//! output that cannot be written or that is another output or an input.
//!
//! The memory estimate is an upper bound of the run's peak resident memory
//! (docs/language.md, § Memory and disk): the process's peak so far (the
//! program, the model and its equations), an allowance for compiling the
//! kernels and for the threads, and one [`Term`] for each thing the run holds
//! that grows with the particles, the rows, the columns or the state, counted
//! at its size in memory: vectors grown by pushing at twice their length (the
//! capacity doubles), a `Vec` inside a `Vec` at its 24-byte header plus its
//! heap block ([`heap`]).

use super::output::Kind;
use crate::diag::count;
use crate::drive::{RunConfig, BLOCK};
use crate::plan::Plan;
use crate::{Model, ModelKind};
use std::path::{Path, PathBuf};

/// The most bytes of one value in CSV or JSON text, its separator included:
/// `-1.2345678901234567e-308,` (17 significant digits, a three-digit exponent).
const TEXT_BYTES: u64 = 25;

/// The bytes of a row's brackets and line end in JSON (`[`, `],`) or CSV (`\n`).
const ROW_TEXT_BYTES: u64 = 3;

/// The environment variable that makes `lagc run` print its estimate to
/// standard error before it starts (docs/language.md, § Memory and disk).
pub(crate) const PRINT_ESTIMATE: &str = "LAGC_PRINT_ESTIMATE";

/// Bytes the compiler may take per node of the model's expressions while it
/// builds the kernels (Cranelift's IR, its register allocation, the code).
const COMPILE_BYTES_PER_NODE: f64 = 1024.0;

/// Bytes allowed for compiling however small the model, and for each thread
/// (its stack, its allocator arena, its block's scratch).
const COMPILE_BASE: f64 = 16e6;
const THREAD_BYTES: f64 = 4e6;

/// Bytes the compiler and the derivation take per output of the `jacobian`
/// kernel, counted before it is derived: its zeros are written by loops
/// (`jit::codegen::kernel`), so the FPUT lattice of 600 and 2,000 sites, whose
/// outputs are nearly all zeros, took about 20 and 40 bytes per output beyond
/// the front end (14 MB for 720,600 outputs, 190 MB for 4.8 million).
pub(crate) const COMPILE_BYTES_PER_OUTPUT: f64 = 100.0;

/// One thing a run holds in memory that grows with its size.
#[derive(Clone, Debug)]
pub(crate) struct Term {
    /// What it is, with its size in items (`"the JSON output's 1000 rows × 4 columns"`).
    pub what: String,
    pub bytes: u64,
    /// What makes it smaller, as an imperative (`"write CSV, which is streamed"`).
    pub fix: &'static str,
}

/// What a run will write and hold.
pub(crate) struct Estimate {
    pub rows: u64,
    pub columns: u64,
    /// Bytes written to the output file.
    pub disk: u64,
    /// Bytes the run will take beyond what the process holds now: the
    /// compiler's and the threads' allowance and every [`Term`].
    pub memory: u64,
    /// The process's peak resident memory when the run was estimated
    /// (`VmHWM`), 0 where the system does not say.
    pub base: u64,
    /// The terms that grow with the run, largest first.
    pub terms: Vec<Term>,
}

impl Estimate {
    /// The estimated peak resident memory of the whole run: an upper bound.
    pub fn peak(&self) -> u64 {
        self.base.saturating_add(self.memory)
    }
}

/// The outputs a run writes besides its rows' destination.
#[derive(Clone, Copy, Default)]
pub(crate) struct Outputs<'a> {
    /// `--out`, or standard output (CSV) when `None`.
    pub out: Option<&'a Path>,
    /// `--dump`: every particle's final row.
    pub dump: Option<&'a Path>,
    /// `--plot`: the rows are kept for the figure.
    pub plot: bool,
    /// `--density`: a density's frames are written.
    pub density: bool,
}

/// The heap block glibc's `malloc` gives a request of `bytes`: 8 bytes of
/// header, rounded up to 16, never less than 32.
fn heap(bytes: f64) -> f64 {
    ((bytes + 8.0) / 16.0).ceil().max(2.0) * 16.0
}

/// The bytes a [`super::output::Writer`] of `kind` holds for `rows` rows of
/// `columns` values: NPY buffers every value (a `Vec<f64>`, up to twice its length while
/// it grows) and writes them a chunk at a time; CSV and JSON stream, holding at most a few
/// blocks of rows and their text (one or two megabytes whatever the rows, within
/// `COMPILE_BASE`).
fn writer_bytes(kind: Kind, rows: f64, columns: f64) -> f64 {
    let values = rows * columns;
    match kind {
        Kind::Csv | Kind::Json => 0.0,
        Kind::Npy => values * 16.0 + super::output::CHUNK_BYTES as f64,
    }
}

/// The most line series a trajectory's figure draws (plot::trajectory): up
/// to ten coordinates, the energy, the Cartesian pairs, four observes, four
/// phase portraits or a path.
fn figure_series(model: &Model) -> f64 {
    let (vars, observes) = (model.vars.len(), model.observes.len());
    let phase = if model.kind == ModelKind::Lagrangian { vars.min(4) } else { 1 };
    (vars.min(10) + 1 + (vars + observes) / 2 + observes.min(4) + phase) as f64
}

/// What forward sensitivities to `k` names hold for a state of `d` values
/// (`n` coordinates or state variables) and a `jacobian` kernel of
/// `outputs` outputs (docs/numerics.md § Sensitivities): the kernel compiled
/// and its table evaluated at every stage, its expressions' ids; the
/// augmented state `[y, S]` of `d (1 + k)` values in the integrator's stages
/// and the row with its `d k` extra columns; the matrix and its factor
/// (`n²` each) and the right-hand sides `n × k`.
fn sensitivity_terms(n: usize, d: usize, k: usize, outputs: usize) -> Vec<Term> {
    let (n, d, k, outputs) = (n as f64, d as f64, k as f64, outputs as f64);
    vec![
        Term {
            what: format!("the Jacobian kernel's {outputs} outputs ({n} × {d} by the state and more by the params)"),
            bytes: (outputs * (COMPILE_BYTES_PER_OUTPUT + 8.0 + 8.0)) as u64,
            fix: "take the sensitivities of a smaller instance of the model (fewer coordinates)",
        },
        Term {
            what: format!("the sensitivities S ({d} × {k}) in the integrator's stages and the rows"),
            bytes: (16.0 * 8.0 * d * (1.0 + k) + 16.0 * n * n + 16.0 * n * k) as u64,
            fix: "ask for fewer --sensitivities names",
        },
    ]
}

/// Refuses sensitivities to `k` names whose Jacobians alone would not fit in
/// memory, before they are derived: the kernel's size is counted from the
/// equations ([`crate::derive::jacobian_outputs`]). `Err` has the estimate.
pub(crate) fn check_sensitivities(model: &Model, eq: &crate::derive::Equations, k: usize) -> Result<(), String> {
    let n = model.vars.len();
    let d = if model.kind == ModelKind::Lagrangian { 2 * n } else { n };
    let mut terms = sensitivity_terms(n, d, k, crate::derive::jacobian_outputs(model, eq));
    terms.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    let memory = terms.iter().fold(COMPILE_BASE as u64, |m, t| m.saturating_add(t.bytes));
    let e = Estimate { rows: 0, columns: 0, disk: 0, memory, base: 0, terms };
    match available_memory() {
        Some(mem) if e.memory > mem => Err(memory_refusal(&e, mem)),
        _ => Ok(()),
    }
}

/// Estimates the size of a run's output and an upper bound of its memory.
pub(crate) fn estimate(model: &Model, plan: &Plan, cfg: &RunConfig, outputs: Outputs<'_>) -> Estimate {
    let span = (cfg.t_end - cfg.t0).max(0.0);
    let steps = (span / cfg.dt).ceil().max(0.0) as u64;
    let rows = steps / cfg.every as u64 + 2;
    let columns = plan.columns.len() as u64;
    let (r, c) = (rows as f64, columns as f64);
    let kind = outputs.out.and_then(|p| Kind::of(p).ok());
    let disk = match kind {
        Some(Kind::Npy) => rows.saturating_mul(columns).saturating_mul(8),
        Some(_) => rows.saturating_mul(columns.saturating_mul(TEXT_BYTES).saturating_add(ROW_TEXT_BYTES)),
        None => 0,
    };
    let ensemble = plan.is_ensemble();
    let grid = (plan.method == crate::Method::FokkerPlanck).then(|| (cfg.cells as f64).powi(plan.n as i32));
    let disk = match grid.filter(|_| outputs.density) {
        Some(cells) => disk.saturating_add((r * cells * 8.0) as u64),
        None => disk,
    };
    let mut terms = Vec::new();
    let mut add = |what: String, bytes: f64, fix: &'static str| {
        if bytes > 0.0 {
            terms.push(Term { what, bytes: bytes as u64, fix });
        }
    };
    if let Some(kind) = kind.filter(|&k| k == Kind::Npy) {
        add(
            format!("the NPY output's {rows} rows × {columns} columns, held until the run ends"),
            writer_bytes(kind, r, c),
            "write CSV or JSON (streamed, not held), or fewer rows with --every",
        );
    }
    if outputs.plot {
        // The rows kept (`Vec<Vec<f64>>`), then the figure's columns and series.
        let kept = r * (48.0 + heap(8.0 * c));
        let figure = if ensemble { r * (8.0 * c + 160.0) } else { r * (152.0 + 32.0 * figure_series(model)) };
        add(
            format!("the {rows} rows × {columns} columns kept for --plot"),
            kept + figure,
            "draw fewer rows with --every, or leave out --plot",
        );
    }
    if ensemble {
        let particles = plan.particles() as f64;
        let blocks = (particles / BLOCK as f64).ceil();
        let width = (plan.trajectory_columns.len() - 1) as f64;
        // Every particle's final row (without `t`): its `Vec<f64>` in its block's vector and
        // in the summary's, grown by pushing (drive::ensemble).
        add(
            format!(
                "every particle's final row ({} × {})",
                count(plan.particles(), "particle"),
                count(width as usize, "value")
            ),
            particles * (heap(8.0 * width) + 24.0 + 48.0),
            "run fewer particles (--particles)",
        );
        // Per block and output row, the moments (24 bytes) of every column and the time.
        let per_row = 48.0 + heap(24.0 * width) + 16.0;
        add(
            format!(
                "the moments of {} of {BLOCK} particles × {rows} rows × {}",
                count(blocks as usize, "block"),
                count(width as usize, "column")
            ),
            (blocks + 1.0) * r * per_row,
            "run fewer particles (--particles), or write fewer rows with --every",
        );
        if outputs.plot {
            // The quantile bands' sample (at most 2²² numbers, drive::ensemble), its rows in
            // at most four blocks, the bands; the figure's histogram of the finals.
            let sample = (particles.min(4.0 * BLOCK as f64) * r * width).min((1u64 << 22) as f64);
            let bytes = sample * 16.0 + r * (4.0 * 80.0 + 48.0 + heap(16.0 * width)) + particles * 32.0;
            add("the quantile bands and the histogram of --plot".into(), bytes, "leave out --plot");
        }
        if let Some(dump) = outputs.dump.and_then(|p| Kind::of(p).ok()).filter(|&k| k == Kind::Npy) {
            add(
                format!(
                    "the NPY --dump of {} × {}, held until the run ends",
                    count(plan.particles(), "particle"),
                    count(width as usize, "value")
                ),
                writer_bytes(dump, particles, width),
                "dump to CSV or JSON (streamed, not held)",
            );
        }
    }
    if let Some(cells) = grid {
        // The density, the energies, mobilities, faces and the solver's two vectors (drive::density).
        add(format!("the grid of {cells} cells"), cells * 8.0 * 8.0, "use fewer cells (--cells)");
        if model.interaction.is_some() {
            // W between every two cells (drive::density).
            add(
                format!("the interaction between {cells}² pairs of cells"),
                cells * cells * 8.0,
                "use fewer cells (--cells)",
            );
        }
        if outputs.density || outputs.plot {
            // Every output time's density kept, then the NPY file's bytes built from it.
            add(
                format!("the density at {rows} output times × {cells} cells, kept for --density or --plot"),
                r * cells * 8.0 * if outputs.density { 2.0 } else { 1.0 },
                "write fewer rows with --every, or use fewer cells (--cells)",
            );
        }
    }
    if let Some(s) = &plan.sensitivity {
        terms.extend(sensitivity_terms(plan.n, plan.dim(), s.len(), s.outputs));
    }
    terms.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    // An ensemble's blocks run on rayon's threads; a single trajectory on this one.
    let threads = if ensemble { rayon::current_num_threads() as f64 } else { 1.0 };
    let n = plan.dim() as f64;
    // The integrators' workspace: a few state vectors per thread, and dense (2n)² matrices
    // for the methods that factor Newton matrices or square roots of the metric; the explicit
    // methods hold the system's matrix in its band, and equations by segments have none.
    use crate::Method::*;
    let dense = matches!(plan.method, Prox | Midpoint | Variational | Em | Baoab);
    let band = plan.matrix_band.map_or(0.0, |b| b as f64 + 2.0);
    let matrices = match (plan.indexed, dense) {
        (true, _) => 0.0,
        (false, true) => 32.0 * 8.0 * (n + 1.0) * (n + 1.0),
        (false, false) => 3.0 * 8.0 * plan.n as f64 * band,
    };
    let workspace = threads * (THREAD_BYTES + 64.0 * (n + 1.0) + matrices);
    let compile = COMPILE_BASE + COMPILE_BYTES_PER_NODE * model.arena.len() as f64;
    let grows: f64 = terms.iter().map(|t| t.bytes as f64).sum();
    let memory = (compile + workspace + grows) as u64;
    let base = peak_memory().unwrap_or(0);
    Estimate { rows, columns, disk, memory, base, terms }
}

/// The process's peak resident memory so far, in bytes (`VmHWM` of
/// `/proc/self/status`).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The memory the system says is available, in bytes (`MemAvailable`).
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Free bytes on the file system holding `dir`.
fn free_disk(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` is written by statvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e12 {
        format!("{:.1} TB", b / 1e12)
    } else if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

/// The estimate as `lagc run` prints it when [`PRINT_ESTIMATE`] is set: one
/// line of bytes, then one per term.
fn describe(e: &Estimate) -> String {
    let mut s = format!(
        "estimate: peak memory {} bytes (so far {}, more {}), disk {} bytes",
        e.peak(),
        e.base,
        e.memory,
        e.disk
    );
    for t in &e.terms {
        s += &format!("\nestimate: {} bytes for {}", t.bytes, t.what);
    }
    s
}

/// Why a run would not fit in `available` bytes: the terms that make up
/// most of the estimate, each with what makes it smaller.
fn memory_refusal(e: &Estimate, available: u64) -> String {
    // The largest terms down to a tenth of the estimate, at least the largest.
    let causes: Vec<&Term> =
        e.terms.iter().enumerate().filter(|(i, t)| *i == 0 || t.bytes >= e.memory / 10).map(|(_, t)| t).collect();
    let mut fixes: Vec<&str> = causes.iter().map(|t| t.fix).collect();
    fixes.dedup();
    let what: Vec<String> = causes.iter().map(|t| format!("{} for {}", human(t.bytes), t.what)).collect();
    if what.is_empty() {
        return format!(
            "this run would hold about {} more in memory to compile and run, but {} is available",
            human(e.memory),
            human(available)
        );
    }
    format!(
        "this run would hold about {} more in memory, but {} is available: {}; {}",
        human(e.memory),
        human(available),
        what.join(", "),
        fixes.join("; or ")
    )
}

/// Refuses a run that would not fit; `Err` says what it would take, what
/// there is, and what to change. Prints the estimate first when
/// [`PRINT_ESTIMATE`] is set.
pub(crate) fn check(e: &Estimate, out: Option<&Path>) -> Result<(), String> {
    if std::env::var_os(PRINT_ESTIMATE).is_some_and(|v| !v.is_empty() && v != "0") {
        eprintln!("{}", describe(e));
    }
    if let Some(mem) = available_memory() {
        if e.memory > mem {
            return Err(memory_refusal(e, mem));
        }
    }
    if let Some(path) = out {
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(free) = free_disk(dir) {
            if e.disk > free {
                return Err(format!(
                    "--out {}: the output would take about {} ({} rows × {} columns), but {} is free there; \
                     write fewer rows with --every",
                    path.display(),
                    human(e.disk),
                    e.rows,
                    e.columns,
                    human(free)
                ));
            }
        }
    }
    Ok(())
}

/// Which file a path names: its device and inode when it exists (through
/// symbolic links), else its canonical directory and file name. Two paths
/// that name one file have one identity, however they are spelled.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(p: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(p) {
        return Some(Identity::Inode(m.dev(), m.ino()));
    }
    let dir = std::fs::canonicalize(parent(p)).ok()?;
    Some(Identity::Path(dir.join(p.file_name()?)))
}

/// The directory a file is written in: `.` for a bare file name.
fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Refuses, before any work, outputs (`(flag, path)`) that cannot be
/// written: a path that is a directory, a directory that does not exist or
/// is not writable, two outputs that are one file, and an output that is
/// one of the inputs (the model file, `--data` files).
pub(crate) fn check_paths(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<(), String> {
    for &(flag, p) in outputs {
        let shown = p.display();
        if p.file_name().is_none() || std::fs::metadata(p).is_ok_and(|m| m.is_dir()) {
            return Err(format!("{flag} {shown}: it is a directory; give the path of a file"));
        }
        let dir = parent(p);
        match std::fs::metadata(dir) {
            Err(_) => return Err(format!("{flag} {shown}: the directory {} does not exist", dir.display())),
            Ok(m) if !m.is_dir() => return Err(format!("{flag} {shown}: {} is not a directory", dir.display())),
            Ok(_) if !writable(dir) => {
                return Err(format!("{flag} {shown}: the directory {} is not writable", dir.display()))
            }
            Ok(_) => {}
        }
    }
    for (i, &(flag, p)) in outputs.iter().enumerate() {
        let Some(id) = identity(p) else { continue };
        for &(other, q) in &outputs[..i] {
            if identity(q).as_ref() == Some(&id) {
                return Err(format!(
                    "{other} {} and {flag} {} are the same file; give each output its own path",
                    q.display(),
                    p.display()
                ));
            }
        }
        for &(what, q) in inputs {
            if identity(q).as_ref() == Some(&id) {
                return Err(format!(
                    "{flag} {} is the {what} {}: writing it would overwrite an input; give another path",
                    p.display(),
                    q.display()
                ));
            }
        }
    }
    Ok(())
}

/// Whether this process may create files in `dir` (`access(2)` with
/// `W_OK | X_OK`).
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `heap` is an upper bound of the block the allocator really gives a
    /// request (its usable size and its 8-byte header), and within 16 bytes of it.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn heap_blocks_bound_the_allocators() {
        for bytes in (0..=1024).chain([4096, 65_536]) {
            // SAFETY: a block is allocated, measured and freed; nothing is read or written.
            let usable = unsafe {
                let p = libc::malloc(bytes.max(1));
                assert!(!p.is_null());
                let usable = libc::malloc_usable_size(p);
                libc::free(p);
                usable
            };
            let block = (usable + 8) as f64;
            let estimate = heap(bytes as f64);
            assert!(estimate >= block && estimate <= block + 16.0, "{bytes} bytes: block {block}, estimate {estimate}");
        }
    }

    /// A `serde_json::Value` is 32 bytes, as the JSON writer's term counts it.
    #[test]
    fn json_values_are_32_bytes() {
        assert_eq!(std::mem::size_of::<serde_json::Value>(), 32);
    }
}
