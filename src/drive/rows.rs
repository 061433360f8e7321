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
            sink,
            control,
            out: vec![],
            row: vec![],
            summary: Summary::default(),
            conservative: plan.conservative,
            every_step: plan.conservative && plan.kind == ModelKind::Lagrangian && every_step,
            stop: None,
        }
    }
}

impl Observer for Rows<'_> {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), Stop> {
        let n = self.k.n;
        let extra = if self.kind == ModelKind::Energy { n } else { 0 };
        self.out.resize(self.k.outputs(Kernel::Row), 0.0);
        self.k.eval_at(Kernel::Row, t, y, &mut self.out, &mut self.work);
        let energy = self.out[0];
        self.row.clear();
        self.row.push(t);
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

    fn sees_steps(&self) -> bool {
        self.every_step
    }

    /// A step between rows: only `H`, for its drift.
    fn step(&mut self, t: f64, y: &[f64]) {
        let kernel = if self.k.has(Kernel::Energy) { Kernel::Energy } else { Kernel::Row };
        self.out.resize(self.k.outputs(kernel), 0.0);
        self.k.eval_at(kernel, t, y, &mut self.out, &mut self.work);
        self.drift(self.out[0]);
    }
}

impl Rows<'_> {
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
