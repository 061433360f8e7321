//! Tests of `lagc::plot`: hand-made rows in, SVG out, read back as XML.
//!
//! Each panel of a figure is a `<g class="panel">` whose `<title>` is its
//! caption, drawn in a nested `<svg>` of 560 × 380 pixels. Ticks are black
//! `<polyline>`s and grid lines light grey (`#E6E6E6`) ones, so a plotted series
//! is a `<polyline>` with any other stroke colour, a band is a `<polygon>`, and
//! histogram bars are `<rect>`s. A text's box is estimated from its font size and
//! its number of characters (0.6 em each), its anchor, its `dy` and its rotation.

use lagc::plot::{
    cartesian_pairs, compact, contour_levels, contour_lines, density_histogram, ensemble_svg, ensemble_svg_with_bands,
    gibbs_density, trajectory_svg, PlotError, PlotInfo, MAX_CURVE_POINTS, MAX_POINTS,
};
use lagc::ModelKind;
use rand::SeedableRng;
use rand_distr::Distribution;
use roxmltree::{Document, Node};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A conservative Lagrangian model, or an energy model.
fn info(model: &str, kind: ModelKind, vars: &[&str], temperature: Option<f64>) -> PlotInfo {
    let conservative = kind == ModelKind::Lagrangian;
    PlotInfo { model: model.into(), kind, vars: names(vars), temperature, conservative }
}

const PANEL: (f64, f64) = (560.0, 380.0);

/// The estimated box of a text element, in the coordinates of its (nested) SVG.
#[derive(Clone, Debug)]
struct TextBox {
    text: String,
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl TextBox {
    fn overlaps(&self, o: &TextBox) -> bool {
        let tol = 0.5;
        self.x0 + tol < o.x1 && o.x0 + tol < self.x1 && self.y0 + tol < o.y1 && o.y0 + tol < self.y1
    }

    fn centre(&self) -> (f64, f64) {
        ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }
}

fn text_box(n: &Node) -> Option<TextBox> {
    let text = n.text()?.trim().to_string();
    if text.is_empty() {
        return None;
    }
    let num = |a: &str| n.attribute(a).and_then(|v| v.parse::<f64>().ok());
    let (x, y, size) = (num("x")?, num("y")?, num("font-size")?);
    let (w, h) = (0.6 * size * text.chars().count() as f64, size);
    let dx0 = match n.attribute("text-anchor") {
        Some("end") => -w,
        Some("middle") => -w / 2.0,
        _ => 0.0,
    };
    let dy0 = match n.attribute("dy") {
        Some("0.76em") => 0.0,
        Some("0.5ex") => -h / 2.0,
        Some("-0.5ex") => -h,
        _ => -0.8 * h,
    };
    let b = match n.attribute("transform") {
        // rotate(270) about the anchor maps (dx, dy) to (dy, −dx).
        Some(t) if t.starts_with("rotate(270") => (x + dy0, y - dx0 - w, x + dy0 + h, y - dx0),
        Some(t) if t.starts_with("rotate(90") => (x - dy0 - h, y + dx0, x - dy0, y + dx0 + w),
        _ => (x + dx0, y + dy0, x + dx0 + w, y + dy0 + h),
    };
    Some(TextBox { text, x0: b.0, y0: b.1, x1: b.2, y1: b.3 })
}

/// Every text of every panel lies inside its panel and no two overlap; so do the
/// figure's own title and note, inside the figure.
fn assert_text_fits(svg: &str) {
    let doc = Document::parse(svg).unwrap();
    let root = doc.root_element();
    let width: f64 = root.attribute("width").unwrap().parse().unwrap();
    let own: Vec<TextBox> = root.children().filter(|n| n.has_tag_name("text")).filter_map(|n| text_box(&n)).collect();
    for b in &own {
        assert!(b.x0 >= 0.0 && b.x1 <= width && b.y0 >= 0.0, "the figure's `{}` leaves it: {b:?}", b.text);
    }
    for panel in doc.descendants().filter(|n| n.attribute("class") == Some("panel")) {
        let caption = panel.children().find(|c| c.has_tag_name("title")).and_then(|c| c.text()).unwrap_or("");
        let boxes: Vec<TextBox> =
            panel.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| text_box(&n)).collect();
        for b in &boxes {
            let inside = b.x0 >= 0.0 && b.y0 >= 0.0 && b.x1 <= PANEL.0 && b.y1 <= PANEL.1;
            assert!(inside, "`{}` leaves the panel `{caption}`: {b:?}", b.text);
        }
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(!a.overlaps(b), "in `{caption}`, `{}` overlaps `{}`: {a:?} {b:?}", a.text, b.text);
            }
        }
    }
}

/// A panel of a parsed figure: its caption and its element.
struct Panel<'a, 'i> {
    caption: String,
    node: Node<'a, 'i>,
}

impl Panel<'_, '_> {
    fn count(&self, tag: &str) -> usize {
        self.node.descendants().filter(|n| n.has_tag_name(tag)).count()
    }

