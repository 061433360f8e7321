//! In-kernel solution of `A x = b` for a symmetric `A` (the mass matrix, or
//! the metric of a gradient flow).
//!
//! For `n ≤ UNROLLED_MAX` the Cholesky factorisation is emitted as straight-line
//! code; when a pivot is not positive (an indefinite or singular matrix, or a
//! non-finite entry) a cold block hands the matrix to the LU helper
//! [`lagc_lu_solve`](super::runtime). Larger systems are solved in their band
//! out of line (`codegen/system.rs`, `lagc_band_solve`). A singular matrix jumps
//! to the caller's `fail` block; nothing is ever divided by zero silently.

use super::runtime::{Extern, SINGULAR_RTOL};
use super::translate::FunctionTranslator;
use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, BlockArg, InstBuilder, StackSlotData, StackSlotKind, Value,
};

/// The largest system solved by unrolled straight-line Cholesky.
pub const UNROLLED_MAX: usize = 12;

/// Index of entry `(i, j)`, `i ≤ j`, in the row-major upper triangle of an `n × n` matrix.
pub(crate) fn upper_index(n: usize, i: usize, j: usize) -> usize {
    debug_assert!(i <= j);
    i * n - i * (i + 1) / 2 + j
}

/// Emits the solution of `A x = b`, where `upper` holds the upper triangle of
/// `A` row by row; jumps to `fail` when `A` is singular.
pub(crate) fn emit_solve(
    tr: &mut FunctionTranslator,
    n: usize,
    upper: &[Value],
    b: &[Value],
    fail: cranelift_codegen::ir::Block,
) -> Vec<Value> {
    debug_assert_eq!(upper.len(), n * (n + 1) / 2);
    if n == 1 {
        // One division, exact to rounding; any finite nonzero `m` will do.
        let m = upper[0];
        let am = tr.ins().fabs(m);
        let rtol = tr.ins().f64const(SINGULAR_RTOL);
        let tol = tr.ins().fmul(am, rtol);
        let ok = tr.ins().fcmp(FloatCC::GreaterThan, am, tol);
        let x = tr.ins().fdiv(b[0], m);
        let cont = tr.builder.create_block();
        tr.builder.ins().brif(ok, cont, &[], fail, &[]);
        tr.builder.switch_to_block(cont);
        return vec![x];
    }
    assert!(n <= UNROLLED_MAX, "a dense matrix of {n} rows is solved in its band, out of line");
    emit_cholesky(tr, n, upper, b, fail)
}

/// Emits `x_i = b_i / d_i` for the diagonal matrix with diagonal `d`; jumps
/// to `fail` unless every `d_i` is finite and nonzero.
pub(crate) fn emit_diagonal(
    tr: &mut FunctionTranslator,
    d: &[Value],
    b: &[Value],
    fail: cranelift_codegen::ir::Block,
) -> Vec<Value> {
    debug_assert_eq!(d.len(), b.len());
    let mut solve = DiagonalSolve::default();
    let x = d.iter().zip(b).map(|(&di, &bi)| solve.entry(tr, di, bi)).collect();
    solve.finish(tr, fail);
    x
}

/// A diagonal solve emitted an entry at a time: each `x_i = b_i / d_i` as soon as
/// `d_i` and `b_i` are known, the test that every `d_i` is finite and nonzero (that
/// of a `1 × 1` system, `|d| > |d|·SINGULAR_RTOL`) folded into one flag, and a single
/// branch at the end.
#[derive(Default)]
pub(crate) struct DiagonalSolve {
    ok: Option<Value>,
}

impl DiagonalSolve {
    /// `b / d`, its test folded into the flag.
    pub(crate) fn entry(&mut self, tr: &mut FunctionTranslator, d: Value, b: Value) -> Value {
        let rtol = tr.ins().f64const(SINGULAR_RTOL);
        let ad = tr.ins().fabs(d);
        let tol = tr.ins().fmul(ad, rtol);
        let good = tr.ins().fcmp(FloatCC::GreaterThan, ad, tol);
        let x = tr.ins().fdiv(b, d);
        self.ok = Some(match self.ok {
            None => good,
            Some(o) => tr.ins().band(o, good),
        });
        x
    }

    /// Jumps to `fail` unless every entry passed; continues in a new block.
    pub(crate) fn finish(self, tr: &mut FunctionTranslator, fail: cranelift_codegen::ir::Block) {
        if let Some(ok) = self.ok {
            let cont = tr.builder.create_block();
            tr.builder.ins().brif(ok, cont, &[], fail, &[]);
            tr.builder.switch_to_block(cont);
        }
    }
}

