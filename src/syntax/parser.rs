//! From source text to the AST, with pest. Syntax errors become
//! [`Diagnostic`]s with a span and a plain list of what was expected.

use super::ast::*;
use crate::diag::{Diagnostic, Span};
use pest::iterators::Pair;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/lag.pest"]
struct LagParser;

/// The deepest nesting of parentheses and brackets accepted; deeper input is
/// refused before parsing so that no recursion can overflow the stack.
pub const MAX_NESTING: usize = 200;

/// Parses a whole `.lag` file. A file with syntax errors is read again one
/// statement at a time (every statement starts with its keyword), so that
/// every statement with an error is reported, not only the first.
pub fn parse_file(src: &str) -> Result<File, Vec<Diagnostic>> {
    check_nesting(src).map_err(|d| vec![d])?;
    match LagParser::parse(Rule::file, src) {
        Ok(mut pairs) => {
            let file = pairs.next().expect("the file rule always yields one pair");
            let stmts = file.into_inner().filter(|p| p.as_rule() != Rule::EOI).map(stmt).collect();
            Ok(File { stmts })
        }
        Err(e) => {
            let each = statement_errors(src);
            Err(if each.is_empty() { vec![syntax_error(e, src, 0, false)] } else { each })
        }
    }
}

const STATEMENT_HELP: &str = "every statement starts with a keyword: model, const, param, coord, state, data, let, \
                              lagrangian, dissipation, force, energy, metric, temperature, observe, init, simulate, domain, interaction";

/// The statement keywords; a name can never be one, so each occurrence
/// outside a comment or a string starts a statement.
const STATEMENT_KEYWORDS: [&str; 18] = [
    "model",
    "const",
    "param",
    "coord",
    "state",
    "let",
    "lagrangian",
    "dissipation",
    "force",
    "energy",
    "metric",
    "temperature",
    "observe",
    "init",
    "simulate",
    "data",
    "domain",
    "interaction",
];

/// The syntax errors of each statement of `src`, read alone; text before
/// the first statement is an error of its own.
fn statement_errors(src: &str) -> Vec<Diagnostic> {
    let starts = words(src).filter(|&(_, w)| STATEMENT_KEYWORDS.contains(&w)).map(|(i, _)| i);
    let mut bounds: Vec<usize> = std::iter::once(0).chain(starts).collect();
    bounds.push(src.len());
    bounds.dedup();
    let mut out = vec![];
    for (i, w) in bounds.windows(2).enumerate() {
        let (lo, chunk) = (w[0], &src[w[0]..w[1]]);
        if out.len() >= crate::lower::MAX_ERRORS {
            let rest = bounds.len() - 1 - i;
            out.push(crate::lower::too_many_errors(Span::new(lo, lo + 1), rest));
            break;
        }
        let blank = chunk.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        if blank {
            continue;
        }
        let starts_statement = words(chunk).next().is_some_and(|(i, w)| i == 0 && STATEMENT_KEYWORDS.contains(&w));
        if !starts_statement {
            // Text before the first statement.
            let first = words_and_symbols(chunk).next().map_or(0, |(end, c)| end - c.len_utf8());
            out.push(
                Diagnostic::new(Span::new(lo + first, lo + first + 1), "syntax error")
                    .label("expected a statement")
                    .help(STATEMENT_HELP),
            );
        } else if let Err(e) = LagParser::parse(Rule::statement_only, chunk) {
            out.push(syntax_error(e, chunk, lo, true));
        }
    }
    out
}