    /// Plotted lines: polylines neither black (ticks) nor light grey (grid lines).
    fn series(&self) -> Vec<Node<'_, '_>> {
        self.node
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| !matches!(n.attribute("stroke"), Some("#000000") | Some("#E6E6E6")))
            .collect()
    }

    /// The plot's frame: the black rectangle, as (x0, y0, x1, y1).
    fn frame(&self) -> (f64, f64, f64, f64) {
        let r = self
            .node
            .descendants()
            .find(|n| n.has_tag_name("rect") && n.attribute("stroke") == Some("#000000"))
            .expect("a frame");
        let num = |a: &str| r.attribute(a).unwrap().parse::<f64>().unwrap();
        (num("x"), num("y"), num("x") + num("width"), num("y") + num("height"))
    }

    /// The legend's box: the translucent white rectangle, when there is one.
    fn legend(&self) -> Option<(f64, f64, f64, f64)> {
        let r = self.node.descendants().find(|n| {
            n.has_tag_name("rect")
                && n.attribute("fill") == Some("#FFFFFF")
                && n.attribute("opacity").or(n.attribute("fill-opacity")).is_some_and(|o| o != "1")
        })?;
        let num = |a: &str| r.attribute(a).unwrap().parse::<f64>().unwrap();
        Some((num("x"), num("y"), num("x") + num("width"), num("y") + num("height")))
    }

    /// The tick labels beside the y axis as (pixel y, value), bottom to top.
    fn y_tick_pixels(&self) -> Vec<(f64, f64)> {
        let mut ticks: Vec<(f64, f64)> = self
            .node
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some("end"))
            .filter_map(|n| Some((n.attribute("y")?.parse::<f64>().ok()?, n.text()?.trim().parse::<f64>().ok()?)))
            .collect();
        ticks.sort_by(|a, b| b.0.total_cmp(&a.0));
        ticks
    }

    /// The tick labels under the x axis as (pixel x, value), left to right.
    fn x_tick_pixels(&self) -> Vec<(f64, f64)> {
        let frame = self.frame();
        let mut ticks: Vec<(f64, f64)> = self
            .node
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some("middle"))
            .filter(|n| n.attribute("y").and_then(|y| y.parse::<f64>().ok()).is_some_and(|y| y > frame.3))
            .filter_map(|n| Some((n.attribute("x")?.parse::<f64>().ok()?, n.text()?.trim().parse::<f64>().ok()?)))
            .collect();
        ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
        ticks
    }

    fn texts(&self) -> Vec<String> {
        self.node
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(|t| t.trim().to_string())
            .collect()
    }

    fn has_text(&self, text: &str) -> bool {
        self.texts().iter().any(|t| t == text)
    }
}

/// Parses the SVG (failing on malformed XML) and hands its panels to `check`.
fn with_panels(svg: &str, check: impl FnOnce(&Document, Vec<Panel>)) {
    let doc = Document::parse(svg).unwrap_or_else(|e| panic!("the SVG is not well-formed XML: {e}"));
    let panels = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("panel"))
        .map(|node| {
            let caption =
                node.children().find(|c| c.has_tag_name("title")).and_then(|c| c.text()).unwrap_or("").to_string();
            Panel { caption, node }
        })
        .collect();
    check(&doc, panels)
}

/// The panel whose caption starts with `prefix`.
fn panel_at<'p, 'a, 'i>(panels: &'p [Panel<'a, 'i>], prefix: &str) -> &'p Panel<'a, 'i> {
    let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
    panels
        .iter()
        .find(|p| p.caption.starts_with(prefix))
        .unwrap_or_else(|| panic!("no panel `{prefix}…` among {captions:?}"))
}

fn figure_note(doc: &Document) -> String {
    let root = doc.root_element();
    let note = root.children().find(|c| c.has_tag_name("text") && c.attribute("class") == Some("figure-note"));
    note.and_then(|c| c.text()).unwrap_or("").to_string()
}

fn panel<'p, 'a, 'i>(panels: &'p [Panel<'a, 'i>], caption: &str) -> &'p Panel<'a, 'i> {
    let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
    panels.iter().find(|p| p.caption == caption).unwrap_or_else(|| panic!("no panel `{caption}` among {captions:?}"))
}

fn figure_title(doc: &Document) -> String {
    let root = doc.root_element();
    root.children().find(|c| c.has_tag_name("title")).and_then(|c| c.text()).unwrap_or("").to_string()
}

fn point_count(polyline: &Node) -> usize {
    polyline.attribute("points").unwrap_or("").split_whitespace().count()
}

fn points_of(polyline: &Node) -> Vec<(f64, f64)> {
    polyline
        .attribute("points")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|p| p.split_once(','))
        .map(|(x, y)| (x.parse().unwrap(), y.parse().unwrap()))
        .collect()
}

/// The value at pixel `y` on a log axis, interpolated between its labelled ticks.
fn log_value(ticks: &[(f64, f64)], y: f64) -> f64 {
    let (a, b) = (ticks[0], ticks[ticks.len() - 1]);
    let s = (y - a.0) / (b.0 - a.0);
    10f64.powf(a.1.log10() + s * (b.1.log10() - a.1.log10()))
}

/// The harmonic oscillator q = cos t, q' = −sin t, H = (1 + 10⁻⁹ sin² t)/2: a relative
/// energy error of 10⁻⁹ sin² t.
fn oscillator(n: usize) -> (Vec<String>, Vec<Vec<f64>>) {
    let rows = (0..n)
        .map(|k| {
            let t = k as f64 * 2.0 * std::f64::consts::PI / (n - 1) as f64;
            vec![t, t.cos(), -t.sin(), 0.5 * (1.0 + 1e-9 * t.sin().powi(2))]
        })
        .collect();
    (names(&["t", "q", "q'", "energy"]), rows)
}

