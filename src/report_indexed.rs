//! The equations of a model derived by segments of rows ([`crate::derive::indexed`])
//! as `lagc derive` prints them: one line for a general member `k` of a
//! range and one for each boundary row, as a textbook writes a lattice. JSON
//! keeps the contract's per-coordinate arrays (each row written out) and adds
//! the segments.

use crate::derive::indexed::{Indexed, Segment};
use crate::derive::LagrangianEquations;
use crate::model::Model;
use crate::sym::{latex_name, Arena, ExprId, SymKind};
use serde_json::{json, Map, Value};

/// A segment's row as a name and, for a range, the range of its index:
/// `("u[k]", Some("k in 1..1023"))` or `("u[0]", None)`.
fn label(model: &Model, seg: &Segment) -> (String, Option<(String, i64, i64)>) {
    match seg.index {
        Some((k, base)) => {
            let first = &model.vars[base].name;
            let family = first.split('[').next().unwrap_or(first);
            let index = model.arena.symbol(k).name.clone();
            let (lo, hi) = match model.arena.symbol(k).kind {
                SymKind::Index { lo, hi } => (lo, hi),
                _ => (0, 0),
            };
            (format!("{family}[{index}]"), Some((index, lo, hi)))
        }
        None => (model.vars[seg.rows.start].name.clone(), None),
    }
}

/// A segment's row and, for a range, its index and range, as JSON members.
fn label_json(model: &Model, seg: &Segment) -> Map<String, Value> {
    let (name, range) = label(model, seg);
    let mut m = Map::new();
    m.insert("row".into(), json!(name));
    if let Some((k, lo, hi)) = range {
        m.insert("index".into(), json!(k));
        m.insert("range".into(), json!([lo, hi]));
    }
    m
}

fn show(a: &mut Arena, e: ExprId) -> String {
    super::report::show(a, e)
}

fn show_tex(a: &mut Arena, e: ExprId) -> String {
    let t = a.tidy(e);
    a.to_latex(t)
}

/// The rows of one quantity in text: `  {lhs} = {rhs}` and the range.
fn text_rows(model: &mut Model, segs: &[Segment], lhs: impl Fn(&str) -> String, out: &mut String) {
    for seg in segs {
        let (name, range) = label(model, seg);
        let rhs = show(&mut model.arena, seg.expr);
        let line = format!("  {} = {rhs}", lhs(&name));
        match range {
            Some((k, lo, hi)) => *out += &format!("{line}    for {k} in {lo}..{hi}\n"),
            None if seg.rows.len() > 1 => {
                let last = &model.vars[seg.rows.end - 1].name;
                *out += &format!("{line}    for {name} … {last}\n");
            }
            None => *out += &format!("{line}\n"),
        }
    }
}

/// The Lagrangian part of `lagc derive`'s text for an indexed model.
pub(crate) fn text(model: &mut Model, e: &LagrangianEquations, ix: &Indexed, out: &mut String) {
    *out += "\nmomenta p = ∂L/∂q'\n";
    text_rows(model, &ix.momenta, |n| format!("p[{n}]"), out);
    if ix.diagonal() {
        *out += "\nmass matrix M = ∂²L/∂q'∂q' (diagonal and constant; every other entry is 0)\n";
        text_rows(model, &ix.mass, |n| format!("M[{n}, {n}]"), out);
    } else {
        let b = ix.band();
        *out += &format!(
            "\nmass matrix M = ∂²L/∂q'∂q' (constant and symmetric, {} diagonals; every other entry is 0)\n",
            2 * b + 1
        );
        text_rows(model, &ix.mass, |n| format!("M[{n}, {n}]"), out);
        for (o, seg) in &ix.coupling {
            text_rows(model, std::slice::from_ref(seg), |n| format!("M[{n}, {}]", shifted(n, *o)), out);
        }
    }
    *out += "\nforcing f (M q'' = f)\n";
    text_rows(model, &ix.forcing, |n| format!("f[{n}]"), out);
    *out += "\nequations of motion\n";
    if ix.diagonal() {
        text_rows(model, &ix.acceleration, |n| format!("{n}''"), out);
    } else {
        *out += "  M q'' = f, M factored once per run\n";
    }
    *out += &format!("\nenergy H = q'·p − L\n  H = {}\n", show(&mut model.arena, e.energy));
}

/// The name of the member `o` places after `name`: `u[k]` → `u[k+1]`, `u[3]` → `u[4]`.
fn shifted(name: &str, o: usize) -> String {
    match name.split_once('[') {
        Some((base, sub)) => {
            let sub = sub.trim_end_matches(']');
            match sub.parse::<usize>() {
                Ok(i) => format!("{base}[{}]", i + o),
                Err(_) => format!("{base}[{sub}+{o}]"),
            }
        }
        None => format!("{name}+{o}"),
    }
}

