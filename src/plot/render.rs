//! Drawing: each panel is drawn into an SVG fragment of its own, and the fragments are laid
//! out in a grid under the figure's title.
//!
//! plotters draws the marks; the frame, ticks, tick labels, axis titles, caption, legend and
//! contour labels are placed here, in pixels, from an estimate of each text's box
//! ([`text_width`]), so that no text leaves its panel or covers another text or the data.

use super::panel::{Mark, Panel, CONTOUR_COLOR};
use super::series::decimate;
use super::PlotError;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;

/// The size of one panel, in pixels.
pub(super) const PANEL: (u32, u32) = (560, 380);
const MARGIN: f64 = 10.0;
/// Font sizes in pixels: caption, tick labels, axis titles, legend, contour labels.
const CAPTION: f64 = 16.0;
const TICK: f64 = 12.0;
const TITLE: f64 = 14.0;
const LEGEND: f64 = 12.0;
const INLINE: f64 = 10.0;
/// The light grey of grid lines.
pub(super) const GRID: RGBColor = RGBColor(230, 230, 230);

/// The estimated width of `text` in a sans-serif font of `size` pixels: 0.6 em a character,
/// wider than the average glyph of common sans-serif fonts.
pub(super) fn text_width(text: &str, size: f64) -> f64 {
    0.6 * size * text.chars().count() as f64
}

/// A text style of `size` pixels (plotters writes 1/1.24 of the size it is given).
fn font(size: f64, anchor: (HPos, VPos)) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size * 1.24).into_font()).pos(Pos::new(anchor.0, anchor.1))
}

fn backend<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Backend(e.to_string())
}

/// A compact number: `digits` significant digits, trailing zeros dropped, and an exponent
/// (`1.5e-7`) outside 10⁻³ … 10⁵.
pub fn compact(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { format!("{v}") };
    }
    let e = v.abs().log10().floor() as i32;
    if (-3..5).contains(&e) {
        let decimals = (digits as i32 - 1 - e).max(0) as usize;
        let s = format!("{v:.decimals$}");
        trim(&s)
    } else {
        let s = format!("{:.*e}", digits.saturating_sub(1), v);
        let (m, x) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{}e{}", trim(m), x)
    }
}

fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Ticks of a linear axis: multiples of a step of 1, 2, 2.5 or 5 × 10^k, about `n` of them,
/// with labels that tell neighbours apart.
fn linear_ticks(r: &Range<f64>, n: usize) -> Vec<(f64, String)> {
    let span = r.end - r.start;
    if !(span > 0.0 && span.is_finite()) {
        return vec![(r.start, compact(r.start, 6))];
    }
    let raw = span / n.max(1) as f64;
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p);
    let first = (r.start / step).ceil() as i64;
    let last = (r.end / step).floor() as i64;
    let mag = r.start.abs().max(r.end.abs());
    // Significant digits: enough for the step at the largest magnitude.
    let digits = ((mag.log10().floor() - step.log10().floor()) as i32 + 1 + i32::from(step / p == 2.5)).clamp(1, 15);
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
            let label = if v == 0.0 {
                "0".into()
            } else {
                let e = v.abs().log10().floor() as i32 - mag.log10().floor() as i32;
                compact(v, (digits + e).max(1) as usize)
            };
            (v, label)
        })
        .collect()
}

