//! Resource guards: a run whose output or ensemble would not fit in memory
//! or on disk is refused before any work starts, with the estimate; so is an
//! output that cannot be written or that is another output or an input.

use crate::drive::RunConfig;
use crate::plan::Plan;
use crate::Model;
use std::path::{Path, PathBuf};

/// Approximate bytes of one value in CSV or JSON text.
const TEXT_BYTES: u64 = 22;

/// What a run will write and hold.
pub(crate) struct Estimate {
    pub rows: u64,
    pub columns: u64,
    /// Bytes written to the output file.
    pub disk: u64,
    /// Bytes held in memory.
    pub memory: u64,
}

/// Estimates the size of a run's output and working memory.
pub(crate) fn estimate(model: &Model, plan: &Plan, cfg: &RunConfig, out: Option<&Path>, plot: bool) -> Estimate {
    let span = (cfg.t_end - cfg.t0).max(0.0);
    let steps = (span / cfg.dt).ceil().max(0.0) as u64;
    let rows = steps / cfg.every as u64 + 2;
    let columns = plan.columns.len() as u64;
    let values = rows.saturating_mul(columns);
    let kind = out.and_then(|p| super::output::Kind::of(p).ok());
    let disk = match kind {
        Some(super::output::Kind::Npy) => values.saturating_mul(8),
        Some(_) => values.saturating_mul(TEXT_BYTES),
        None => 0,
    };
    let mut memory = match kind {
        Some(super::output::Kind::Json | super::output::Kind::Npy) => values.saturating_mul(8),
        _ => 0,
    };
    if plot {
        memory = memory.saturating_add(rows.saturating_mul(columns * 8 + 24));
    }
    if plan.is_ensemble() {
        let particles = plan.particles() as u64;
        let blocks = particles.div_ceil(crate::drive::BLOCK as u64);
        // Per block: the moments of every row and column; per particle: its state, twice.
        let state = model.vars.len() as u64 * 2;
        memory = memory
            .saturating_add(blocks.saturating_mul(rows).saturating_mul(columns).saturating_mul(24))
            .saturating_add(particles.saturating_mul(state).saturating_mul(16));
    }
    Estimate { rows, columns, disk, memory }
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
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

/// Refuses a run that would not fit; `Err` says what it would take and what
/// there is.
pub(crate) fn check(e: &Estimate, out: Option<&Path>) -> Result<(), String> {
    if let (Some(mem), true) = (available_memory(), e.memory > 0) {
        if e.memory > mem {
            return Err(format!(
                "this run would hold about {} in memory ({} rows × {} columns), but {} is available; \
                 write fewer rows with --every, or write CSV",
                human(e.memory),
                e.rows,
                e.columns,
                human(mem)
            ));
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
