//! The Rust functions that compiled kernels call: elementary functions that
//! Cranelift has no instruction for, and the dense linear solvers.
//!
//! Every function here is `extern "C"`, pure (it reads only its arguments and
//! writes only through the pointers it is given) and registered with the JIT
//! under the name in [`Extern::symbol`].

use cranelift_codegen::ir::{types, AbiParam, Signature};
use cranelift_codegen::isa::CallConv;
use cranelift_jit::JITBuilder;

/// Relative tolerance below which a pivot counts as zero: a pivot `d` is
/// accepted when `|d| > SINGULAR_RTOL · max |a_ij|`.
pub const SINGULAR_RTOL: f64 = 1e-12;

/// The external functions a kernel may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Extern {
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Exp,
    Log,
    Pow,
    Atan2,
    /// `sincos(x, out)`: `out[0] = sin x`, `out[1] = cos x`.
    SinCos,
    /// `lagc_lu_solve(n, a, b) -> status`.
    LuSolve,
    /// `lagc_batch_rows() -> *const u32`: this thread's minibatch ([`crate::batch`]).
    BatchRows,
    /// `lagc_scratch(len) -> *mut f64`: this thread's scratch array of at least `len` doubles.
    Scratch,
    /// `lagc_band_solve(n, b, a, out) -> status`: the symmetric band matrix at `a` (its upper
    /// band row by row, then the right-hand side), the solution written to `out`.
    BandSolve,
    /// `lagc_factored_solve(factor, x) -> status`: `x ← A⁻¹x` with a factor made once per run.
    FactoredSolve,
}

impl Extern {
    pub(crate) const ALL: [Extern; 19] = [
        Extern::Sin,
        Extern::Cos,
        Extern::Tan,
        Extern::Asin,
        Extern::Acos,
        Extern::Atan,
        Extern::Sinh,
        Extern::Cosh,
        Extern::Tanh,
        Extern::Exp,
        Extern::Log,
        Extern::Pow,
        Extern::Atan2,
        Extern::SinCos,
        Extern::LuSolve,
        Extern::BatchRows,
        Extern::Scratch,
        Extern::BandSolve,
        Extern::FactoredSolve,
    ];

    /// The name under which the function is registered with the JIT.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Extern::Sin => "lagc_sin",
            Extern::Cos => "lagc_cos",
            Extern::Tan => "lagc_tan",
            Extern::Asin => "lagc_asin",
            Extern::Acos => "lagc_acos",
            Extern::Atan => "lagc_atan",
            Extern::Sinh => "lagc_sinh",
            Extern::Cosh => "lagc_cosh",
            Extern::Tanh => "lagc_tanh",
            Extern::Exp => "lagc_exp",
            Extern::Log => "lagc_log",
            Extern::Pow => "lagc_pow",
            Extern::Atan2 => "lagc_atan2",
            Extern::SinCos => "lagc_sincos",
            Extern::LuSolve => "lagc_lu_solve",
            Extern::BatchRows => "lagc_batch_rows",
            Extern::Scratch => "lagc_scratch",
            Extern::BandSolve => "lagc_band_solve",
            Extern::FactoredSolve => "lagc_factored_solve",
        }
    }

    fn address(self) -> *const u8 {
        match self {
            Extern::Sin => lagc_sin as *const u8,
            Extern::Cos => lagc_cos as *const u8,
            Extern::Tan => lagc_tan as *const u8,
            Extern::Asin => lagc_asin as *const u8,
            Extern::Acos => lagc_acos as *const u8,
            Extern::Atan => lagc_atan as *const u8,
            Extern::Sinh => lagc_sinh as *const u8,
            Extern::Cosh => lagc_cosh as *const u8,
            Extern::Tanh => lagc_tanh as *const u8,
            Extern::Exp => lagc_exp as *const u8,
            Extern::Log => lagc_log as *const u8,
            Extern::Pow => lagc_pow as *const u8,
            Extern::Atan2 => lagc_atan2 as *const u8,
            Extern::SinCos => lagc_sincos as *const u8,
            Extern::LuSolve => lagc_lu_solve as *const u8,
            Extern::BatchRows => crate::batch::lagc_batch_rows as *const u8,
            Extern::Scratch => lagc_scratch as *const u8,
            Extern::BandSolve => lagc_band_solve as *const u8,
            Extern::FactoredSolve => lagc_factored_solve as *const u8,
        }
    }

    /// The Cranelift signature of the function.
    pub(crate) fn signature(self, call_conv: CallConv, pointer: types::Type) -> Signature {
        let mut sig = Signature::new(call_conv);
        let f64p = AbiParam::new(types::F64);
        match self {
            Extern::Pow | Extern::Atan2 => {
                sig.params.extend([f64p, f64p]);
                sig.returns.push(f64p);
            }
            Extern::SinCos => sig.params.extend([f64p, AbiParam::new(pointer)]),
            Extern::BatchRows => sig.returns.push(AbiParam::new(pointer)),
            Extern::Scratch => {
                sig.params.push(AbiParam::new(types::I64));
                sig.returns.push(AbiParam::new(pointer));
            }
            Extern::BandSolve => {
                sig.params.extend([AbiParam::new(types::I64), AbiParam::new(types::I64)]);
                sig.params.extend([AbiParam::new(pointer), AbiParam::new(pointer)]);
                sig.returns.push(AbiParam::new(types::I32));
            }
            Extern::FactoredSolve => {
                sig.params.extend([AbiParam::new(pointer), AbiParam::new(pointer)]);
                sig.returns.push(AbiParam::new(types::I32));
            }
            Extern::LuSolve => {
                sig.params.extend([AbiParam::new(types::I64), AbiParam::new(pointer), AbiParam::new(pointer)]);
                sig.returns.push(AbiParam::new(types::I32));
            }
            _ => {
                sig.params.push(f64p);
                sig.returns.push(f64p);
            }
        }
        sig
    }
}

