//! Printing expressions: the `.lag` text form (which lagc's own parser reads
//! back) and LaTeX.
//!
//! Both go through [`Disp`], a small display tree: sums with signs, products
//! split into numerator and denominator, powers and calls. Terms and factors
//! are ordered for reading (higher powers of velocities first; parameters
//! before functions before coordinates before velocities), not by id.

use super::expr::{Arena, ExprId, Func, Node, Row, SymId, SymKind};
use super::num::{fmt_float, Num};

/// A display tree.
#[derive(Clone, Debug)]
enum Disp {
    Num(Num),
    Sym(SymId),
    /// Terms with a flag that is true for subtraction.
    Add(Vec<(bool, Disp)>),
    Neg(Box<Disp>),
    Mul(Vec<Disp>, Vec<Disp>),
    Pow(Box<Disp>, Box<Disp>),
    Call(&'static str, Vec<Disp>),
    /// An entry of a data table: its name and subscripts as written.
    /// A family member: name, subscripts, and primes after the bracket (`u[i]'`).
    Data(String, Vec<String>, String),
    /// A rolled sum: the index and the body.
    Sum(SymId, Box<Disp>),
}

const P_ADD: u8 = 1;
const P_MUL: u8 = 2;
const P_NEG: u8 = 3;
const P_POW: u8 = 4;
const P_ATOM: u8 = 5;

impl Disp {
    fn prec(&self) -> u8 {
        match self {
            Disp::Num(Num::Rat(n, d)) => {
                if *d != 1 {
                    P_MUL
                } else if *n < 0 {
                    P_NEG
                } else {
                    P_ATOM
                }
            }
            Disp::Num(Num::Float(x)) => {
                if *x < 0.0 {
                    P_NEG
                } else {
                    P_ATOM
                }
            }
            Disp::Sym(_) | Disp::Call(..) | Disp::Data(..) | Disp::Sum(..) => P_ATOM,
            Disp::Add(_) => P_ADD,
            Disp::Neg(_) => P_NEG,
            Disp::Mul(num, den) => {
                if den.is_empty() && num.len() == 1 {
                    num[0].prec()
                } else {
                    P_MUL
                }
            }
            Disp::Pow(..) => P_POW,
        }
    }
}

struct Builder<'a> {
    arena: &'a Arena,
}

