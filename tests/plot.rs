//! Tests of `lagc::plot`: hand-made rows in, SVG out, read back as XML.
//!
//! Each panel of a figure is a `<g class="panel">` whose `<title>` is its
//! caption. Inside, plotters draws axes and ticks as black `<polyline>`s, so a
//! plotted series is a `<polyline>` with any other stroke colour, a band is a
//! `<polygon>`, and histogram bars are `<rect>`s.

use lagc::plot::{
    contour_levels, contour_lines, density_histogram, ensemble_svg, gibbs_density, trajectory_svg, PlotError, PlotInfo,
    MAX_POINTS,
};
use lagc::ModelKind;
use rand::SeedableRng;
use rand_distr::Distribution;
use roxmltree::{Document, Node};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn info(model: &str, kind: ModelKind, vars: &[&str], temperature: Option<f64>) -> PlotInfo {
    PlotInfo { model: model.into(), kind, vars: names(vars), temperature }
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

    /// Plotted lines: polylines not drawn in black (black ones are axes and ticks).
    fn series(&self) -> Vec<Node<'_, '_>> {
        self.node
            .descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") != Some("#000000"))
            .collect()
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

    /// The numbers written beside the y axis, bottom to top.
    fn y_ticks(&self) -> Vec<f64> {
        let mut ticks: Vec<(f64, f64)> = self
            .node
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some("end"))
            .filter_map(|n| Some((n.attribute("y")?.parse::<f64>().ok()?, n.text()?.trim().parse::<f64>().ok()?)))
            .collect();
        ticks.sort_by(|a, b| b.0.total_cmp(&a.0));
        ticks.into_iter().map(|(_, v)| v).collect()
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

/// The harmonic oscillator q = cos t, q' = −sin t, H = 1/2.
fn oscillator(n: usize) -> (Vec<String>, Vec<Vec<f64>>) {
    let rows = (0..n)
        .map(|k| {
            let t = k as f64 * 2.0 * std::f64::consts::PI / (n - 1) as f64;
            vec![t, t.cos(), -t.sin(), 0.5]
        })
        .collect();
    (names(&["t", "q", "q'", "energy"]), rows)
}

#[test]
fn oscillator_has_coordinate_energy_and_phase_panels() {
    let (columns, rows) = oscillator(200);
    let svg = trajectory_svg(&info("oscillator", ModelKind::Lagrangian, &["q"], None), &columns, &rows, None).unwrap();
    with_panels(&svg, |doc, panels| {
        assert!(figure_title(doc).contains("oscillator"));
        assert!(doc
            .descendants()
            .any(|n| n.has_tag_name("text") && n.text().is_some_and(|t| t.contains("oscillator"))));
        let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
        assert_eq!(captions, ["coordinates", "energy H", "phase portrait q"]);
        for p in &panels {
            assert_eq!(p.series().len(), 1, "one series in `{}`", p.caption);
        }
        let coords = panel(&panels, "coordinates");
        assert!(coords.has_text("t") && coords.has_text("q"));
        assert_eq!(point_count(&coords.series()[0]), 200);
        let phase = panel(&panels, "phase portrait q");
        assert!(phase.has_text("q") && phase.has_text("q'"));
        assert!(panel(&panels, "energy H").has_text("energy"));
        // One series per panel: no legend box (a legend draws a white and a bordered rectangle).
        assert!(panels.iter().all(|p| p.count("rect") == 1), "a single series gets no legend");
    });
}

#[test]
fn two_coordinates_get_a_legend_and_two_phase_portraits() {
    let columns = names(&["t", "th1", "th2", "th1'", "th2'", "energy", "x1"]);
    let rows: Vec<Vec<f64>> = (0..100)
        .map(|k| {
            let t = k as f64 * 0.1;
            vec![t, t.sin(), (2.0 * t).cos(), t.cos(), -2.0 * (2.0 * t).sin(), 1.0 + 1e-3 * t, 0.0]
        })
        .collect();
    let svg =
        trajectory_svg(&info("double_pendulum", ModelKind::Lagrangian, &["th1", "th2"], None), &columns, &rows, None)
            .unwrap();
    with_panels(&svg, |doc, panels| {
        assert!(figure_title(doc).contains("double_pendulum"));
        assert_eq!(panels.len(), 4);
        let coords = panel(&panels, "coordinates");
        assert_eq!(coords.series().len(), 2);
        assert!(coords.has_text("th1") && coords.has_text("th2"), "legend names: {:?}", coords.texts());
        assert!(coords.count("rect") > 1, "two series get a legend");
        for var in ["th1", "th2"] {
            let phase = panel(&panels, &format!("phase portrait {var}"));
            assert_eq!(phase.series().len(), 1);
            assert!(phase.has_text(var) && phase.has_text(&format!("{var}'")));
        }
        assert_eq!(panel(&panels, "energy H").series().len(), 1);
    });
}

#[test]
fn at_most_four_phase_portraits() {
    let vars: Vec<String> = (0..6).map(|i| format!("q[{i}]")).collect();
    let mut columns = vec!["t".to_string()];
    columns.extend(vars.iter().cloned());
    columns.extend(vars.iter().map(|v| format!("{v}'")));
    columns.push("energy".into());
    let rows: Vec<Vec<f64>> = (0..20).map(|k| (0..columns.len()).map(|c| (k * c) as f64).collect()).collect();
    let plot = PlotInfo { model: "chain".into(), kind: ModelKind::Lagrangian, vars, temperature: None };
    let svg = trajectory_svg(&plot, &columns, &rows, None).unwrap();
    with_panels(&svg, |_, panels| {
        assert_eq!(panels.len(), 2 + 4);
        assert_eq!(panel(&panels, "coordinates").series().len(), 6);
        assert!(panel(&panels, "coordinates").has_text("q[5]"));
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
        assert_eq!(point_count(&panel(&panels, "energy H").series()[0]), 9);
        assert_eq!(point_count(&panel(&panels, "phase portrait q").series()[0]), 9);
    });
}

#[test]
fn long_runs_are_thinned() {
    let (columns, rows) = oscillator(20_001);
    let svg = trajectory_svg(&info("osc", ModelKind::Lagrangian, &["q"], None), &columns, &rows, None).unwrap();
    with_panels(&svg, |doc, panels| {
        let n = point_count(&panel(&panels, "coordinates").series()[0]);
        assert!(n > MAX_POINTS / 2 && n <= MAX_POINTS + 1, "{n} points");
        let width: f64 = doc.root_element().attribute("width").unwrap().parse().unwrap();
        assert!(width <= 2000.0);
    });
    assert!(svg.len() < 400_000, "{} bytes", svg.len());
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
fn energy_model_path_over_contours() {
    let (columns, rows) = quadratic_flow();
    let plot = info("quadratic_flow", ModelKind::Energy, &["x", "y"], None);
    let bare = trajectory_svg(&plot, &columns, &rows, None).unwrap();
    let contoured = trajectory_svg(&plot, &columns, &rows, Some(&quadratic)).unwrap();
    let mut bare_series = 0;
    with_panels(&bare, |doc, panels| {
        assert!(figure_title(doc).contains("quadratic_flow"));
        let captions: Vec<&str> = panels.iter().map(|p| p.caption.as_str()).collect();
        assert_eq!(captions, ["state", "energy E", "path over contours of E"]);
        let path = panel(&panels, "path over contours of E");
        assert!(path.has_text("x") && path.has_text("y"));
        bare_series = path.series().len();
        assert_eq!(bare_series, 1);
        assert_eq!(path.count("circle"), 1, "the start of the path is marked");
        let state = panel(&panels, "state");
        assert_eq!(state.series().len(), 2);
    });
    with_panels(&contoured, |_, panels| {
        let path = panel(&panels, "path over contours of E");
        let n = path.series().len();
        assert!(n >= bare_series + 10, "{n} series with contours, {bare_series} without");
        assert!(path.has_text("E contours") && path.has_text("path"));
        let contours = path.series().iter().filter(|s| s.attribute("stroke") == Some("#969696")).count();
        assert_eq!(contours, n - 1);
    });
}

#[test]
fn positive_energy_gets_a_log_axis() {
    let (columns, rows) = quadratic_flow();
    let plot = info("quadratic_flow", ModelKind::Energy, &["x", "y"], None);
    let svg = trajectory_svg(&plot, &columns, &rows, None).unwrap();
    with_panels(&svg, |_, panels| {
        let ticks = panel(&panels, "energy E").y_ticks();
        assert!(ticks.len() >= 3, "{ticks:?}");
        assert!(ticks.windows(2).all(|w| (w[1] / w[0] - 10.0).abs() < 1e-9), "decades: {ticks:?}");
    });
    // Shifted down so that E crosses zero: a linear axis, evenly spaced ticks.
    let shifted: Vec<Vec<f64>> = rows.iter().map(|r| vec![r[0], r[1], r[2], r[3] - 1.0, r[4]]).collect();
    let svg = trajectory_svg(&plot, &columns, &shifted, None).unwrap();
    with_panels(&svg, |_, panels| {
        let ticks = panel(&panels, "energy E").y_ticks();
        assert!(ticks.len() >= 3 && ticks.iter().any(|&v| v < 0.0), "{ticks:?}");
        let step = ticks[1] - ticks[0];
        assert!(ticks.windows(2).all(|w| ((w[1] - w[0]) - step).abs() < 1e-9 * step.abs().max(1.0)), "{ticks:?}");
    });
    // A Lagrangian energy is never drawn on a log axis.
    let (columns, rows) = oscillator(50);
    let rising: Vec<Vec<f64>> = rows.iter().map(|r| vec![r[0], r[1], r[2], (r[0] * 3.0).exp()]).collect();
    let svg = trajectory_svg(&info("osc", ModelKind::Lagrangian, &["q"], None), &columns, &rising, None).unwrap();
    with_panels(&svg, |_, panels| {
        let ticks = panel(&panels, "energy H").y_ticks();
        let step = ticks[1] - ticks[0];
        assert!(ticks.windows(2).all(|w| ((w[1] - w[0]) - step).abs() < 1e-6 * step), "{ticks:?}");
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
        // Bars, plus the background, the legend's box and border and its two marks.
        assert_eq!(hist.count("rect"), nonempty + 5, "bars: {nonempty}");
    });
    let without = ensemble_svg(&plot, &columns, &rows, &finals, None).unwrap();
    with_panels(&without, |_, panels| {
        let hist = panel(&panels, "final x (1000 particles)");
        assert_eq!(hist.series().len(), 0);
        assert_eq!(hist.count("rect"), nonempty + 1, "bars and the background, no legend");
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
