//! The settings of a run: the command line over the model's `simulate` line
//! over the defaults.

use crate::model::{Method, Model};
use crate::sym::fmt_float;

/// The resolved settings of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub method: Method,
    pub t0: f64,
    pub t_end: f64,
    pub dt: f64,
    pub rtol: f64,
    pub atol: f64,
    pub every: usize,
    /// The number of particles of an ensemble run, when given.
    pub particles: Option<u64>,
    /// The seed of the particles' random streams.
    pub seed: u64,
    /// Rows per minibatch (`simulate batch`), when given.
    pub batch: Option<u64>,
    /// Measure the drift of `H` on every step, not only on the rows written
    /// (one evaluation of `H` per step).
    pub energy_every_step: bool,
    /// Keep quantile bands of an ensemble's columns ([`super::Summary::bands`]).
    pub bands: bool,
    /// Grid cells per dimension of `fokker-planck`.
    pub cells: usize,
    /// Keep the density at every output time ([`super::Summary::density`]).
    pub keep_density: bool,
}

/// Command-line choices that override the model's `simulate` line.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub method: Option<Method>,
    pub t0: Option<f64>,
    pub t_end: Option<f64>,
    pub dt: Option<f64>,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub every: Option<u64>,
    pub particles: Option<u64>,
    pub seed: Option<u64>,
    pub batch: Option<u64>,
    /// Measure the drift of `H` on every step (see [`RunConfig::energy_every_step`]).
    pub energy_every_step: bool,
    /// Keep quantile bands of an ensemble's columns (see [`RunConfig::bands`]).
    pub bands: bool,
    pub cells: Option<u64>,
    /// Keep the density at every output time (see [`RunConfig::keep_density`]).
    pub keep_density: bool,
}

/// Defaults where neither the model nor the command line says.
pub const DEFAULT_DT: f64 = 1e-3;
pub const DEFAULT_DURATION: f64 = 10.0;
pub const DEFAULT_RTOL: f64 = 1e-6;
pub const DEFAULT_ATOL: f64 = 1e-9;
/// Grid cells per dimension of `fokker-planck`.
pub const DEFAULT_CELLS: u64 = 400;

/// An unacceptable setting, and what would be acceptable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("t0 and t_end must be finite numbers")]
    NotFinite,
    #[error("t_end ({}) is before t0 ({}); give t_end ≥ t0", fmt_float(*.t_end), fmt_float(*.t0))]
    EndBeforeStart { t0: f64, t_end: f64 },
    #[error("dt must be a positive number, not {}", fmt_float(*.0))]
    Step(f64),
    #[error("rtol and atol must be positive numbers")]
    Tolerance,
    #[error("every must be 1 or more (1 writes every step)")]
    Every,
    #[error("particles must be 1 or more")]
    Particles,
    #[error("cells must be 2 or more per dimension")]
    Cells,
}

impl RunConfig {
    /// Combines the command line, the model's `simulate` line and the defaults.
    /// Whether the method fits the model is [`crate::plan`]'s business.
    pub fn resolve(model: &Model, o: &RunOptions) -> Result<RunConfig, SettingsError> {
        let s = &model.settings;
        let method = crate::plan::method_for(model, o.method);
        let t0 = o.t0.or(s.t0).unwrap_or(0.0);
        let t_end = o.t_end.or(s.t_end).unwrap_or(t0 + DEFAULT_DURATION);
        let dt = o.dt.or(s.dt).unwrap_or(DEFAULT_DT);
        let rtol = o.rtol.or(s.rtol).unwrap_or(DEFAULT_RTOL);
        let atol = o.atol.or(s.atol).unwrap_or(DEFAULT_ATOL);
        let every = o.every.or(s.every).unwrap_or(1);
        if !t0.is_finite() || !t_end.is_finite() {
            return Err(SettingsError::NotFinite);
        }
        if t_end < t0 {
            return Err(SettingsError::EndBeforeStart { t0, t_end });
        }
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(SettingsError::Step(dt));
        }
        if rtol.is_nan() || atol.is_nan() || rtol <= 0.0 || atol <= 0.0 {
            return Err(SettingsError::Tolerance);
        }
        if every == 0 {
            return Err(SettingsError::Every);
        }
        let particles = o.particles.or(s.particles);
        if particles == Some(0) {
            return Err(SettingsError::Particles);
        }
        let seed = o.seed.or(s.seed).unwrap_or(0);
        let batch = o.batch.or(s.batch);
        let cells = o.cells.or(s.cells).unwrap_or(DEFAULT_CELLS);
        if cells < 2 || cells > usize::MAX as u64 / 16 {
            return Err(SettingsError::Cells);
        }
        Ok(RunConfig {
            method,
            t0,
            t_end,
            dt,
            rtol,
            atol,
            every: every as usize,
            particles,
            seed,
            batch,
            energy_every_step: o.energy_every_step,
            bands: o.bands,
            cells: cells as usize,
            keep_density: o.keep_density,
        })
    }
}
