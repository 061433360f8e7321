//! The columns of a run as series to draw: rows checked against the columns, finite points,
//! decimated to what a panel's pixels show, and the range of finite values.

use super::{PlotError, PlotInfo, MAX_CURVE_POINTS, MAX_POINTS};

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

/// The finite points `(x[i], y[i])`; an error names `name` when there are none.
pub(super) fn pairs(name: &str, x: &[f64], y: &[f64]) -> Result<Vec<(f64, f64)>, PlotError> {
    let points: Vec<(f64, f64)> =
        x.iter().zip(y).map(|(&a, &b)| (a, b)).filter(|(a, b)| a.is_finite() && b.is_finite()).collect();
    if points.is_empty() {
        return Err(PlotError::NonFinite(name.to_string()));
    }
    Ok(points)
}

/// Evenly spaced rows, at most [`MAX_POINTS`], the last one kept.
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

/// The points of a line as drawn at pixel positions `to_pixel(p)`, with no visible change
/// and a bounded number of them (docs/numerics.md, § Figures). A series in time
/// (`x` never decreasing) keeps, in each pixel column, its first, lowest, highest and last
/// point, so that peaks survive; any other curve is simplified (Ramer–Douglas–Peucker)
/// to within half a pixel, the tolerance doubled until it has at most [`MAX_CURVE_POINTS`].
pub(super) fn decimate(points: &[(f64, f64)], to_pixel: impl Fn((f64, f64)) -> (f64, f64)) -> Vec<(f64, f64)> {
    if points.len() <= 4 {
        return points.to_vec();
    }
    let px: Vec<(f64, f64)> = points.iter().map(|&p| to_pixel(p)).collect();
    if points.windows(2).all(|w| w[1].0 >= w[0].0) {
        let kept = per_column(&px);
        if kept.len() <= MAX_POINTS {
            return kept.into_iter().map(|k| points[k]).collect();
        }
    }
    let mut tol = 0.5;
    loop {
        let kept = simplify(&px, tol);
        if kept.len() <= MAX_CURVE_POINTS {
            return kept.into_iter().map(|k| points[k]).collect();
        }
        tol *= 2.0;
    }
}

/// The indices of the first, lowest, highest and last point in each pixel column, in order.
fn per_column(px: &[(f64, f64)]) -> Vec<usize> {
    let mut kept = Vec::new();
    let mut k = 0;
    while k < px.len() {
        let col = px[k].0.floor();
        let mut end = k;
        let (mut lo, mut hi) = (k, k);
        while end + 1 < px.len() && px[end + 1].0.floor() == col {
            end += 1;
            if px[end].1 < px[lo].1 {
                lo = end;
            }
            if px[end].1 > px[hi].1 {
                hi = end;
            }
        }
        let mut four = [k, lo, hi, end];
        four.sort_unstable();
        for i in four {
            if kept.last() != Some(&i) {
                kept.push(i);
            }
        }
        k = end + 1;
    }
    kept
}

/// Ramer–Douglas–Peucker: the indices of a polyline within `tol` of `px`, ends kept.
fn simplify(px: &[(f64, f64)], tol: f64) -> Vec<usize> {
    let n = px.len();
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    let mut stack = vec![(0, n - 1)];
    while let Some((a, b)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (p, q) = (px[a], px[b]);
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let len2 = dx * dx + dy * dy;
        // The distance from the segment p–q (not its line: a loop's chord is short).
        let dist = |r: (f64, f64)| {
            let s = if len2 > 0.0 { (((r.0 - p.0) * dx + (r.1 - p.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
            ((r.0 - p.0 - s * dx).powi(2) + (r.1 - p.1 - s * dy).powi(2)).sqrt()
        };
        let (far, d) = (a + 1..b).map(|i| (i, dist(px[i]))).fold((a, -1.0), |m, c| if c.1 > m.1 { c } else { m });
        if d > tol {
            keep[far] = true;
            stack.push((a, far));
            stack.push((far, b));
        }
    }
    (0..n).filter(|&i| keep[i]).collect()
}

pub(super) fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |r, v| Some(r.map_or((v, v), |(a, b): (f64, f64)| (a.min(v), b.max(v)))))
}
