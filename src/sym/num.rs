//! Numbers of the symbolic engine: exact rationals where the source is exact,
//! IEEE doubles where it is not.
//!
//! A rational is kept in lowest terms with a positive denominator. Arithmetic
//! between rationals stays exact while it fits in `i64`; on overflow, or as soon
//! as a float takes part, the result is a float.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// An exact rational or a double.
#[derive(Clone, Copy, Debug)]
pub enum Num {
    /// `numerator / denominator`, lowest terms, denominator > 0.
    Rat(i64, i64),
    /// A finite double (never NaN; `-0.0` is stored as `0.0`).
    Float(f64),
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a
}

// Arithmetic is by value and may change representation (exact to float), so
// it is spelled as methods rather than operator traits.
#[allow(clippy::should_implement_trait)]
impl Num {
    pub const ZERO: Num = Num::Rat(0, 1);
    pub const ONE: Num = Num::Rat(1, 1);
    pub const MINUS_ONE: Num = Num::Rat(-1, 1);
    pub const HALF: Num = Num::Rat(1, 2);

    /// An integer.
    pub fn int(n: i64) -> Num {
        Num::Rat(n, 1)
    }

    /// The rational `n/d` in lowest terms, or a float if it does not fit.
    pub fn rat(n: i128, d: i128) -> Num {
        if d == 0 {
            return Num::Float(f64::NAN);
        }
        let g = gcd(n, d).max(1);
        let (mut n, mut d) = (n / g, d / g);
        if d < 0 {
            n = -n;
            d = -d;
        }
        match (i64::try_from(n), i64::try_from(d)) {
            (Ok(n), Ok(d)) => Num::Rat(n, d),
            _ => Num::float(n as f64 / d as f64),
        }
    }

    /// A double; integral values of moderate size become exact integers.
    pub fn float(x: f64) -> Num {
        if x == 0.0 {
            return Num::Rat(0, 1);
        }
        Num::Float(x)
    }

    /// A literal from source text: integers stay exact, anything else is a double.
    pub fn literal(x: f64) -> Num {
        if x.fract() == 0.0 && x.abs() < 9.0e15 {
            Num::Rat(x as i64, 1)
        } else {
            Num::float(x)
        }
    }

    pub fn to_f64(self) -> f64 {
        match self {
            Num::Rat(n, d) => n as f64 / d as f64,
            Num::Float(x) => x,
        }
    }

    pub fn is_zero(self) -> bool {
        matches!(self, Num::Rat(0, _)) || matches!(self, Num::Float(x) if x == 0.0)
    }

    pub fn is_one(self) -> bool {
        matches!(self, Num::Rat(1, 1))
    }

    pub fn is_negative(self) -> bool {
        self.to_f64() < 0.0
    }

    pub fn is_exact(self) -> bool {
        matches!(self, Num::Rat(..))
    }

    /// The integer value, if this is an exact integer.
    pub fn as_int(self) -> Option<i64> {
        match self {
            Num::Rat(n, 1) => Some(n),
            _ => None,
        }
    }

    pub fn is_finite(self) -> bool {
        self.to_f64().is_finite()
    }

    pub fn add(self, o: Num) -> Num {
        match (self, o) {
            // Integers, the common case, need no gcd.
            (Num::Rat(a, 1), Num::Rat(c, 1)) => match a.checked_add(c) {
                Some(x) => Num::Rat(x, 1),
                None => Num::rat(a as i128 + c as i128, 1),
            },
            (Num::Rat(a, b), Num::Rat(c, d)) => {
                Num::rat(a as i128 * d as i128 + c as i128 * b as i128, b as i128 * d as i128)
            }
            _ => Num::float(self.to_f64() + o.to_f64()),
        }
    }

    pub fn sub(self, o: Num) -> Num {
        self.add(o.neg())
    }

    pub fn mul(self, o: Num) -> Num {
        match (self, o) {
            (Num::Rat(a, 1), Num::Rat(c, 1)) => match a.checked_mul(c) {
                Some(x) => Num::Rat(x, 1),
                None => Num::rat(a as i128 * c as i128, 1),
            },
            (Num::Rat(a, b), Num::Rat(c, d)) => Num::rat(a as i128 * c as i128, b as i128 * d as i128),
            _ => Num::float(self.to_f64() * o.to_f64()),
        }
    }

    pub fn neg(self) -> Num {
        match self {
            Num::Rat(a, b) => Num::rat(-(a as i128), b as i128),
            Num::Float(x) => Num::float(-x),
        }
    }

    /// `1/self`; `None` for zero.
    pub fn recip(self) -> Option<Num> {
        if self.is_zero() {
            return None;
        }
        Some(match self {
            Num::Rat(a, b) => Num::rat(b as i128, a as i128),
            Num::Float(x) => Num::float(1.0 / x),
        })
    }

