use super::*;
use crate::integrate::explicit::tests::OscillatorLagrangian;
use std::f64::consts::PI;

fn ends<'a>(t_end: f64, steps: usize, start: &'a [f64], end: &'a [f64]) -> Endpoints<'a> {
    Endpoints { t0: 0.0, t_end, steps, start, end }
}

/// The largest difference between the nodes and `exact(t)`.
fn worst(e: &Endpoints, q: &[f64], exact: impl Fn(f64) -> f64) -> f64 {
    (0..=e.steps).map(|k| (q[k] - exact(e.time(k))).abs()).fold(0.0, f64::max)
}

#[test]
fn oscillator_meets_its_closed_form_at_second_order() {
    // q'' = −q, q(0) = 1, q(2) = 0.5: q = (sin(2 − t) + 0.5 sin t)/sin 2.
    let exact = |t: f64| ((2.0 - t).sin() + 0.5 * t.sin()) / 2f64.sin();
    let velocity = |t: f64| (-(2.0 - t).cos() + 0.5 * t.cos()) / 2f64.sin();
    let mut errors = vec![];
    for steps in [20, 40, 80, 160] {
        let e = ends(2.0, steps, &[1.0], &[0.5]);
        let sol = stationary_action(&mut OscillatorLagrangian { damping: 0.0 }, &e, None).unwrap();
        let dq = worst(&e, &sol.q, exact);
        let dv = worst(&e, &sol.v, velocity);
        eprintln!("N = {steps}: |q − q_exact| {dq:.3e}, |v − v_exact| {dv:.3e}, {} iterations", sol.iterations);
        errors.push((dq, dv));
        // The discrete solution is exactly A cos kφ + B sin kφ with tan(φ/2) = h/2.
        let phi = 2.0 * (e.h() / 2.0).atan();
        let discrete = |k: usize| {
            ((steps - k) as f64 * phi).sin() / (steps as f64 * phi).sin()
                + 0.5 * (k as f64 * phi).sin() / (steps as f64 * phi).sin()
        };
        let off = (0..=steps).map(|k| (sol.q[k] - discrete(k)).abs()).fold(0.0, f64::max);
        assert!(off < 1e-13, "N = {steps}: {off:e} from the discrete closed form");
    }
    for w in errors.windows(2) {
        let (rq, rv) = (w[0].0 / w[1].0, w[0].1 / w[1].1);
        assert!((rq - 4.0).abs() < 0.1, "q error ratio {rq}");
        assert!((rv - 4.0).abs() < 0.2, "v error ratio {rv}");
    }
    // Measured 1.80e-3 and 2.43e-3 at N = 20.
    assert!(errors[0].0 < 2e-3 && errors[0].1 < 3e-3, "{:?}", errors[0]);
}

#[test]
fn damped_oscillator_meets_its_closed_form_at_second_order() {
    // q'' + 0.2 q' + q = 0 (R = 0.1 q'²), q(0) = 1, q(2) = −0.2.
    let w = (1.0 - 0.01_f64).sqrt();
    let b = (-0.2 / (-0.2_f64).exp() - (2.0 * w).cos()) / (2.0 * w).sin();
    let exact = |t: f64| (-0.1 * t).exp() * ((w * t).cos() + b * (w * t).sin());
    let errors: Vec<f64> = [25, 50, 100]
        .iter()
        .map(|&steps| {
            let e = ends(2.0, steps, &[1.0], &[-0.2]);
            let sol = stationary_action(&mut OscillatorLagrangian { damping: 0.2 }, &e, None).unwrap();
            worst(&e, &sol.q, exact)
        })
        .collect();
    eprintln!("damped oscillator errors: {errors:?}");
    assert!(errors[2] < 2e-4, "{errors:?}");
    for w in errors.windows(2) {
        assert!((w[0] / w[1] - 4.0).abs() < 0.15, "{errors:?}");
    }
}

/// A 2-D anharmonic well, `L = ½|v|² − ¼(x⁴ + y⁴) − ½x²y²`.
struct Anharmonic;
impl LagrangianSystem for Anharmonic {
    fn n(&self) -> usize {
        2
    }
    fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
        let (x, y) = (q[0], q[1]);
        out.lv.copy_from_slice(v);
        out.lq.copy_from_slice(&[-x * x * x - x * y * y, -y * y * y - x * x * y]);
        out.lvv.copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
        out.lqq.copy_from_slice(&[-3.0 * x * x - y * y, -2.0 * x * y, -2.0 * x * y, -3.0 * y * y - x * x]);
        Ok(())
    }
}

