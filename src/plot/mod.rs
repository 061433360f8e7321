//! SVG plots of a run: data in, an SVG document out, no file I/O.
//!
//! A figure is a grid of panels under a title that names the model. Each panel
//! is drawn by plotters into its own SVG fragment and placed in the figure as a
//! `<g class="panel">` group whose `<title>` is the panel's caption, so a reader
//! (or a test) can tell the panels apart. Non-finite values are skipped, every
//! series is decimated to what the panel's pixels show (at most [`MAX_POINTS`]
//! points), and no fonts are read: text is left to the SVG viewer, placed from an
//! estimate of its width so that no text leaves its panel or covers another.

mod contour;
mod density;
mod ensemble;
mod fokker_planck;
mod panel;
mod render;
mod series;
mod trajectory;

use crate::{Model, ModelKind, Plan};

pub use contour::{contour_levels, contour_lines};
pub use density::{density_histogram, gibbs_density, Bar};
pub use ensemble::{ensemble_svg, ensemble_svg_with_bands};
pub use fokker_planck::density_flow_svg;
pub use render::compact;
pub use trajectory::trajectory_svg;

/// What a plot needs to know about the model.
#[derive(Clone, Debug)]
pub struct PlotInfo {
    /// The model's name, shown in the figure's title.
    pub model: String,
    /// Lagrangian or energy model: decides the columns and panels.
    pub kind: ModelKind,
    /// The coordinate (or state) names, as written in the columns.
    pub vars: Vec<String>,
    /// The temperature of a Langevin model whose Gibbs density is stationary (neither
    /// its energy nor its temperature depends on time), if any.
    pub temperature: Option<f64>,
    /// A Lagrangian model whose `H` is conserved (no dissipation, no forces, no explicit
    /// `t`): its energy panel shows the relative error of `H`, others `H − H_min` or `E − E_min`.
    pub conservative: bool,
}

impl PlotInfo {
    /// What a plot of a run of `model` by `plan` needs to know.
    pub fn of(model: &Model, plan: &Plan) -> PlotInfo {
        let env = model.env();
        let conservative = plan.conservative && model.temperature.is_none();
        let a = &model.arena;
        let timed = [model.energy, model.lagrangian, model.temperature]
            .into_iter()
            .flatten()
            .any(|e| a.depends(e, |k| k == crate::sym::SymKind::Time));
        PlotInfo {
            model: model.name.clone(),
            kind: model.kind,
            vars: model.vars.iter().map(|v| v.name.clone()).collect(),
            temperature: model.temperature.filter(|_| !timed).map(|t| model.arena.eval(t, &env)),
            conservative,
        }
    }
}

/// The columns of a run that are neither time, a variable, a velocity nor one the run
/// always writes (`energy`, `grad_norm`, `work`, `heat`, sensitivities `d(…)/d(…)`): the
/// observes, in order.
pub(crate) fn observe_columns(info: &PlotInfo, columns: &[String]) -> Vec<String> {
    let fixed = ["t", "energy", "grad_norm", "work", "heat"];
    columns
        .iter()
        .filter(|c| !fixed.contains(&c.as_str()) && !c.starts_with("d("))
        .filter(|c| !info.vars.iter().any(|v| v == *c || format!("{v}'") == **c))
        .cloned()
        .collect()
}

/// The Cartesian pairs among observe names, in the order of their `x`: `x` with `y`, and
/// `xS` with `yS` for a suffix `S` of digits, or `_` and letters or digits, or `[digits]`
/// (`x1`/`y1`, `x_tip`/`y_tip`, `x[3]`/`y[3]`). docs/language.md, § Plots.
pub fn cartesian_pairs(names: &[String]) -> Vec<(String, String)> {
    let suffix_ok = |s: &str| {
        s.is_empty()
            || s.chars().all(|c| c.is_ascii_digit())
            || s.strip_prefix('_').is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_alphanumeric() || c == '_'))
            || s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
    };
    names
        .iter()
        .filter_map(|x| {
            let s = x.strip_prefix('x')?;
            let y = format!("y{s}");
            (suffix_ok(s) && names.contains(&y)).then(|| (x.clone(), y))
        })
        .collect()
}

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// There are no rows, no variables, or no columns to draw.
    #[error("nothing to plot: {0}")]
    Empty(&'static str),
    /// A column the plot needs is not among the columns given.
    #[error("the column `{0}` is missing")]
    MissingColumn(String),
    /// A row does not have one value per column.
    #[error("row {row} has {len} values for {columns} columns")]
    RowLength { row: usize, len: usize, columns: usize },
    /// A series to be drawn has no finite value at all.
    #[error("the series `{0}` has no finite value")]
    NonFinite(String),
    /// plotters failed to draw.
    #[error("drawing failed: {0}")]
    Backend(String),
}

/// The most points a drawn series in time keeps: at most four a pixel column (first,
/// lowest, highest, last).
pub const MAX_POINTS: usize = 2000;

/// The most points a drawn curve (a phase portrait, an orbit) keeps: it is simplified to
/// within half a pixel, or more when that leaves more points than this.
pub const MAX_CURVE_POINTS: usize = 12_000;