/// The words (names and keywords) of `src` outside comments and strings,
/// with their byte offsets.
fn words(src: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut chars = src.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some((i, c)) = chars.next() {
            match c {
                '#' => while chars.next_if(|&(_, c)| c != '\n').is_some() {},
                '"' => {
                    while chars.next_if(|&(_, c)| c != '"' && c != '\n').is_some() {}
                    chars.next_if(|&(_, c)| c == '"');
                }
                c if c.is_alphabetic() || c == '_' => {
                    let mut end = i + c.len_utf8();
                    while let Some((j, d)) = chars.next_if(|&(_, d)| d.is_alphanumeric() || d == '_') {
                        end = j + d.len_utf8();
                    }
                    return Some((i, &src[i..end]));
                }
                c if c.is_ascii_digit() || c == '.' => {
                    // A number, exponent included (`1e5` is not the word `e5`).
                    while chars.next_if(|&(_, d)| d.is_alphanumeric() || d == '.' || d == '_').is_some() {}
                }
                _ => {}
            }
        }
        None
    })
}

/// Parses one expression (the form derived equations are printed in).
pub fn parse_expr(src: &str) -> Result<Expr, Diagnostic> {
    check_nesting(src)?;
    let mut pairs = LagParser::parse(Rule::expr_only, src).map_err(|e| syntax_error(e, src, 0, false))?;
    let whole = pairs.next().expect("expr_only yields one pair");
    let e = whole.into_inner().next().expect("expr_only holds an expression");
    Ok(expr(e))
}

fn check_nesting(src: &str) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    let mut in_comment = false;
    // The `^` of one tower `a^b^c^…` (right-associative, so each one nests),
    // and whether the last character ends an operand (a `-` after one is a
    // subtraction, which ends the tower; after `^` it is a sign, which does not).
    let (mut tower, mut after_operand) = (0usize, false);
    for (i, c) in src.char_indices() {
        if !in_comment && !c.is_whitespace() {
            match c {
                '^' => {
                    tower += 1;
                    if tower > MAX_NESTING {
                        return Err(Diagnostic::new(Span::new(i, i + 1), "powers nested too deeply")
                            .label(format!("more than {MAX_NESTING} `^` in one tower a^b^c^…"))
                            .help("write the exponent as a `let` definition"));
                    }
                }
                '-' if !after_operand => {}
                '+' | '-' | '*' | '/' | ',' | '=' | '(' | ')' | '[' | ']' => tower = 0,
                _ => {}
            }
            after_operand = c.is_alphanumeric() || matches!(c, '_' | ')' | ']' | '\'' | '.');
        }
        match c {
            '#' => in_comment = true,
            '\n' => in_comment = false,
            '(' | '[' if !in_comment => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::new(Span::new(i, i + 1), "expression nested too deeply")
                        .label(format!("more than {MAX_NESTING} levels of parentheses or brackets"))
                        .help("split the expression into `let` definitions"));
                }
            }
            ')' | ']' if !in_comment => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn describe(rule: &Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::ident => "a name",
        Rule::number => "a number",
        Rule::expr | Rule::term | Rule::unary | Rule::power | Rule::postfix | Rule::paren | Rule::call => {
            "an expression"
        }
        Rule::indexed | Rule::reduce => "an expression",
        Rule::add_op => "an operator",
        Rule::mul_op => "an operator",
        Rule::neg => "`-`",
        Rule::prime => "`'`",
        Rule::eq => "`=`",
        Rule::rparen => "`)`",
        Rule::range_op => "`..` or `..=`",
        Rule::range => "a range `a..b`",
        Rule::binder => "`[i in a..b]`",
        Rule::index => "`[index]`",
        Rule::kw_in => "`in`",
        Rule::kw_diag => "`diag(…)`",
        Rule::matrix_form => "`[[a, b], [b, c]]`",
        Rule::matrix_row => "a row `[a, b]`",
        Rule::init_value => "`=`",
        Rule::init_dist => "`~`",
        Rule::param_item | Rule::sim_item => "`name = value`",
        Rule::decl_item | Rule::target => "a name",
        Rule::init_item => "`name = value`",
        Rule::kw_model
        | Rule::kw_const
        | Rule::kw_param
        | Rule::kw_coord
        | Rule::kw_state
        | Rule::kw_let
        | Rule::kw_lagrangian
        | Rule::kw_dissipation
        | Rule::kw_force
        | Rule::kw_energy
        | Rule::kw_metric
        | Rule::kw_temperature
        | Rule::kw_observe
        | Rule::kw_init
        | Rule::kw_simulate
        | Rule::kw_data
        | Rule::kw_domain
        | Rule::kw_interaction => "a statement",
        Rule::string => "a file name in double quotes",
        Rule::data_item => "a family `x[M]`",
        Rule::subscripts => "`[index]`",
        Rule::kw_sum | Rule::kw_prod => "an expression",
        _ => return None,
    })
}