/// Ticks of a log axis over `10^a … 10^b`, as `(log10 v, label)`: decades when the range
/// spans at least two, else 1-2-5 or 1…9 times a power of ten, else linear steps, so that
/// any range gets at least two labelled ticks.
fn log_ticks(a: f64, b: f64) -> Vec<(f64, String)> {
    let label = |v: f64| compact(v, 3);
    let decades: Vec<i32> = (a.ceil() as i32..=b.floor() as i32).collect();
    if decades.len() >= 3 {
        let every = decades.len().div_ceil(7);
        let chosen = decades.iter().filter(|&&k| k.rem_euclid(every as i32) == 0);
        return chosen.map(|&k| (k as f64, label(10f64.powi(k)))).collect();
    }
    for mantissas in [&[1.0, 2.0, 5.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..]] {
        let ticks: Vec<(f64, String)> = (a.floor() as i32..=b.ceil() as i32)
            .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| (a..=b).contains(&v.log10()))
            .map(|v| (v.log10(), label(v)))
            .collect();
        if ticks.len() >= 3 {
            return ticks;
        }
    }
    let r = 10f64.powf(a)..10f64.powf(b);
    linear_ticks(&r, 4).into_iter().filter(|(v, _)| *v > 0.0).map(|(v, l)| (v.log10(), l)).collect()
}

/// A box of text or a legend, in panel pixels.
#[derive(Clone, Copy, Debug)]
struct Boxed {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Boxed {
    fn overlaps(&self, o: &Boxed) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    fn contains(&self, p: (f64, f64)) -> bool {
        (self.x0..=self.x1).contains(&p.0) && (self.y0..=self.y1).contains(&p.1)
    }

    /// Whether the segment `p`–`q` meets the box (Liang–Barsky).
    fn meets(&self, p: (f64, f64), q: (f64, f64)) -> bool {
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (num, den) in [(p.0 - self.x0, -dx), (self.x1 - p.0, dx), (p.1 - self.y0, -dy), (self.y1 - p.1, dy)] {
            if den == 0.0 {
                if num < 0.0 {
                    return false;
                }
            } else {
                let t = num / den;
                if den < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
            }
        }
        t0 <= t1
    }
}

/// Where a panel's pixels are: the plotting area and the axes' ranges (a log axis in log10).
struct Frame {
    area: Boxed,
    xr: Range<f64>,
    yr: Range<f64>,
    log_y: bool,
}

impl Frame {
    /// The data point `(x, y)` as the chart's coordinates (log10 y on a log axis, clamped to
    /// the axis so that values below its floor run along it).
    fn chart(&self, (x, y): (f64, f64)) -> (f64, f64) {
        let y = if self.log_y { y.log10().clamp(self.yr.start, self.yr.end) } else { y };
        (x, y)
    }

    fn pixel(&self, p: (f64, f64)) -> (f64, f64) {
        let (x, y) = self.chart(p);
        let a = &self.area;
        (
            a.x0 + (x - self.xr.start) / (self.xr.end - self.xr.start) * (a.x1 - a.x0),
            a.y1 - (y - self.yr.start) / (self.yr.end - self.yr.start) * (a.y1 - a.y0),
        )
    }
}

/// The legend: its entries (label, colour, filled swatch) and its size.
struct Legend {
    entries: Vec<(String, RGBAColor, bool)>,
    more: usize,
    width: f64,
    height: f64,
}

const ROW: f64 = LEGEND * 1.5;

impl Legend {
    fn of(panel: &Panel, room: f64) -> Option<Legend> {
        let all: Vec<(String, RGBAColor, bool)> = panel.marks.iter().filter_map(Mark::legend).collect();
        if all.len() < 2 {
            return None;
        }
        let fit = (((room - 12.0) / ROW).floor() as usize).max(2);
        let (entries, more) =
            if all.len() > fit { (all[..fit - 1].to_vec(), all.len() + 1 - fit) } else { (all.clone(), 0) };
        let widest = entries.iter().map(|e| text_width(&e.0, LEGEND)).fold(0.0, f64::max);
        let more_w = if more > 0 { text_width(&format!("… {more} more"), LEGEND) } else { 0.0 };
        let rows = entries.len() + usize::from(more > 0);
        Some(Legend { entries, more, width: 36.0 + widest.max(more_w), height: 8.0 + rows as f64 * ROW })
    }