impl Builder<'_> {
    fn velocity_degree(&self, e: ExprId) -> i64 {
        let a = self.arena;
        let factors = match a.node(e) {
            Node::Mul(fs) => fs.to_vec(),
            _ => vec![e],
        };
        factors
            .iter()
            .map(|&f| {
                let (b, n) = match a.node(f) {
                    Node::Pow(b, x) => (*b, a.as_num(*x).and_then(Num::as_int).unwrap_or(1)),
                    _ => (f, 1),
                };
                match a.node(b) {
                    Node::Sym(s) if matches!(a.symbol(*s).kind, SymKind::Velocity(_)) => n,
                    _ => 0,
                }
            })
            .sum()
    }

    /// Reading order of a factor: numbers, parameters, sums of parameters,
    /// functions and powers, time, coordinates, velocities.
    fn factor_class(&self, f: ExprId) -> u8 {
        let a = self.arena;
        let b = match a.node(f) {
            Node::Pow(b, _) => *b,
            _ => f,
        };
        match a.node(b) {
            Node::Num(_) => 0,
            Node::Sym(s) => match a.symbol(*s).kind {
                SymKind::Param(_) | SymKind::Pi => 1,
                SymKind::Time => 4,
                SymKind::Coord(_) | SymKind::State(_) => 5,
                SymKind::Velocity(_) => 6,
                SymKind::Acceleration(_) => 7,
                SymKind::Index { .. } => 3,
            },
            Node::Add(_) if !a.depends(b, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi)) => 2,
            _ => 3,
        }
    }

    /// Within a class: symbols in declaration order, other factors by id.
    fn order_key(&self, f: ExprId) -> u64 {
        let a = self.arena;
        let b = match a.node(f) {
            Node::Pow(b, _) => *b,
            _ => f,
        };
        match a.node(b) {
            Node::Sym(s) => s.0 as u64,
            _ => (1u64 << 32) + f.0 as u64,
        }
    }

    fn build(&self, e: ExprId) -> Disp {
        let a = self.arena;
        match a.node(e) {
            Node::Num(n) => {
                if n.is_negative() {
                    Disp::Neg(Box::new(Disp::Num(n.neg())))
                } else {
                    Disp::Num(*n)
                }
            }
            Node::Sym(s) => Disp::Sym(*s),
            Node::Add(_) => {
                let mut ts = Vec::new();
                self.flatten_sum(e, &mut ts);
                // Constants last, higher velocity degree first, then id order.
                ts.sort_by_key(|&t| (a.as_num(t).is_some(), -self.velocity_degree(t), t));
                let terms = ts
                    .iter()
                    .map(|&t| match self.build(t) {
                        Disp::Neg(x) => (true, *x),
                        d => (false, d),
                    })
                    .collect();
                Disp::Add(terms)
            }
            Node::Mul(_) | Node::Pow(..) => self.build_product(e),
            Node::Func(f, x) => Disp::Call(f.name(), vec![self.build(*x)]),
            Node::Atan2(y, x) => Disp::Call("atan2", vec![self.build(*y), self.build(*x)]),
            Node::Member { family, row } => {
                let f = a.family(*family);
                // A velocity family is named `u'`: the member prints as `u[i]'`.
                let (base, prime) = match f.name.find('\'') {
                    Some(p) => (&f.name[..p], &f.name[p..]),
                    None => (f.name.as_str(), ""),
                };
                Disp::Data(base.to_string(), vec![row_text(a, *row)], prime.to_string())
            }
            Node::Data { table, row, col } => {
                let t = a.table(*table);
                let row = row_text(a, *row);
                let mut subs = vec![row];
                if t.cols.is_some() {
                    subs.push(col.to_string());
                }
                Disp::Data(t.name.clone(), subs, String::new())
            }
            Node::Sum(i, b) => Disp::Sum(*i, Box::new(self.build(*b))),
        }
    }

    fn flatten_sum(&self, e: ExprId, out: &mut Vec<ExprId>) {
        match self.arena.node(e) {
            Node::Add(ts) => {
                for &t in ts.iter() {
                    self.flatten_sum(t, out);
                }
            }
            _ => out.push(e),
        }
    }

    /// Flattens nested products (display forms may nest them) into a
    /// coefficient and plain factors.
    fn flatten_product(&self, e: ExprId, coeff: &mut Num, out: &mut Vec<ExprId>) {
        let a = self.arena;
        match a.node(e) {
            Node::Mul(fs) => {
                for &f in fs.iter() {
                    self.flatten_product(f, coeff, out);
                }
            }
            Node::Num(n) => *coeff = coeff.mul(*n),
            _ => out.push(e),
        }
    }

    fn build_product(&self, e: ExprId) -> Disp {
        let a = self.arena;
        let mut coeff = Num::ONE;
        let mut factors = Vec::new();
        self.flatten_product(e, &mut coeff, &mut factors);
        factors.sort_by_key(|&f| (self.factor_class(f), self.order_key(f)));
        let mut num = Vec::new();
        let mut den = Vec::new();
        for f in factors {
            match a.node(f) {
                Node::Pow(b, x) => {
                    let x = *x;
                    let b = *b;
                    match a.as_num(x) {
                        Some(n) if n.is_negative() => {
                            let n = n.neg();
                            den.push(self.power(b, n));
                        }
                        Some(n) => num.push(self.power(b, n)),
                        None => num.push(Disp::Pow(Box::new(self.build(b)), Box::new(self.build(x)))),
                    }
                }
                _ => num.push(self.build(f)),
            }
        }
        let negative = coeff.is_negative();
        let coeff = if negative { coeff.neg() } else { coeff };
        match coeff {
            Num::Rat(p, q) => {
                if p != 1 {
                    num.insert(0, Disp::Num(Num::int(p)));
                }
                if q != 1 {
                    den.insert(0, Disp::Num(Num::int(q)));
                }
            }
            Num::Float(_) => num.insert(0, Disp::Num(coeff)),
        }
        if num.is_empty() {
            num.push(Disp::Num(Num::ONE));
        }
        let d = if num.len() == 1 && den.is_empty() { num.pop().unwrap() } else { Disp::Mul(num, den) };
        if negative {
            Disp::Neg(Box::new(d))
        } else {
            d
        }
    }

    /// `b^n` for a positive number `n`; `sqrt` for one half.
    fn power(&self, b: ExprId, n: Num) -> Disp {
        let base = self.build(b);
        if n.is_one() {
            base
        } else if n == Num::HALF {
            Disp::Call("sqrt", vec![base])
        } else {
            Disp::Pow(Box::new(base), Box::new(Disp::Num(n)))
        }
    }
}