/// The rows of one quantity in LaTeX.
fn latex_rows(
    model: &mut Model,
    segs: &[Segment],
    lhs: impl Fn(&str) -> String,
    acceleration: bool,
    lines: &mut Vec<String>,
) {
    for seg in segs {
        let (name, range) = label(model, seg);
        let rhs = show_tex(&mut model.arena, seg.expr);
        let name = match name.split_once('[') {
            // `\ddot{u}_{k}`, as a symbol's acceleration prints.
            Some((base, sub)) if acceleration => {
                format!("\\ddot{{{}}}_{{{}}}", latex_name(base), sub.trim_end_matches(']'))
            }
            _ => latex_name(&name),
        };
        match range {
            Some((k, lo, hi)) => lines.push(format!("{} &= {rhs}, \\quad {k} = {lo}, \\dots, {}", lhs(&name), hi - 1)),
            None => lines.push(format!("{} &= {rhs}", lhs(&name))),
        }
    }
}

/// The Lagrangian lines of `lagc derive --format latex` for an indexed model.
pub(crate) fn latex(model: &mut Model, e: &LagrangianEquations, ix: &Indexed, lines: &mut Vec<String>) {
    latex_rows(model, &ix.momenta, |n| format!("p_{{{n}}}"), false, lines);
    latex_rows(model, &ix.mass, |n| format!("M_{{{n} {n}}}"), false, lines);
    for (o, seg) in &ix.coupling {
        let (name, range) = label(model, seg);
        let (row, col) = (latex_name(&name), latex_name(&shifted(&name, *o)));
        let rhs = show_tex(&mut model.arena, seg.expr);
        match range {
            Some((k, lo, hi)) => {
                lines.push(format!("M_{{{row} {col}}} &= {rhs}, \\quad {k} = {lo}, \\dots, {}", hi - 1))
            }
            None => lines.push(format!("M_{{{row} {col}}} &= {rhs}")),
        }
    }
    latex_rows(model, &ix.forcing, |n| format!("f_{{{n}}}"), false, lines);
    if ix.diagonal() {
        latex_rows(model, &ix.acceleration, |n| n.to_string(), true, lines);
    }
    lines.push(format!("H &= {}", show_tex(&mut model.arena, e.energy)));
}

/// Every row of `segs` written out.
fn per_row(a: &mut Arena, segs: &[Segment]) -> Vec<ExprId> {
    segs.iter().flat_map(|s| s.rows.clone().map(move |r| (s.clone(), r))).map(|(s, r)| s.at(a, r)).collect()
}

/// The JSON members of an indexed Lagrangian model: the contract's arrays,
/// row by row (the mass matrix with its zeros), and `"segments"`.
pub(crate) fn json(model: &mut Model, ix: &Indexed, o: &mut Map<String, Value>) {
    let n = model.vars.len();
    let labels: Vec<Vec<Value>> = [&ix.momenta, &ix.mass, &ix.forcing, &ix.acceleration]
        .iter()
        .map(|segs| segs.iter().map(|seg| Value::Object(label_json(model, seg))).collect())
        .collect();
    let a = &mut model.arena;
    let momenta = per_row(a, &ix.momenta);
    let mass = per_row(a, &ix.mass);
    let forcing = per_row(a, &ix.forcing);
    o.insert("momenta".into(), momenta.iter().map(|&p| json!(show(a, p))).collect());
    let zero = json!("0");
    let diagonal: Vec<Value> = mass.iter().map(|&m| json!(show(a, m))).collect();
    let mut rows: Vec<Vec<Value>> =
        (0..n).map(|i| (0..n).map(|j| if i == j { diagonal[i].clone() } else { zero.clone() }).collect()).collect();
    for (off, seg) in &ix.coupling {
        for r in seg.rows.clone().filter(|r| r + off < n) {
            let m = seg.at(a, r);
            let m = json!(show(a, m));
            rows[r][r + off] = m.clone();
            rows[r + off][r] = m;
        }
    }
    o.insert("mass_matrix".into(), rows.into_iter().map(Value::from).collect());
    o.insert("forcing".into(), forcing.iter().map(|&f| json!(show(a, f))).collect());
    let mut segments = Map::new();
    let parts = [&ix.momenta, &ix.mass, &ix.forcing, &ix.acceleration];
    for ((key, segs), names) in ["momenta", "mass", "forcing", "acceleration"].iter().zip(parts).zip(labels) {
        let list: Vec<Value> = segs
            .iter()
            .zip(names)
            .map(|(seg, mut l)| {
                if let Value::Object(m) = &mut l {
                    m.insert("expr".into(), json!(show(a, seg.expr)));
                }
                l
            })
            .collect();
        segments.insert((*key).into(), Value::Array(list));
    }
    // The entries above the diagonal of a band `M`: `M[row][row + offset]`.
    let coupling: Vec<Value> = ix
        .coupling
        .iter()
        .map(|(off, seg)| {
            let mut m = label_json(model, seg);
            m.insert("offset".into(), json!(off));
            m.insert("expr".into(), json!(show(&mut model.arena, seg.expr)));
            Value::Object(m)
        })
        .collect();
    if !coupling.is_empty() {
        segments.insert("mass_coupling".into(), Value::Array(coupling));
    }
    o.insert("segments".into(), Value::Object(segments));
}