    /// Whether the box at `b` leaves every drawn mark (in pixels) uncovered.
    fn free(b: &Boxed, drawn: &[Drawn]) -> bool {
        let b = Boxed { x0: b.x0 - 3.0, y0: b.y0 - 3.0, x1: b.x1 + 3.0, y1: b.y1 + 3.0 };
        drawn.iter().all(|d| match d {
            Drawn::Path(px) => {
                if px.len() == 1 {
                    return !b.contains(px[0]);
                }
                px.windows(2).all(|w| !b.meets(w[0], w[1]))
            }
            Drawn::Area(px) if px.is_empty() => true,
            Drawn::Area(px) => {
                let closing = [px[px.len() - 1], px[0]];
                px.windows(2).chain([&closing[..]]).all(|w| !b.meets(w[0], w[1])) && !inside(px, (b.x0, b.y0))
            }
        })
    }
}

/// Whether `p` is inside the polygon `px` (ray casting).
fn inside(px: &[(f64, f64)], p: (f64, f64)) -> bool {
    let mut c = false;
    let n = px.len();
    for i in 0..n {
        let (a, b) = (px[i], px[(i + n - 1) % n]);
        if (a.1 > p.1) != (b.1 > p.1) && p.0 < (b.0 - a.0) * (p.1 - a.1) / (b.1 - a.1) + a.0 {
            c = !c;
        }
    }
    c
}

/// A mark as drawn, in pixels: a polyline (or a dot) or a filled area.
enum Drawn {
    Path(Vec<(f64, f64)>),
    Area(Vec<(f64, f64)>),
}

/// A panel laid out: its frame, ticks, decimated marks and the legend's place.
struct Layout {
    frame: Frame,
    x_ticks: Vec<(f64, String)>,
    y_ticks: Vec<(f64, String)>,
    marks: Vec<Vec<(f64, f64)>>,
    drawn: Vec<Drawn>,
    legend: Option<(Legend, Boxed)>,
}

fn layout(panel: &Panel) -> Layout {
    let (xr, yr) = panel.ranges();
    let mut yr = if panel.log_y { yr.start.log10()..yr.end.log10() } else { yr };
    let mut xr = xr;
    let (w, h) = (PANEL.0 as f64, PANEL.1 as f64);
    let mut right = 0.0;
    let mut aspect_done = !panel.equal_aspect;
    loop {
        let y_ticks = if panel.log_y { log_ticks(yr.start, yr.end) } else { linear_ticks(&yr, 6) };
        let widest = y_ticks.iter().map(|t| text_width(&t.1, TICK)).fold(0.0, f64::max);
        let left = MARGIN + TITLE + 8.0 + widest + 8.0;
        let mut area = Boxed { x0: left, y0: MARGIN + CAPTION + 10.0, x1: w - MARGIN - right - 4.0, y1: h - 44.0 };
        let mut x_ticks = fitting_x_ticks(&xr, area.x1 - area.x0);
        // A tick label centred at the right end stays inside the panel.
        let half = x_ticks.iter().map(|t| text_width(&t.1, TICK) / 2.0).fold(0.0, f64::max);
        if area.x1 + half > w - 2.0 {
            area.x1 = w - 2.0 - half;
            x_ticks = fitting_x_ticks(&xr, area.x1 - area.x0);
        }
        let frame = Frame { area, xr: xr.clone(), yr: yr.clone(), log_y: panel.log_y };
        if !aspect_done {
            aspect_done = true;
            let (pw, ph) = (area.x1 - area.x0, area.y1 - area.y0);
            let u = ((xr.end - xr.start) / pw).max((yr.end - yr.start) / ph);
            let widen = |r: &Range<f64>, px: f64| {
                let c = (r.start + r.end) / 2.0;
                c - u * px / 2.0..c + u * px / 2.0
            };
            (xr, yr) = (widen(&xr, pw), widen(&yr, ph));
            continue;
        }
        let marks: Vec<Vec<(f64, f64)>> = panel
            .marks
            .iter()
            .map(|m| match m {
                Mark::Line { points, .. } | Mark::Contour { points, .. } => {
                    let live: Vec<(f64, f64)> = points.iter().copied().filter(|p| !panel.log_y || p.1 > 0.0).collect();
                    decimate(&live, |p| frame.pixel(p))
                }
                Mark::Band { polygon, .. } => {
                    let live: Vec<(f64, f64)> = polygon.iter().copied().filter(|p| !panel.log_y || p.1 > 0.0).collect();
                    decimate(&live, |p| frame.pixel(p))
                }
                _ => m.points(),
            })
            .collect();
        let drawn: Vec<Drawn> = panel
            .marks
            .iter()
            .zip(&marks)
            .filter(|(_, pts)| !pts.is_empty())
            .map(|(m, pts)| match m {
                Mark::Band { .. } => Drawn::Area(pts.iter().map(|&p| frame.pixel(p)).collect()),
                Mark::Bars { bars, .. } => Drawn::Area(
                    bars.iter()
                        .filter(|b| b.density > 0.0)
                        .flat_map(|b| [(b.lo, 0.0), (b.lo, b.density), (b.hi, b.density), (b.hi, 0.0)])
                        .map(|p| frame.pixel(p))
                        .collect(),
                ),
                _ => Drawn::Path(pts.iter().map(|&p| frame.pixel(p)).collect()),
            })
            .collect();
        let legend = Legend::of(panel, area.y1 - area.y0);
        let placed = legend.map(|l| {
            let inset = 6.0;
            let corners = [
                (area.x1 - inset - l.width, area.y0 + inset),
                (area.x0 + inset, area.y0 + inset),
                (area.x1 - inset - l.width, area.y1 - inset - l.height),
                (area.x0 + inset, area.y1 - inset - l.height),
            ];
            let free = corners
                .iter()
                .map(|&(x, y)| Boxed { x0: x, y0: y, x1: x + l.width, y1: y + l.height })
                .find(|b| b.x0 > area.x0 && b.y1 < area.y1 && Legend::free(b, &drawn));
            (l, free)
        });
        let legend = match placed {
            None => None,
            Some((l, Some(b))) => Some((l, b)),
            Some((l, None)) => {
                if right == 0.0 {
                    right = l.width + 8.0;
                    continue;
                }
                let b = Boxed { x0: area.x1 + 8.0, y0: area.y0, x1: area.x1 + 8.0 + l.width, y1: area.y0 + l.height };
                Some((l, b))
            }
        };
        return Layout { frame, x_ticks, y_ticks, marks, drawn, legend };
    }
}

/// Linear x ticks whose labels leave a gap between neighbours.
fn fitting_x_ticks(xr: &Range<f64>, width: f64) -> Vec<(f64, String)> {
    let mut n = 7;
    loop {
        let ticks = linear_ticks(xr, n);
        let widest = ticks.iter().map(|t| text_width(&t.1, TICK)).fold(0.0, f64::max);
        let spacing = if ticks.len() > 1 { width / (xr.end - xr.start) * (ticks[1].0 - ticks[0].0) } else { width };
        if widest + 8.0 <= spacing || n <= 2 {
            return ticks;
        }
        n -= 1;
    }
}

fn text(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    s: &str,
    at: (f64, f64),
    style: TextStyle,
) -> Result<(), PlotError> {
    root.draw(&Text::new(s.to_string(), (at.0.round() as i32, at.1.round() as i32), style)).map_err(backend)
}

/// Draws one panel into an SVG fragment of its own.
fn draw_panel(panel: &Panel) -> Result<String, PlotError> {
    let l = layout(panel);
    let f = &l.frame;
    let a = f.area;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PANEL).into_drawing_area();
        root.fill(&WHITE).map_err(backend)?;
        let (w, h) = (PANEL.0 as f64, PANEL.1 as f64);
        let px = |v: f64| v.round() as i32;
        // Grid lines.
        for (v, _) in &l.x_ticks {
            let x = f.pixel((*v, 10f64.powf(f.yr.start))).0;
            root.draw(&PathElement::new(vec![(px(x), px(a.y0)), (px(x), px(a.y1))], GRID)).map_err(backend)?;
        }
        for (v, _) in &l.y_ticks {
            let y = a.y1 - (v - f.yr.start) / (f.yr.end - f.yr.start) * (a.y1 - a.y0);
            root.draw(&PathElement::new(vec![(px(a.x0), px(y)), (px(a.x1), px(y))], GRID)).map_err(backend)?;
        }
        // Marks, clipped to the plotting area.
        let area = root.margin(px(a.y0) as u32, (h - a.y1).round() as u32, px(a.x0) as u32, (w - a.x1).round() as u32);
        let mut chart = ChartBuilder::on(&area).build_cartesian_2d(f.xr.clone(), f.yr.clone()).map_err(backend)?;
        draw_marks(&mut chart, panel, &l)?;
        // The frame, ticks and their labels.
        root.draw(&Rectangle::new([(px(a.x0), px(a.y0)), (px(a.x1), px(a.y1))], BLACK.stroke_width(1)))
            .map_err(backend)?;
        for (v, label) in &l.x_ticks {
            let x = f.pixel((*v, 1.0)).0;
            root.draw(&PathElement::new(vec![(px(x), px(a.y1)), (px(x), px(a.y1 + 5.0))], BLACK)).map_err(backend)?;
            text(&root, label, (x, a.y1 + 8.0), font(TICK, (HPos::Center, VPos::Top)))?;
        }
        for (v, label) in &l.y_ticks {
            let y = a.y1 - (v - f.yr.start) / (f.yr.end - f.yr.start) * (a.y1 - a.y0);
            root.draw(&PathElement::new(vec![(px(a.x0 - 5.0), px(y)), (px(a.x0), px(y))], BLACK)).map_err(backend)?;
            text(&root, label, (a.x0 - 8.0, y), font(TICK, (HPos::Right, VPos::Center)))?;
        }
        // Axis titles and the caption, shortened to fit.
        let x_title = fit(&panel.x_label, TITLE, a.x1 - a.x0);
        text(&root, &x_title, ((a.x0 + a.x1) / 2.0, a.y1 + 8.0 + TICK + 6.0), font(TITLE, (HPos::Center, VPos::Top)))?;
        let y_title = fit(&panel.y_label, TITLE, a.y1 - a.y0);
        let style = font(TITLE, (HPos::Center, VPos::Top)).transform(FontTransform::Rotate270);
        text(&root, &y_title, (MARGIN, (a.y0 + a.y1) / 2.0), style)?;
        let caption = fit(&panel.caption, CAPTION, w - 2.0 * MARGIN);
        text(&root, &caption, (w / 2.0, MARGIN - 2.0), font(CAPTION, (HPos::Center, VPos::Top)))?;
        let mut taken: Vec<Boxed> = Vec::new();
        if let Some((legend, b)) = &l.legend {
            draw_legend(&root, legend, b)?;
            taken.push(*b);
        }
        label_contours(&root, panel, &l, &mut taken)?;
        root.present().map_err(backend)?;
    }
    Ok(svg)
}

