//! The numeric kernels of a model: its derived equations as functions of
//! `x = [t, coordinates or state…, velocities…, parameters…]`.
//!
//! Kernels are compiled to native code by [`crate::jit`] (the default) or,
//! where that is not wanted or not possible, flattened into a portable
//! [`Program`]. Both compute what the tree-walking evaluator computes; the
//! tests hold them to it. Only the kernels a method needs are built.

use crate::derive::{Equations, LagrangianEquations};
use crate::integrate::{linalg, Cause, LagrangianPoint};
use crate::jit::{self, ExprKernel, FlowSpec, OdeSpec};
use crate::model::{Method, Model, ModelKind};
use crate::program::Program;
use crate::sym::{ExprId, SymId};
use std::time::{Duration, Instant};

/// How kernels are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Cranelift-compiled native code.
    Native,
    /// The portable register program of [`Program`].
    Portable,
}

/// The names and outputs of the expression kernels, in the order both
/// backends build them.
struct Exprs {
    /// `energy` (`H` or `E`), then for energy models `∇E`, then the observes.
    row: Vec<ExprId>,
    /// `L_v, L_q, F, L_vv, L_vq, L_qq, F_v, F_q, L_vt` (see [`LagrangianPoint`]).
    point: Vec<ExprId>,
    /// `∂f/∂y` (n × 2n), then `∂M/∂y_j` for each `j` (2n blocks of n × n), then `M`.
    jacobian: Vec<ExprId>,
    energy: Vec<ExprId>,
    gradient: Vec<ExprId>,
    hessian: Vec<ExprId>,
    metric: Vec<ExprId>,
    /// `M` (n²) then `f` (n), for the portable right-hand side.
    mass_and_forcing: Vec<ExprId>,
    mass: Vec<ExprId>,
    forcing: Vec<ExprId>,
}

const NAMES: [&str; 9] = ["row", "point", "jacobian", "energy", "gradient", "hessian", "metric", "mass", "forcing"];

impl Exprs {
    fn by_name(&self, name: &str) -> &[ExprId] {
        match name {
            "row" => &self.row,
            "point" => &self.point,
            "jacobian" => &self.jacobian,
            "energy" => &self.energy,
            "gradient" => &self.gradient,
            "hessian" => &self.hessian,
            "mass" => &self.mass,
            "forcing" => &self.forcing,
            _ => &self.metric,
        }
    }
}

/// The compiled (or flattened) kernels of one model.
pub struct Kernels {
    pub kind: ModelKind,
    /// Coordinates or state variables.
    pub n: usize,
    pub n_observes: usize,
    inputs: Vec<SymId>,
    params: Vec<f64>,
    native: Option<jit::Compiled>,
    portable: Vec<(&'static str, Program)>,
    portable_rhs: Option<Program>,
    has_metric: bool,
    exprs: Exprs,
    /// Wall time spent building the kernels.
    pub build_time: Duration,
}

/// What each method needs beyond the right-hand side and the row kernel.
fn needs(method: Method, name: &str) -> bool {
    match name {
        "row" => true,
        "point" => matches!(method, Method::Variational),
        "jacobian" => matches!(method, Method::Midpoint),
        "energy" | "gradient" | "metric" => true,
        "hessian" => matches!(method, Method::Prox),
        "mass" | "forcing" => matches!(method, Method::Verlet),
        _ => false,
    }
}

impl Kernels {
    /// Builds the kernels that `method` needs. A native build that Cranelift
    /// refuses is an error; the caller may retry with [`Backend::Portable`].
    pub fn new(model: &mut Model, eq: &Equations, method: Method, backend: Backend) -> Result<Kernels, jit::JitError> {
        let start = Instant::now();
        let n = model.vars.len();
        let mut inputs = vec![model.time];
        inputs.extend(model.var_syms());
        inputs.extend(model.velocity_syms());
        let state_inputs = inputs[1..].to_vec();
        inputs.extend(model.param_syms());
        let params: Vec<f64> = model.params.iter().map(|p| p.value).collect();
        let exprs = expressions(model, eq, method);
        let keep = |name: &str| needs(method, name) && !exprs.by_name(name).is_empty();
        let (native, portable, portable_rhs) = match backend {
            Backend::Native => {
                let kernels: Vec<ExprKernel> = NAMES
                    .iter()
                    .filter(|n| keep(n))
                    .map(|&name| ExprKernel {
                        name: name.into(),
                        inputs: inputs.clone(),
                        outputs: exprs.by_name(name).to_vec(),
                    })
                    .collect();
                let params = model.param_syms();
                let (ode, flow) = match eq {
                    Equations::Lagrangian(e) => (
                        Some(OdeSpec {
                            n,
                            time: model.time,
                            coords: model.var_syms(),
                            velocities: model.velocity_syms(),
                            params,
                            mass_matrix: flatten(&e.mass_matrix),
                            forcing: e.forcing.clone(),
                        }),
                        None,
                    ),
                    Equations::Energy(_) => {
                        let a = &mut model.arena;
                        let rhs: Vec<ExprId> = exprs.gradient.iter().map(|&g| a.neg(g)).collect();
                        let metric = (!exprs.metric.is_empty()).then(|| exprs.metric.clone());
                        (None, Some(FlowSpec { time: model.time, state: state_inputs, params, rhs, metric }))
                    }
                };
                let loops: &[jit::Scheme] = match method {
                    Method::Rk4 => &[jit::Scheme::Rk4],
                    Method::Verlet => &[jit::Scheme::Verlet],
                    Method::Em => &[jit::Scheme::EulerMaruyama],
                    _ => &[],
                };
                (Some(jit::compile_with(&model.arena, &kernels, ode.as_ref(), flow.as_ref(), loops)?), vec![], None)
            }
            Backend::Portable => {
                let a = &model.arena;
                let progs = NAMES
                    .iter()
                    .filter(|n| keep(n))
                    .map(|&name| (name, Program::new(a, &inputs, exprs.by_name(name))))
                    .collect();
                let rhs =
                    (model.kind == ModelKind::Lagrangian).then(|| Program::new(a, &inputs, &exprs.mass_and_forcing));
                (None, progs, rhs)
            }
        };
        Ok(Kernels {
            kind: model.kind,
            n,
            n_observes: model.observes.len(),
            inputs,
            params,
            native,
            portable,
            portable_rhs,
            has_metric: !exprs.metric.is_empty(),
            exprs,
            build_time: start.elapsed(),
        })
    }

