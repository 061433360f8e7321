//! Name resolution: what each name in scope stands for, declaring names, binding index
//! variables, and reporting unknown names with a "did you mean" suggestion.

use super::Lowerer;
use crate::diag::Diagnostic;
use crate::sym::{ExprId, SymId};
use crate::syntax::ast::*;

#[derive(Clone, Debug)]
pub(super) enum Entry {
    Const(i64),
    Param(SymId),
    Var(usize),
    /// A family of variables: the variables' indices (shared: an entry is cloned per use).
    Family(std::rc::Rc<[usize]>),
    Let(ExprId),
    /// A `let` family over `lo..hi`; `items` holds its members, or is empty
    /// when they are lowered as used (see `Lowerer::let_member`).
    LetFamily {
        lo: i64,
        hi: i64,
        items: std::rc::Rc<[ExprId]>,
    },
    Index(i64),
    /// The index of a sum being kept as a loop, plus an offset.
    Rolled {
        sym: SymId,
        offset: i64,
    },
    /// A family bound to a data table (`cols` for `X[M, F]`).
    Data {
        table: u32,
        rows: i64,
        cols: Option<i64>,
    },
    Observe,
    /// A name whose declaration had an error: uses of it report nothing more.
    Poisoned,
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if it is close enough to be a typo.
pub fn suggest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= (name.chars().count().max(c.chars().count()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

/// Letters of other scripts that look like Latin ones (the first string), and
/// the Latin letter each is mistaken for (the same place in the second): the
/// common Cyrillic and Greek lookalikes among the confusables of Unicode TR39
/// (docs/language.md §Layout and lexical rules).
const LOOKALIKES: [(&str, &str); 2] = [
    ("аеорсухіјѕԁһӏԛԝАВЕКМНОРСТХУІЈЅ", "aeopcyxijsdhlqwABEKMHOPCTXYIJS"),
    ("αονριυχϲΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "aovpiuxcABEZHIKMNOPTYX"),
];

/// The Latin letter that `c` looks like, if it is a lookalike.
fn latin_of(c: char) -> Option<char> {
    LOOKALIKES.iter().find_map(|(from, to)| from.chars().position(|k| k == c).and_then(|i| to.chars().nth(i)))
}

/// `name` with every lookalike letter replaced by the Latin letter it looks
/// like: two names with one skeleton read the same on screen.
pub(super) fn skeleton(name: &str) -> String {
    name.chars().map(|c| latin_of(c).unwrap_or(c)).collect()
}

/// The lookalike letters of `name`, as `х (U+0445)`.
fn lookalikes_in(name: &str) -> String {
    let found: Vec<String> =
        name.chars().filter(|&c| latin_of(c).is_some()).map(|c| format!("`{c}` (U+{:04X})", c as u32)).collect();
    found.join(", ")
}

impl Lowerer<'_> {
    /// Warnings for declared names that look alike but differ, such as a
    /// Cyrillic `х` beside a Latin `x`: each names both declarations.
    pub(super) fn confusables(&self) -> Vec<crate::diag::Diagnostic> {
        let mut names: Vec<(&String, crate::diag::Span)> = self.declared.iter().map(|(n, s)| (n, *s)).collect();
        names.sort_by_key(|(_, s)| s.start);
        let mut out = vec![];
        for (k, (b, sb)) in names.iter().enumerate() {
            let Some((a, sa)) = names[..k].iter().find(|(a, _)| skeleton(a) == skeleton(b)) else { continue };
            let which = if lookalikes_in(b).is_empty() { lookalikes_in(a) } else { lookalikes_in(b) };
            out.push(
                Diagnostic::new(*sb, format!("`{b}` looks like `{a}` but is another name"))
                    .label("declared here")
                    .with(*sa, format!("`{a}` declared here"))
                    .help(format!("{which} is not a Latin letter, though it looks like one; rename one of them if they are meant to differ, or retype it")),
            );
        }
        out
    }

    pub(super) fn declare(&mut self, id: &Ident, entry: Entry) {
        if id.name == "t" || id.name == "pi" {
            self.err(
                Diagnostic::new(id.span, format!("`{}` is reserved", id.name))
                    .label(if id.name == "t" { "`t` is time" } else { "`pi` is the constant π" })
                    .help("choose another name"),
            );
            return;
        }
        if let Some((_, prev)) = self.scope.get(&id.name) {
            let prev = *prev;
            self.err(
                Diagnostic::new(id.span, format!("`{}` is declared twice", id.name))
                    .label("declared again here")
                    .with(prev, "first declared here")
                    .help("rename one of them"),
            );
            return;
        }
        self.scope.insert(id.name.clone(), (entry, id.span));
    }

    pub(super) fn var_names(&self) -> Vec<String> {
        self.scope
            .iter()
            .filter(|(_, (e, _))| matches!(e, Entry::Var(_) | Entry::Family(_)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Lowers `e` with the index variable `var` bound to `i`.
    pub(super) fn with_index<T>(&mut self, var: &Ident, i: i64, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.scope.insert(var.name.clone(), (Entry::Index(i), var.span));
        let out = f(self);
        match saved {
            Some(s) => self.scope.insert(var.name.clone(), s),
            None => self.scope.remove(&var.name),
        };
        out
    }

    pub(super) fn unknown(&mut self, id: &Ident) {
        if let Some(sp) = self.declared.get(&id.name) {
            if sp.start > id.span.start {
                let sp = *sp;
                self.err(
                    Diagnostic::new(id.span, format!("`{}` is used before its declaration", id.name))
                        .label("used here")
                        .with(sp, "declared later here")
                        .help("statements are read in order; move the declaration above this line"),
                );
                return;
            }
        }
        let names: Vec<String> = self.scope.keys().cloned().chain(["t".into(), "pi".into()]).collect();
        let mut d = Diagnostic::new(id.span, format!("unknown name `{}`", id.name)).label("not declared");
        let shape = skeleton(&id.name);
        if let Some(s) = names.iter().find(|n| skeleton(n) == shape) {
            let which = if lookalikes_in(&id.name).is_empty() { lookalikes_in(s) } else { lookalikes_in(&id.name) };
            d = d.help(format!("did you mean `{s}`? {which} is not a Latin letter, though it looks like one"));
        } else if let Some(s) = suggest(&id.name, names.iter().map(|s| s.as_str())) {
            d = d.help(format!("did you mean `{s}`?"));
        }
        self.err(d);
    }
}