impl Arena {
    fn disp(&self, e: ExprId) -> Disp {
        Builder { arena: self }.build(e)
    }

    /// The `.lag` text form of `e`; lagc's expression parser reads it back.
    pub fn to_text(&self, e: ExprId) -> String {
        let mut s = String::new();
        text(self, &self.disp(e), 0, &mut s);
        s
    }

    /// The LaTeX form of `e`.
    pub fn to_latex(&self, e: ExprId) -> String {
        let mut s = String::new();
        latex(self, &self.disp(e), 0, &mut s);
        s
    }
}

fn text(a: &Arena, d: &Disp, outer: u8, out: &mut String) {
    let paren = d.prec() < outer;
    if paren {
        out.push('(');
    }
    match d {
        Disp::Num(n) => out.push_str(&match n {
            Num::Float(x) => fmt_float(*x),
            _ => n.to_string(),
        }),
        Disp::Sym(s) => out.push_str(&a.symbol(*s).name),
        Disp::Add(ts) => {
            for (i, (minus, t)) in ts.iter().enumerate() {
                match (i, minus) {
                    (0, true) => out.push('-'),
                    (0, false) => {}
                    (_, true) => out.push_str(" - "),
                    (_, false) => out.push_str(" + "),
                }
                text(a, t, if *minus || i > 0 { P_MUL } else { P_ADD }, out);
            }
        }
        Disp::Neg(x) => {
            out.push('-');
            text(a, x, P_MUL, out);
        }
        Disp::Mul(num, den) => {
            for (i, f) in num.iter().enumerate() {
                if i > 0 {
                    out.push('*');
                }
                text(a, f, P_NEG, out);
            }
            if !den.is_empty() {
                out.push('/');
                if den.len() == 1 {
                    text(a, &den[0], P_POW, out);
                } else {
                    out.push('(');
                    for (i, f) in den.iter().enumerate() {
                        if i > 0 {
                            out.push('*');
                        }
                        text(a, f, P_NEG, out);
                    }
                    out.push(')');
                }
            }
        }
        Disp::Pow(b, x) => {
            text(a, b, P_ATOM, out);
            out.push('^');
            text(a, x, P_ATOM, out);
        }
        Disp::Call(f, args) => {
            out.push_str(f);
            out.push('(');
            for (i, x) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                text(a, x, 0, out);
            }
            out.push(')');
        }
        Disp::Data(name, subs, primes) => {
            out.push_str(name);
            out.push('[');
            out.push_str(&subs.join(", "));
            out.push(']');
            out.push_str(primes);
        }
        Disp::Sum(i, body) => {
            out.push_str(&format!("sum({} in {}, ", a.symbol(*i).name, a.range_text(*i)));
            text(a, body, 0, out);
            out.push(')');
        }
    }
    if paren {
        out.push(')');
    }
}