    /// The names of the expression kernels that were built.
    pub fn names(&self) -> Vec<&'static str> {
        match &self.native {
            Some(c) => NAMES.iter().copied().filter(|n| c.expr(n).is_some()).collect(),
            None => self.portable.iter().map(|(n, _)| *n).collect(),
        }
    }

    /// The expressions a named kernel computes, in output order.
    pub fn expressions(&self, name: &str) -> &[ExprId] {
        self.exprs.by_name(name)
    }

    /// The symbols of the input vector, in order.
    pub fn inputs(&self) -> &[SymId] {
        &self.inputs
    }

    /// The Cranelift IR of every native kernel.
    pub fn ir(&self) -> Option<&str> {
        self.native.as_ref().map(|c| c.ir())
    }

    /// The number of Cranelift instructions over all native kernels.
    pub fn instruction_count(&self) -> Option<usize> {
        self.native.as_ref().map(|c| c.instruction_count())
    }

    /// The compiled fixed-step loop of `method` (rk4, or verlet for
    /// Lagrangian models), with native kernels built for that method.
    pub fn step_loop(&self, method: Method) -> Option<jit::LoopFn<'_>> {
        let c = self.native.as_ref()?;
        match (self.kind, method) {
            (ModelKind::Lagrangian, Method::Rk4) => c.rk4_loop(),
            (ModelKind::Lagrangian, Method::Verlet) => c.verlet_loop(),
            (ModelKind::Energy, Method::Rk4) => c.flow_rk4_loop(),
            _ => None,
        }
    }

    /// The compiled Euler–Maruyama step of a block of particles (energy
    /// models, native kernels built for `em`).
    pub fn em_block(&self) -> Option<jit::EmBlockFn<'_>> {
        self.native.as_ref()?.flow_em_block()
    }

    /// The parameter values, in declaration order.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// Fills `x` for time `t` and state `y` (coordinates then velocities, or the state).
    pub fn input(&self, t: f64, y: &[f64], x: &mut Vec<f64>) {
        x.clear();
        x.push(t);
        x.extend_from_slice(y);
        x.resize(self.inputs.len() - self.params.len(), 0.0);
        x.extend_from_slice(&self.params);
    }

    /// The number of outputs of a kernel.
    pub fn outputs(&self, name: &str) -> usize {
        let n = self.n;
        match name {
            "row" => 1 + self.n_observes + if self.kind == ModelKind::Energy { n } else { 0 },
            "point" => 4 * n + 5 * n * n,
            "jacobian" => 2 * n * n + 2 * n * n * n + n * n,
            "energy" => 1,
            "gradient" => n,
            "hessian" | "metric" | "mass" => n * n,
            "forcing" => n,
            _ => 0,
        }
    }

    /// Evaluates a named expression kernel at `x` into `out` (sized by
    /// [`Kernels::outputs`]).
    pub fn eval(&self, name: &str, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        match &self.native {
            Some(c) => c.expr(name).unwrap_or_else(|| panic!("kernel `{name}` was not built")).call(x, out),
            None => {
                let p = self
                    .portable
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("kernel `{name}` was not built"));
                p.1.run(x, out, scratch)
            }
        }
    }

    /// Whether the energy model has a metric.
    pub fn has_metric(&self) -> bool {
        self.has_metric
    }

    /// The right-hand side `y' = F(t, y)`: `(v, M⁻¹f)`, or the flow `−g⁻¹∇E`.
    pub fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64], work: &mut Work) -> Result<(), Cause> {
        let n = self.n;
        if let Some(c) = &self.native {
            let f = match self.kind {
                ModelKind::Lagrangian => c.ode_rhs(),
                ModelKind::Energy => c.flow_rhs(),
            }
            .expect("the system was compiled");
            f.call(t, y, &self.params, dy).map_err(|_| Cause::SingularMassMatrix)?;
        } else if let Some(p) = &self.portable_rhs {
            self.input(t, y, &mut work.x);
            work.out.resize(n * n + n, 0.0);
            p.run(&work.x, &mut work.out, &mut work.scratch);
            let (m, f) = work.out.split_at_mut(n * n);
            linalg::solve_spd_or_lu(m, f, n)?;
            dy[..n].copy_from_slice(&y[n..]);
            dy[n..].copy_from_slice(f);
        } else {
            self.input(t, y, &mut work.x);
            work.out.resize(n, 0.0);
            self.eval("gradient", &work.x, &mut work.out[..n], &mut work.scratch);
            for (d, g) in dy.iter_mut().zip(&work.out) {
                *d = -g;
            }
            if self.has_metric {
                work.m.resize(n * n, 0.0);
                self.eval("metric", &work.x, &mut work.m, &mut work.scratch);
                linalg::solve_spd_or_lu(&mut work.m, dy, n).map_err(|_| Cause::Other("singular metric g(θ)".into()))?;
            }
        }
        if dy.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(Cause::NonFinite)
        }
    }

    /// The exact Jacobian `∂F/∂y` of the Lagrangian right-hand side:
    /// `[[0, I], [M⁻¹(∂f/∂q − (∂M/∂q) a), M⁻¹(∂f/∂v − (∂M/∂v) a)]]` with `a = M⁻¹ f`.
    pub fn jacobian(&self, t: f64, y: &[f64], jac: &mut [f64], work: &mut Work) -> Result<(), Cause> {
        let n = self.n;
        let d = 2 * n;
        let mut dy = vec![0.0; d];
        self.rhs(t, y, &mut dy, work)?;
        let acc = &dy[n..];
        self.input(t, y, &mut work.x);
        let mut parts = vec![0.0; self.outputs("jacobian")];
        self.eval("jacobian", &work.x, &mut parts, &mut work.scratch);
        let (df, rest) = parts.split_at(n * d);
        let (dm, m) = rest.split_at(d * n * n);
        let f = linalg::factor(m, n)?;
        jac.fill(0.0);
        for i in 0..n {
            jac[i * d + n + i] = 1.0;
        }
        let mut col = vec![0.0; n];
        for j in 0..d {
            let block = &dm[j * n * n..(j + 1) * n * n];
            for i in 0..n {
                let ma: f64 = (0..n).map(|k| block[i * n + k] * acc[k]).sum();
                col[i] = df[i * d + j] - ma;
            }
            f.solve(&mut col);
            for i in 0..n {
                jac[(n + i) * d + j] = col[i];
            }
        }
        Ok(())
    }

    /// The Lagrangian point at `(q, v, t)`.
    pub fn point(&self, t: f64, q: &[f64], v: &[f64], p: &mut LagrangianPoint, work: &mut Work) -> Result<(), Cause> {
        let n = self.n;
        work.y.clear();
        work.y.extend_from_slice(q);
        work.y.extend_from_slice(v);
        let y = std::mem::take(&mut work.y);
        self.input(t, &y, &mut work.x);
        work.y = y;
        work.out.resize(self.outputs("point"), 0.0);
        self.eval("point", &work.x, &mut work.out, &mut work.scratch);
        if work.out.iter().any(|x| !x.is_finite()) {
            return Err(Cause::NonFinite);
        }
        let mut rest: &[f64] = &work.out;
        for dst in [&mut p.lv, &mut p.lq, &mut p.force] {
            dst.copy_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        for dst in [&mut p.lvv, &mut p.lvq, &mut p.lqq, &mut p.force_v, &mut p.force_q] {
            dst.copy_from_slice(&rest[..n * n]);
            rest = &rest[n * n..];
        }
        p.lvt.copy_from_slice(&rest[..n]);
        Ok(())
    }
}