#[test]
fn oscillator_has_coordinate_energy_and_phase_panels() {
    let (columns, rows) = oscillator(200);
    let svg = trajectory_svg(&info("oscillator", ModelKind::Lagrangian, &["q"], None), &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |doc, panels| {
        assert!(figure_title(doc).contains("oscillator"));
        assert!(doc
            .descendants()
            .any(|n| n.has_tag_name("text") && n.text().is_some_and(|t| t.contains("oscillator"))));
        let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
        assert_eq!(captions, ["coordinates", "relative energy error, H0 = 0.5", "phase portrait q"]);
        for p in &panels {
            assert_eq!(p.series().len(), 1, "one series in `{}`", p.caption);
        }
        let coords = panel(&panels, "coordinates");
        assert!(coords.has_text("t") && coords.has_text("q"));
        assert_eq!(point_count(&coords.series()[0]), 200);
        let phase = panel(&panels, "phase portrait q");
        assert!(phase.has_text("q") && phase.has_text("q'"));
        assert!(panel_at(&panels, "relative energy error").has_text("|H − H0|/|H0|"));
        assert!(panels.iter().all(|p| p.legend().is_none()), "a single series gets no legend");
        assert!(figure_note(doc).is_empty(), "nothing is left out");
    });
}

#[test]
fn two_coordinates_get_a_legend_and_two_phase_portraits() {
    let columns = names(&["t", "th1", "th2", "th1'", "th2'", "energy", "x1"]);
    let rows: Vec<Vec<f64>> = (0..100)
        .map(|k| {
            let t = k as f64 * 0.1;
            vec![t, t.sin(), (2.0 * t).cos(), t.cos(), -2.0 * (2.0 * t).sin(), 1.0 + 1e-3 * t, t * t]
        })
        .collect();
    let svg =
        trajectory_svg(&info("double_pendulum", ModelKind::Lagrangian, &["th1", "th2"], None), &columns, &rows, None)
            .unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |doc, panels| {
        assert!(figure_title(doc).contains("double_pendulum"));
        let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
        assert_eq!(
            captions,
            ["coordinates", "relative energy error, H0 = 1", "x1", "phase portrait th1", "phase portrait th2"]
        );
        let coords = panel(&panels, "coordinates");
        assert_eq!(coords.series().len(), 2);
        assert!(coords.has_text("th1") && coords.has_text("th2"), "legend names: {:?}", coords.texts());
        assert!(coords.legend().is_some(), "two series get a legend");
        for var in ["th1", "th2"] {
            let phase = panel(&panels, &format!("phase portrait {var}"));
            assert_eq!(phase.series().len(), 1);
            assert!(phase.has_text(var) && phase.has_text(&format!("{var}'")));
        }
        // The observe x1 = t² in a panel of its own, against t.
        let observe = panel(&panels, "x1");
        assert_eq!(observe.series().len(), 1);
        let ticks = observe.y_tick_pixels();
        assert!(ticks.first().unwrap().1 >= 0.0 && ticks.last().unwrap().1 >= 80.0, "{ticks:?}");
    });
}

#[test]
fn left_out_coordinates_and_phase_portraits_are_said() {
    let vars: Vec<String> = (0..12).map(|i| format!("q[{i}]")).collect();
    let mut columns = vec!["t".to_string()];
    columns.extend(vars.iter().cloned());
    columns.extend(vars.iter().map(|v| format!("{v}'")));
    columns.push("energy".into());
    let rows: Vec<Vec<f64>> =
        (0..20).map(|k| (0..columns.len()).map(|c| ((k * c) as f64 * 0.1).sin() + c as f64).collect()).collect();
    let plot =
        PlotInfo { model: "chain".into(), kind: ModelKind::Lagrangian, vars, temperature: None, conservative: true };
    let svg = trajectory_svg(&plot, &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |doc, panels| {
        assert_eq!(panels.len(), 2 + 4);
        let coords = panel(&panels, "coordinates (first 10 of 12)");
        assert_eq!(coords.series().len(), 10);
        assert!(coords.has_text("q[9]") && !coords.has_text("q[10]"));
        let note = figure_note(doc);
        assert!(note.contains("phase portraits of 4 of 12 coordinates"), "{note}");
        assert!(note.contains("the first 10 of 12"), "{note}");
    });
}

#[test]
fn non_finite_values_are_skipped() {
    let (columns, mut rows) = oscillator(10);
    rows[4][1] = f64::NAN;
    rows[6][3] = f64::INFINITY;
    let svg = trajectory_svg(&info("osc", ModelKind::Lagrangian, &["q"], None), &columns, &rows, None).unwrap();
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    with_panels(&svg, |_, panels| {
        assert_eq!(point_count(&panel(&panels, "coordinates").series()[0]), 9);
        // Zero errors (the first row's) have no place on a log axis.
        let positive = rows.iter().filter(|r| r[3].is_finite() && r[3] != rows[0][3]).count();
        assert_eq!(point_count(&panel_at(&panels, "relative energy error").series()[0]), positive);
        assert_eq!(point_count(&panel(&panels, "phase portrait q").series()[0]), 9);
    });
}

