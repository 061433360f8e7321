//! The portable backend: every kernel and the first-order system as register
//! programs ([`Program`]), the system's matrix solved in Rust.

use super::program::Program;
use super::{Backend, Layout, Work};
use crate::integrate::{linalg, Cause};
use crate::model::ModelKind;

/// Kernels as register programs.
pub(super) struct Portable {
    programs: Vec<Program>,
    /// The system's matrix entries (if any) then its vector.
    system: Option<(ModelKind, bool, Program)>,
    inputs: usize,
    n: usize,
}

impl Portable {
    pub(super) fn build(layout: &Layout<'_>) -> Portable {
        let a = &layout.model.arena;
        let programs = layout.kernels.iter().map(|(_, outputs)| Program::new(a, layout.inputs, outputs)).collect();
        let system = layout.system.as_ref().map(|s| {
            let mut outputs = s.matrix.clone().unwrap_or_default();
            outputs.extend(&s.vector);
            (s.kind, s.matrix.is_some(), Program::new(a, layout.inputs, &outputs))
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
        let (kind, has_matrix, program) = self.system.as_ref().expect("the plan builds the system");
        work.x.clear();
        work.x.push(t);
        work.x.extend_from_slice(y);
        work.x.resize(self.inputs - params.len(), 0.0);
        work.x.extend_from_slice(params);
        let m_len = if *has_matrix { n * n } else { 0 };
        work.out.resize(m_len + n, 0.0);
        program.run(&work.x, &mut work.out, &mut work.scratch);
        let (m, f) = work.out.split_at_mut(m_len);
        match kind {
            ModelKind::Lagrangian => {
                linalg::solve_spd_or_lu(m, f, n)?;
                dy[..n].copy_from_slice(&y[n..]);
                dy[n..].copy_from_slice(f);
            }
            ModelKind::Energy => {
                if *has_matrix {
                    linalg::solve_spd_or_lu(m, f, n).map_err(|c| match c {
                        Cause::SingularMassMatrix => Cause::SingularMetric,
                        other => other,
                    })?;
                }
                dy.copy_from_slice(f);
            }
        }
        Ok(())
    }
}
