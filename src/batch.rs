//! Minibatches: the rows of the data that a batched sum reads in one step.
//!
//! With `simulate batch = B`, every rolled sum over all the rows of a data
//! table (`sum(i in 0..M, …)`) in the dynamics is replaced by the sum over
//! `B` rows drawn afresh for each step, times `M/B`: an unbiased estimate of
//! the full sum, as stochastic gradient descent uses. The rows of the current
//! step live in a per-thread table that the driver fills before each step and
//! every backend reads, so particles on different threads never share one.

use std::cell::RefCell;

/// Which loops are batched, and by how many rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The number of rows of the data (`M`).
    pub rows: usize,
    /// Rows per step (`B`, at most `M`).
    pub size: usize,
}

impl Batch {
    /// Whether a loop over `lo..hi` runs over the batch: it covers all the rows.
    pub fn applies(&self, lo: i64, hi: i64) -> bool {
        lo == 0 && hi == self.rows as i64
    }

    /// The factor `M/B` that makes a batch sum estimate the full sum.
    pub fn scale(&self) -> f64 {
        self.rows as f64 / self.size as f64
    }
}

thread_local! {
    static ROWS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Makes `rows` the batch of this thread for the next step.
pub fn set_rows(rows: &[u32]) {
    ROWS.with(|r| {
        let mut r = r.borrow_mut();
        r.clear();
        r.extend_from_slice(rows);
    });
}

/// Calls `f` with this thread's batch rows.
pub fn with_rows<R>(f: impl FnOnce(&[u32]) -> R) -> R {
    ROWS.with(|r| f(&r.borrow()))
}

/// This thread's batch rows, for compiled kernels; valid until the next
/// [`set_rows`] on this thread (the driver calls it only between steps).
pub(crate) extern "C" fn lagc_batch_rows() -> *const u32 {
    ROWS.with(|r| r.borrow().as_ptr())
}

/// A run's source of minibatches: its own random stream, separate from the
/// streams of initial values and noise.
pub struct Draws {
    batch: Batch,
    rng: rand_chacha::ChaCha8Rng,
    rows: Vec<u32>,
    seen: Vec<u64>,
}

impl Draws {
    /// The minibatches of particle `particle` of a run seeded `seed`.
    pub fn new(batch: Batch, seed: u64, particle: usize) -> Draws {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream((1u64 << 63) | particle as u64);
        Draws { batch, rng, rows: Vec::with_capacity(batch.size), seen: Vec::new() }
    }

    /// Draws the next step's rows and makes them this thread's batch.
    pub fn next(&mut self) {
        draw(&mut self.rng, self.batch.rows, self.batch.size, &mut self.rows, &mut self.seen);
        set_rows(&self.rows);
    }
}

/// Draws `b` distinct rows of `0..m` into `out`, in increasing order, by
/// Floyd's algorithm: `b` draws whatever `m`, with `seen` (a bitset of `m`
/// bits, left cleared) marking the rows taken. All the rows when `b = m`.
pub fn draw(rng: &mut impl rand::Rng, m: usize, b: usize, out: &mut Vec<u32>, seen: &mut Vec<u64>) {
    out.clear();
    if b >= m {
        out.extend(0..m as u32);
        return;
    }
    seen.resize(m.div_ceil(64), 0);
    let mut take = |r: usize, out: &mut Vec<u32>| {
        let (w, bit) = (r / 64, 1u64 << (r % 64));
        let fresh = seen[w] & bit == 0;
        if fresh {
            seen[w] |= bit;
            out.push(r as u32);
        }
        fresh
    };
    for j in m - b..m {
        let t = rng.random_range(0..=j);
        if !take(t, out) {
            take(j, out);
        }
    }
    for &r in out.iter() {
        seen[r as usize / 64] = 0;
    }
    out.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_batch_has_distinct_rows_in_range() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut out, mut seen) = (Vec::new(), Vec::new());
        for (m, b) in [(10, 10), (10, 1), (1000, 32), (5, 3), (130, 129), (64, 63)] {
            draw(&mut rng, m, b, &mut out, &mut seen);
            assert!(seen.iter().all(|&w| w == 0), "the bitset is left cleared");
            assert_eq!(out.len(), b);
            assert!(out.windows(2).all(|w| w[0] < w[1]), "{out:?}");
            assert!(out.iter().all(|&r| (r as usize) < m));
        }
    }

    #[test]
    fn every_row_is_drawn_equally_often() {
        // 20,000 draws of 3 rows of 6: each row's count is Binomial(20000, 1/2);
        // 5 standard deviations (≈354) bound it with a false-alarm rate below 1e-5.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut counts = [0usize; 6];
        let (mut out, mut seen) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            draw(&mut rng, 6, 3, &mut out, &mut seen);
            for &r in &out {
                counts[r as usize] += 1;
            }
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 5.0 * (20_000.0f64 * 0.25).sqrt(), "{counts:?}");
        }
    }
}
