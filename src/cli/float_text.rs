//! Numbers as output text, fast: the shortest digits that read back to the
//! same double (`zmij`, the formatter serde_json uses), laid out as the rest
//! of lagc prints them.
//!
//! A CSV row is mostly numbers, and formatting them through `core::fmt` cost
//! several times a step of the double pendulum's RK4 loop (docs/numerics.md
//! §Row output). [`push_csv`] writes exactly the text of
//! [`crate::sym::write_float`] (positional from 1e-4 to 1e15, exponent form
//! `1.5e-7` outside) and [`push_json`] exactly serde_json's (`1.0`,
//! `1.5e-7`, `1e+300`, `null` for a value that is not finite). Both formatters
//! give the shortest digits that read back, and of those the closest; they
//! can differ only where two are equally close, an exact tie, which
//! [`push_csv`] finds and leaves to `core::fmt`.

/// Appends the text of `x` as [`crate::sym::write_float`] writes it.
#[inline]
pub fn push_csv(out: &mut Vec<u8>, x: f64) {
    // Most numbers: positional in both layouts, no tie possible.
    if (1e-4..1e15).contains(&x.abs()) && !tie_possible(x) {
        let mut buffer = zmij::Buffer::new();
        let text = buffer.format_finite(x).as_bytes();
        // zmij's positional text (`12.5`, `0.00125`) is ours, but for the `.0` of an integer,
        // known from `x` (below 1e15 in magnitude): reading the text's last bytes right after
        // zmij's wide stores to them stalls the load.
        let keep = text.len() - if (x as i64) as f64 == x { 2 } else { 0 };
        append_short(out, &text[..keep]);
        return;
    }
    push_csv_other(out, x);
}

/// Appends `text`, at most [`SHORT`] bytes, with a few fixed-size moves instead of a call to
/// `memcpy`: two overlapping ones cover any length between their size and twice it.
#[inline(always)]
fn append_short(out: &mut Vec<u8>, text: &[u8]) {
    let n = text.len();
    assert!(n <= SHORT);
    out.reserve(SHORT);
    // SAFETY: `SHORT` bytes are reserved past the end; every read is inside `text`, every
    // write inside the reserved bytes, and the `n` bytes set are initialised before `set_len`.
    unsafe {
        let (src, dst) = (text.as_ptr(), out.as_mut_ptr().add(out.len()));
        if n >= 16 {
            let (a, b) = (src.cast::<[u8; 16]>().read_unaligned(), src.add(n - 16).cast::<[u8; 16]>().read_unaligned());
            dst.cast::<[u8; 16]>().write_unaligned(a);
            dst.add(n - 16).cast::<[u8; 16]>().write_unaligned(b);
        } else if n >= 8 {
            let (a, b) = (src.cast::<[u8; 8]>().read_unaligned(), src.add(n - 8).cast::<[u8; 8]>().read_unaligned());
            dst.cast::<[u8; 8]>().write_unaligned(a);
            dst.add(n - 8).cast::<[u8; 8]>().write_unaligned(b);
        } else {
            for i in 0..n {
                *dst.add(i) = *src.add(i);
            }
        }
        out.set_len(out.len() + n);
    }
}

/// The longest text [`append_short`] takes: zmij's buffer.
const SHORT: usize = 24;

/// Whether `x` (normal) may have at most 18 exact significant digits, and so a tie between
/// two shortest texts ([`exact_digits`]): not when `x = odd·2^(−j)` with `j ≥ 26`, read off
/// the exponent field and the trailing zeros of the significand, as most numbers are.
#[inline(always)]
fn tie_possible(x: f64) -> bool {
    let bits = x.to_bits();
    let field = ((bits >> 52) & 0x7ff) as i64;
    let zeros = i64::from((bits | 1 << 52).trailing_zeros());
    1075 - field - zeros < 26
}

