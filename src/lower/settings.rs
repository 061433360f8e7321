//! The initial values of `init` statements, constants or distributions, and the settings of
//! `simulate` statements.

use super::{suggest, Lowerer};
use crate::diag::{Diagnostic, Span};
use crate::model::{Init, Method, ModelKind, Settings, Spans};
use crate::sym::ExprId;
use crate::syntax::ast::*;

const SETTINGS: [&str; 12] =
    ["t0", "t_end", "dt", "method", "rtol", "atol", "every", "particles", "seed", "batch", "cells", "bandwidth"];

impl Lowerer<'_> {
    pub(super) fn init_item(&mut self, item: &InitItem, out: &mut Vec<(usize, bool, Init, Span)>) {
        if item.velocity && self.kind == ModelKind::Energy {
            self.err(
                Diagnostic::new(item.target.span, "an energy model has no velocities")
                    .label("`'` here")
                    .help("give only the state: `init x = 1`"),
            );
            return;
        }
        let Some(ks) = self.target_vars(&item.target) else { return };
        for (k, i) in ks {
            let var = match (&item.target.selector, i) {
                (Selector::Each(b), Some(i)) => Some((&b.var, i)),
                _ => None,
            };
            let val = |l: &mut Self, e: &Expr| -> Result<ExprId, ()> {
                match var {
                    Some((v, i)) => l.with_index(v, i, |l| l.constant(e, "an initial value")),
                    None => l.constant(e, "an initial value"),
                }
            };
            let init = match &item.value {
                InitValue::Value(e) => val(self, e).map(Init::Value),
                InitValue::Dist { name, args } => {
                    let kind = name.name.as_str();
                    if kind != "normal" && kind != "uniform" {
                        let mut d = Diagnostic::new(name.span, format!("unknown distribution `{kind}`"))
                            .label("not a distribution");
                        d = d.help(match suggest(kind, ["normal", "uniform"]) {
                            Some(s) => format!("did you mean `{s}`? Distributions: normal(mean, std), uniform(lo, hi)"),
                            None => "distributions: normal(mean, std), uniform(lo, hi)".into(),
                        });
                        self.err(d);
                        return;
                    }
                    if args.len() != 2 {
                        self.err(
                            Diagnostic::new(item.span, format!("`{kind}` takes 2 arguments"))
                                .label(format!("{} given", args.len()))
                                .help(if kind == "normal" { "normal(mean, std)" } else { "uniform(lo, hi)" }),
                        );
                        return;
                    }
                    match (val(self, &args[0]), val(self, &args[1])) {
                        (Ok(a), Ok(b)) if kind == "normal" => Ok(Init::Normal { mean: a, std: b }),
                        (Ok(a), Ok(b)) => Ok(Init::Uniform { lo: a, hi: b }),
                        _ => Err(()),
                    }
                }
            };
            if let Ok(init) = init {
                if let Some(&prev) = self.init_given.get(&(k, item.velocity)) {
                    self.err(
                        Diagnostic::new(item.span, format!("`{}` is given two initial values", self.vars[k].name))
                            .label("given again here")
                            .with(prev, "first given here"),
                    );
                } else {
                    self.init_given.insert((k, item.velocity), item.span);
                    out.push((k, item.velocity, init, item.span));
                }
            }
        }
    }

    pub(super) fn setting(&mut self, it: &Setting, s: &mut Settings, spans: &mut Spans) {
        let key = it.key.name.as_str();
        if key == "method" {
            let name = method_name(&it.value);
            match Method::from_name(&name) {
                Some(m) => {
                    s.method = Some(m);
                    spans.method = Some(it.value.span);
                }
                None => {
                    let all: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                    let mut d = Diagnostic::new(it.value.span, "unknown method").label("not a method");
                    d = d.help(match suggest(&name, all.iter().copied()) {
                        Some(m) => format!("did you mean `{m}`? Methods: {}", all.join(", ")),
                        None => format!("methods: {}", all.join(", ")),
                    });
                    self.err(d);
                }
            }
            return;
        }
        if !SETTINGS.contains(&key) {
            let mut d =
                Diagnostic::new(it.key.span, format!("unknown `simulate` setting `{key}`")).label("not a setting");
            d = d.help(match suggest(key, SETTINGS) {
                Some(k) => format!("did you mean `{k}`? Settings: {}", SETTINGS.join(", ")),
                None => format!("settings: {}", SETTINGS.join(", ")),
            });
            self.err(d);
            return;
        }
        let Ok(x) = self.constant(&it.value, "a `simulate` setting") else { return };
        let v = self.arena.eval(x, &self.env());
        let bad = |l: &mut Self, what: &str| {
            l.err(
                Diagnostic::new(it.value.span, format!("`{key}` must be {what}"))
                    .label(format!("this is {}", crate::sym::fmt_float(v))),
            )
        };
        let int = |l: &mut Self, min: f64| -> Option<u64> {
            if v.fract() == 0.0 && v >= min && v < 1e18 {
                Some(v as u64)
            } else {
                bad(l, &format!("an integer ≥ {min}"));
                None
            }
        };
        match key {
            "t0" | "t_end" if !v.is_finite() => bad(self, "a finite number"),
            "t0" => s.t0 = Some(v),
            "t_end" => s.t_end = Some(v),
            "dt" | "rtol" | "atol" | "bandwidth" if !(v > 0.0 && v.is_finite()) => bad(self, "a positive number"),
            "bandwidth" => s.bandwidth = Some(v),
            "dt" => s.dt = Some(v),
            "rtol" => s.rtol = Some(v),
            "atol" => s.atol = Some(v),
            "every" => s.every = int(self, 1.0),
            "particles" => s.particles = int(self, 1.0),
            "seed" => s.seed = int(self, 0.0),
            "batch" => s.batch = int(self, 1.0),
            "cells" => s.cells = int(self, 2.0),
            _ => {}
        }
    }
}

/// The method a `simulate method = …` names: a name, or two names joined by
/// `-` (`fokker-planck`, which reads as a subtraction); empty for anything else.
fn method_name(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Name(id) => id.name.clone(),
        ExprKind::Binary(BinOp::Sub, a, b) => match (&a.kind, &b.kind) {
            (ExprKind::Name(x), ExprKind::Name(y)) => format!("{}-{}", x.name, y.name),
            _ => String::new(),
        },
        _ => String::new(),
    }
}
