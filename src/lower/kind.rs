//! The first pass over a file, which collects every declared name and decides whether the model
//! is Lagrangian or an energy model, and the check that a statement belongs to that kind of model.

use super::Lowerer;
use crate::diag::{Diagnostic, Span};
use crate::model::ModelKind;
use crate::syntax::ast::*;

impl Lowerer<'_> {
    pub(super) fn prescan(&mut self, file: &File) {
        let mut main: Option<(&'static str, Span)> = None;
        for s in &file.stmts {
            let names: Vec<&Ident> = match &s.kind {
                StmtKind::Const(n, _) | StmtKind::Observe(n, _) => vec![n],
                StmtKind::Let { name, .. } => vec![name],
                StmtKind::Param(items) => items.iter().map(|(n, _)| n).collect(),
                StmtKind::Coord(ds) | StmtKind::State(ds) => ds.iter().map(|d| &d.name).collect(),
                StmtKind::Data { items, .. } => {
                    items.iter().flat_map(|it| std::iter::once(&it.name).chain(&it.sizes)).collect()
                }
                _ => vec![],
            };
            for n in names {
                self.declared.entry(n.name.clone()).or_insert(n.span);
            }
            let k = match s.kind {
                StmtKind::Lagrangian(_) => "lagrangian",
                StmtKind::Energy(_) => "energy",
                _ => continue,
            };
            match main {
                None => main = Some((k, s.keyword)),
                Some((k0, sp0)) if k0 != k => self.err(
                    Diagnostic::new(s.keyword, "a model has exactly one of `lagrangian` and `energy`")
                        .label(format!("`{k}` here"))
                        .with(sp0, format!("but `{k0}` is already given here"))
                        .help("write mechanics with `lagrangian = …` and gradient flows with `energy = …`, in separate files"),
                ),
                Some(_) => {}
            }
        }
        match main {
            Some((k, sp)) => {
                self.kind = if k == "lagrangian" { ModelKind::Lagrangian } else { ModelKind::Energy };
                self.kind_stmt = Some((k, sp));
            }
            None => {
                let span = file.stmts.first().map(|s| s.keyword).unwrap_or_default();
                self.err(
                    Diagnostic::new(span, "the model has neither `lagrangian` nor `energy`")
                        .label("no `lagrangian = …` or `energy = …` in this file")
                        .help("add `lagrangian = …` for mechanics, or `energy = …` for a gradient flow"),
                );
            }
        }
    }

    /// Reports a statement that does not belong to this kind of model.
    pub(super) fn wrong_kind(&mut self, s: &Stmt, belongs: ModelKind) -> bool {
        if self.kind == belongs {
            return false;
        }
        if let Some((k, sp)) = self.kind_stmt {
            let what = match belongs {
                ModelKind::Lagrangian => "Lagrangian models",
                ModelKind::Energy => "energy models",
            };
            self.err(
                Diagnostic::new(s.keyword, format!("`{}` belongs to {what}", s.keyword_name()))
                    .label(format!("`{}` here", s.keyword_name()))
                    .with(
                        sp,
                        format!(
                            "but `{k}` makes this a{} model",
                            if k == "energy" { "n energy" } else { " Lagrangian" }
                        ),
                    )
                    .help(match self.kind {
                        ModelKind::Lagrangian => {
                            "a Lagrangian model declares `coord`, and may have `dissipation` and `force`"
                        }
                        ModelKind::Energy => {
                            "an energy model declares `state`, and may have `metric` and `temperature`"
                        }
                    }),
            );
        }
        true
    }
}