#[test]
fn long_runs_are_decimated_per_pixel_column_and_keep_every_peak() {
    // 10⁵ rows of zeros with a spike to 1 every 1000 rows: a hundred peaks, each in a
    // pixel column of its own, every one of which must be drawn.
    let n = 100_000;
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|k| {
            let t = k as f64 * 1e-3;
            let q = if k % 1000 == 500 { 1.0 } else { 0.0 };
            vec![t, q, 0.0, 0.5 * (1.0 + 1e-12 * (k % 7) as f64)]
        })
        .collect();
    let columns = names(&["t", "q", "q'", "energy"]);
    let svg = trajectory_svg(&info("spikes", ModelKind::Lagrangian, &["q"], None), &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        let coords = panel(&panels, "coordinates");
        let line = &coords.series()[0];
        let points = points_of(line);
        let frame = coords.frame();
        assert!(points.len() <= 4 * (frame.2 - frame.0) as usize + 4, "{} points", points.len());
        assert!(points.len() <= MAX_POINTS);
        let top = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let peaks = points.windows(3).filter(|w| w[1].1 == top && w[0].1 > top && w[2].1 > top).count();
        assert_eq!(peaks, 100, "every spike is drawn");
        for p in &panels {
            for s in p.series() {
                assert!(point_count(&s) <= MAX_CURVE_POINTS, "`{}`: {} points", p.caption, point_count(&s));
            }
        }
    });
    assert!(svg.len() < 150_000, "{} bytes", svg.len());
}

#[test]
fn a_single_row_is_drawn_inside_the_panels() {
    // One row: every range is a point, widened; the right-most tick label stays inside.
    let columns = names(&["t", "x", "y", "x'", "y'", "energy"]);
    let rows = vec![vec![0.0, 0.4, 0.0, 0.0, 2.0, -0.5]];
    let svg = trajectory_svg(&info("kepler", ModelKind::Lagrangian, &["x", "y"], None), &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        assert!(panels.iter().any(|p| p.caption == "positions (• at the end)"));
        assert!(panel_at(&panels, "relative energy error").caption.ends_with(": constant"));
    });
}

#[test]
fn errors() {
    let plot = info("osc", ModelKind::Lagrangian, &["q"], None);
    let (columns, rows) = oscillator(10);
    assert!(matches!(trajectory_svg(&plot, &columns, &[], None), Err(PlotError::Empty(_))));
    let missing = info("osc", ModelKind::Lagrangian, &["p"], None);
    assert!(matches!(trajectory_svg(&missing, &columns, &rows, None), Err(PlotError::MissingColumn(c)) if c == "p"));
    let mut nan = rows.clone();
    nan.iter_mut().for_each(|r| r[3] = f64::NAN);
    assert!(matches!(trajectory_svg(&plot, &columns, &nan, None), Err(PlotError::NonFinite(c)) if c == "energy"));
    let mut short = rows.clone();
    short[2].pop();
    assert!(matches!(trajectory_svg(&plot, &columns, &short, None), Err(PlotError::RowLength { row: 2, .. })));
}

/// The gradient flow of E = (x² + 4y²)/2 from (2, 1): x = 2e^{−t}, y = e^{−4t}.
fn quadratic_flow() -> (Vec<String>, Vec<Vec<f64>>) {
    let rows = (0..400)
        .map(|k| {
            let t = k as f64 * 0.01;
            let (x, y) = (2.0 * (-t).exp(), (-4.0 * t).exp());
            vec![t, x, y, 0.5 * (x * x + 4.0 * y * y), (x * x + 16.0 * y * y).sqrt()]
        })
        .collect();
    (names(&["t", "x", "y", "energy", "grad_norm"]), rows)
}

fn quadratic(x: f64, y: f64) -> f64 {
    0.5 * (x * x + 4.0 * y * y)
}

#[test]
fn energy_model_path_over_labelled_contours() {
    let (columns, rows) = quadratic_flow();
    let plot = info("quadratic_flow", ModelKind::Energy, &["x", "y"], None);
    let bare = trajectory_svg(&plot, &columns, &rows, None).unwrap();
    let contoured = trajectory_svg(&plot, &columns, &rows, Some(&quadratic)).unwrap();
    assert_text_fits(&bare);
    assert_text_fits(&contoured);
    let mut bare_series = 0;
    with_panels(&bare, |doc, panels| {
        assert!(figure_title(doc).contains("quadratic_flow"));
        let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
        assert_eq!(captions.len(), 3, "{captions:?}");
        assert_eq!(captions[0], "state");
        assert!(captions[1].starts_with("energy above its minimum, E_min = "), "{captions:?}");
        assert_eq!(captions[2], "path (• start)");
        let path = panel(&panels, "path (• start)");
        assert!(path.has_text("x") && path.has_text("y"));
        bare_series = path.series().len();
        assert_eq!(bare_series, 1);
        assert_eq!(path.count("circle"), 1, "the start of the path is marked");
        assert_eq!(panel(&panels, "state").series().len(), 2);
    });
    with_panels(&contoured, |_, panels| {
        let path = panel(&panels, "path over contours of E (• start)");
        let n = path.series().len();
        assert!(n >= bare_series + 10, "{n} series with contours, {bare_series} without");
        let contours = path.series().iter().filter(|s| s.attribute("stroke") == Some("#969696")).count();
        assert_eq!(contours, n - 1);
        // The levels are written inside the frame, each one a level of the contours drawn.
        let frame = path.frame();
        let grid: Vec<f64> = (0..=64)
            .flat_map(|j| (0..=64).map(move |i| (i, j)))
            .map(|(i, j)| {
                // The panel's range: the path's, widened by a fifth on each side.
                let (x0, x1, y0, y1) = (2.0 * (-3.99f64).exp(), 2.0, (-4.0 * 3.99f64).exp(), 1.0);
                let (px, py) = (0.2 * (x1 - x0), 0.2 * (y1 - y0));
                let x = x0 - px + (x1 - x0 + 2.0 * px) * i as f64 / 64.0;
                let y = y0 - py + (y1 - y0 + 2.0 * py) * j as f64 / 64.0;
                quadratic(x, y)
            })
            .collect();
        let levels = contour_levels(&grid, 12);
        let labels: Vec<f64> = path
            .node
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| text_box(&n))
            .filter(|b| {
                let (cx, cy) = b.centre();
                cx > frame.0 && cx < frame.2 && cy > frame.1 && cy < frame.3
            })
            .filter_map(|b| b.text.parse::<f64>().ok())
            .collect();
        assert!(labels.len() >= 4, "contour labels: {labels:?}");
        for l in &labels {
            assert!(levels.iter().any(|v| (v - l).abs() <= 5e-3 * v.abs()), "{l} is not among {levels:?}");
        }
    });
}

