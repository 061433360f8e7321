//! Rows: integrator states `(t, y)` turned into output rows (with the
//! energy, the gradient norm and the observes), the sinks they go to, and the
//! summary of a trajectory.

use super::{Control, Drift, Summary};
use crate::backend::{Kernels, Work};
use crate::integrate::{Observer, Stop};
use crate::model::ModelKind;
use crate::plan::{Kernel, Plan};

/// An output error: the sink could not take a row.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where rows go.
pub trait RowSink {
    fn row(&mut self, values: &[f64]) -> Result<(), SinkError>;
}

impl RowSink for Vec<Vec<f64>> {
    fn row(&mut self, values: &[f64]) -> Result<(), SinkError> {
        self.push(values.to_vec());
        Ok(())
    }
}

/// Why [`Rows`] stopped a run.
#[derive(Clone, Debug)]
pub(crate) enum StopReason {
    Interrupted,
    Output(SinkError),
}

/// Turns integrator rows `(t, y)` into output rows with energy and observes.
pub(crate) struct Rows<'a> {
    k: &'a Kernels,
    work: Work,
    kind: ModelKind,
    /// The state's length: entries of `y` past it (sensitivities) go after every other column.
    dim: usize,
    sink: &'a mut dyn RowSink,
    control: Control<'a>,
    out: Vec<f64>,
    row: Vec<f64>,
    pub summary: Summary,
    /// Whether `H` is conserved, so that its drift is worth reporting.
    conservative: bool,
    /// Whether the drift of `H` is measured on every step.
    every_step: bool,
    /// Why the run was stopped, if it was.
    pub stop: Option<StopReason>,
    /// The work and heat of a time-dependent or stochastic model's trajectory.
    ledger: Option<Ledger>,
}

/// A trajectory's account of work and heat (docs/numerics.md §Work and heat):
/// the work `∫ P dt` of the power `P` (`∂E/∂t`, or `−∂L/∂t + Q·q'`), taken at
/// the midpoint of every step (the Stratonovich convention), and the energy at
/// the start, so that `heat = work − (energy − energy₀)` holds row by row.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    pub work: f64,
    energy0: Option<f64>,
    /// The last state seen, and its time.
    prev: Option<(f64, Vec<f64>)>,
    mid: Vec<f64>,
    out: Vec<f64>,
}

impl Ledger {
    /// Adds the work of the step from the last state seen to `(t, y)`.
    pub(crate) fn advance(&mut self, k: &Kernels, work: &mut Work, t: f64, y: &[f64]) {
        // No power kernel: no explicit time dependence and no force, so no work.
        if !k.has(Kernel::Power) {
            return;
        }
        let Some((t0, y0)) = &mut self.prev else {
            self.prev = Some((t, y.to_vec()));
            return;
        };
        let h = t - *t0;
        if h != 0.0 {
            self.mid.clear();
            self.mid.extend(y0.iter().zip(y).map(|(a, b)| 0.5 * (a + b)));
            self.out.resize(1, 0.0);
            k.eval_at(Kernel::Power, *t0 + 0.5 * h, &self.mid, &mut self.out, work);
            self.work += h * self.out[0];
        }
        *t0 = t;
        y0.copy_from_slice(y);
    }

    /// `work` and `heat` at a row whose energy is `energy`.
    fn columns(&mut self, energy: f64) -> [f64; 2] {
        let e0 = *self.energy0.get_or_insert(energy);
        [self.work, self.work - (energy - e0)]
    }
}

impl<'a> Rows<'a> {
    pub(crate) fn new(
        plan: &Plan,
        k: &'a Kernels,
        sink: &'a mut dyn RowSink,
        control: Control<'a>,
        every_step: bool,
    ) -> Rows<'a> {
        Rows {
            k,
            work: Work::default(),
            kind: plan.kind,
            dim: plan.dim(),
            sink,
            control,
            out: vec![],
            row: vec![],
            summary: Summary::default(),
            conservative: plan.conservative,
            every_step: plan.conservative && plan.kind == ModelKind::Lagrangian && every_step,
            stop: None,
            ledger: plan.thermo.then(Ledger::default),
        }
    }

    /// The last row handed to the sink.
    pub(crate) fn last_row(&self) -> &[f64] {
        &self.row
    }

    /// Writes the row of a particle whose work is kept in `ledger` (the
    /// particles of a Langevin block, which advance their own ledgers).
    pub(crate) fn row_with(&mut self, t: f64, y: &[f64], ledger: &mut Ledger) -> Result<(), Stop> {
        let own = self.ledger.replace(std::mem::take(ledger));
        let r = self.write(t, y);
        *ledger = std::mem::replace(&mut self.ledger, own).unwrap_or_default();
        r
    }
}

impl Observer for Rows<'_> {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), Stop> {
        if let Some(l) = &mut self.ledger {
            l.advance(self.k, &mut self.work, t, y);
        }
        self.write(t, y)
    }

    fn sees_steps(&self) -> bool {
        self.every_step || (self.ledger.is_some() && self.k.has(Kernel::Power))
    }

    /// A step between rows: its work, and `H` for its drift.
    fn step(&mut self, t: f64, y: &[f64]) {
        if let Some(l) = &mut self.ledger {
            l.advance(self.k, &mut self.work, t, y);
        }
        if !self.every_step {
            return;
        }
        let kernel = if self.k.has(Kernel::Energy) { Kernel::Energy } else { Kernel::Row };
        self.out.resize(self.k.outputs(kernel), 0.0);
        self.k.eval_at(kernel, t, y, &mut self.out, &mut self.work);
        self.drift(self.out[0]);
    }
}

impl Rows<'_> {
    /// Computes and writes the row at `(t, y)`; the ledger is already advanced.
    fn write(&mut self, t: f64, y: &[f64]) -> Result<(), Stop> {
        let n = self.k.n;
        let extra = if self.kind == ModelKind::Energy { n } else { 0 };
        self.out.resize(self.k.outputs(Kernel::Row), 0.0);
        self.k.eval_at(Kernel::Row, t, y, &mut self.out, &mut self.work);
        let energy = self.out[0];
        self.row.clear();
        self.row.push(t);
        let (y, sensitivities) = y.split_at(self.dim.min(y.len()));
        self.row.extend_from_slice(y);
        self.row.push(energy);
        if self.kind == ModelKind::Energy {
            let g = self.out[1..1 + n].iter().map(|x| x * x).sum::<f64>().sqrt();
            self.row.push(g);
            self.summary.final_grad_norm = Some(g);
        } else if self.conservative {
            self.drift(energy);
        }
        self.row.extend_from_slice(&self.out[1 + extra..]);
        if let Some(l) = &mut self.ledger {
            self.row.extend_from_slice(&l.columns(energy));
        }
        self.row.extend_from_slice(sensitivities);
        self.summary.final_energy = energy;
        self.summary.rows += 1;
        if let Err(e) = self.sink.row(&self.row) {
            self.stop = Some(StopReason::Output(e));
            return Err(Stop);
        }
        // An interruption keeps this row and stops the run.
        if self.control.interrupted() {
            self.stop = Some(StopReason::Interrupted);
            return Err(Stop);
        }
        Ok(())
    }

    /// Takes `H` at one more step into the drift.
    fn drift(&mut self, energy: f64) {
        let d = self.summary.energy_drift.get_or_insert(Drift { h0: energy, max_abs: 0.0 });
        // A NaN drift stays NaN: the comparison alone would skip it.
        let a = (energy - d.h0).abs();
        if a > d.max_abs || a.is_nan() {
            d.max_abs = a;
        }
    }
}