const GREEK: [(&str, &str); 31] = [
    ("alpha", "\\alpha"),
    ("beta", "\\beta"),
    ("gamma", "\\gamma"),
    ("delta", "\\delta"),
    ("epsilon", "\\epsilon"),
    ("zeta", "\\zeta"),
    ("eta", "\\eta"),
    ("theta", "\\theta"),
    ("th", "\\theta"),
    ("iota", "\\iota"),
    ("kappa", "\\kappa"),
    ("lambda", "\\lambda"),
    ("mu", "\\mu"),
    ("nu", "\\nu"),
    ("xi", "\\xi"),
    ("rho", "\\rho"),
    ("sigma", "\\sigma"),
    ("tau", "\\tau"),
    ("phi", "\\phi"),
    ("ph", "\\phi"),
    ("chi", "\\chi"),
    ("psi", "\\psi"),
    ("omega", "\\omega"),
    ("Gamma", "\\Gamma"),
    ("Delta", "\\Delta"),
    ("Theta", "\\Theta"),
    ("Lambda", "\\Lambda"),
    ("Sigma", "\\Sigma"),
    ("Phi", "\\Phi"),
    ("Psi", "\\Psi"),
    ("Omega", "\\Omega"),
];

const GREEK_LETTERS: &str = "αβγδεζηθικλμνξπρστυφχψωΓΔΘΛΞΠΣΦΨΩ";
const GREEK_NAMES: [&str; 33] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi",
    "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi",
    "Pi", "Sigma", "Phi", "Psi", "Omega",
];

/// Letter-like symbols that have a math-mode command of their own.
const SYMBOLS: [(char, &str); 3] = [('ħ', "\\hbar"), ('ℏ', "\\hbar"), ('ℓ', "\\ell")];

/// The LaTeX command of a Greek letter or letter-like symbol, if it has one.
fn char_command(c: char) -> Option<String> {
    if let Some(i) = GREEK_LETTERS.chars().position(|g| g == c) {
        return Some(format!("\\{}", GREEK_NAMES[i]));
    }
    SYMBOLS.iter().find(|(s, _)| *s == c).map(|(_, l)| l.to_string())
}

/// The characters of a name in math mode: Greek letters and a few symbols as
/// their commands (`θ` → `\theta`, `ħ` → `\hbar`), ASCII as written, and any
/// other run of characters in `\text{}` (`ж` → `\text{ж}`), which KaTeX and
/// LaTeX accept where a raw non-ASCII letter in math mode is an error.
fn latex_chars(s: &str) -> String {
    let mut out = String::new();
    let mut text = String::new();
    let flush = |text: &mut String, out: &mut String| {
        if !text.is_empty() {
            out.push_str(&format!("\\text{{{text}}}"));
            text.clear();
        }
    };
    for c in s.chars() {
        if c.is_ascii() {
            flush(&mut text, &mut out);
            // A command's name ends at the next letter only with a space.
            if c.is_ascii_alphabetic() && out.ends_with(|p: char| p.is_ascii_alphabetic()) && ends_with_command(&out) {
                out.push(' ');
            }
            out.push(c);
        } else if let Some(cmd) = char_command(c) {
            flush(&mut text, &mut out);
            if ends_with_command(&out) {
                out.push(' ');
            }
            out.push_str(&cmd);
        } else {
            text.push(c);
        }
    }
    flush(&mut text, &mut out);
    out
}

/// Whether `s` ends with a control word such as `\theta`.
fn ends_with_command(s: &str) -> bool {
    let word = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    word.len() < s.len() && word.ends_with('\\')
}

