//! Derived equations as readable text, LaTeX and JSON (docs/numerics.md §Command line).
//!
//! Text and JSON expressions are in `.lag` syntax and parse back with
//! [`crate::parse_expression`]; they are tidied for reading
//! ([`Arena::tidy`]) but always equal to the derived expressions.

use crate::derive::{EnergyEquations, Equations, LagrangianEquations};
use crate::model::{Model, ModelKind};
use crate::sym::{latex_name, Arena, ExprId, SymKind};
use serde_json::{json, Map, Value};

/// Output formats of `lagc derive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Latex,
    Json,
}

/// The most expression nodes [`render`] writes out. Equations are stored as
/// a DAG, where a subexpression used many times is kept once, but every
/// format prints them as trees; past this limit they are refused rather than
/// printed (about 10 MB of text).
pub const PRINT_LIMIT: u64 = 2_000_000;

/// Equations too large to print (see [`PRINT_LIMIT`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the derived equations are too large to print: {} expression nodes written out in full \
     ({} when shared subexpressions are kept once), beyond the limit of {}",
    grouped(*printed), grouped(*shared as u64), grouped(PRINT_LIMIT)
)]
pub struct TooLarge {
    /// Nodes of the equations as trees (saturated at `u64::MAX`).
    pub printed: u64,
    /// Distinct nodes of the equations.
    pub shared: usize,
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl TooLarge {
    /// What to do instead.
    pub fn help(&self) -> &'static str {
        "`lagc run` compiles the shared form and never writes it out; to read the equations, \
         derive a smaller instance of the model (fewer coordinates, or `--set` a smaller const)"
    }
}

/// Renders the equations in the given format, or refuses equations that
/// would print larger than [`PRINT_LIMIT`].
pub fn render(model: &mut Model, eq: &Equations, format: Format) -> Result<String, TooLarge> {
    let roots = printed_roots(model, eq);
    let mut printed = model.arena.tree_size(&roots);
    if let (Equations::Lagrangian(e), Format::Json) = (eq, format) {
        if e.indexed.is_some() {
            // The contract's mass matrix is written whole, zeros included.
            printed = printed.saturating_add((model.vars.len() as u64).saturating_mul(model.vars.len() as u64));
        }
    }
    if printed > PRINT_LIMIT {
        return Err(TooLarge { printed, shared: model.arena.dag_size(&roots) });
    }
    Ok(match format {
        Format::Text => text(model, eq),
        Format::Latex => latex(model, eq),
        Format::Json => serde_json::to_string_pretty(&to_json(model, eq)).expect("JSON of strings") + "\n",
    })
}

/// Every expression a format prints (the forcing once, although text prints
/// it twice).
fn printed_roots(model: &Model, eq: &Equations) -> Vec<ExprId> {
    let mut roots: Vec<ExprId> = model.forces.clone();
    roots.extend(model.observes.iter().map(|(_, x)| *x));
    match eq {
        Equations::Lagrangian(e) => {
            roots.push(e.lagrangian);
            roots.extend(e.dissipation);
            roots.extend(&e.momenta);
            roots.extend(e.mass_matrix.iter().flatten());
            roots.extend(&e.forcing);
            roots.push(e.energy);
            if let Some(ix) = &e.indexed {
                let segs = [&ix.momenta, &ix.mass, &ix.forcing, &ix.acceleration];
                roots.extend(segs.iter().flat_map(|s| s.iter().map(|g| g.expr)));
            }
        }
        Equations::Energy(e) => {
            roots.push(e.energy);
            roots.extend(&e.gradient);
            roots.extend(e.hessian.iter().flatten());
            roots.extend(e.metric.iter().flatten().flatten());
            roots.extend(e.flow.iter().flatten());
            roots.extend(e.temperature);
            roots.extend(e.kernel.pair);
            roots.extend(e.kernel.pair_gradient.iter().flatten());
        }
    }
    roots
}

/// The `.lag` text of `e` as `lagc derive` prints it: tidied for reading.
pub(crate) fn show(a: &mut Arena, e: ExprId) -> String {
    let t = a.tidy(e);
    a.to_text(t)
}

fn show_tex(a: &mut Arena, e: ExprId) -> String {
    let t = a.tidy(e);
    a.to_latex(t)
}