/// [`push_csv`] for zero, what is not finite, the exponent form and ties.
#[cold]
fn push_csv_other(out: &mut Vec<u8>, x: f64) {
    if !x.is_finite() || x == 0.0 {
        let text: &[u8] = match x {
            _ if x.is_nan() => b"NaN",
            f64::INFINITY => b"inf",
            f64::NEG_INFINITY => b"-inf",
            _ if x.is_sign_negative() => b"-0",
            _ => b"0",
        };
        out.extend_from_slice(text);
        return;
    }
    let mut buffer = zmij::Buffer::new();
    let text = buffer.format_finite(x).as_bytes();
    if let Some(exact) = exact_digits(x) {
        let (_, digits, _) = decompose(text);
        if digits.len + 1 == exact {
            // A tie between the two closest shortest texts: `core::fmt` decides.
            let mut s = String::new();
            crate::sym::write_float(&mut s, x);
            out.extend_from_slice(s.as_bytes());
            return;
        }
    }
    let positional = (1e-4..1e15).contains(&x.abs());
    // zmij's positional text (`12.5`, `0.00125`) is ours, but for the `.0` of
    // an integer; its exponent form (`1.25e-7`, `1e+30`) too, but for the `+`.
    // zmij writes 1e-5 ≤ |x| < 1e16 positionally, so only the others need
    // looking for an exponent, at most five bytes from the end.
    let exponent = if positional { None } else { text.iter().rposition(|&c| c == b'e') };
    match (positional, exponent) {
        (true, None) => {
            out.extend_from_slice(text.strip_suffix(b".0").unwrap_or(text));
            return;
        }
        (false, Some(e)) => {
            out.extend_from_slice(&text[..=e]);
            out.extend_from_slice(text[e + 1..].strip_prefix(b"+").unwrap_or(&text[e + 1..]));
            return;
        }
        _ => {}
    }
    // Left are the numbers zmij lays out otherwise (1e-5 ≤ |x| < 1e-4 and
    // 1e15 ≤ |x| < 1e16, positional in its text, in exponent form in ours):
    // their digits, laid out again.
    let (negative, digits, point) = decompose(text);
    if negative {
        out.push(b'-');
    }
    let digits = digits.as_slice();
    if positional {
        lay_out_positional(out, digits, point);
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.extend_from_slice(write_i32(&mut [0; 8], point - 1));
    }
}

/// The number of significant digits of the exact value of `x` (finite, not
/// zero), when it has at most 18: only then can two shortest texts of at most
/// 17 digits be equally close to it. `x = m·2^e` is exactly `m·5^j / 10^j`
/// when `e = −j < 0`, and an integer otherwise.
fn exact_digits(x: f64) -> Option<usize> {
    const LIMIT: u128 = 1_000_000_000_000_000_000;
    let bits = x.to_bits();
    let (field, fraction) = ((bits >> 52) & 0x7ff, bits & ((1 << 52) - 1));
    let (m, e) = if field == 0 { (fraction, -1074) } else { (fraction | 1 << 52, field as i64 - 1075) };
    let a = m.trailing_zeros();
    let (odd, e) = (m >> a, e + i64::from(a));
    let exact = if e < 0 {
        // 5^26 > 10^18: past it the digits are too many.
        let j = (-e) as u32;
        if j >= 26 {
            return None;
        }
        u128::from(odd) * 5u128.pow(j)
    } else {
        // Factors of 10 are trailing zeros, not significant digits.
        let mut q = odd;
        let mut twos = e as u32;
        while twos > 0 && q % 5 == 0 {
            q /= 5;
            twos -= 1;
        }
        if twos >= 64 {
            return None;
        }
        u128::from(q) << twos
    };
    (exact < LIMIT).then(|| exact.ilog10() as usize + 1)
}

