//! Contour lines of a function of two variables: the levels to draw and the lines by marching
//! squares, joined into polylines.

use super::series::finite_range;
use std::collections::HashMap;
use std::ops::Range;

/// `count` contour levels for the finite `values` of a function on a grid:
/// evenly spaced in `E`, or evenly spaced in `log(E − min)` when `E − min`
/// spans more than two decades (a valley or a minimum inside the grid).
pub fn contour_levels(values: &[f64], count: usize) -> Vec<f64> {
    let Some((min, max)) = finite_range(values.iter().copied()) else { return Vec::new() };
    let span = max - min;
    if span <= 0.0 || count == 0 {
        return Vec::new();
    }
    let smallest = values.iter().map(|v| v - min).filter(|d| d.is_finite() && *d > 0.0).fold(span, f64::min);
    let lowest = smallest.max(span * 1e-4);
    if span / lowest > 100.0 {
        let (a, b) = (lowest.ln(), span.ln());
        (0..count).map(|k| min + (a + (b - a) * (k as f64 + 0.5) / count as f64).exp()).collect()
    } else {
        (0..count).map(|k| min + span * (k as f64 + 0.5) / count as f64).collect()
    }
}

/// The contour lines of `f` at each of `levels`, by marching squares on an
/// `n × n` grid of cells over `x × y`, joined into polylines: a list of
/// `(level, points)`. Cells with a non-finite corner are skipped; saddle cells
/// are resolved by the value at the cell's centre.
pub fn contour_lines(
    f: &dyn Fn(f64, f64) -> f64,
    x: Range<f64>,
    y: Range<f64>,
    n: usize,
    levels: &[f64],
) -> Vec<(f64, Vec<(f64, f64)>)> {
    let n = n.max(1);
    let xs: Vec<f64> = (0..=n).map(|i| x.start + (x.end - x.start) * i as f64 / n as f64).collect();
    let ys: Vec<f64> = (0..=n).map(|j| y.start + (y.end - y.start) * j as f64 / n as f64).collect();
    let grid: Vec<Vec<f64>> = ys.iter().map(|&yj| xs.iter().map(|&xi| f(xi, yj)).collect()).collect();
    let mut out = Vec::new();
    for &c in levels {
        // An edge is named by its lower-left grid point and its direction (0 along x, 1 along y).
        let mut segments: Vec<[(Edge, (f64, f64)); 2]> = Vec::new();
        for j in 0..n {
            for i in 0..n {
                let v = [grid[j][i], grid[j][i + 1], grid[j + 1][i + 1], grid[j + 1][i]];
                if v.iter().any(|z| !z.is_finite()) {
                    continue;
                }
                let corner = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
                let edges: [Edge; 4] = [(0, i, j), (1, i + 1, j), (0, i, j + 1), (1, i, j)];
                let mut hits = Vec::with_capacity(4);
                for k in 0..4 {
                    let (a, b) = (v[k], v[(k + 1) % 4]);
                    if (a < c) != (b < c) {
                        let s = (c - a) / (b - a);
                        let (pa, pb) = (corner[k], corner[(k + 1) % 4]);
                        let px = xs[pa.0] + s * (xs[pb.0] - xs[pa.0]);
                        let py = ys[pa.1] + s * (ys[pb.1] - ys[pa.1]);
                        hits.push((edges[k], (px, py)));
                    }
                }
                match hits.len() {
                    2 => segments.push([hits[0], hits[1]]),
                    4 => {
                        let centre = (v[0] + v[1] + v[2] + v[3]) / 4.0;
                        if (centre < c) == (v[0] < c) {
                            segments.push([hits[0], hits[1]]);
                            segments.push([hits[2], hits[3]]);
                        } else {
                            segments.push([hits[0], hits[3]]);
                            segments.push([hits[1], hits[2]]);
                        }
                    }
                    _ => {}
                }
            }
        }
        out.extend(join_segments(&segments).into_iter().map(|line| (c, line)));
    }
    out
}

type Edge = (u8, usize, usize);

/// Chains segments that share a grid edge into polylines; each edge crossing
/// belongs to at most two segments, one in each neighbouring cell.
fn join_segments(segments: &[[(Edge, (f64, f64)); 2]]) -> Vec<Vec<(f64, f64)>> {
    let mut at: HashMap<Edge, Vec<usize>> = HashMap::new();
    for (k, s) in segments.iter().enumerate() {
        at.entry(s[0].0).or_default().push(k);
        at.entry(s[1].0).or_default().push(k);
    }
    let mut used = vec![false; segments.len()];
    let mut lines = Vec::new();
    for start in 0..segments.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let mut line = vec![segments[start][0], segments[start][1]];
        for _ in 0..2 {
            while let Some(next) = at[&line[line.len() - 1].0].iter().copied().find(|&k| !used[k]) {
                used[next] = true;
                let s = segments[next];
                line.push(if s[0].0 == line[line.len() - 1].0 { s[1] } else { s[0] });
            }
            line.reverse();
        }
        lines.push(line.into_iter().map(|(_, p)| p).collect());
    }
    lines
}