/// Registers every [`Extern`] with `builder`.
pub(crate) fn register(builder: &mut JITBuilder) {
    for e in Extern::ALL {
        builder.symbol(e.symbol(), e.address());
    }
}

macro_rules! unary {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            extern "C" fn $name(x: f64) -> f64 {
                x.$method()
            }
        )*
    };
}

unary! {
    lagc_sin => sin,
    lagc_cos => cos,
    lagc_tan => tan,
    lagc_asin => asin,
    lagc_acos => acos,
    lagc_atan => atan,
    lagc_sinh => sinh,
    lagc_cosh => cosh,
    lagc_tanh => tanh,
    lagc_exp => exp,
    lagc_log => ln,
}

extern "C" fn lagc_pow(b: f64, e: f64) -> f64 {
    b.powf(e)
}

extern "C" fn lagc_atan2(y: f64, x: f64) -> f64 {
    y.atan2(x)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod libm {
    extern "C" {
        /// glibc's `sincos`: one argument reduction for both results, and the
        /// same values as its `sin` and `cos`.
        pub fn sincos(x: f64, s: *mut f64, c: *mut f64);
    }
}

/// Writes `sin x` and `cos x` to `out[0]` and `out[1]`.
///
/// # Safety
/// `out` must point to two writable doubles.
unsafe extern "C" fn lagc_sincos(x: f64, out: *mut f64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libm::sincos(x, out, out.add(1));
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    unsafe {
        *out = x.sin();
        *out.add(1) = x.cos();
    }
}

/// Solves `A x = b` in place by LU with partial pivoting; `A` is `n × n`
/// row-major and is overwritten by its factors, `b` by the solution.
/// Returns 0 on success and 1 when `A` is singular: a non-finite entry, or a
/// pivot `|u_kk| ≤ SINGULAR_RTOL · max |a_ij|`.
///
/// # Safety
/// `a` must point to `n·n` and `b` to `n` writable doubles.
/// Solves `A x = b` for the full `n × n` matrix at `a` (overwriting `b` with
/// `x`) by the integrators' own solver, Cholesky then LU with partial
/// pivoting ([`crate::integrate::linalg::solve_spd_or_lu`]). Returns 0, or 1
/// for a singular or ill-conditioned matrix.
fn solve(n: i64, a: *mut f64, b: *mut f64) -> i32 {
    let n = n as usize;
    // SAFETY: the kernel passes an n×n matrix and an n-vector in its own stack slot.
    let (a, b) = unsafe { (std::slice::from_raw_parts_mut(a, n * n), std::slice::from_raw_parts_mut(b, n)) };
    i32::from(crate::integrate::linalg::solve_spd_or_lu(a, b, n).is_err())
}

/// The fallback after the unrolled Cholesky of a kernel found a pivot that
/// is not positive (an indefinite or singular matrix).
pub(crate) unsafe extern "C" fn lagc_lu_solve(n: i64, a: *mut f64, b: *mut f64) -> i32 {
    solve(n, a, b)
}

thread_local! {
    /// The scratch array of [`lagc_scratch`]: matrices too large for a kernel's stack frame.
    static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// This thread's scratch array, grown to at least `len` doubles. Kernels of one system ask
/// for one length, so the array they fill is the one they pass on; it is never shrunk, and
/// nothing else on the thread uses it between a kernel's request and its last read.
extern "C" fn lagc_scratch(len: i64) -> *mut f64 {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let len = len.max(0) as usize;
        if s.len() < len {
            s.resize(len, 0.0);
        }
        s.as_mut_ptr()
    })
}