#[test]
fn conservative_energy_is_the_relative_error_on_a_log_axis() {
    // H = H0 (1 + 10⁻⁹ sin² t) with H0 = −473.5: the error peaks at 10⁻⁹.
    let (columns, rows) = oscillator(400);
    let h0 = -473.5;
    let rows: Vec<Vec<f64>> = rows.iter().map(|r| vec![r[0], r[1], r[2], h0 * (2.0 * r[3])]).collect();
    let svg = trajectory_svg(&info("chain", ModelKind::Lagrangian, &["q"], None), &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        let energy = panel(&panels, "relative energy error, H0 = -473.5");
        assert!(energy.has_text("|H − H0|/|H0|"));
        let ticks = energy.y_tick_pixels();
        assert!(ticks.len() >= 2, "{ticks:?}");
        assert!(ticks.windows(2).all(|w| w[1].1 > w[0].1), "{ticks:?}");
        // Tick labels are compact: `1e-10`, not `0.0000000001`.
        let labels: Vec<String> = energy
            .node
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some("end"))
            .filter_map(|n| n.text().map(|t| t.trim().to_string()))
            .collect();
        assert!(labels.iter().all(|t| t.chars().count() <= 5), "{labels:?}");
        let top = points_of(&energy.series()[0]).iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let peak = log_value(&ticks, top);
        assert!((peak / 1e-9 - 1.0).abs() < 0.05, "the error peaks at {peak:e}, not 1e-9");
    });
    // H0 = 0: the absolute error, labelled so.
    let zero: Vec<Vec<f64>> = rows.iter().map(|r| vec![r[0], r[1], r[2], 1e-9 * r[0].sin().powi(2)]).collect();
    let svg = trajectory_svg(&info("osc", ModelKind::Lagrangian, &["q"], None), &columns, &zero, None).unwrap();
    with_panels(&svg, |_, panels| {
        let energy = panel(&panels, "energy error, H0 = 0");
        assert!(energy.has_text("|H − H0|"));
        let top = points_of(&energy.series()[0]).iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let peak = log_value(&energy.y_tick_pixels(), top);
        assert!((peak / 1e-9 - 1.0).abs() < 0.05, "{peak:e}");
    });
}

#[test]
fn a_short_log_range_still_has_labelled_ticks() {
    // A relative error between 1e-9 and 3e-9 after the first row: half a decade.
    let (columns, rows) = oscillator(300);
    let rows: Vec<Vec<f64>> = rows
        .iter()
        .enumerate()
        .map(|(k, r)| vec![r[0], r[1], r[2], if k == 0 { 1.0 } else { 1.0 + 2e-9 + 1e-9 * r[0].sin() }])
        .collect();
    let svg = trajectory_svg(&info("osc", ModelKind::Lagrangian, &["q"], None), &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        let ticks = panel_at(&panels, "relative energy error").y_tick_pixels();
        assert!(ticks.len() >= 2, "{ticks:?}");
        assert!(ticks.iter().all(|t| (0.9e-9..3.2e-9).contains(&t.1)), "{ticks:?}");
    });
}

#[test]
fn an_energy_model_shows_e_minus_e_min_on_a_log_axis() {
    // E = (x² + 4y²)/2 along the flow: E − E_min ≈ 2.5 at t = 0 and falls by decades.
    let (columns, rows) = quadratic_flow();
    let plot = info("quadratic_flow", ModelKind::Energy, &["x", "y"], None);
    let e_min = rows.iter().map(|r| r[3]).fold(f64::INFINITY, f64::min);
    let svg = trajectory_svg(&plot, &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        let energy = panel(&panels, &format!("energy above its minimum, E_min = {}", compact(e_min, 6)));
        assert!(energy.has_text("E − E_min"));
        let ticks = energy.y_tick_pixels();
        assert!(ticks.len() >= 3, "{ticks:?}");
        let decades: Vec<f64> = ticks.iter().map(|t| t.1.log10()).collect();
        assert!(decades.windows(2).all(|w| (w[1] - w[0]).fract().abs() < 1e-9 && w[1] > w[0]), "{ticks:?}");
        let top = points_of(&energy.series()[0]).iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let first = rows[0][3] - e_min;
        assert!((log_value(&ticks, top) / first - 1.0).abs() < 0.05);
    });
    // A Lagrangian model that loses energy: H − H_min.
    let (columns, rows) = oscillator(50);
    let decaying: Vec<Vec<f64>> = rows.iter().map(|r| vec![r[0], r[1], r[2], (-r[0]).exp() - 3.0]).collect();
    let lossy = PlotInfo { conservative: false, ..info("damped", ModelKind::Lagrangian, &["q"], None) };
    let svg = trajectory_svg(&lossy, &columns, &decaying, None).unwrap();
    with_panels(&svg, |_, panels| {
        let energy = panel_at(&panels, "energy above its minimum, H_min = -2.99");
        assert!(energy.has_text("H − H_min"));
    });
}