/// Unrolled Cholesky `A = L Lᵀ` with forward and back substitution, a
/// single branch on the pivots at the end, and the LU helper as fallback.
fn emit_cholesky(
    tr: &mut FunctionTranslator,
    n: usize,
    upper: &[Value],
    b: &[Value],
    fail: cranelift_codegen::ir::Block,
) -> Vec<Value> {
    let a = |i: usize, j: usize| upper[upper_index(n, i.min(j), i.max(j))];

    // The pivot tolerance, relative to the largest entry (NaN if any entry is NaN).
    let mut scale = tr.ins().fabs(upper[0]);
    for &x in &upper[1..] {
        let ax = tr.ins().fabs(x);
        scale = tr.ins().fmax(scale, ax);
    }
    let rtol = tr.ins().f64const(SINGULAR_RTOL);
    let tol = tr.ins().fmul(scale, rtol);
    let one = tr.ins().f64const(1.0);

    // l[i][j], j ≤ i; inv[j] = 1 / l[j][j].
    let mut l: Vec<Vec<Value>> = vec![Vec::with_capacity(n); n];
    let mut inv: Vec<Value> = Vec::with_capacity(n);
    let mut ok: Option<Value> = None;
    for j in 0..n {
        let mut d = a(j, j);
        for &ljk in &l[j][..j] {
            let sq = tr.ins().fmul(ljk, ljk);
            d = tr.ins().fsub(d, sq);
        }
        // False for a NaN pivot too.
        let pos = tr.ins().fcmp(FloatCC::GreaterThan, d, tol);
        ok = Some(match ok {
            None => pos,
            Some(o) => tr.ins().band(o, pos),
        });
        let ljj = tr.ins().sqrt(d);
        let r = tr.ins().fdiv(one, ljj);
        inv.push(r);
        l[j].push(ljj);
        for i in j + 1..n {
            let mut s = a(j, i);
            for (&lik, &ljk) in l[i][..j].iter().zip(&l[j][..j]) {
                let p = tr.ins().fmul(lik, ljk);
                s = tr.ins().fsub(s, p);
            }
            let lij = tr.ins().fmul(s, r);
            l[i].push(lij);
        }
    }
    let mut z: Vec<Value> = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            let p = tr.ins().fmul(l[i][k], z[k]);
            s = tr.ins().fsub(s, p);
        }
        z.push(tr.ins().fmul(s, inv[i]));
    }
    let mut x = z;
    for i in (0..n).rev() {
        let mut s = x[i];
        for k in i + 1..n {
            let p = tr.ins().fmul(l[k][i], x[k]);
            s = tr.ins().fsub(s, p);
        }
        x[i] = tr.ins().fmul(s, inv[i]);
    }

    let join = tr.builder.create_block();
    let lu = tr.builder.create_block();
    tr.builder.set_cold_block(lu);
    let args: Vec<BlockArg> = x.iter().map(|&v| BlockArg::Value(v)).collect();
    let ok = ok.expect("n ≥ 1");
    tr.builder.ins().brif(ok, join, &args, lu, &[]);

    tr.builder.switch_to_block(lu);
    let y = emit_helper_full(tr, Extern::LuSolve, n, &a, b, fail);
    let args: Vec<BlockArg> = y.iter().map(|&v| BlockArg::Value(v)).collect();
    tr.builder.ins().jump(join, &args);

    tr.builder.switch_to_block(join);
    (0..n).map(|_| tr.builder.append_block_param(join, types::F64)).collect()
}

fn emit_helper_full(
    tr: &mut FunctionTranslator,
    ext: Extern,
    n: usize,
    a: &dyn Fn(usize, usize) -> Value,
    b: &[Value],
    fail: cranelift_codegen::ir::Block,
) -> Vec<Value> {
    let bytes = (8 * (n * n + n)) as u32;
    let slot = tr.builder.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 3));
    let base = tr.builder.ins().stack_addr(tr.pointer, slot, 0);
    for i in 0..n {
        let row: Vec<Value> = (0..n).map(|j| a(i, j)).collect();
        tr.store_f64s(base, 8 * n * i, &row);
    }
    tr.store_f64s(base, 8 * n * n, b);
    let rhs = tr.builder.ins().iadd_imm_s(base, (8 * n * n) as i64);
    let nv = tr.builder.ins().iconst(types::I64, n as i64);
    let status = tr.call(ext, &[nv, base, rhs]);
    let singular = tr.builder.ins().icmp_imm_s(IntCC::NotEqual, status, 0);
    let cont = tr.builder.create_block();
    tr.builder.ins().brif(singular, fail, &[], cont, &[]);
    tr.builder.switch_to_block(cont);
    tr.load_f64s(rhs, n)
}
