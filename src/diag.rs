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
        use miette::{GraphicalReportHandler, GraphicalTheme};
        let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
        let mut out = String::new();
        for d in &self.list {
            let report = Report { diag: d, file: &self.file, source: &self.source };
            let _ = handler.render_report(&mut out, &report);
        }
        let n = self.list.len();
        out.push_str(&format!("{} error{} in {}\n", n, if n == 1 { "" } else { "s" }, self.file));
        out
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
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.file.to_string(),
            c.data(),
            *c.span(),
            c.line(),
            c.column(),
            c.line_count(),
        )))
    }
}
