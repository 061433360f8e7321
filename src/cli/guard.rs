//! Resource guards: a run whose output or ensemble would not fit in memory
//! or on disk is refused before any work starts, with the estimate.

use crate::drive::RunConfig;
use crate::plan::Plan;
use crate::Model;
use std::path::Path;

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