/// The diagnostic of a pest error in `src`, which starts at byte `offset` of
/// the file; `statement` when `src` is one statement read alone.
fn syntax_error(e: pest::error::Error<Rule>, src: &str, offset: usize, statement: bool) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
    .min(src.len());
    let mut expected: Vec<&str> = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => positives
            .iter()
            .filter_map(describe)
            .map(|d| if statement && d == "end of file" { "the end of the statement" } else { d })
            .collect(),
        ErrorVariant::CustomError { .. } => vec![],
    };
    expected.sort();
    expected.dedup();
    let list = match expected.len() {
        0 => "something else".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    // At the end of the input, point just past the last token, where the
    // missing text belongs, rather than past the last line.
    let at = |a: usize, b: usize| Span::new(offset + a, offset + b);
    let at_end = code_end(&src[pos..]) == 0;
    let span = if at_end {
        let end = code_end(src);
        at(end, end + 1)
    } else {
        at(pos, pos + 1)
    };
    let mut d = Diagnostic::new(span, "syntax error").label(format!("expected {list}"));
    let (before, after) = (src[..pos].trim_end(), &src[pos..]);
    let operand_ends = before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ')' || c == '\'');
    let operand_starts = after.starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '(');
    let opens = unclosed(&src[..pos]);
    if let Some(&(open, c)) = opens.last() {
        let close = if c == '(' { ')' } else { ']' };
        d = d
            .with(at(open, open + 1), format!("this `{c}` is never closed"))
            .help(format!("close it with `{close}` where the expression ends"));
    } else if let Some((prev, next)) = juxtaposed(before, after).filter(|_| operand_ends && operand_starts && !at_end) {
        d = d
            .label("expected an operator: is a `*` missing?")
            .help(format!("a product is written with `*`: `{prev}*{next}`, not `{prev} {next}`"));
    } else if expected.contains(&"a statement") {
        d = d.help(STATEMENT_HELP);
    }
    d
}

/// Two operands side by side (`l2 sin(th2)`): the last token before the
/// error and the first after it, when neither is a keyword.
fn juxtaposed<'a>(before: &'a str, after: &'a str) -> Option<(&'a str, &'a str)> {
    let prev = before.rsplit(char::is_whitespace).next().filter(|p| !p.is_empty())?;
    let next = after.split_whitespace().next()?;
    let word = |t: &str| t.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("").to_string();
    let keyword = |t: &str| {
        STATEMENT_KEYWORDS.contains(&word(t).as_str()) || ["in", "sum", "prod", "diag"].contains(&word(t).as_str())
    };
    (!keyword(prev) && !keyword(next)).then_some((prev, next))
}

/// The length of `src` without the white space and comments at its end.
fn code_end(src: &str) -> usize {
    let mut end = 0;
    for (i, _) in words_and_symbols(src) {
        end = i;
    }
    end
}

/// The end offsets of every token of `src` outside comments (a token here is
/// any character that is neither white space nor in a comment).
fn words_and_symbols(src: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut in_comment = false;
    src.char_indices().filter_map(move |(i, c)| {
        match c {
            '\n' => in_comment = false,
            '#' => in_comment = true,
            _ => {}
        }
        (!in_comment && !c.is_whitespace()).then_some((i + c.len_utf8(), c))
    })
}