fn anharmonic_lagrangian(_t: f64, q: &[f64], v: &[f64]) -> f64 {
    let (x, y) = (q[0], q[1]);
    0.5 * (v[0] * v[0] + v[1] * v[1]) - 0.25 * (x.powi(4) + y.powi(4)) - 0.5 * x * x * y * y
}

/// The gradient of the discrete action at the interior nodes by central differences.
fn action_gradient(e: &Endpoints, q: &[f64]) -> Vec<f64> {
    let mut grad = vec![];
    for k in 2..q.len() - 2 {
        let step = 1e-5;
        let (mut up, mut down) = (q.to_vec(), q.to_vec());
        up[k] += step;
        down[k] -= step;
        let f = |x: &[f64]| discrete_action(e, 2, x, anharmonic_lagrangian);
        grad.push((f(&up) - f(&down)) / (2.0 * step));
    }
    grad
}

#[test]
fn the_jacobian_is_the_derivative_of_the_residual() {
    let e = ends(1.5, 6, &[1.0, 0.0], &[0.0, 1.5]);
    let mut q = e.straight_line();
    for (k, x) in q.iter_mut().enumerate() {
        *x += 0.3 * (k as f64 * 1.7).sin();
    }
    let mut asm = Assembly::new(2, 6);
    asm.assemble(&mut Anharmonic, &e, &q, true).unwrap();
    let (jac, m) = (asm.jac.clone(), asm.r.len());
    let mut worst = 0.0_f64;
    for c in 0..m {
        let step = 1e-6;
        let (mut up, mut down) = (q.clone(), q.clone());
        up[2 + c] += step;
        down[2 + c] -= step;
        asm.assemble(&mut Anharmonic, &e, &up, false).unwrap();
        let r_up = asm.r.clone();
        asm.assemble(&mut Anharmonic, &e, &down, false).unwrap();
        for (row, (up, down)) in r_up.iter().zip(&asm.r).enumerate() {
            let fd = (up - down) / (2.0 * step);
            worst = worst.max((fd - jac.get(row, c)).abs());
        }
    }
    assert!(worst < 1e-6, "{worst:e}");
}

#[test]
fn the_discrete_action_is_stationary_at_the_solution() {
    let e = ends(1.0, 60, &[1.0, 0.0], &[0.0, 1.0]);
    let sol = stationary_action(&mut Anharmonic, &e, None).unwrap();
    eprintln!("anharmonic: {} iterations, residual {:e} of scale {:e}", sol.iterations, sol.residual, sol.scale);
    // The residual is the action's gradient: at its rounding floor.
    assert!(sol.residual <= 1e-13 * sol.scale, "{:e}", sol.residual / sol.scale);
    // Central differences of the action itself (truncation about 1e-10·|q'''|): zero at the
    // solution, order one at the straight line.
    let at_solution = action_gradient(&e, &sol.q).iter().fold(0.0_f64, |m, g| m.max(g.abs()));
    let at_line = action_gradient(&e, &e.straight_line()).iter().fold(0.0_f64, |m, g| m.max(g.abs()));
    eprintln!("largest ∂S/∂q: {at_solution:e} at the solution, {at_line:e} on the straight line");
    assert!(at_solution < 1e-9, "{at_solution:e}");
    assert!(at_line > 1e-3, "{at_line:e}");
    // Momenta from either side of every interior node agree, and the velocities solve them.
    for k in 1..e.steps {
        for i in 0..2 {
            let p = sol.p[2 * k + i];
            assert!((p - sol.v[2 * k + i]).abs() < 1e-12, "p = v for L_vv = 1");
        }
    }
}

#[test]
fn conjugate_endpoints_are_refused() {
    // Along q'' = −q every path from t = 0 is refocused at t = π and 2π.
    for t_end in [PI, 2.0 * PI] {
        for steps in [100, 1000] {
            let e = ends(t_end, steps, &[1.0], &[1.0]);
            let err = stationary_action(&mut OscillatorLagrangian { damping: 0.0 }, &e, None).unwrap_err();
            eprintln!("T = {t_end}, N = {steps}: {err}");
            assert!(matches!(err, BoundaryError::Conjugate { .. } | BoundaryError::Singular { .. }), "{err:?}");
        }
    }
    // Away from them the problem is fine, however close to π a fine grid goes.
    for (t_end, steps) in [(0.99 * PI, 100), (1.01 * PI, 100), (0.999 * PI, 1000), (3.0, 50)] {
        let e = ends(t_end, steps, &[1.0], &[1.0]);
        let sol = stationary_action(&mut OscillatorLagrangian { damping: 0.0 }, &e, None);
        assert!(sol.is_ok(), "T = {t_end}, N = {steps}: {sol:?}");
    }
}