/// `th1` → `\theta_{1}`, `q[3]` → `q_{3}`, `θ` → `\theta`, `x_dot` →
/// `x_{dot}`, `mass` → `\mathrm{mass}`, `ħ` → `\hbar`, `ж` → `\text{ж}`:
/// every non-ASCII character ends up in a command or in `\text{}`.
pub fn latex_name(name: &str) -> String {
    let (base, sub) = if let Some(i) = name.find('[') {
        (&name[..i], Some(name[i + 1..].trim_end_matches(']').to_string()))
    } else if let Some(i) = name.find('_').filter(|&i| i > 0) {
        (&name[..i], Some(name[i + 1..].to_string()))
    } else {
        let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
        if stem.is_empty() || stem.len() == name.len() {
            (name, None)
        } else {
            (stem, Some(name[stem.len()..].to_string()))
        }
    };
    let chars = latex_chars(base);
    let base = if let Some((_, l)) = GREEK.iter().find(|(n, _)| *n == base) {
        l.to_string()
    } else if base.chars().count() <= 1 || base.chars().all(|c| char_command(c).is_some()) {
        // One letter, or Greek letters only (`θω` → `\theta \omega`).
        chars
    } else if base.chars().all(|c| !c.is_ascii() && char_command(c).is_none()) {
        chars // `\text{жук}` already reads upright
    } else {
        format!("\\mathrm{{{chars}}}")
    };
    match sub {
        Some(s) => format!("{base}_{{{}}}", latex_chars(&s)),
        None => base,
    }
}

fn latex_symbol(a: &Arena, s: SymId) -> String {
    let sym = a.symbol(s);
    let bare = sym.name.trim_end_matches('\'');
    let name = latex_name(bare);
    let (base, sub) = match name.find('_') {
        Some(i) if !name.starts_with("\\mathrm") || name[..i].ends_with('}') => (&name[..i], &name[i..]),
        _ => (name.as_str(), ""),
    };
    match sym.kind {
        SymKind::Velocity(_) => format!("\\dot{{{base}}}{sub}"),
        SymKind::Acceleration(_) => format!("\\ddot{{{base}}}{sub}"),
        SymKind::Pi => "\\pi".into(),
        _ => name,
    }
}

fn latex_num(n: Num) -> String {
    match n {
        Num::Rat(p, 1) => p.to_string(),
        Num::Rat(p, q) => format!("\\frac{{{p}}}{{{q}}}"),
        Num::Float(x) => {
            let s = fmt_float(x);
            match s.split_once('e') {
                Some((m, e)) => format!("{m} \\times 10^{{{e}}}"),
                None => s,
            }
        }
    }
}

fn latex_func(f: &str) -> String {
    match Func::from_name(f) {
        Some(Func::Asin) => "\\arcsin".into(),
        Some(Func::Acos) => "\\arccos".into(),
        Some(Func::Atan) => "\\arctan".into(),
        Some(Func::Sign) => "\\operatorname{sign}".into(),
        Some(_) => format!("\\{f}"),
        None => format!("\\operatorname{{{f}}}"),
    }
}