#[test]
fn observes_are_drawn_and_cartesian_pairs_share_a_plane_of_equal_aspect() {
    // A pendulum's two bobs: (x1, y1) on a circle of radius 1, (x2, y2) of radius 2;
    // L a conserved observe, constant to 1e-13; f = e^{−t} a decaying one.
    let columns = names(&["t", "th", "th'", "energy", "x1", "y1", "x2", "y2", "L", "f"]);
    let rows: Vec<Vec<f64>> = (0..500)
        .map(|k| {
            let t = k as f64 * 0.02;
            let th = 0.8 * t.sin();
            let l = 0.8 + 1e-13 * (3.0 * t).sin();
            let f = (-t).exp();
            vec![
                t,
                th,
                0.8 * t.cos(),
                -9.8 + 1e-8 * t.sin(),
                th.sin(),
                -th.cos(),
                2.0 * th.sin(),
                -2.0 * th.cos(),
                l,
                f,
            ]
        })
        .collect();
    let svg = trajectory_svg(&info("bobs", ModelKind::Lagrangian, &["th"], None), &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        let pos = panel(&panels, "positions (• at the end)");
        assert_eq!(pos.series().len(), 2);
        assert!(pos.has_text("(x1, y1)") && pos.has_text("(x2, y2)"));
        assert_eq!(pos.count("circle"), 2, "each final position is marked");
        let (xt, yt) = (pos.x_tick_pixels(), pos.y_tick_pixels());
        let per_x = (xt[xt.len() - 1].0 - xt[0].0) / (xt[xt.len() - 1].1 - xt[0].1);
        let per_y = (yt[0].0 - yt[yt.len() - 1].0) / (yt[yt.len() - 1].1 - yt[0].1);
        assert!((per_x / per_y - 1.0).abs() < 0.02, "pixels a unit: {per_x} along x, {per_y} along y");
        // The bob on the circle of radius 2 spans twice the height of the other.
        let span = |s: &Node| {
            let p = points_of(s);
            p.iter().map(|q| q.1).fold(f64::NEG_INFINITY, f64::max)
                - p.iter().map(|q| q.1).fold(f64::INFINITY, f64::min)
        };
        let (a, b) = (span(&pos.series()[0]), span(&pos.series()[1]));
        assert!((b / a - 2.0).abs() < 0.05, "{a} {b}");
        // L is drawn as its change from 0.8, on ticks of order 1e-13.
        let l = panel(&panels, "L");
        assert!(l.has_text("L − 0.8"), "{:?}", l.texts());
        let ticks = l.y_tick_pixels();
        assert!(ticks.iter().all(|t| t.1.abs() < 2e-13) && ticks.len() >= 3, "{ticks:?}");
        assert!(!panels.iter().any(|p| p.caption == "x1"), "a pair is not drawn again against t");
        // f = e^{−t} falls from 1 to e^{−10} ≈ 4.5e-5: a log axis, its ends where they belong.
        let f = panel(&panels, "f");
        let ticks = f.y_tick_pixels();
        let line = points_of(&f.series()[0]);
        let (first, last) = (log_value(&ticks, line[0].1), log_value(&ticks, line[line.len() - 1].1));
        assert!((first - 1.0).abs() < 0.03 && (last / (-9.98f64).exp() - 1.0).abs() < 0.05, "{first} {last}");
    });
}

#[test]
fn cartesian_pairs_follow_the_naming_rule() {
    let pairs = |list: &[&str]| cartesian_pairs(&names(list));
    let expect = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    assert_eq!(pairs(&["x", "y"]), expect(&[("x", "y")]));
    assert_eq!(pairs(&["x1", "y1", "x2", "y2"]), expect(&[("x1", "y1"), ("x2", "y2")]));
    assert_eq!(pairs(&["x_tip", "L", "y_tip"]), expect(&[("x_tip", "y_tip")]));
    assert_eq!(pairs(&["x[3]", "y[3]", "x[4]"]), expect(&[("x[3]", "y[3]")]));
    assert!(pairs(&["x1", "y2", "xi", "yi", "xmax", "ymax", "x_", "y_"]).is_empty());
}

#[test]
fn legends_leave_the_data_uncovered() {
    // A path ending in the upper right corner (Rosenbrock's minimum at (1, 1)) and a
    // two-peaked series with its right peak high: the legend must cover neither.
    let columns = names(&["t", "x", "y", "energy", "grad_norm"]);
    let rows: Vec<Vec<f64>> = (0..300)
        .map(|k| {
            let s = k as f64 / 299.0;
            let (x, y) = (-1.2 + 2.2 * s, 1.0 - 2.0 * s * (1.0 - s) + 0.0 * s);
            vec![s * 50.0, x, y, (1.0 - s).powi(4) + 1e-3, 1.0]
        })
        .collect();
    let svg = trajectory_svg(&info("rb", ModelKind::Energy, &["x", "y"], None), &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        for p in &panels {
            let Some(b) = p.legend() else { continue };
            for s in p.series() {
                for q in points_of(&s) {
                    let inside = q.0 > b.0 && q.0 < b.2 && q.1 > b.1 && q.1 < b.3;
                    assert!(!inside, "the legend of `{}` covers {q:?}", p.caption);
                }
            }
        }
        assert!(panel(&panels, "state").legend().is_some());
    });
}