/// `s`, cut with an ellipsis to fit `room` pixels.
fn fit(s: &str, size: f64, room: f64) -> String {
    if text_width(s, size) <= room {
        return s.to_string();
    }
    let keep = ((room / (0.6 * size)).floor() as usize).saturating_sub(1);
    format!("{}…", s.chars().take(keep).collect::<String>())
}

fn draw_marks(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    panel: &Panel,
    l: &Layout,
) -> Result<(), PlotError> {
    let f = &l.frame;
    for (mark, pts) in panel.marks.iter().zip(&l.marks) {
        let chart_pts: Vec<(f64, f64)> = pts.iter().map(|&p| f.chart(p)).collect();
        match mark {
            Mark::Line { color, width, .. } => {
                chart.draw_series(LineSeries::new(chart_pts, color.stroke_width(*width))).map_err(backend)?;
            }
            Mark::Contour { .. } => {
                chart.draw_series(LineSeries::new(chart_pts, CONTOUR_COLOR.stroke_width(1))).map_err(backend)?;
            }
            Mark::Band { color, .. } => {
                chart.draw_series([Polygon::new(chart_pts, color.mix(0.25).filled())]).map_err(backend)?;
            }
            Mark::Bars { bars, .. } => {
                let live = bars.iter().filter(|b| b.density > 0.0);
                chart
                    .draw_series(live.map(|b| {
                        Rectangle::new([(b.lo, 0.0), (b.hi, b.density)], super::panel::color(0).mix(0.5).filled())
                    }))
                    .map_err(backend)?;
            }
            Mark::Dot(p, c) => {
                chart.draw_series([Circle::new(f.chart(*p), 4, c.filled())]).map_err(backend)?;
            }
            Mark::Cells(cells) => {
                chart
                    .draw_series(
                        cells.iter().map(|&(x0, x1, y0, y1, c)| {
                            Rectangle::new([f.chart((x0, y0)), f.chart((x1, y1))], c.filled())
                        }),
                    )
                    .map_err(backend)?;
            }
        }
    }
    Ok(())
}

