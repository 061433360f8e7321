//! Densities over one variable: the density-normalised histogram of a sample and the Gibbs
//! density of an energy at a temperature.

use super::series::finite_range;
use std::ops::Range;

/// One bar of a density histogram: the bin `[lo, hi)` and its height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub lo: f64,
    pub hi: f64,
    pub density: f64,
}

/// A density-normalised histogram of the finite `values` in `bins` equal bins
/// over their range: the bar areas sum to one.
pub fn density_histogram(values: &[f64], bins: usize) -> Vec<Bar> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let Some((mut lo, mut hi)) = finite_range(finite.iter().copied()) else { return Vec::new() };
    if hi <= lo {
        lo -= 0.5;
        hi += 0.5;
    }
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in &finite {
        let k = (((v - lo) / width) as usize).min(bins - 1);
        counts[k] += 1;
    }
    let n = finite.len() as f64;
    let bar = |k: usize, c: usize| Bar {
        lo: lo + k as f64 * width,
        hi: lo + (k + 1) as f64 * width,
        density: c as f64 / (n * width),
    };
    counts.into_iter().enumerate().map(|(k, c)| bar(k, c)).collect()
}

/// The Gibbs density `exp(−E(x)/T)/Z` at `n` points over `range`, with `Z` by
/// the trapezoidal rule over the same points. Non-finite energies are left out.
pub fn gibbs_density(energy: &dyn Fn(f64) -> f64, temperature: f64, range: Range<f64>, n: usize) -> Vec<(f64, f64)> {
    let n = n.max(2);
    let xs: Vec<f64> = (0..n).map(|k| range.start + (range.end - range.start) * k as f64 / (n - 1) as f64).collect();
    let es: Vec<(f64, f64)> = xs.iter().map(|&x| (x, energy(x))).filter(|(_, e)| e.is_finite()).collect();
    let Some(e_min) = es.iter().map(|p| p.1).reduce(f64::min) else { return Vec::new() };
    let weights: Vec<(f64, f64)> = es.iter().map(|&(x, e)| (x, (-(e - e_min) / temperature).exp())).collect();
    let z: f64 = weights.windows(2).map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0)).sum();
    if !(z > 0.0 && z.is_finite()) {
        return Vec::new();
    }
    weights.into_iter().map(|(x, w)| (x, w / z)).collect()
}