/// `Σ_j M_ij q_j''` as an expression with acceleration symbols, for printing
/// the equations the way a textbook writes them.
fn inertia_side(model: &mut Model, eq: &LagrangianEquations, i: usize) -> ExprId {
    let accs: Vec<_> = model.vars.iter().map(|v| v.acceleration.expect("coordinate acceleration")).collect();
    let a = &mut model.arena;
    let nonzero: Vec<usize> = (0..accs.len()).filter(|&j| !a.is_zero(eq.mass_matrix[i][j])).collect();
    let terms: Vec<ExprId> = nonzero
        .into_iter()
        .map(|j| {
            let m = a.tidy(eq.mass_matrix[i][j]);
            let q = a.sym(accs[j]);
            if a.is_one(m) {
                q
            } else {
                a.mul_raw(&[m, q])
            }
        })
        .collect();
    a.add_raw(&terms)
}

fn text(model: &mut Model, eq: &Equations) -> String {
    let mut out = String::new();
    let names: Vec<String> = model.vars.iter().map(|v| v.name.clone()).collect();
    let n = names.len();
    match eq {
        Equations::Lagrangian(e) => {
            out += &format!("model {} (Lagrangian, {} coordinate{})\n\n", model.name, n, plural(n));
            let a = &mut model.arena;
            out += &format!("L = {}\n", show(a, e.lagrangian));
            if let Some(r) = e.dissipation {
                out += &format!("R = {}\n", show(a, r));
            }
            for (i, f) in model.forces.clone().iter().enumerate() {
                if !a.is_zero(*f) {
                    out += &format!("Q[{}] = {}\n", names[i], show(a, *f));
                }
            }
            if let Some(ix) = &e.indexed {
                crate::report_indexed::text(model, e, ix, &mut out);
                return text_observes(model, out);
            }
            out += "\nmomenta p = ∂L/∂q'\n";
            for (i, p) in e.momenta.iter().enumerate() {
                out += &format!("  p[{}] = {}\n", names[i], show(a, *p));
            }
            out += "\nmass matrix M = ∂²L/∂q'∂q'\n";
            for i in 0..n {
                for j in i..n {
                    out += &format!("  M[{}, {}] = {}\n", names[i], names[j], show(a, e.mass_matrix[i][j]));
                }
            }
            out += "\nforcing f (M q'' = f)\n";
            for (i, f) in e.forcing.iter().enumerate() {
                out += &format!("  f[{}] = {}\n", names[i], show(a, *f));
            }
            out += "\nequations of motion\n";
            for i in 0..n {
                let lhs = inertia_side(model, e, i);
                let a = &mut model.arena;
                out += &format!("  {} = {}\n", a.to_text(lhs), show(a, e.forcing[i]));
            }
            out += &format!("\nenergy H = q'·p − L\n  H = {}\n", show(&mut model.arena, e.energy));
            if let (Some(t), Some(g)) = (e.temperature, &e.friction) {
                out += &format!("\ntemperature T = {}\n", temperature(model, t, Format::Text));
                out += "friction Γ = ∂²R/∂q'∂q'\n";
                let a = &mut model.arena;
                for i in 0..n {
                    for j in i..n {
                        out += &format!("  Γ[{}, {}] = {}\n", names[i], names[j], show(a, g[i][j]));
                    }
                }
                out += "\nLangevin dynamics M q'' = f + √(2T) Γ^(1/2) ξ(t)   (f holds −Γ q'; stationary density ∝ exp(−H/T))\n";
            }
        }
        Equations::Energy(e) => {
            out += &format!("model {} (energy, {} state variable{})\n\n", model.name, n, plural(n));
            let a = &mut model.arena;
            out += &format!("E = {}\n", show(a, e.energy));
            if let Some(t) = e.temperature {
                out += &format!("T = {}\n", temperature(model, t, Format::Text));
            }
            let a = &mut model.arena;
            out += "\ngradient ∇E\n";
            for (i, g) in e.gradient.iter().enumerate() {
                out += &format!("  ∂E/∂{} = {}\n", names[i], show(a, *g));
            }
            out += "\nHessian ∇²E\n";
            for i in 0..n {
                for j in i..n {
                    out += &format!("  H[{}, {}] = {}\n", names[i], names[j], show(a, e.hessian[i][j]));
                }
            }
            if let Some(g) = &e.metric {
                out += "\nmetric g\n";
                for i in 0..n {
                    for j in i..n {
                        out += &format!("  g[{}, {}] = {}\n", names[i], names[j], show(a, g[i][j]));
                    }
                }
            }
            match (&e.flow, e.temperature.is_some()) {
                (Some(flow), _) => {
                    out += if e.metric.is_some() { "\nflow θ' = −g⁻¹∇E\n" } else { "\nflow θ' = −∇E\n" };
                    for (i, f) in flow.iter().enumerate() {
                        out += &format!("  {}' = {}\n", names[i], show(a, *f));
                    }
                }
                (None, _) => out += "\nflow θ' = −g⁻¹∇E (g solved numerically in the kernel)\n",
            }
            match (&e.divergence, e.temperature.is_some()) {
                (Some(div), _) => {
                    out += "\ndivergence of the inverse metric (∇·g⁻¹)_i = Σ_j ∂(g⁻¹)_ij/∂θ_j\n";
                    for (i, d) in div.iter().enumerate() {
                        out += &format!("  (∇·g⁻¹)[{}] = {}\n", names[i], show(a, *d));
                    }
                    out += "\nRiemannian Langevin dynamics dθ = (−g⁻¹∇E + T ∇·g⁻¹) dt + √(2T) g^(−1/2) dW\n";
                }
                (None, true) => out += "\nLangevin dynamics dθ = −g⁻¹∇E dt + √(2T) g^(−1/2) dW\n",
                (None, false) => {}
            }
            if let (Some(w), Some(dw)) = (e.kernel.pair, &e.kernel.pair_gradient) {
                out += &format!("\ninteraction W(θ, θ~) = {}\n", show(a, w));
                for (i, d) in dw.iter().enumerate() {
                    let d = a.simplify(*d);
                    out += &format!("  ∂W/∂{} = {}\n", names[i], show(a, d));
                }
                out += "particles dθ_i = (−∇E(θ_i) − (1/N) Σ_j ∇₁W(θ_i, θ_j)) dt + √(2T) dW_i\n";
            }
        }
    }
    text_observes(model, out)
}