/// The opening brackets of `src` that are not closed, with their offsets.
fn unclosed(src: &str) -> Vec<(usize, char)> {
    let mut open = vec![];
    for (end, c) in words_and_symbols(src) {
        match c {
            '(' | '[' => open.push((end - 1, c)),
            ')' | ']' => {
                open.pop();
            }
            _ => {}
        }
    }
    open
}

/// The children of a pair without the punctuation rules (`=`, `)`), which
/// exist only so that syntax errors can name them.
fn inner(p: Pair<Rule>) -> impl Iterator<Item = Pair<Rule>> {
    p.into_inner().filter(|c| !matches!(c.as_rule(), Rule::eq | Rule::rparen))
}

fn span(p: &Pair<Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

fn ident(p: Pair<Rule>) -> Ident {
    Ident { name: p.as_str().to_string(), span: span(&p) }
}

fn stmt(p: Pair<Rule>) -> Stmt {
    let sp = span(&p);
    let rule = p.as_rule();
    let mut parts = inner(p);
    let kw = parts.next().expect("a statement starts with its keyword");
    let keyword = span(&kw);
    let kind = match rule {
        Rule::model_stmt => StmtKind::Model(ident(parts.next().unwrap())),
        Rule::const_stmt => StmtKind::Const(ident(parts.next().unwrap()), expr(parts.next().unwrap())),
        Rule::param_stmt => StmtKind::Param(
            parts
                .map(|it| {
                    let mut it = inner(it);
                    (ident(it.next().unwrap()), expr(it.next().unwrap()))
                })
                .collect(),
        ),
        Rule::coord_stmt | Rule::state_stmt => {
            let decls = parts
                .map(|it| {
                    let mut it = inner(it);
                    Decl { name: ident(it.next().unwrap()), size: it.next().map(expr) }
                })
                .collect();
            if rule == Rule::coord_stmt {
                StmtKind::Coord(decls)
            } else {
                StmtKind::State(decls)
            }
        }
        Rule::let_stmt => {
            let name = ident(parts.next().unwrap());
            let next = parts.next().unwrap();
            let (binder, value) = if next.as_rule() == Rule::binder {
                (Some(binder(next)), expr(parts.next().unwrap()))
            } else {
                (None, expr(next))
            };
            StmtKind::Let { name, binder, value }
        }
        Rule::lagrangian_stmt => StmtKind::Lagrangian(expr(parts.next().unwrap())),
        Rule::dissipation_stmt => StmtKind::Dissipation(expr(parts.next().unwrap())),
        Rule::force_stmt => StmtKind::Force(target(parts.next().unwrap()), expr(parts.next().unwrap())),
        Rule::energy_stmt => StmtKind::Energy(expr(parts.next().unwrap())),
        Rule::metric_stmt => {
            let m = parts.next().unwrap();
            match m.as_rule() {
                Rule::diag_form => StmtKind::Metric(MetricForm::Diag(inner(m).skip(1).map(expr).collect())),
                _ => StmtKind::Metric(MetricForm::Matrix(inner(m).map(|row| inner(row).map(expr).collect()).collect())),
            }
        }
        Rule::temperature_stmt => StmtKind::Temperature(expr(parts.next().unwrap())),
        Rule::observe_stmt => StmtKind::Observe(ident(parts.next().unwrap()), expr(parts.next().unwrap())),
        Rule::init_stmt => StmtKind::Init(parts.map(init_item).collect()),
        Rule::simulate_stmt => StmtKind::Simulate(
            parts
                .map(|it| {
                    let mut it = inner(it);
                    Setting { key: ident(it.next().unwrap()), value: expr(it.next().unwrap()) }
                })
                .collect(),
        ),
        Rule::data_stmt => {
            let mut items = Vec::new();
            let mut path = (String::new(), sp);
            for it in parts {
                if it.as_rule() == Rule::string {
                    let text = it.as_str();
                    path = (text[1..text.len() - 1].to_string(), span(&it));
                } else {
                    let mut ids = inner(it).map(ident);
                    let name = ids.next().unwrap();
                    items.push(DataItem { name, sizes: ids.collect() });
                }
            }
            StmtKind::Data { items, path: path.0, path_span: path.1 }
        }
        Rule::interaction_stmt => StmtKind::Interaction(expr(parts.next().unwrap())),
        Rule::domain_stmt => {
            StmtKind::Domain(ident(parts.next().unwrap()), expr(parts.next().unwrap()), expr(parts.next().unwrap()))
        }
        r => unreachable!("not a statement rule: {r:?}"),
    };
    Stmt { kind, span: sp, keyword }
}

fn init_item(p: Pair<Rule>) -> InitItem {
    let sp = span(&p);
    let mut it = inner(p);
    let target = target(it.next().unwrap());
    let mut next = it.next().unwrap();
    let velocity = next.as_rule() == Rule::prime;
    if velocity {
        next = it.next().unwrap();
    }
    let value = match next.as_rule() {
        Rule::init_value => InitValue::Value(expr(inner(next).next().unwrap())),
        _ => {
            let mut d = inner(next);
            let name = ident(d.next().unwrap());
            InitValue::Dist { name, args: d.map(expr).collect() }
        }
    };
    InitItem { target, velocity, value, span: sp }
}

fn target(p: Pair<Rule>) -> Target {
    let sp = span(&p);
    let mut it = inner(p);
    let name = ident(it.next().unwrap());
    let selector = match it.next() {
        None => Selector::None,
        Some(s) if s.as_rule() == Rule::binder => Selector::Each(binder(s)),
        Some(s) => Selector::Index(expr(inner(s).next().unwrap())),
    };
    Target { name, selector, span: sp }
}

fn binder(p: Pair<Rule>) -> Binder {
    let mut it = inner(p);
    let var = ident(it.next().unwrap());
    let _in = it.next();
    Binder { var, range: range(it.next().unwrap()) }
}

fn range(p: Pair<Rule>) -> Range {
    let sp = span(&p);
    let mut it = inner(p);
    let lo = expr(it.next().unwrap());
    let inclusive = it.next().unwrap().as_str() == "..=";
    let hi = expr(it.next().unwrap());
    Range { lo, hi, inclusive, span: sp }
}

fn binary(op: BinOp, a: Expr, b: Expr) -> Expr {
    let span = a.span.to(b.span);
    Expr { kind: ExprKind::Binary(op, Box::new(a), Box::new(b)), span }
}

/// The most `'` kept on one operand: `q''` is already refused as an acceleration.
const MAX_PRIMES: usize = 3;

/// Operands longer than this in one `+`/`-` or `*`/`/` chain are combined as
/// a balanced tree, so that a sum of 10⁵ terms is not 10⁵ deep.
const FLAT_CHAIN: usize = 64;

/// `first op₁ e₁ op₂ e₂ …`, left to right. A short chain is the usual
/// left-nested tree. A long one is a balanced tree of `+` (or `*`) over
/// `first, ±e₁, …` (or `first, e₁, 1/e₂, …`): the same sum or product, which
/// the symbolic engine flattens in either shape.
fn chain(first: Expr, rest: Vec<(BinOp, Expr)>) -> Expr {
    if rest.len() < FLAT_CHAIN {
        return rest.into_iter().fold(first, |acc, (op, e)| binary(op, acc, e));
    }
    let additive = matches!(rest[0].0, BinOp::Add | BinOp::Sub);
    let op = if additive { BinOp::Add } else { BinOp::Mul };
    let operands: Vec<Expr> = std::iter::once(first)
        .chain(rest.into_iter().map(|(o, e)| match o {
            BinOp::Sub => Expr { span: e.span, kind: ExprKind::Neg(Box::new(e)) },
            BinOp::Div => {
                let one = Expr { span: e.span, kind: ExprKind::Number(1.0) };
                binary(BinOp::Div, one, e)
            }
            _ => e,
        }))
        .collect();
    balanced(op, operands)
}

/// A balanced tree of `op` over `operands` (at least one), in order.
fn balanced(op: BinOp, mut operands: Vec<Expr>) -> Expr {
    while operands.len() > 1 {
        let mut next = Vec::with_capacity(operands.len().div_ceil(2));
        let mut it = operands.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => binary(op, a, b),
                None => a,
            });
        }
        operands = next;
    }
    operands.pop().expect("at least one operand")
}