#[test]
fn many_series_get_distinct_colours() {
    // 14 bobs: 14 Cartesian pairs, each its own colour.
    let k = 14;
    let mut columns = names(&["t", "q", "q'", "energy"]);
    for i in 0..k {
        columns.push(format!("x{i}"));
        columns.push(format!("y{i}"));
    }
    let rows: Vec<Vec<f64>> = (0..100)
        .map(|j| {
            let t = j as f64 * 0.05;
            let mut r = vec![t, t.sin(), t.cos(), 1.0 + 1e-6 * t];
            for i in 0..k {
                r.push((i + 1) as f64 * t.cos());
                r.push((i + 1) as f64 * t.sin());
            }
            r
        })
        .collect();
    let svg = trajectory_svg(&info("bobs", ModelKind::Lagrangian, &["q"], None), &columns, &rows, None).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        let pos = panel(&panels, "positions (• at the end)");
        let mut colours: Vec<String> =
            pos.series().iter().map(|s| s.attribute("stroke").unwrap().to_string()).collect();
        assert_eq!(colours.len(), k);
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), k, "distinct colours: {colours:?}");
    });
}

/// An Ornstein–Uhlenbeck ensemble at T = 0.5 (E = x²/2): mean 2e^{−t},
/// variance T(1 − e^{−2t}), and 1000 final particles drawn from N(0, T).
fn ensemble() -> (Vec<String>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let columns = names(&["t", "x_mean", "x_std", "energy_mean", "energy_std", "grad_norm_mean", "grad_norm_std"]);
    let rows = (0..300)
        .map(|k| {
            let t = k as f64 * 0.02;
            let (m, v) = (2.0 * (-t).exp(), 0.5 * (1.0 - (-2.0 * t).exp()));
            vec![t, m, v.sqrt(), 0.5 * (m * m + v), 0.3 * v.sqrt(), m.abs(), v.sqrt()]
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let normal = rand_distr::Normal::new(0.0, 0.5f64.sqrt()).unwrap();
    let finals = (0..1000).map(|_| vec![normal.sample(&mut rng)]).collect();
    (columns, rows, finals)
}

fn half_square(x: f64) -> f64 {
    0.5 * x * x
}

#[test]
fn ensemble_bands_histogram_and_gibbs_density() {
    let (columns, rows, finals) = ensemble();
    let plot = info("ornstein_uhlenbeck", ModelKind::Energy, &["x"], Some(0.5));
    let svg = ensemble_svg(&plot, &columns, &rows, &finals, Some(&half_square)).unwrap();
    assert_text_fits(&svg);
    let nonempty = density_histogram(&finals.iter().map(|p| p[0]).collect::<Vec<_>>(), 32)
        .iter()
        .filter(|b| b.density > 0.0)
        .count();
    with_panels(&svg, |doc, panels| {
        assert!(figure_title(doc).contains("ornstein_uhlenbeck") && figure_title(doc).contains("1000 particles"));
        let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
        assert_eq!(captions, ["x: mean ± std", "energy: mean ± std", "final x (1000 particles)"]);
        for name in ["x", "energy"] {
            let band = panel(&panels, &format!("{name}: mean ± std"));
            assert_eq!(band.count("polygon"), 1, "one band");
            assert_eq!(band.series().len(), 1, "one mean line");
            assert!(band.has_text(&format!("{name}_mean")) && band.has_text(&format!("{name}_mean ± {name}_std")));
            assert!(band.has_text("t") && band.has_text(name));
        }
        let hist = panel(&panels, "final x (1000 particles)");
        assert!(hist.has_text("density") && hist.has_text("x"));
        assert_eq!(hist.series().len(), 1, "the Gibbs density");
        assert!(hist.texts().iter().any(|t| t.starts_with("exp(−E/T)/Z")));
        // Bars, the background, the frame, the legend's box and border, and its two swatches.
        assert_eq!(hist.count("rect"), nonempty + 6, "bars: {nonempty}");
    });
    let without = ensemble_svg(&plot, &columns, &rows, &finals, None).unwrap();
    with_panels(&without, |_, panels| {
        let hist = panel(&panels, "final x (1000 particles)");
        assert_eq!(hist.series().len(), 0);
        assert_eq!(hist.count("rect"), nonempty + 2, "bars, the background and the frame, no legend");
    });
    let no_finals = ensemble_svg(&plot, &columns, &rows, &[], Some(&half_square)).unwrap();
    with_panels(&no_finals, |_, panels| assert_eq!(panels.len(), 2));
}

#[test]
fn ensemble_needs_mean_and_std_columns() {
    let (columns, rows, finals) = ensemble();
    let plot = info("ou", ModelKind::Energy, &["y"], Some(0.5));
    let err = ensemble_svg(&plot, &columns, &rows, &finals, None).unwrap_err();
    assert!(matches!(err, PlotError::MissingColumn(c) if c == "y_mean"));
}

#[test]
fn histogram_is_a_density() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let normal = rand_distr::Normal::new(1.0, 2.0).unwrap();
    let values: Vec<f64> = (0..20_000).map(|_| normal.sample(&mut rng)).collect();
    let bars = density_histogram(&values, 40);
    assert_eq!(bars.len(), 40);
    let area: f64 = bars.iter().map(|b| (b.hi - b.lo) * b.density).sum();
    assert!((area - 1.0).abs() < 1e-12, "{area}");
    let peak = bars.iter().max_by(|a, b| a.density.total_cmp(&b.density)).unwrap();
    assert!(peak.lo - 0.5 < 1.0 && peak.hi + 0.5 > 1.0, "peak near the mean: {peak:?}");
    let expected = 1.0 / (2.0 * (2.0 * std::f64::consts::PI).sqrt());
    assert!((peak.density - expected).abs() < 0.15 * expected, "{} vs {expected}", peak.density);
}

#[test]
fn gibbs_density_is_normalised() {
    let t = 0.5;
    let curve = gibbs_density(&half_square, t, -6.0..6.0, 801);
    let area: f64 = curve.windows(2).map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0)).sum();
    assert!((area - 1.0).abs() < 1e-12);
    let at_zero = curve.iter().find(|p| p.0.abs() < 1e-9).unwrap().1;
    let expected = 1.0 / (2.0 * std::f64::consts::PI * t).sqrt();
    assert!((at_zero - expected).abs() < 1e-6, "{at_zero} vs {expected}");
}

