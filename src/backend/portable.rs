//! The portable backend: every kernel and the first-order system as register
//! programs ([`Program`]), the system's matrix solved in Rust.

use super::program::Program;
use super::{Backend, Layout, Matrix, Work};
use crate::integrate::symband::{self, BandFactor};
use crate::integrate::{linalg, Cause};
use crate::model::ModelKind;
use std::sync::Arc;

/// The matrix of the system.
#[derive(Clone)]
enum Shape {
    None,
    Dense,
    Diagonal,
    /// The upper band, row by row.
    Banded(usize),
    /// Factored once; `None` when singular.
    Factored(Option<Arc<BandFactor>>),
}

/// Kernels as register programs.
pub(super) struct Portable {
    programs: Vec<Program>,
    /// The system: its kind, its matrix's shape, and a program of the
    /// matrix's entries (if any) then its vector.
    system: Option<(ModelKind, Shape, Program)>,
    inputs: usize,
    n: usize,
}

impl Portable {
    pub(super) fn build(layout: &Layout<'_>) -> Portable {
        let a = &layout.model.arena;
        let programs = layout
            .kernels
            .iter()
            .map(|(k, outputs)| {
                let batch = layout.batch.filter(|_| *k == crate::plan::Kernel::Gradient);
                Program::batched(a, layout.inputs, outputs, batch)
            })
            .collect();
        let system = layout.system.as_ref().map(|s| {
            if let Some(segs) = &s.segments {
                // Row by row, in a copy of the arena (a program keeps no reference to it).
                let mut a = a.clone();
                let rows: Vec<_> = segs.iter().flat_map(|g| g.rows.clone().map(move |r| (g.clone(), r))).collect();
                let outputs: Vec<_> = rows.into_iter().map(|(g, r)| g.at(&mut a, r)).collect();
                let shape = match &s.matrix {
                    Some(Matrix::Factored(f)) => Shape::Factored(f.clone()),
                    _ => Shape::None,
                };
                return (s.kind, shape, Program::batched(&a, layout.inputs, &outputs, layout.batch));
            }
            let mut outputs = s.matrix.as_ref().map(|m| m.entries().to_vec()).unwrap_or_default();
            outputs.extend(&s.vector);
            let shape = match &s.matrix {
                None => Shape::None,
                Some(Matrix::Dense(_)) => Shape::Dense,
                Some(Matrix::Diagonal(_)) => Shape::Diagonal,
                Some(Matrix::Banded { band, .. }) => Shape::Banded(*band),
                Some(Matrix::Factored(f)) => Shape::Factored(f.clone()),
            };
            (s.kind, shape, Program::batched(a, layout.inputs, &outputs, layout.batch))
        });
        Portable { programs, system, inputs: layout.inputs.len(), n: layout.model.vars.len() }
    }
}

impl Backend for Portable {
    fn eval(&self, index: usize, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        self.programs[index].run(x, out, scratch)
    }

    fn rhs(&self, t: f64, y: &[f64], params: &[f64], dy: &mut [f64], work: &mut Work) -> Result<(), Cause> {
        let n = self.n;
        let (kind, shape, program) = self.system.as_ref().expect("the plan builds the system");
        work.x.clear();
        work.x.push(t);
        work.x.extend_from_slice(y);
        work.x.resize(self.inputs - params.len(), 0.0);
        work.x.extend_from_slice(params);
        let m_len = match shape {
            Shape::None | Shape::Factored(_) => 0,
            Shape::Dense => n * n,
            Shape::Diagonal => n,
            Shape::Banded(b) => symband::band_len(n, *b),
        };
        work.out.resize(m_len + n, 0.0);
        program.run(&work.x, &mut work.out, &mut work.scratch);
        let (m, f) = work.out.split_at_mut(m_len);
        let solved = match shape {
            Shape::None => Ok(()),
            Shape::Dense => linalg::solve_spd_or_lu(m, f, n),
            Shape::Diagonal => linalg::solve_diagonal(m, f),
            Shape::Banded(b) => symband::factor(m, n, *b, false).map(|factor| factor.solve(f)),
            Shape::Factored(Some(factor)) => {
                factor.solve(f);
                Ok(())
            }
            Shape::Factored(None) => Err(Cause::SingularMassMatrix),
        };
        match kind {
            ModelKind::Lagrangian => {
                solved?;
                dy[..n].copy_from_slice(&y[n..]);
                dy[n..].copy_from_slice(f);
            }
            ModelKind::Energy => {
                solved.map_err(|c| match c {
                    Cause::SingularMassMatrix => Cause::SingularMetric,
                    other => other,
                })?;
                dy.copy_from_slice(f);
            }
        }
        Ok(())
    }
}