/// Scratch space for kernel calls, one per caller.
#[derive(Default)]
pub struct Work {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub out: Vec<f64>,
    pub m: Vec<f64>,
    pub scratch: Vec<f64>,
}

fn flatten(m: &[Vec<ExprId>]) -> Vec<ExprId> {
    m.iter().flatten().copied().collect()
}

/// The expressions of every kernel the method may need.
fn expressions(model: &mut Model, eq: &Equations, method: Method) -> Exprs {
    let observes: Vec<ExprId> = model.observes.iter().map(|(_, x)| *x).collect();
    let mut x = Exprs {
        row: vec![],
        point: vec![],
        jacobian: vec![],
        energy: vec![],
        gradient: vec![],
        hessian: vec![],
        metric: vec![],
        mass_and_forcing: vec![],
        mass: vec![],
        forcing: vec![],
    };
    match eq {
        Equations::Lagrangian(e) => {
            x.row = std::iter::once(e.energy).chain(observes).collect();
            x.mass_and_forcing = flatten(&e.mass_matrix);
            x.mass_and_forcing.extend(&e.forcing);
            x.mass = flatten(&e.mass_matrix);
            x.forcing = e.forcing.clone();
            if needs(method, "point") {
                x.point = lagrangian_point(model, e);
            }
            if needs(method, "jacobian") {
                x.jacobian = jacobian_parts(model, e);
            }
        }
        Equations::Energy(e) => {
            // Kernels differentiate the energy as written, not its expanded
            // display form: expansion cancels digits near a minimum.
            let th = model.var_syms();
            let a = &mut model.arena;
            let raw = model.energy.unwrap_or(e.energy);
            x.gradient = th.iter().map(|&s| a.diff(raw, s)).collect();
            if needs(method, "hessian") {
                let g = x.gradient.clone();
                x.hessian = g.iter().flat_map(|&gi| th.iter().map(|&s| a.diff(gi, s)).collect::<Vec<_>>()).collect();
            }
            x.energy = vec![raw];
            x.row = std::iter::once(raw).chain(x.gradient.iter().copied()).chain(observes).collect();
            x.metric = model.metric.as_ref().map(|g| flatten(g)).unwrap_or_default();
        }
    }
    x
}