fn draw_legend(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    legend: &Legend,
    b: &Boxed,
) -> Result<(), PlotError> {
    let r = |v: f64| v.round() as i32;
    root.draw(&Rectangle::new([(r(b.x0), r(b.y0)), (r(b.x1), r(b.y1))], WHITE.mix(0.9).filled())).map_err(backend)?;
    root.draw(&Rectangle::new([(r(b.x0), r(b.y0)), (r(b.x1), r(b.y1))], BLACK.mix(0.4).stroke_width(1)))
        .map_err(backend)?;
    for (k, (label, color, filled)) in legend.entries.iter().enumerate() {
        let y = b.y0 + 4.0 + ROW * (k as f64 + 0.5);
        if *filled {
            root.draw(&Rectangle::new([(r(b.x0 + 6.0), r(y - 5.0)), (r(b.x0 + 24.0), r(y + 5.0))], color.filled()))
                .map_err(backend)?;
        } else {
            root.draw(&Rectangle::new([(r(b.x0 + 6.0), r(y - 1.5)), (r(b.x0 + 24.0), r(y + 1.5))], color.filled()))
                .map_err(backend)?;
        }
        text(root, label, (b.x0 + 30.0, y), font(LEGEND, (HPos::Left, VPos::Center)))?;
    }
    if legend.more > 0 {
        let y = b.y0 + 4.0 + ROW * (legend.entries.len() as f64 + 0.5);
        text(root, &format!("… {} more", legend.more), (b.x0 + 30.0, y), font(LEGEND, (HPos::Left, VPos::Center)))?;
    }
    Ok(())
}

