//! Diagnostics: every error the front end reports has a span, a message and,
//! where possible, a hint. They are collected, not thrown, and rendered once,
//! at the boundary, with the source line and a caret.

use std::fmt;

/// A byte range in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// `n` things, in the singular for one: "1 coordinate", "3 params".
pub fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// One error, with its primary span and label, optional further labelled
/// spans and an optional hint.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Span,
    pub label: String,
    pub related: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { message: message.into(), span, label: String::new(), related: vec![], help: None }
    }

    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn with(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.related.push((span, label.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

/// The errors of one source file, with the source kept for rendering.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    pub file: String,
    pub source: String,
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Renders every diagnostic with the source line and a caret under the
    /// span, without colour: stable text for terminals and snapshots.
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    /// As [`Diagnostics::render`], with colour when `color` is set.
    pub fn render_with(&self, color: bool) -> String {
        self.render_as(color, false)
    }

    /// Renders the list as warnings: the model is accepted, but something in it
    /// is likely a mistake.
    pub fn render_warnings(&self, color: bool) -> String {
        self.render_as(color, true)
    }

    /// Control and bidirectional characters of the source, the file name and
    /// the texts are shown escaped ([`escape`]), with the spans moved to match,
    /// so that a model file cannot send escape sequences to the terminal.
    fn render_as(&self, color: bool, warning: bool) -> String {
        use miette::{GraphicalReportHandler, GraphicalTheme};
        let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
        let shown = Shown::of(&self.source);
        let file = escape(&self.file);
        let long = shown.text.split('\n').any(|l| l.len() > LINE_SHOWN_MAX);
        let mut out = String::new();
        for d in &self.list {
            let d = shown.diagnostic(d);
            let (source, d, shift) =
                if long { clip(&shown.text, d) } else { (std::borrow::Cow::Borrowed(&*shown.text), d, None) };
            let report = Report { diag: &d, file: &file, source: &source, warning, shift };
            let _ = handler.render_report(&mut out, &report);
        }
        let n = self.list.len();
        let what = if warning { "warning" } else { "error" };
        out.push_str(&format!("{n} {what}{} in {file}\n", if n == 1 { "" } else { "s" }));
        out
    }
}

/// Source lines longer than this many bytes are shown as a window around the
/// diagnostic's spans (a model written on one line of megabytes): the whole
/// line would be as long as the model, and columns past 65,535 cannot be
/// rendered at all.
const LINE_SHOWN_MAX: usize = 240;

/// How much of a long line is shown before and after its first span.
const WINDOW_BEFORE: usize = 60;
const WINDOW_AFTER: usize = 140;

/// `text` with every line longer than [`LINE_SHOWN_MAX`] cut to a window
/// around `d`'s primary span if it is on the line, else the first span end on
/// it (or its start), marked with `…`
/// where cut, and `d`'s spans moved to match (ends outside the window are
/// clamped to its edges). With them, the line of the primary span and the
/// bytes cut from its start less the mark's, if it was cut, so that the
/// location shown is the span's own.
fn clip(text: &str, mut d: Diagnostic) -> (std::borrow::Cow<'_, str>, Diagnostic, Option<(usize, usize)>) {
    let mut ends: Vec<usize> = vec![d.span.start, d.span.end];
    for (s, _) in &d.related {
        ends.extend([s.start, s.end]);
    }
    let mut moved = ends.clone();
    let mut out = String::with_capacity(text.len().min(1 << 20));
    let mut line_start = 0;
    let mut shift = None;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let content = line.strip_suffix('\n').unwrap_or(line);
        let (ls, le) = (line_start, line_start + content.len());
        let here = |p: usize| p >= ls && p <= le;
        if content.len() <= LINE_SHOWN_MAX {
            for (k, &p) in ends.iter().enumerate() {
                if here(p) {
                    moved[k] = out.len() + (p - ls);
                }
            }
            out.push_str(line);
        } else {
            // The primary span's start, else the first end of another on this line.
            let anchor = match ends[0] {
                p if here(p) => p,
                _ => ends.iter().copied().filter(|&p| here(p)).min().unwrap_or(ls),
            };
            let floor = |mut p: usize| {
                while !text.is_char_boundary(p) {
                    p -= 1;
                }
                p
            };
            let ws = floor(anchor.saturating_sub(WINDOW_BEFORE).max(ls));
            let we = floor((anchor + WINDOW_AFTER).min(le)).max(ws);
            if ws > ls {
                out.push('…');
                if here(ends[0]) {
                    // Columns count bytes: those cut, less the mark's.
                    shift = Some((number, ws - ls - '…'.len_utf8()));
                }
            }
            let base = out.len();
            for (k, &p) in ends.iter().enumerate() {
                if here(p) {
                    moved[k] = base + (p.clamp(ws, we) - ws);
                }
            }
            out.push_str(&text[ws..we]);
            if we < le {
                out.push('…');
            }
            out.push_str(&line[content.len()..]);
        }
        line_start += line.len();
    }
    d.span = Span::new(moved[0], moved[1].max(moved[0]));
    for (k, (s, _)) in d.related.iter_mut().enumerate() {
        *s = Span::new(moved[2 + 2 * k], moved[3 + 2 * k].max(moved[2 + 2 * k]));
    }
    (std::borrow::Cow::Owned(out), d, shift)
}

/// Whether `c` is shown as an escape rather than itself: control characters
/// (C0 but tab and newline, DEL, C1), which a terminal may obey, and the
/// bidirectional controls, which reorder what is shown.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control or bidirectional character written as a
/// visible escape, `\u{1b}` (a carriage return before a newline is kept).
pub fn escape(text: &str) -> String {
    Shown::of(text).text
}

/// A source text as shown: escaped, with where the escapes moved the bytes.
struct Shown {
    text: String,
    /// For each escaped character, the offset just past it in the original
    /// text and the number of bytes added up to there.
    shifts: Vec<(usize, usize)>,
}

impl Shown {
    fn of(source: &str) -> Shown {
        if !source.chars().any(hidden) {
            return Shown { text: source.to_string(), shifts: vec![] };
        }
        let mut text = String::with_capacity(source.len());
        let mut shifts = vec![];
        let mut chars = source.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let crlf = c == '\r' && matches!(chars.peek(), Some((_, '\n')));
            if hidden(c) && !crlf {
                let start = text.len();
                text.push_str(&format!("\\u{{{:x}}}", c as u32));
                let added = (text.len() - start) - c.len_utf8();
                let total = shifts.last().map_or(0, |&(_, t)| t) + added;
                shifts.push((i + c.len_utf8(), total));
            } else {
                text.push(c);
            }
        }
        Shown { text, shifts }
    }

    /// Where byte `offset` of the original text is in the shown text.
    fn offset(&self, offset: usize) -> usize {
        let k = self.shifts.partition_point(|&(end, _)| end <= offset);
        offset + if k == 0 { 0 } else { self.shifts[k - 1].1 }
    }

    fn span(&self, span: Span) -> Span {
        Span::new(self.offset(span.start), self.offset(span.end))
    }

    /// `d` with its spans moved to the shown text and its texts escaped.
    fn diagnostic(&self, d: &Diagnostic) -> Diagnostic {
        Diagnostic {
            message: escape(&d.message),
            span: self.span(d.span),
            label: escape(&d.label),
            related: d.related.iter().map(|(s, l)| (self.span(*s), escape(l))).collect(),
            help: d.help.as_deref().map(escape),
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}

struct Report<'a> {
    diag: &'a Diagnostic,
    file: &'a str,
    source: &'a str,
    warning: bool,
    /// The line of the primary span and the bytes cut from its start, less
    /// the mark's (see [`clip`]).
    shift: Option<(usize, usize)>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

fn clamp(span: Span, len: usize) -> miette::SourceSpan {
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    miette::SourceSpan::new(start.into(), end - start)
}

impl miette::Diagnostic for Report<'_> {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let len = self.source.len();
        let mut v = vec![miette::LabeledSpan::new_primary_with_span(
            (!self.diag.label.is_empty()).then(|| self.diag.label.clone()),
            clamp(self.diag.span, len),
        )];
        for (s, l) in &self.diag.related {
            v.push(miette::LabeledSpan::new_with_span(Some(l.clone()), clamp(*s, len)));
        }
        Some(Box::new(v.into_iter()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(if self.warning { miette::Severity::Warning } else { miette::Severity::Error })
    }

    fn help(&self) -> Option<Box<dyn fmt::Display + '_>> {
        self.diag.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}

impl miette::SourceCode for Report<'_> {
    fn read_span<'b>(
        &'b self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'b> + 'b>, miette::MietteError> {
        let c = self.source.read_span(span, before, after)?;
        // The location in the header is read without context lines: on a cut
        // line, it counts the bytes cut.
        let column = match self.shift {
            Some((line, cut)) if before == 0 && after == 0 && c.line() == line => c.column() + cut,
            _ => c.column(),
        };
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.file.to_string(),
            c.data(),
            *c.span(),
            c.line(),
            column,
            c.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, d: Diagnostic) -> String {
        Diagnostics { file: "m\u{1b}[2J.lag".into(), source: source.into(), list: vec![d] }.render()
    }

    /// The column where the underline starts on the line after the one shown for `line`.
    fn caret_column(out: &str, line: &str) -> usize {
        let lines: Vec<&str> = out.lines().collect();
        let k = lines.iter().position(|l| l.ends_with(line)).expect("the source line is shown");
        let caret = lines[k + 1].chars().position(|c| c == '─' || c == '┬').expect("an underline");
        let start = lines[k].chars().count() - line.chars().count();
        caret - start
    }

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_caret_follows() {
        // `zz` after an escape and a bidi override on the same line.
        let source = "a = 1 + \u{1b}[31m\u{202e} + zz\n";
        let at = source.find("zz").unwrap();
        let out = render(source, Diagnostic::new(Span::new(at, at + 2), "unknown name `zz`").label("here"));
        assert!(!out.contains('\u{1b}') && !out.contains('\u{202e}'), "{out}");
        let shown = r"a = 1 + \u{1b}[31m\u{202e} + zz";
        assert_eq!(caret_column(&out, shown), shown.find("zz").unwrap(), "{out}");
        // The file name is escaped as well.
        assert!(out.contains(r"m\u{1b}[2J.lag"), "{out}");
    }

    #[test]
    fn texts_are_escaped_and_line_ends_kept() {
        let source = "a\r\nb\rc\td\n";
        let d = Diagnostic::new(Span::new(3, 4), "bad \u{7}").label("\u{9b}2J").help("\u{2066}x");
        let out = render(source, d);
        assert!(out.contains(r"bad \u{7}") && out.contains(r"\u{9b}2J") && out.contains(r"\u{2066}x"), "{out}");
        assert_eq!(escape("a\r\nb\rc\td\u{7f}\u{85}\u{200f}"), "a\r\nb\\u{d}c\td\\u{7f}\\u{85}\\u{200f}");
    }

    #[test]
    fn a_long_line_is_shown_around_the_span() {
        // A line of 400,000 bytes with the error near its end (columns past
        // 65,535 once made the renderer panic), and a short line after it.
        let long = format!("e = {} + zz", "x + ".repeat(100_000));
        let source = format!("{long}\nf = 1\n");
        let at = long.find("zz").unwrap();
        let d = Diagnostic::new(Span::new(at, at + 2), "unknown name `zz`")
            .label("here")
            .with(Span::new(0, 1), "the statement");
        let out = render(&source, d);
        assert!(out.len() < 2_000, "{} bytes", out.len());
        let shown = out.lines().find(|l| l.ends_with(" + zz")).expect("the window with the span");
        let window = shown.split_once("│ ").unwrap_or_else(|| panic!("{out}")).1;
        assert!(window.starts_with('…') && window.ends_with(" + zz"), "{out}");
        assert!(out.contains(&format!(".lag:1:{}]", at + 1)), "the span's own column: {out}");
        assert_eq!(caret_column(&out, window), window[..window.find("zz").unwrap()].chars().count(), "{out}");
        assert!(out.contains("f = 1"), "the lines after are shown as they are: {out}");
    }

    #[test]
    fn warnings_render_as_warnings() {
        let d = Diagnostic::new(Span::new(0, 1), "looks alike");
        let out = Diagnostics { file: "m.lag".into(), source: "x".into(), list: vec![d] }.render_warnings(false);
        assert!(out.contains("⚠ looks alike") && out.ends_with("1 warning in m.lag\n"), "{out}");
    }
}