/// Appends the text of `x` as serde_json writes a number: zmij's text for a
/// finite value, `null` for any other (JSON has no NaN or infinity).
#[inline]
pub fn push_json(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        append_short(out, zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The significant digits of a number in zmij's text, at most 17.
struct Digits {
    bytes: [u8; 17],
    len: usize,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// zmij's text as a sign, the significant digits `d₁d₂…dₙ` (no leading or
/// trailing zero) and the position of the point: the value is
/// `0.d₁d₂…dₙ × 10^point`.
fn decompose(text: &[u8]) -> (bool, Digits, i32) {
    let negative = text[0] == b'-';
    let text = if negative { &text[1..] } else { text };
    let (mantissa, exponent) = match text.iter().position(|&c| c == b'e') {
        Some(e) => (&text[..e], parse_i32(&text[e + 1..])),
        None => (text, 0),
    };
    let mut digits = Digits { bytes: [0; 17], len: 0 };
    // Digits before the point move it right; zeros before the first significant digit, left.
    let mut point = 0i32;
    let mut before_point = true;
    for &c in mantissa {
        if c == b'.' {
            before_point = false;
        } else if digits.len == 0 && c == b'0' {
            if !before_point {
                point -= 1;
            }
        } else {
            digits.bytes[digits.len] = c;
            digits.len += 1;
            if before_point {
                point += 1;
            }
        }
    }
    // A positional integer's zeros (`12340000.0`) were counted in the point; drop them from the digits.
    while digits.len > 1 && digits.bytes[digits.len - 1] == b'0' {
        digits.len -= 1;
    }
    (negative, digits, point + exponent)
}

/// `0.d₁…dₙ × 10^point` written without an exponent.
fn lay_out_positional(out: &mut Vec<u8>, digits: &[u8], point: i32) {
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(digits);
    } else if point as usize >= digits.len() {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', point as usize - digits.len()));
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        out.extend_from_slice(whole);
        out.push(b'.');
        out.extend_from_slice(fraction);
    }
}

fn parse_i32(text: &[u8]) -> i32 {
    let (negative, text) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = text.iter().fold(0i32, |v, &c| 10 * v + i32::from(c - b'0'));
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Writes a decimal exponent (at most three digits and a sign) into `buffer`.
fn write_i32(buffer: &mut [u8; 8], v: i32) -> &[u8] {
    let mut end = buffer.len();
    let mut m = v.unsigned_abs();
    loop {
        end -= 1;
        buffer[end] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if v < 0 {
        end -= 1;
        buffer[end] = b'-';
    }
    &buffer[end..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sym::write_float;

    fn csv(x: f64) -> String {
        let mut v = vec![];
        push_csv(&mut v, x);
        String::from_utf8(v).unwrap()
    }

    fn reference(x: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, x);
        s
    }

    /// A deterministic stream of bit patterns (SplitMix64).
    fn bits(seed: u64) -> impl Iterator<Item = u64> {
        let mut s = seed;
        std::iter::repeat_with(move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    /// Values at every place the layout changes: the ends of the positional
    /// range, zmij's own switches (1e-5, 1e16), integers, ties between two
    /// shortest texts (`1500000000000000.25`), the extremes.
    fn edges() -> Vec<f64> {
        let mut xs = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            -5e-324,
            1.0,
            -1.0,
            0.1,
            9.81,
            123456789012345.6,
            999999999999999.9,
            0.30000000000000004,
            1.5e15 + 0.25,
            -(1_699_035_690_989_648.0 + 0.25),
            123_456_789_012_345.0 + 0.125,
        ];
        for e in -330..=310 {
            let p = 10f64.powi(e);
            for m in [1.0, 1.5, 9.999999999999999, 1.2345678901234567, 2.0 / 3.0] {
                let x = m * p;
                xs.extend([x, -x, x.next_up(), x.next_down()]);
            }
        }
        for i in 0..2000 {
            xs.push(i as f64);
            xs.push(1e14 + i as f64);
            xs.push(1e15 - i as f64);
            xs.push(1e-4 + i as f64 * 1e-20);
            // Exact values of 18 digits ending in 5: ties at 17 digits.
            xs.push(1.5e15 + i as f64 + 0.25);
            xs.push(-(123456789012345.0 + i as f64 + 0.125));
            // Times of a fixed step, as rows have them.
            xs.push(i as f64 * 1e-3);
        }
        // `odd·2^(−j)` on both sides of `j = 26`, where the short path starts to rule out a
        // tie without counting digits.
        for j in 0..64 {
            for odd in [1u64, 3, 5, 12_345, (1 << 26) + 1, (1 << 40) + 7, (1 << 53) - 1] {
                let x = odd as f64 * 2f64.powi(-j);
                xs.extend([x, -x]);
            }
        }
        xs
    }

    #[test]
    fn csv_text_is_write_floats_at_every_layout_edge() {
        for x in edges() {
            assert_eq!(csv(x), reference(x), "bits {:#x}", x.to_bits());
        }
    }

    #[test]
    fn csv_text_is_write_floats_for_random_doubles() {
        // Every bit pattern is equally likely: all exponents, subnormals, NaNs.
        for b in bits(1).take(300_000) {
            let x = f64::from_bits(b);
            assert_eq!(csv(x), reference(x), "bits {b:#x}");
        }
        // Numbers of the size a trajectory has: uniform in [-10, 10) scaled by 10^k.
        for (i, b) in bits(2).take(300_000).enumerate() {
            let u = (b >> 11) as f64 / (1u64 << 53) as f64;
            let x = (20.0 * u - 10.0) * 10f64.powi(i as i32 % 41 - 20);
            assert_eq!(csv(x), reference(x), "bits {:#x}", x.to_bits());
        }
    }

    #[test]
    fn csv_text_reads_back_to_the_same_double() {
        for b in bits(3).take(100_000) {
            let x = f64::from_bits(b);
            if x.is_finite() {
                assert_eq!(csv(x).parse::<f64>().unwrap().to_bits(), b);
            }
        }
    }

    #[test]
    fn json_text_is_serde_jsons() {
        for x in edges().into_iter().chain(bits(4).take(100_000).map(f64::from_bits)) {
            let mut v = vec![];
            push_json(&mut v, x);
            let value = serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number);
            assert_eq!(String::from_utf8(v).unwrap(), serde_json::to_string(&value).unwrap(), "{x:e}");
        }
    }

    #[test]
    fn exponents_are_written_as_core_fmt_writes_them() {
        for v in [0, 1, -1, 9, -10, 308, -324] {
            assert_eq!(write_i32(&mut [0; 8], v), v.to_string().as_bytes());
        }
    }
}