/// Writes each contour level once, on its longest line, where the label's box stays inside
/// the plotting area and clear of the legend, the other labels and the path.
fn label_contours(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    panel: &Panel,
    l: &Layout,
    taken: &mut Vec<Boxed>,
) -> Result<(), PlotError> {
    let f = &l.frame;
    let mut longest: Vec<(&str, &Vec<(f64, f64)>)> = Vec::new();
    for (mark, pts) in panel.marks.iter().zip(&l.marks) {
        if let Mark::Contour { level, .. } = mark {
            match longest.iter_mut().find(|(lv, _)| *lv == level.as_str()) {
                Some(e) if e.1.len() < pts.len() => e.1 = pts,
                Some(_) => {}
                None => longest.push((level.as_str(), pts)),
            }
        }
    }
    let others: Vec<&Drawn> = panel
        .marks
        .iter()
        .zip(&l.drawn)
        .filter(|(m, _)| matches!(m, Mark::Line { .. } | Mark::Dot(..)))
        .map(|(_, d)| d)
        .collect();
    for (level, pts) in longest {
        let px: Vec<(f64, f64)> = pts.iter().map(|&p| f.pixel(p)).collect();
        if px.len() < 2 {
            continue;
        }
        let (bw, bh) = (text_width(level, INLINE) + 4.0, INLINE + 2.0);
        for frac in [0.5, 0.3, 0.7, 0.15, 0.85, 0.05, 0.95, 0.4, 0.6] {
            let p = px[((px.len() - 1) as f64 * frac) as usize];
            let b = Boxed { x0: p.0 - bw / 2.0, y0: p.1 - bh / 2.0, x1: p.0 + bw / 2.0, y1: p.1 + bh / 2.0 };
            let a = &f.area;
            let inside = b.x0 > a.x0 + 2.0 && b.x1 < a.x1 - 2.0 && b.y0 > a.y0 + 2.0 && b.y1 < a.y1 - 2.0;
            let clear = taken.iter().all(|t| !t.overlaps(&b))
                && others.iter().all(|d| match d {
                    Drawn::Path(q) if q.len() == 1 => !b.contains(q[0]),
                    Drawn::Path(q) => q.windows(2).all(|w| !b.meets(w[0], w[1])),
                    Drawn::Area(_) => true,
                });
            if inside && clear {
                let r = |v: f64| v.round() as i32;
                root.draw(&Rectangle::new([(r(b.x0), r(b.y0)), (r(b.x1), r(b.y1))], WHITE.filled()))
                    .map_err(backend)?;
                let style = font(INLINE, (HPos::Center, VPos::Center)).color(&RGBColor(90, 90, 90));
                text(root, level, p, style)?;
                taken.push(b);
                break;
            }
        }
    }
    Ok(())
}