#[test]
fn an_exactly_singular_jacobian_is_refused() {
    // At N = 2 the one interior equation of q'' = −q is singular when h = 2: tan(φ/2) = 1.
    let e = ends(4.0, 2, &[1.0], &[1.0]);
    let err = stationary_action(&mut OscillatorLagrangian { damping: 0.0 }, &e, None).unwrap_err();
    assert_eq!(err, BoundaryError::Singular { t: 2.0 });
    assert!(err.to_string().contains("conjugate points"), "{err}");
}

/// `L = ½v² − ½q²` whose point reports `L_vv = 10³`: Newton contracts by about `1 − 10⁻³` per
/// update and cannot converge within its cap.
struct LyingMass;
impl LagrangianSystem for LyingMass {
    fn n(&self) -> usize {
        1
    }
    fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
        out.lv[0] = v[0];
        out.lq[0] = -q[0];
        out.lvv[0] = 1e3;
        out.lqq[0] = -1.0;
        Ok(())
    }
}

#[test]
fn newton_that_does_not_converge_says_its_residual() {
    let e = ends(1.0, 10, &[1.0], &[2.0]);
    let err = stationary_action(&mut LyingMass, &e, Some(&[0.0; 11])).unwrap_err();
    match &err {
        BoundaryError::NoConvergence { iterations, residual, scale, .. } => {
            assert_eq!(*iterations, NEWTON_MAX_ITERATIONS);
            assert!(*residual > 1e-6 * scale, "{err}");
        }
        _ => panic!("{err:?}"),
    }
    assert!(err.to_string().starts_with("Newton's method did not converge in 50 iterations"), "{err}");
}

#[test]
fn a_failing_evaluation_names_time_and_state() {
    struct Wall;
    impl LagrangianSystem for Wall {
        fn n(&self) -> usize {
            1
        }
        fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            if q[0] > 0.5 {
                return Err(Cause::NonFinite);
            }
            out.lv[0] = v[0];
            out.lvv[0] = 1.0;
            Ok(())
        }
    }
    let e = ends(1.0, 4, &[0.0], &[1.0]);
    match stationary_action(&mut Wall, &e, None).unwrap_err() {
        BoundaryError::Failed { t, state, cause } => {
            assert_eq!((t, cause), (0.625, Cause::NonFinite));
            assert_eq!(state, vec![0.625, 1.0]);
        }
        other => panic!("{other:?}"),
    }
}

/// The pendulum `L = ½v² + cos q`.
struct Pendulum;
impl LagrangianSystem for Pendulum {
    fn n(&self) -> usize {
        1
    }
    fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
        out.lv[0] = v[0];
        out.lq[0] = -q[0].sin();
        out.lvv[0] = 1.0;
        out.lqq[0] = -q[0].cos();
        Ok(())
    }
}

#[test]
fn a_fine_grid_still_converges_to_rounding() {
    // The narrow swing of examples/pendulum_bvp.lag, which Newton reaches by damped steps,
    // on a grid 20 times finer: the rounding of v̄ from the positions grows as 1/h, and
    // the residual still reaches rounding level.
    let e = ends(10.0, 20_000, &[0.0], &[1.0]);
    let sol = stationary_action(&mut Pendulum, &e, None).unwrap();
    eprintln!("N = 2·10⁴: {} iterations, residual {:e} of the scale", sol.iterations, sol.residual / sol.scale);
    assert!(sol.iterations > 3, "damped steps: {}", sol.iterations);
    assert!(sol.residual <= 1e-10 * sol.scale, "{:e}", sol.residual / sol.scale);
    // The narrow swing: amplitude 1.45 (docs/numerics.md, examples/pendulum_bvp.lag).
    let amplitude = sol.q.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
    assert!((amplitude - 1.4533).abs() < 1e-3, "{amplitude}");
}