#[test]
fn contours_of_a_paraboloid_are_circles() {
    let f = |x: f64, y: f64| x * x + y * y;
    let lines = contour_lines(&f, -2.0..2.0, -2.0..2.0, 80, &[1.0, 2.25]);
    assert_eq!(lines.len(), 2, "each level one closed line");
    for (level, line) in &lines {
        let r = level.sqrt();
        assert!(line.len() > 50);
        assert!(line.iter().all(|(x, y)| ((x * x + y * y).sqrt() - r).abs() < 0.01), "level {level}");
        let (first, last) = (line[0], line[line.len() - 1]);
        assert!((first.0 - last.0).abs() < 1e-12 && (first.1 - last.1).abs() < 1e-12, "closed");
    }
}

#[test]
fn contour_levels_are_linear_or_logarithmic() {
    let linear = contour_levels(&[0.0, 1.0, 2.0, 3.0, 4.0], 4);
    assert_eq!(linear, [0.5, 1.5, 2.5, 3.5]);
    let values: Vec<f64> = (0..=100).map(|k| 1.0 + (k as f64 / 10.0).powi(6)).collect();
    let levels = contour_levels(&values, 12);
    assert_eq!(levels.len(), 12);
    let ratios: Vec<f64> = levels.windows(2).map(|w| (w[1] - 1.0) / (w[0] - 1.0)).collect();
    assert!(ratios.iter().all(|r| (r - ratios[0]).abs() < 1e-9 && *r > 1.5), "{ratios:?}");
    assert!(contour_levels(&[2.0, 2.0], 12).is_empty());
}

#[test]
fn an_open_contour_is_one_line_from_boundary_to_boundary() {
    // y = x² crosses the box [-1, 1]² from corner to corner; its lowest cells are scanned first.
    let f = |x: f64, y: f64| x * x - y;
    let lines = contour_lines(&f, -1.0..1.0, -1.0..1.0, 41, &[0.0]);
    assert_eq!(lines.len(), 1);
    let line = &lines[0].1;
    let (first, last) = (line[0], line[line.len() - 1]);
    assert!((first.0.abs() - 1.0).abs() < 0.05 && (last.0.abs() - 1.0).abs() < 0.05, "{first:?} … {last:?}");
    assert!(first.0 * last.0 < 0.0, "the ends lie on both sides");
    assert!(line.iter().all(|(x, y)| (x * x - y).abs() < 0.01));
}

#[test]
fn ensemble_bands_from_quantiles_are_drawn_when_the_run_kept_them() {
    let (columns, mut rows, finals) = ensemble();
    // A spread so wide that mean − std of E ≥ 0 goes below 0.
    for r in &mut rows {
        r[4] = 3.0 * r[3];
    }
    let quantiles = |r: &Vec<f64>| vec![(r[1] - r[2], r[1] + r[2]), (0.2 * r[3], 1.5 * r[3]), (0.0, r[5])];
    let bands = lagc::Bands { particles: 400, quantiles: (0.1, 0.9), rows: rows.iter().map(quantiles).collect() };
    let plot = info("ornstein_uhlenbeck", ModelKind::Energy, &["x"], Some(0.5));
    let svg = ensemble_svg_with_bands(&plot, &columns, &rows, &finals, None, Some(&bands)).unwrap();
    assert_text_fits(&svg);
    with_panels(&svg, |_, panels| {
        let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
        assert_eq!(captions, ["x: mean and 10%–90% band", "energy: mean and 10%–90% band", "final x (1000 particles)"]);
        let energy = panel(&panels, "energy: mean and 10%–90% band");
        assert!(energy.has_text("10%–90% of 400 particles"), "{:?}", energy.texts());
        // The band stays above 0, so the energy is drawn on a log axis (decade ticks).
        assert!(
            energy.texts().iter().any(|t| t.starts_with("1e-") || *t == "0.1" || *t == "0.01"),
            "{:?}",
            energy.texts()
        );
    });
    // Bands of another length than the rows are not used.
    let short = lagc::Bands { rows: bands.rows[..10].to_vec(), ..bands.clone() };
    let svg = ensemble_svg_with_bands(&plot, &columns, &rows, &finals, None, Some(&short)).unwrap();
    with_panels(&svg, |_, panels| assert_eq!(panels[1].caption, "energy: mean ± std"));
}