fn expr(p: Pair<Rule>) -> Expr {
    let sp = span(&p);
    match p.as_rule() {
        Rule::expr | Rule::term => {
            let mut it = inner(p);
            let first = expr(it.next().unwrap());
            let mut rest = vec![];
            while let Some(op) = it.next() {
                let op = match op.as_str() {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    _ => BinOp::Div,
                };
                rest.push((op, expr(it.next().unwrap())));
            }
            chain(first, rest)
        }
        Rule::unary => {
            // `--x` is `x`: a run of signs is one sign or none, so that no
            // number of them makes the tree deep.
            let parts: Vec<Pair<Rule>> = inner(p).collect();
            let (negs, last) = parts.split_at(parts.len() - 1);
            let e = expr(last[0].clone());
            match negs.first() {
                Some(n) => {
                    let s = span(n).to(e.span);
                    let kind = if negs.len() % 2 == 1 { ExprKind::Neg(Box::new(e)) } else { e.kind };
                    Expr { kind, span: s }
                }
                None => e,
            }
        }
        Rule::power => {
            let mut it = inner(p);
            let base = expr(it.next().unwrap());
            match it.next() {
                Some(x) => binary(BinOp::Pow, base, expr(x)),
                None => base,
            }
        }
        Rule::postfix => {
            let mut it = inner(p);
            let mut e = expr(it.next().unwrap());
            // More than two primes are refused when the model is checked; more
            // than a few are not even read, so that they cannot make the tree deep.
            for prime in it.take(MAX_PRIMES) {
                let s = e.span.to(span(&prime));
                e = Expr { kind: ExprKind::Prime(Box::new(e)), span: s };
            }
            e
        }
        Rule::number => {
            let x: f64 = p.as_str().parse().unwrap_or(f64::INFINITY);
            Expr { kind: ExprKind::Number(x), span: sp }
        }
        Rule::ident => Expr { kind: ExprKind::Name(ident(p)), span: sp },
        // The twin `x~` is the name `x~`, which no declaration can take.
        Rule::twin => Expr { kind: ExprKind::Name(Ident { name: p.as_str().to_string(), span: sp }), span: sp },
        Rule::paren => {
            let inner = expr(inner(p).next().unwrap());
            Expr { kind: inner.kind, span: sp }
        }
        Rule::call => {
            let mut it = inner(p);
            let f = ident(it.next().unwrap());
            Expr { kind: ExprKind::Call(f, it.map(expr).collect()), span: sp }
        }
        Rule::indexed => {
            let mut it = inner(p);
            let name = ident(it.next().unwrap());
            let subs = it.next().unwrap().into_inner().map(expr).collect();
            Expr { kind: ExprKind::Index(name, subs), span: sp }
        }
        Rule::reduce => {
            let mut it = inner(p);
            let op = if it.next().unwrap().as_str() == "sum" { Reduction::Sum } else { Reduction::Prod };
            let var = ident(it.next().unwrap());
            let _in = it.next();
            let range = range(it.next().unwrap());
            let body = expr(it.next().unwrap());
            Expr {
                kind: ExprKind::Reduce { op, binder: Box::new(Binder { var, range }), body: Box::new(body) },
                span: sp,
            }
        }
        r => unreachable!("not an expression rule: {r:?}"),
    }
}
