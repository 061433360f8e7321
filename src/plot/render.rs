//! Drawing: each panel is drawn by plotters into an SVG fragment of its own, and the fragments
//! are laid out in a grid under the figure's title.

use super::panel::{color, Mark, Panel};
use super::PlotError;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

const PANEL: (u32, u32) = (560, 380);
const TITLE_HEIGHT: u32 = 40;

/// A tick label with as many decimals as the axis span needs (so that
/// neighbouring ticks differ), or in exponent form on a log axis.
fn tick_label(v: f64, span: f64, log: bool) -> String {
    if log {
        let a = v.abs();
        return if (1e-3..1e4).contains(&a) { format!("{}", (v * 1e6).round() / 1e6) } else { format!("{v:.0e}") };
    }
    if v == 0.0 {
        return "0".into();
    }
    let decimals =
        if span > 0.0 && span.is_finite() { (-(span / 6.0).log10()).ceil().max(0.0) as usize + 1 } else { 2 };
    format!("{:.*}", decimals.min(12), v)
}

fn backend<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Backend(e.to_string())
}

/// Draws one panel into an SVG fragment of its own.
fn draw_panel(panel: &Panel) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PANEL).into_drawing_area();
        root.fill(&WHITE).map_err(backend)?;
        let (xr, yr) = panel.ranges();
        let mut builder = ChartBuilder::on(&root);
        builder.caption(&panel.caption, ("sans-serif", 18)).margin(12).x_label_area_size(42).y_label_area_size(70);
        if panel.log_y {
            fill_chart(builder.build_cartesian_2d(xr, yr.log_scale()).map_err(backend)?, panel)?;
        } else {
            fill_chart(builder.build_cartesian_2d(xr, yr).map_err(backend)?, panel)?;
        }
        root.present().map_err(backend)?;
    }
    Ok(svg)
}

fn fill_chart<'a, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    panel: &Panel,
) -> Result<(), PlotError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (xr, yr) = panel.ranges();
    let (xspan, yspan) = (xr.end - xr.start, yr.end - yr.start);
    let x_fmt = |v: &f64| tick_label(*v, xspan, false);
    let y_fmt = |v: &f64| tick_label(*v, yspan, panel.log_y);
    chart
        .configure_mesh()
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_labels(6)
        .y_labels(6)
        .max_light_lines(0)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(backend)?;
    let positive = |&(_, y): &(f64, f64)| !panel.log_y || y > 0.0;
    for mark in &panel.marks {
        let anno = match mark {
            Mark::Line { points, color, width, .. } => {
                chart.draw_series(LineSeries::new(points.iter().copied().filter(positive), color.stroke_width(*width)))
            }
            Mark::Band { polygon, color, .. } => {
                let area: Vec<(f64, f64)> = polygon.iter().copied().filter(positive).collect();
                chart.draw_series([Polygon::new(area, color.mix(0.25).filled())])
            }
            Mark::Bars { bars, .. } => {
                let live = bars.iter().filter(|b| b.density > 0.0);
                chart.draw_series(
                    live.map(|b| Rectangle::new([(b.lo, 0.0), (b.hi, b.density)], color(0).mix(0.5).filled())),
                )
            }
            Mark::Dot(p, c) => chart.draw_series([Circle::new(*p, 4, c.filled())]),
        }
        .map_err(backend)?;
        if let Some((label, style)) = mark.legend() {
            anno.label(label).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], style));
        }
    }
    let labelled = panel.marks.iter().filter(|m| m.legend().is_some()).count();
    if labelled > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(backend)?;
    }
    Ok(())
}

/// Lays the panels out in a grid under the title: each panel's fragment becomes
/// a nested `<svg>` placed by `x`/`y`, inside a `<g class="panel">` with its caption as `<title>`.
pub(super) fn compose(title: &str, panels: &[Panel]) -> Result<String, PlotError> {
    let cols = match panels.len() {
        0 => return Err(PlotError::Empty("no panels")),
        1 | 2 => panels.len(),
        3 | 4 => 2,
        _ => 3,
    };
    let grid_rows = panels.len().div_ceil(cols);
    let (w, h) = (PANEL.0 * cols as u32, TITLE_HEIGHT + PANEL.1 * grid_rows as u32);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<title>{t}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n\
         <text class=\"figure-title\" x=\"{x}\" y=\"27\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"22\">{t}</text>\n",
        t = escape(title),
        x = w / 2,
    );
    for (k, panel) in panels.iter().enumerate() {
        let fragment = draw_panel(panel)?;
        let (x, y) = (PANEL.0 * (k % cols) as u32, TITLE_HEIGHT + PANEL.1 * (k / cols) as u32);
        let body = fragment
            .trim()
            .strip_prefix("<svg ")
            .ok_or_else(|| PlotError::Backend("unexpected SVG from plotters".into()))?;
        out.push_str(&format!(
            "<g class=\"panel\">\n<title>{}</title>\n<svg x=\"{x}\" y=\"{y}\" {body}\n</g>\n",
            escape(&panel.caption)
        ));
    }
    out.push_str("</svg>\n");
    Ok(out)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}