/// `L_v, L_q, F, L_vv, L_vq, L_qq, F_v, F_q, L_vt`, in the order
/// [`LagrangianPoint`] stores them, with `F = −∂R/∂v + Q`.
fn lagrangian_point(model: &mut Model, e: &LagrangianEquations) -> Vec<ExprId> {
    let q = model.var_syms();
    let v = model.velocity_syms();
    let n = q.len();
    let a = &mut model.arena;
    let lq: Vec<ExprId> = q.iter().map(|&s| a.diff(e.lagrangian, s)).collect();
    let force: Vec<ExprId> = (0..n)
        .map(|i| match e.dissipation {
            Some(r) => {
                let rv = a.diff(r, v[i]);
                a.sub(model.forces[i], rv)
            }
            None => model.forces[i],
        })
        .collect();
    let mut out = e.momenta.clone();
    out.extend(&lq);
    out.extend(&force);
    out.extend(flatten(&e.mass_matrix));
    let mut jac = |rows: &[ExprId], by: &[SymId], out: &mut Vec<ExprId>| {
        for &r in rows {
            for &s in by {
                out.push(a.diff(r, s));
            }
        }
    };
    jac(&e.momenta, &q, &mut out);
    jac(&lq, &q, &mut out);
    jac(&force, &v, &mut out);
    jac(&force, &q, &mut out);
    for &p in &e.momenta {
        out.push(a.diff(p, model.time));
    }
    out
}

/// `∂f_i/∂y_j` (n × 2n, y = (q, v)), then `∂M/∂y_j` for each j, then `M`.
fn jacobian_parts(model: &mut Model, e: &LagrangianEquations) -> Vec<ExprId> {
    let y: Vec<SymId> = model.var_syms().into_iter().chain(model.velocity_syms()).collect();
    let a = &mut model.arena;
    let mut out = Vec::new();
    for &f in &e.forcing {
        for &s in &y {
            out.push(a.diff(f, s));
        }
    }
    for &s in &y {
        for row in &e.mass_matrix {
            for &m in row {
                out.push(a.diff(m, s));
            }
        }
    }
    out.extend(flatten(&e.mass_matrix));
    out
}