fn text_observes(model: &mut Model, mut out: String) -> String {
    if !model.observes.is_empty() {
        out += "\nobserved\n";
        for (name, x) in model.observes.clone() {
            out += &format!("  {} = {}\n", name, show(&mut model.arena, x));
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The derived equations as one LaTeX `align*` environment: everything the
/// text form prints (docs/language.md §What lagc derives), with matrices as
/// [`tex_matrix`] and vectors as one-column matrices.
fn latex(model: &mut Model, eq: &Equations) -> String {
    let tex_names: Vec<String> = model.vars.iter().map(|v| latex_name(&v.name)).collect();
    let n = tex_names.len();
    let mut lines: Vec<String> = Vec::new();
    match eq {
        Equations::Lagrangian(e) => {
            let a = &mut model.arena;
            lines.push(format!("L &= {}", show_tex(a, e.lagrangian)));
            if let Some(r) = e.dissipation {
                lines.push(format!("R &= {}", show_tex(a, r)));
            }
            for (i, f) in model.forces.iter().enumerate() {
                if !a.is_zero(*f) {
                    lines.push(format!("Q_{{{}}} &= {}", tex_names[i], show_tex(a, *f)));
                }
            }
            if let Some(ix) = &e.indexed {
                crate::report_indexed::latex(model, e, ix, &mut lines);
                return finish_latex(model, lines);
            }
            for (i, p) in e.momenta.iter().enumerate() {
                lines.push(format!("p_{{{}}} &= {}", tex_names[i], show_tex(a, *p)));
            }
            let m: Vec<Vec<String>> =
                e.mass_matrix.iter().map(|row| row.iter().map(|&x| show_tex(a, x)).collect()).collect();
            lines.push(format!("M &= {}", tex_matrix(&m)));
            let f: Vec<Vec<String>> = e.forcing.iter().map(|&x| vec![show_tex(a, x)]).collect();
            lines.push(format!("f &= {}", tex_matrix(&f)));
            for i in 0..n {
                let lhs = inertia_side(model, e, i);
                let a = &mut model.arena;
                lines.push(format!("{} &= {}", a.to_latex(lhs), show_tex(a, e.forcing[i])));
            }
            lines.push(format!("H &= {}", show_tex(&mut model.arena, e.energy)));
            if let (Some(t), Some(g)) = (e.temperature, &e.friction) {
                lines.push(format!("T &= {}", temperature(model, t, Format::Latex)));
                let a = &mut model.arena;
                let g: Vec<Vec<String>> = g.iter().map(|row| row.iter().map(|&x| show_tex(a, x)).collect()).collect();
                lines.push(format!("\\Gamma &= {}", tex_matrix(&g)));
                lines.push("M \\ddot{q} &= f + \\sqrt{2T} \\, \\Gamma^{1/2} \\, \\xi(t)".to_string());
            }
        }
        Equations::Energy(e) => {
            lines.push(format!("E &= {}", show_tex(&mut model.arena, e.energy)));
            if let Some(t) = e.temperature {
                lines.push(format!("T &= {}", temperature(model, t, Format::Latex)));
            }
            let a = &mut model.arena;
            for (i, g) in e.gradient.iter().enumerate() {
                lines.push(format!("\\frac{{\\partial E}}{{\\partial {}}} &= {}", tex_names[i], show_tex(a, *g)));
            }
            let h: Vec<Vec<String>> =
                e.hessian.iter().map(|row| row.iter().map(|&x| show_tex(a, x)).collect()).collect();
            lines.push(format!("\\nabla^2 E &= {}", tex_matrix(&h)));
            if let Some(g) = &e.metric {
                let g: Vec<Vec<String>> = g.iter().map(|row| row.iter().map(|&x| show_tex(a, x)).collect()).collect();
                lines.push(format!("g &= {}", tex_matrix(&g)));
            }
            match &e.flow {
                Some(flow) => {
                    for (i, f) in flow.iter().enumerate() {
                        lines.push(format!("\\dot{{{}}} &= {}", tex_names[i], show_tex(a, *f)));
                    }
                }
                None => {
                    let state: Vec<Vec<String>> = tex_names.iter().map(|x| vec![format!("\\dot{{{x}}}")]).collect();
                    lines.push(format!("{} &= -g^{{-1}} \\nabla E", tex_matrix(&state)));
                }
            }
            if let Some(div) = &e.divergence {
                let d: Vec<Vec<String>> = div.iter().map(|&x| vec![show_tex(a, x)]).collect();
                lines.push(format!("\\nabla \\cdot g^{{-1}} &= {}", tex_matrix(&d)));
                lines.push(
                    "d\\theta &= \\left(-g^{-1} \\nabla E + T \\, \\nabla \\cdot g^{-1}\\right) dt + \\sqrt{2T} \\, g^{-1/2} \\, dW"
                        .to_string(),
                );
            } else if e.temperature.is_some() {
                let g = if e.metric.is_some() { ("g^{-1} ", " \\, g^{-1/2}") } else { ("", "") };
                lines.push(format!("d\\theta &= -{}\\nabla E \\, dt + \\sqrt{{2T}}{} \\, dW", g.0, g.1));
            }
        }
    }
    finish_latex(model, lines)
}

/// The observes after `lines`, all in one `align*`.
fn finish_latex(model: &mut Model, mut lines: Vec<String>) -> String {
    for (name, x) in model.observes.clone() {
        let a = &mut model.arena;
        // Marked, since an observe may share its name with a derived
        // quantity (an observe `f` beside the forcing `f`).
        lines.push(format!("{} &= {} \\quad \\text{{(observed)}}", latex_name(&name), show_tex(a, x)));
    }
    format!("\\begin{{align*}}\n{}\n\\end{{align*}}\n", lines.join(" \\\\\n"))
}

/// A matrix, or with one column a column vector, in LaTeX: `pmatrix` up to
/// ten columns (amsmath's default `MaxMatrixCols`), an `array` in
/// parentheses beyond; a 1 × 1 matrix is its entry.
fn tex_matrix(rows: &[Vec<String>]) -> String {
    if let [row] = rows {
        if let [x] = row.as_slice() {
            return x.clone(); // one coordinate: a number, not a 1 × 1 matrix
        }
    }
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let body = rows.iter().map(|r| r.join(" & ")).collect::<Vec<_>>().join(" \\\\ ");
    if cols <= 10 {
        format!("\\begin{{pmatrix}} {body} \\end{{pmatrix}}")
    } else {
        format!("\\left(\\begin{{array}}{{{}}} {body} \\end{{array}}\\right)", "c".repeat(cols))
    }
}

/// The right-hand side of the temperature's line: its expression and, when
/// that is made of parameters alone, its value (`T = kT = 0.5`). A
/// temperature that is a parameter named `T` prints as its value, never as
/// `T = T`.
fn temperature(model: &mut Model, t: ExprId, format: Format) -> String {
    let a = &mut model.arena;
    let expr = if format == Format::Latex { show_tex(a, t) } else { show(a, t) };
    if a.as_num(t).is_some() || a.depends(t, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi)) {
        return expr;
    }
    let value = model.arena.eval(t, &model.env());
    let v = model.arena.float(value);
    let value = if format == Format::Latex { model.arena.to_latex(v) } else { model.arena.to_text(v) };
    if expr == "T" {
        value
    } else {
        format!("{expr} = {value}")
    }
}

/// The JSON object of docs/numerics.md §Command line.
pub fn to_json(model: &mut Model, eq: &Equations) -> Value {
    let mut o = Map::new();
    o.insert("model".into(), json!(model.name));
    o.insert("kind".into(), json!(model.kind.to_string()));
    let names: Vec<String> = model.vars.iter().map(|v| v.name.clone()).collect();
    o.insert(if model.kind == ModelKind::Lagrangian { "coords" } else { "state" }.into(), json!(names));
    let mut params = Map::new();
    for p in &model.params {
        params.insert(p.name.clone(), number(p.value));
    }
    o.insert("params".into(), Value::Object(params));
    let a = &mut model.arena;
    let mut s = |e: ExprId| json!(show(a, e));
    match eq {
        Equations::Lagrangian(LagrangianEquations {
            lagrangian,
            dissipation,
            momenta,
            mass_matrix,
            forcing,
            energy,
            temperature,
            friction,
            indexed,
            ..
        }) => {
            o.insert("lagrangian".into(), s(*lagrangian));
            if let Some(r) = dissipation {
                o.insert("dissipation".into(), s(*r));
            }
            if let Some(ix) = &indexed {
                o.insert("energy".into(), s(*energy));
                crate::report_indexed::json(model, ix, &mut o);
                let a = &mut model.arena;
                let obs: Map<String, Value> =
                    model.observes.iter().map(|(n, x)| (n.clone(), json!(show(a, *x)))).collect();
                if !obs.is_empty() {
                    o.insert("observe".into(), Value::Object(obs));
                }
                return Value::Object(o);
            }
            o.insert("momenta".into(), momenta.iter().map(|&p| s(p)).collect());
            o.insert(
                "mass_matrix".into(),
                mass_matrix.iter().map(|row| row.iter().map(|&m| s(m)).collect::<Value>()).collect(),
            );
            o.insert("forcing".into(), forcing.iter().map(|&f| s(f)).collect());
            o.insert("energy".into(), s(*energy));
            if let (Some(t), Some(g)) = (temperature, friction) {
                o.insert("temperature".into(), s(*t));
                o.insert("friction".into(), g.iter().map(|row| row.iter().map(|&x| s(x)).collect::<Value>()).collect());
            }
        }
        Equations::Energy(EnergyEquations {
            energy, gradient, hessian, metric, flow, temperature, divergence, ..
        }) => {
            o.insert("energy".into(), s(*energy));
            o.insert("gradient".into(), gradient.iter().map(|&g| s(g)).collect());
            o.insert(
                "hessian".into(),
                hessian.iter().map(|row| row.iter().map(|&h| s(h)).collect::<Value>()).collect(),
            );
            if let Some(g) = metric {
                o.insert("metric".into(), g.iter().map(|row| row.iter().map(|&x| s(x)).collect::<Value>()).collect());
            }
            if let Some(f) = flow {
                o.insert("flow".into(), f.iter().map(|&x| s(x)).collect());
            }
            if let Some(t) = temperature {
                o.insert("temperature".into(), s(*t));
            }
            if let Some(d) = divergence {
                o.insert("metric_divergence".into(), d.iter().map(|&x| s(x)).collect());
            }
        }
    }
    let obs: Map<String, Value> = model.observes.iter().map(|(n, x)| (n.clone(), s(*x))).collect();
    if !obs.is_empty() {
        o.insert("observe".into(), Value::Object(obs));
    }
    Value::Object(o)
}

/// A JSON number, integral values without a fraction.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_are_grouped_in_threes() {
        assert_eq!(super::grouped(0), "0");
        assert_eq!(super::grouped(999), "999");
        assert_eq!(super::grouped(1000), "1,000");
        assert_eq!(super::grouped(4_194_080), "4,194,080");
    }
}