fn latex(a: &Arena, d: &Disp, outer: u8, out: &mut String) {
    // A sum's body runs to the end of what follows `\\sum`: bracket it inside anything.
    let paren = match d {
        Disp::Sum(..) => outer > P_ADD,
        _ => d.prec() < outer,
    };
    if paren {
        out.push_str("\\left(");
    }
    match d {
        Disp::Num(n) => out.push_str(&latex_num(*n)),
        Disp::Sym(s) => out.push_str(&latex_symbol(a, *s)),
        Disp::Add(ts) => {
            for (i, (minus, t)) in ts.iter().enumerate() {
                match (i, minus) {
                    (0, true) => out.push('-'),
                    (0, false) => {}
                    (_, true) => out.push_str(" - "),
                    (_, false) => out.push_str(" + "),
                }
                latex(a, t, P_MUL, out);
            }
        }
        Disp::Neg(x) => {
            out.push('-');
            latex(a, x, P_MUL, out);
        }
        Disp::Mul(num, den) => {
            let write_factors = |fs: &[Disp], out: &mut String| {
                for (i, f) in fs.iter().enumerate() {
                    if i > 0 {
                        let numeric = matches!(f, Disp::Num(_));
                        out.push_str(if numeric { " \\cdot " } else { " " });
                    }
                    latex(a, f, if fs.len() > 1 { P_NEG } else { 0 }, out);
                }
            };
            if den.is_empty() {
                write_factors(num, out);
            } else {
                out.push_str("\\frac{");
                write_factors(num, out);
                out.push_str("}{");
                write_factors(den, out);
                out.push('}');
            }
        }
        Disp::Pow(b, x) => {
            if let Disp::Call(f, args) = b.as_ref() {
                if args.len() == 1 && Func::from_name(f).is_some_and(|f| f != Func::Abs) && *f != "sqrt" {
                    out.push_str(&latex_func(f));
                    out.push_str("^{");
                    latex(a, x, 0, out);
                    out.push_str("}\\left(");
                    latex(a, &args[0], 0, out);
                    out.push_str("\\right)");
                    if paren {
                        out.push_str("\\right)");
                    }
                    return;
                }
            }
            latex(a, b, P_ATOM, out);
            out.push_str("^{");
            latex(a, x, 0, out);
            out.push('}');
        }
        Disp::Call(f, args) => match *f {
            "sqrt" => {
                out.push_str("\\sqrt{");
                latex(a, &args[0], 0, out);
                out.push('}');
            }
            "abs" => {
                out.push_str("\\left|");
                latex(a, &args[0], 0, out);
                out.push_str("\\right|");
            }
            _ => {
                out.push_str(&latex_func(f));
                out.push_str("\\left(");
                for (i, x) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    latex(a, x, 0, out);
                }
                out.push_str("\\right)");
            }
        },
        Disp::Data(name, subs, primes) => {
            // A name with a subscript of its own (`x_train`) is grouped, so
            // that the row's subscript is not a double one.
            let n = latex_name(name);
            let n = if n.contains('_') { format!("{{{n}}}") } else { n };
            // A member's time derivatives as dots, as a symbol's (`\dot{u}_{k}`).
            let n = match primes.len() {
                0 => n,
                1 => format!("\\dot{{{n}}}"),
                2 => format!("\\ddot{{{n}}}"),
                _ => format!("{n}{}", "'".repeat(primes.len())),
            };
            out.push_str(&n);
            out.push_str("_{");
            out.push_str(&latex_chars(&subs.join(",")));
            out.push('}');
        }
        Disp::Sum(i, body) => {
            let (lo, hi) = match a.symbol(*i).kind {
                SymKind::Index { lo, hi } => (lo, hi),
                _ => (0, 0),
            };
            let range = a.range_text(*i);
            let last = match range.split_once("..").map(|(_, h)| h.trim()) {
                Some(h) if h.parse::<i64>().is_err() && !h.is_empty() => format!("{h}-1"),
                _ => (hi - 1).to_string(),
            };
            out.push_str(&format!("\\sum_{{{}={lo}}}^{{{}}} ", latex_name(&a.symbol(*i).name), latex_chars(&last)));
            latex(a, body, P_MUL, out);
        }
    }
    if paren {
        out.push_str("\\right)");
    }
}

/// A row as a subscript: `3`, `i`, `i+1`, `i-1`.
fn row_text(a: &Arena, row: Row) -> String {
    match row {
        Row::At(r) => r.to_string(),
        Row::Index(i, 0) => a.symbol(i).name.clone(),
        Row::Index(i, k) if k > 0 => format!("{}+{k}", a.symbol(i).name),
        Row::Index(i, k) => format!("{}-{}", a.symbol(i).name, -k),
    }
}

#[cfg(test)]
mod tests {
    use super::latex_name;

    #[test]
    fn names_in_latex() {
        for (name, want) in [
            ("x", "x"),
            ("th1", "\\theta_{1}"),
            ("ph", "\\phi"),
            ("q[3]", "q_{3}"),
            ("θ", "\\theta"),
            ("θω", "\\theta \\omega"),
            ("ωa", "\\mathrm{\\omega a}"),
            ("mass", "\\mathrm{mass}"),
            ("x_dot", "x_{dot}"),
            ("ħ", "\\hbar"),
            ("ℓ", "\\ell"),
            ("ℓ2", "\\ell_{2}"),
            ("ж", "\\text{ж}"),
            ("жук", "\\text{жук}"),
            ("mж", "\\mathrm{m\\text{ж}}"),
            ("x_ж", "x_{\\text{ж}}"),
            ("x_θ", "x_{\\theta}"),
        ] {
            assert_eq!(latex_name(name), want, "{name}");
        }
    }
}
