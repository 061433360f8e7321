//! The derivatives of an energy model's metric that its geodesic Lagrangian
//! `L = ½ v·g(θ) v` needs (docs/numerics.md § Geodesics): `∂g_ij/∂θ_k` for
//! `L_q` and `L_vq`, and `∂²g_ij/∂θ_k∂θ_l` for `L_qq`, derived symbolically
//! from the metric as written, so that the discrete action's gradient is exact.

use super::Equations;
use crate::diag::Diagnostic;
use crate::model::Model;
use crate::sym::ExprId;

/// The most entries the metric's derivatives may have (`n³ + n⁴`): 10⁷,
/// as [`super::MAX_JACOBIAN_ENTRIES`].
pub const MAX_METRIC_DERIVATIVES: usize = 10_000_000;

/// Derives `∂g/∂θ` (`n × n²`, `k`-major: entry `k n² + i n + j`) and
/// `∂²g/∂θ∂θ` (`n² × n²`: entry `(k n + l) n² + i n + j`) of an energy
/// model's metric and keeps them, in that order, in `eq`
/// (`EnergyEquations::metric_derivatives`). Nothing to do without a metric or
/// for a Lagrangian model; refused, with the size, when the tables would be too large.
pub fn metric_derivatives(model: &mut Model, eq: &mut Equations) -> Result<(), Diagnostic> {
    let Equations::Energy(e) = eq else { return Ok(()) };
    let Some(metric) = e.kernel.metric.clone() else { return Ok(()) };
    let theta = model.var_syms();
    let n = theta.len();
    let entries = n.saturating_pow(3).saturating_add(n.saturating_pow(4));
    if entries > MAX_METRIC_DERIVATIVES {
        return Err(Diagnostic::new(model.spans.main, format!("the geodesic of {n} state variables is too large"))
            .label(format!(
                "the metric's first and second derivatives would have {entries} entries, more than {MAX_METRIC_DERIVATIVES}"
            ))
            .help("solve the geodesic of a smaller instance of the model (fewer state variables)"));
    }
    let a = &mut model.arena;
    let first: Vec<ExprId> =
        theta.iter().flat_map(|&k| metric.iter().map(|&g| a.diff(g, k)).collect::<Vec<_>>()).collect();
    let nn = n * n;
    let mut second = Vec::with_capacity(nn * nn);
    for k in 0..n {
        for &l in &theta {
            for &d in &first[k * nn..(k + 1) * nn] {
                second.push(a.diff(d, l));
            }
        }
    }
    if a.overflowed() {
        return Err(Diagnostic::new(model.spans.main, "the metric's derivatives grew too large")
            .label(format!("they need more than {} expression nodes", crate::sym::MAX_NODES))
            .help("solve the geodesic of a smaller instance of the model"));
    }
    e.metric_derivatives = Some(first.into_iter().chain(second).collect());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `g = diag(1/σ², 2/σ²)` on `(μ, σ)`: `∂g/∂σ = diag(−2/σ³, −4/σ³)`,
    /// `∂²g/∂σ² = diag(6/σ⁴, 12/σ⁴)`, and nothing by `μ`.
    #[test]
    fn the_fisher_metric_s_derivatives() {
        let src = "state mu, sigma\nenergy = mu^2 + sigma^2\nmetric = diag(1/sigma^2, 2/sigma^2)\n";
        let mut c = crate::compile_for(src, "fisher", &[], Some(crate::Method::Euler)).unwrap();
        metric_derivatives(&mut c.model, &mut c.equations).unwrap();
        let Equations::Energy(e) = &c.equations else { panic!("an energy model") };
        let table = e.metric_derivatives.clone().expect("derived");
        assert_eq!(table.len(), 8 + 16);
        let s: f64 = 0.7;
        let mut env = c.model.env();
        env.set(c.model.var_syms()[0], 0.3);
        env.set(c.model.var_syms()[1], s);
        let values: Vec<f64> = table.iter().map(|&x| c.model.arena.eval(x, &env)).collect();
        let mut expected = vec![0.0; 24];
        expected[4] = -2.0 / s.powi(3);
        expected[7] = -4.0 / s.powi(3);
        expected[8 + 12] = 6.0 / s.powi(4);
        expected[8 + 15] = 12.0 / s.powi(4);
        for (i, (v, x)) in values.iter().zip(&expected).enumerate() {
            assert!((v - x).abs() <= 1e-14 * x.abs().max(1.0), "entry {i}: {v} against {x}");
        }
    }
}
