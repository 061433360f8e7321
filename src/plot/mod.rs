//! SVG plots of a run: data in, an SVG document out, no file I/O.
//!
//! A figure is a grid of panels under a title that names the model. Each panel
//! is drawn by plotters into its own SVG fragment and placed in the figure as a
//! `<g class="panel">` group whose `<title>` is the panel's caption, so a reader
//! (or a test) can tell the panels apart. Non-finite values are skipped, long
//! series are thinned to at most [`MAX_POINTS`] points, and no fonts are read:
//! text is left to the SVG viewer.

mod contour;
mod density;
mod ensemble;
mod panel;
mod render;
mod series;
mod trajectory;

use crate::ModelKind;

pub use contour::{contour_levels, contour_lines};
pub use density::{density_histogram, gibbs_density, Bar};
pub use ensemble::ensemble_svg;
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
    /// The temperature of a Langevin model, if any.
    pub temperature: Option<f64>,
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

/// The longest series drawn; longer ones are thinned evenly, keeping the last point.
pub const MAX_POINTS: usize = 1500;