/// Solves the symmetric band system at `a` (order `n`, half-bandwidth `b`; the upper band row
/// by row as [`crate::integrate::symband`] lays it out, then the right-hand side) into `out`.
/// Cholesky, whose pivots are tested against `PIVOT_RTOL·max a_ii` (the unrolled kernels'
/// test for a positive definite matrix), then, when a pivot fails,
/// [`crate::integrate::symband::factor`]: LU with the condition estimate. Returns 0, or 1
/// for a singular matrix.
///
/// # Safety
/// `a` must point to `n·(b+1) + n` doubles and `out` to `n` writable ones.
pub(crate) unsafe extern "C" fn lagc_band_solve(n: i64, b: i64, a: *const f64, out: *mut f64) -> i32 {
    use crate::integrate::symband;
    let (n, b) = (n as usize, b as usize);
    let len = symband::band_len(n, b);
    // SAFETY: the caller passes the band and the right-hand side, and room for the solution.
    let (a, out) = unsafe { (std::slice::from_raw_parts(a, len + n), std::slice::from_raw_parts_mut(out, n)) };
    // Cholesky in a per-thread copy of the band (a dense matrix of 20 rows is factored in
    // about a microsecond; an allocation per call would be a tenth of it); the entries stay
    // as they were for LU when a pivot fails.
    thread_local! {
        static BAND: std::cell::RefCell<(Vec<f64>, Vec<f64>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    let cholesky = BAND.with(|cell| {
        let (u, inv) = &mut *cell.borrow_mut();
        u.clear();
        u.extend_from_slice(&a[..len]);
        inv.resize(n, 0.0);
        // A positive definite matrix has its largest entry on the diagonal, so this is the
        // tolerance of `symband::factor` whenever Cholesky succeeds; a non-finite entry makes
        // a pivot fail, and `factor` then says which.
        let largest = (0..n).map(|i| a[i * (b + 1)].abs()).fold(0.0, f64::max);
        let tol = symband::PIVOT_RTOL * largest;
        symband::cholesky_in_place(u, inv, n, b, tol).then(|| {
            out.copy_from_slice(&a[len..]);
            symband::cholesky_solve(u, inv, n, b, out);
        })
    });
    if cholesky.is_some() {
        return 0;
    }
    match symband::factor(&a[..len], n, b, false) {
        Ok(f) => {
            out.copy_from_slice(&a[len..]);
            f.solve(out);
            0
        }
        Err(_) => 1,
    }
}

/// `x ← A⁻¹x` with the factor of a matrix of the parameters alone, made once per run
/// (`crate::backend::Kernels`); a null factor is the singular matrix it could not factor.
///
/// # Safety
/// `factor` must be null or point to a live factor, and `x` to its order of writable doubles.
unsafe extern "C" fn lagc_factored_solve(factor: *const crate::integrate::symband::BandFactor, x: *mut f64) -> i32 {
    // SAFETY: as documented; the run that passes the factor owns it while its kernels run.
    let Some(f) = (unsafe { factor.as_ref() }) else { return 1 };
    // SAFETY: `x` holds the factor's order of doubles.
    let x = unsafe { std::slice::from_raw_parts_mut(x, f.n()) };
    f.solve(x);
    0
}
