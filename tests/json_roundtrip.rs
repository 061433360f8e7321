//! `derive --format json` for every example: the keys of docs/numerics.md §Command line, and
//! every expression string parses back (with `lagc::parse_expression`) to an
//! expression equal in value to the derived one.

use lagc::sym::{ExprId, SymKind};
use lagc::{Compiled, Equations, Format};
use serde_json::Value;

mod common;
use common::examples;

/// Pairs of (JSON key path, JSON string, derived expression).
fn pairs(c: &mut Compiled, j: &Value) -> Vec<(String, String, ExprId)> {
    // Equations by segments, written out row by row as the JSON has them.
    let rows = match &c.equations {
        Equations::Lagrangian(e) => Some(e.written_out(&mut c.model.arena)),
        Equations::Energy(_) => None,
    };
    let s = |v: &Value| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string();
    let mut out = Vec::new();
    let mut list = |key: &str, v: &Value, ids: &[ExprId]| {
        let a = v.as_array().unwrap_or_else(|| panic!("`{key}` is not an array"));
        assert_eq!(a.len(), ids.len(), "`{key}` has the wrong length");
        for (i, (x, &id)) in a.iter().zip(ids).enumerate() {
            out.push((format!("{key}[{i}]"), s(x), id));
        }
    };
    match &c.equations {
        Equations::Lagrangian(e) => {
            let (momenta, mass_matrix, forcing) = rows.expect("written out");
            list("momenta", &j["momenta"], &momenta);
            list("forcing", &j["forcing"], &forcing);
            for (i, row) in mass_matrix.iter().enumerate() {
                list(&format!("mass_matrix[{i}]"), &j["mass_matrix"][i], row);
            }
            list("lagrangian", &Value::Array(vec![j["lagrangian"].clone()]), &[e.lagrangian]);
            list("energy", &Value::Array(vec![j["energy"].clone()]), &[e.energy]);
            if let Some(r) = e.dissipation {
                list("dissipation", &Value::Array(vec![j["dissipation"].clone()]), &[r]);
            }
        }
        Equations::Energy(e) => {
            list("energy", &Value::Array(vec![j["energy"].clone()]), &[e.energy]);
            list("gradient", &j["gradient"], &e.gradient);
            if let Some(g) = &e.metric {
                for (i, row) in g.iter().enumerate() {
                    list(&format!("metric[{i}]"), &j["metric"][i], row);
                }
            }
            for (i, row) in e.hessian.iter().enumerate() {
                list(&format!("hessian[{i}]"), &j["hessian"][i], row);
            }
            if let Some(f) = &e.flow {
                list("flow", &j["flow"], f);
            }
            if let Some(t) = e.temperature {
                list("temperature", &Value::Array(vec![j["temperature"].clone()]), &[t]);
            }
        }
    }
    for (name, x) in &c.model.observes {
        out.push((format!("observe.{name}"), s(&j["observe"][name]), *x));
    }
    out
}

#[test]
fn json_has_the_documented_keys() {
    for path in examples() {
        let c = lagc::compile_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
        let j: Value = serde_json::from_str(&c.render(Format::Json).expect("printable")).expect("valid JSON");
        let o = j.as_object().expect("one JSON object");
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(o["model"], stem, "{stem}");
        let names: Vec<Value> = c.model.vars.iter().map(|v| Value::from(v.name.clone())).collect();
        let params = o["params"].as_object().expect("params object");
        for p in &c.model.params {
            assert_eq!(params[&p.name].as_f64(), Some(p.value), "{stem}: param {}", p.name);
        }
        match c.model.kind {
            lagc::ModelKind::Lagrangian => {
                assert_eq!(o["kind"], "lagrangian", "{stem}");
                assert_eq!(o["coords"], Value::Array(names), "{stem}");
                for k in ["lagrangian", "momenta", "mass_matrix", "forcing", "energy"] {
                    assert!(o.contains_key(k), "{stem}: no `{k}`");
                }
                assert!(!o.contains_key("state") && !o.contains_key("gradient"), "{stem}");
            }
            lagc::ModelKind::Energy => {
                assert_eq!(o["kind"], "energy", "{stem}");
                assert_eq!(o["state"], Value::Array(names), "{stem}");
                for k in ["energy", "gradient"] {
                    assert!(o.contains_key(k), "{stem}: no `{k}`");
                }
                assert_eq!(o.contains_key("metric"), c.model.metric.is_some(), "{stem}");
                assert_eq!(o.contains_key("temperature"), c.model.temperature.is_some(), "{stem}");
                assert!(!o.contains_key("coords") && !o.contains_key("mass_matrix"), "{stem}");
            }
        }
    }
}

#[test]
fn json_expressions_parse_back_equal() {
    let mut seed = 0x853c49e6748fea9bu64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        0.2 + 0.7 * ((seed >> 11) as f64 / (1u64 << 53) as f64)
    };
    let mut checked = 0;
    for path in examples() {
        let mut c = lagc::compile_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
        let j: Value = serde_json::from_str(&c.render(Format::Json).expect("printable")).expect("valid JSON");
        for (key, text, derived) in pairs(&mut c, &j) {
            let back = lagc::parse_expression(&mut c.model, &text)
                .unwrap_or_else(|d| panic!("{}: {key} = {text:?} does not parse: {}", path.display(), d.message));
            for _ in 0..3 {
                let mut env = c.model.env();
                for (s, sym) in c.model.arena.symbols() {
                    if matches!(sym.kind, SymKind::Coord(_) | SymKind::Velocity(_) | SymKind::State(_) | SymKind::Time)
                    {
                        env.set(s, next());
                    }
                }
                let a = c.model.arena.eval(derived, &env);
                let b = c.model.arena.eval(back, &env);
                // Rounding is measured against the largest node of the derived DAG.
                let nodes = c.model.arena.topo_order(&[derived]);
                let scale = c.model.arena.eval_many(&nodes, &env).iter().fold(1.0f64, |s, v| s.max(v.abs()));
                assert!(
                    a.is_finite() && (a - b).abs() <= 1e-12 * scale,
                    "{}: {key} = {text} reads back as {b}, derived {a}",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} expressions checked");
}
