//! Decimal text for the page's numbers, without `core::fmt`'s float
//! formatting: `{:.1}` or an `f64`'s `Display` anywhere in the page brings in
//! Grisu, Dragon4 and their tables, about 15 KB of wasm (5 KB gzip; see
//! `bench/src/causes.md`, figure 5). These write the same text as `format!`
//! does, checked against it in the tests below.

/// `x` with `places` digits after the point, exactly as
/// `format!("{x:.places$}")` writes it: the exact binary value rounded, ties
/// to even, and the sign of a negative number kept (`-0.0`).
///
/// The integer part saturates at `u64::MAX` (about 1.8e19; no figure of the
/// lab's is anywhere near that).
pub fn fixed(x: f64, places: u32) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_infinite() {
        return format!("{sign}inf");
    }
    let places = places.min(15);
    let scale = 10_u64.pow(places);
    let a = x.abs();
    // Both parts are exact: an f64 minus its integer part loses nothing.
    let whole = a.trunc();
    let mut int = whole as u64;
    // With no places, a tie rounds to the even whole number.
    let mut frac = round_scaled(a - whole, scale as f64, places == 0 && int % 2 == 1);
    if frac == scale {
        int = int.saturating_add(1);
        frac = 0;
    }
    let mut out = String::from(sign);
    out += &int.to_string();
    if places > 0 {
        out.push('.');
        let frac = frac.to_string();
        for _ in frac.len()..places as usize {
            out.push('0');
        }
        out += &frac;
    }
    out
}

/// `v / 1000` in the fewest digits that say it (`12.5`, `3`, `-0.004`): how
/// Rust and JavaScript write an `f64` that is a whole number of thousandths.
pub fn thousandths(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let mut out = format!("{sign}{}", a / 1000);
    let frac = a % 1000;
    if frac != 0 {
        let digits = (frac + 1000).to_string();
        out.push('.');
        out += digits[1..].trim_end_matches('0');
    }
    out
}

/// `round(a × scale)` for `0 ≤ a < 1`, decided on the exact product (not on
/// its rounded `f64`), as `format!` decides on the exact binary value; a tie
/// goes to the even result, counting `odd_base` as one more.
fn round_scaled(a: f64, scale: f64, odd_base: bool) -> u64 {
    let (p, err) = two_product(a, scale);
    let floor = p.floor();
    // `p - floor` is exact: both are on the same grid of `p`'s ulp.
    let frac = p - floor;
    let up = if frac > 0.5 {
        true
    } else if frac < 0.5 {
        false
    } else if err != 0.0 {
        // The exact product is just above or below the half.
        err > 0.0
    } else {
        (floor % 2.0 != 0.0) != odd_base
    };
    // `frac` is on the grid of `p`'s ulp, which is far coarser than `err`
    // (under half an ulp), so `err` can only decide an exact half.
    floor as u64 + u64::from(up)
}

/// `a × b` as the rounded product and its exact error (Dekker's product,
/// with Veltkamp's split; wasm has no fused multiply-add instruction).
fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    let err = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    (p, err)
}

/// `a` as a high half of 26 bits and the rest.
fn split(a: f64) -> (f64, f64) {
    let c = 134_217_729.0 * a; // 2^27 + 1
    let hi = c - (c - a);
    (hi, a - hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_writes_what_format_writes() {
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            -2.5,
            0.05,
            0.15,
            0.25,
            0.35,
            1.005,
            1.015,
            2.675,
            1e-9,
            -1e-9,
            0.999_999,
            9.995,
            99.95,
            123_456.789,
            1e15,
            5e15,
            1e17,
            4.5e18,
            -7.25,
        ];
        // Times as the page has them: whole microseconds in milliseconds,
        // and a spread of other magnitudes.
        values.extend((0..200_000).map(|us| f64::from(us) / 1000.0));
        let mut x = 0.000_123_f64;
        while x < 1e14 {
            values.extend([x, x * 1.000_7, -x / 3.0]);
            x *= 1.37;
        }
        for x in values {
            for places in 0..=4 {
                assert_eq!(
                    fixed(x, places),
                    format!("{x:.*}", places as usize),
                    "{x:e} to {places} places"
                );
            }
        }
        assert_eq!(fixed(f64::NAN, 1), format!("{:.1}", f64::NAN));
        assert_eq!(fixed(f64::INFINITY, 1), format!("{:.1}", f64::INFINITY));
        assert_eq!(
            fixed(f64::NEG_INFINITY, 0),
            format!("{:.0}", f64::NEG_INFINITY)
        );
    }

    #[test]
    fn thousandths_write_what_an_f64_displays() {
        for v in (-20_000..20_000).chain([123_456_789, -1, 1, 1000, -1000, 10_010]) {
            let x = v as f64 / 1000.0;
            assert_eq!(thousandths(v), x.to_string(), "{v}");
        }
    }
}
