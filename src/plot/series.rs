//! The columns of a run as series to draw: rows checked against the columns, finite points
//! thinned to at most [`MAX_POINTS`], and the range of finite values.

use super::{PlotError, PlotInfo, MAX_POINTS};

/// The columns of a run, checked to have one value per column in every row.
pub(super) struct Table<'a> {
    columns: &'a [String],
    rows: &'a [Vec<f64>],
}

impl<'a> Table<'a> {
    pub(super) fn new(info: &PlotInfo, columns: &'a [String], rows: &'a [Vec<f64>]) -> Result<Self, PlotError> {
        if info.vars.is_empty() {
            return Err(PlotError::Empty("the model has no variables"));
        }
        if columns.is_empty() {
            return Err(PlotError::Empty("no columns"));
        }
        if rows.is_empty() {
            return Err(PlotError::Empty("no rows"));
        }
        if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != columns.len()) {
            return Err(PlotError::RowLength { row, len: r.len(), columns: columns.len() });
        }
        Ok(Table { columns, rows })
    }

    pub(super) fn column(&self, name: &str) -> Result<Vec<f64>, PlotError> {
        let k =
            self.columns.iter().position(|c| c == name).ok_or_else(|| PlotError::MissingColumn(name.to_string()))?;
        Ok(self.rows.iter().map(|r| r[k]).collect())
    }
}

/// The finite points `(x[i], y[i])`, thinned to [`MAX_POINTS`]; an error names `name` when there are none.
pub(super) fn pairs(name: &str, x: &[f64], y: &[f64]) -> Result<Vec<(f64, f64)>, PlotError> {
    let points: Vec<(f64, f64)> =
        x.iter().zip(y).map(|(&a, &b)| (a, b)).filter(|(a, b)| a.is_finite() && b.is_finite()).collect();
    if points.is_empty() {
        return Err(PlotError::NonFinite(name.to_string()));
    }
    Ok(thin(points))
}

pub(super) fn thin<T: Copy>(points: Vec<T>) -> Vec<T> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let stride = points.len().div_ceil(MAX_POINTS);
    let last = points[points.len() - 1];
    let mut kept: Vec<T> = points.into_iter().step_by(stride).collect();
    kept.push(last);
    kept
}

pub(super) fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |r, v| Some(r.map_or((v, v), |(a, b): (f64, f64)| (a.min(v), b.max(v)))))
}