    pub fn div(self, o: Num) -> Option<Num> {
        o.recip().map(|r| self.mul(r))
    }

    /// `self^e` when the result is a number that can be stated exactly or the
    /// inputs are inexact already; `None` when it should stay symbolic
    /// (such as `2^(1/2)`).
    pub fn pow(self, e: Num) -> Option<Num> {
        match (self, e) {
            (Num::Rat(a, b), Num::Rat(p, 1)) => {
                if a == 0 && p < 0 {
                    return None;
                }
                let (mut n, mut d) = (a as i128, b as i128);
                let mut p = p;
                if p < 0 {
                    std::mem::swap(&mut n, &mut d);
                    p = -p;
                }
                if p > 64 {
                    return Some(Num::float(self.to_f64().powf(e.to_f64())));
                }
                let (mut rn, mut rd) = (1i128, 1i128);
                for _ in 0..p {
                    rn = rn.checked_mul(n)?;
                    rd = rd.checked_mul(d)?;
                    if rn.abs() > i64::MAX as i128 || rd.abs() > i64::MAX as i128 {
                        return Some(Num::float(self.to_f64().powf(e.to_f64())));
                    }
                }
                Some(Num::rat(rn, rd))
            }
            (Num::Rat(a, b), Num::Rat(p, q)) => {
                // Exact roots of perfect powers: 4^(1/2) = 2.
                if a < 0 {
                    return None;
                }
                let root = |x: i64| -> Option<i64> {
                    let r = (x as f64).powf(1.0 / q as f64).round() as i64;
                    (r.checked_pow(q as u32) == Some(x)).then_some(r)
                };
                if q > 8 {
                    return None;
                }
                let (rn, rd) = (root(a)?, root(b)?);
                Num::Rat(rn, rd).pow(Num::int(p))
            }
            _ => {
                let x = self.to_f64().powf(e.to_f64());
                x.is_finite().then(|| Num::float(x))
            }
        }
    }

    /// Total order used for canonical sorting.
    pub fn cmp_value(self, o: Num) -> Ordering {
        self.to_f64().partial_cmp(&o.to_f64()).unwrap_or(Ordering::Equal)
    }
}

impl PartialEq for Num {
    fn eq(&self, o: &Num) -> bool {
        match (*self, *o) {
            (Num::Rat(a, b), Num::Rat(c, d)) => a == c && b == d,
            (Num::Float(x), Num::Float(y)) => x.to_bits() == y.to_bits(),
            _ => false,
        }
    }
}
impl Eq for Num {}

impl Hash for Num {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match *self {
            Num::Rat(a, b) => {
                0u8.hash(h);
                a.hash(h);
                b.hash(h);
            }
            Num::Float(x) => {
                1u8.hash(h);
                x.to_bits().hash(h);
            }
        }
    }
}

impl fmt::Display for Num {
    /// Rationals as `p/q`, doubles in the shortest form that reads back exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Num::Rat(n, 1) => write!(f, "{n}"),
            Num::Rat(n, d) => write!(f, "{n}/{d}"),
            Num::Float(x) => write!(f, "{}", fmt_float(x)),
        }
    }
}

/// The shortest decimal text that parses back to `x`, with an exponent for
/// very large or small magnitudes (`1e-12` rather than `0.000000000001`).
pub fn fmt_float(x: f64) -> String {
    let mut s = String::new();
    write_float(&mut s, x);
    s
}

/// Appends [`fmt_float`]'s text of `x` to `out`, without allocating.
pub fn write_float(out: &mut String, x: f64) {
    use std::fmt::Write;
    let a = x.abs();
    // Writing to a String cannot fail.
    let _ = if a != 0.0 && !(1e-4..1e15).contains(&a) { write!(out, "{x:e}") } else { write!(out, "{x}") };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rationals_stay_exact() {
        assert_eq!(Num::int(1).div(Num::int(2)).unwrap().add(Num::rat(1, 3)), Num::rat(5, 6));
        assert_eq!(Num::rat(2, 3).pow(Num::int(-2)), Some(Num::rat(9, 4)));
        assert_eq!(Num::int(4).pow(Num::HALF), Some(Num::int(2)));
        assert_eq!(Num::int(2).pow(Num::HALF), None);
        assert_eq!(Num::rat(6, -4), Num::Rat(-3, 2));
    }

    #[test]
    fn overflow_becomes_float() {
        let big = Num::int(i64::MAX / 2);
        assert!(!big.mul(big).is_exact());
        assert_eq!(Num::int(3).add(Num::float(0.5)), Num::Float(3.5));
    }

    #[test]
    fn floats_print_back_exactly() {
        for x in [0.1, 1e-12, 6.02e23, 9.81, -2.5e-7] {
            assert_eq!(fmt_float(x).parse::<f64>().unwrap(), x);
        }
    }
}