/// The height of the figure's title, and of its note line when it has one.
const TITLE_HEIGHT: u32 = 40;
const NOTE_HEIGHT: u32 = 22;

/// Lays the panels out in a grid under the title (and a note line saying what is left out):
/// each panel's fragment becomes a nested `<svg>` placed by `x`/`y`, inside a
/// `<g class="panel">` with its caption as `<title>`.
pub(super) fn compose(title: &str, notes: &[String], panels: &[Panel]) -> Result<String, PlotError> {
    let cols = match panels.len() {
        0 => return Err(PlotError::Empty("no panels")),
        1 | 2 => panels.len(),
        3 | 4 => 2,
        _ => 3,
    };
    let grid_rows = panels.len().div_ceil(cols);
    let top = TITLE_HEIGHT + if notes.is_empty() { 0 } else { NOTE_HEIGHT };
    let (w, h) = (PANEL.0 * cols as u32, top + PANEL.1 * grid_rows as u32);
    let size = 22f64.min(0.95 * w as f64 / (0.6 * title.chars().count().max(1) as f64)).floor();
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<title>{t}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n\
         <text class=\"figure-title\" x=\"{x}\" y=\"27\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"{size}\">{t}</text>\n",
        t = escape(title),
        x = w / 2,
    );
    if !notes.is_empty() {
        let note = notes.join("; ");
        let size = 14f64.min(0.95 * w as f64 / (0.6 * note.chars().count() as f64)).floor();
        out.push_str(&format!(
            "<text class=\"figure-note\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"{size}\">{}</text>\n",
            w / 2,
            TITLE_HEIGHT + 12,
            escape(&note)
        ));
    }
    for (k, panel) in panels.iter().enumerate() {
        let fragment = draw_panel(panel)?;
        let (x, y) = (PANEL.0 * (k % cols) as u32, top + PANEL.1 * (k / cols) as u32);
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
