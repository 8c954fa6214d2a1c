//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `1e3`).
//!
//! Parsed exactly into nano-units held in an `i128`, so that `MilliValue()`/`Value()` style
//! rounding (always up, like apimachinery's `resource.Quantity`) needs no floating point.
//! Precision below one nano-unit is rounded up, as apimachinery does.

use super::SpecError;

/// A parsed quantity, in units of 10^-9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Quantity {
    nanos: i128,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// The quantity `n` (whole units).
    pub fn from_units(n: i64) -> Self {
        Quantity {
            nanos: i128::from(n) * NANO,
        }
    }

    /// Parse the canonical and non-canonical forms apimachinery accepts.
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let err = |reason| SpecError::InvalidQuantity {
            value: s.to_string(),
            reason,
        };
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            Some(_) => (false, s),
            None => return Err(err("empty")),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_end);
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("no digits"));
        }
        if frac_part.contains('.') {
            return Err(err("more than one decimal point"));
        }
        let mut mantissa: i128 = 0;
        for d in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(d - b'0')))
                .ok_or(err("too many digits"))?;
        }
        // value = mantissa * 10^(9 - frac_digits) * 2^bin_exp * 10^dec_exp, in nanos.
        let (bin_exp, dec_exp) = suffix_exponents(suffix).ok_or(err("unknown suffix"))?;
        let frac_digits = i32::try_from(frac_part.len()).map_err(|_| err("too many digits"))?;
        let scaled = mantissa.checked_mul(1i128 << bin_exp).ok_or(err("too large"))?;
        let exp10 = 9 - frac_digits + dec_exp;
        let nanos = if exp10 >= 0 {
            let factor = pow10(exp10).ok_or(err("too large"))?;
            scaled.checked_mul(factor).ok_or(err("too large"))?
        } else {
            // Below nano precision: round up, as apimachinery does.
            match pow10(-exp10) {
                Some(divisor) => div_ceil(scaled, divisor),
                None => i128::from(scaled > 0),
            }
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The value in thousandths, rounded up (apimachinery's `MilliValue`).
    pub fn milli_value(&self) -> i64 {
        saturate(div_ceil(self.nanos, 1_000_000))
    }

    /// The value in whole units, rounded up (apimachinery's `Value`).
    pub fn value(&self) -> i64 {
        saturate(div_ceil(self.nanos, NANO))
    }
}

/// Parse an optional quantity from a resource map (`limits`/`requests`); absent means zero.
pub fn lookup(
    map: Option<&std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    name: &str,
) -> Result<Option<Quantity>, SpecError> {
    map.and_then(|m| m.get(name)).map(|q| Quantity::parse(&q.0)).transpose()
}

/// (binary exponent, decimal exponent) of a suffix.
fn suffix_exponents(suffix: &str) -> Option<(u32, i32)> {
    let pair = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        _ => {
            // Scientific notation: `e`/`E` followed by a signed integer ("E" alone is exa).
            let exp = suffix.strip_prefix('e').or_else(|| suffix.strip_prefix('E'))?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (0, exp.parse::<i32>().ok().filter(|e| e.abs() < 100)?)
        }
    };
    Some(pair)
}

fn pow10(exp: i32) -> Option<i128> {
    10i128.checked_pow(u32::try_from(exp).ok()?)
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 {
        q + 1
    } else {
        q
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v > 0 { i64::MAX } else { i64::MIN })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn parses_cpu_forms() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("0.1").milli_value(), 100);
        assert_eq!(q(".5").milli_value(), 500);
        assert_eq!(q("250000u").milli_value(), 250);
        assert_eq!(q("1n").milli_value(), 1, "milli value rounds up");
        assert_eq!(q("1500m").value(), 2, "value rounds up");
    }

    #[test]
    fn parses_memory_forms() {
        assert_eq!(q("128Mi").value(), 128 * 1024 * 1024);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1k").value(), 1000);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("1Ei").value(), 1 << 60);
        assert_eq!(q("2E").value(), 2_000_000_000_000_000_000);
    }

    #[test]
    fn parses_exponents() {
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E3").value(), 1000);
        assert_eq!(q("1.5e2").value(), 150);
        assert_eq!(q("5e-3").milli_value(), 5);
        assert_eq!(q("1e-20").milli_value(), 1, "sub-nano rounds up");
        assert_eq!(q("-1").value(), -1);
        assert_eq!(q("+2").value(), 2);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "m", "1.2.3", "1x", "1Kb", "abc", "1e", "1e+", " 1", "1 ", "-"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn zero() {
        assert!(q("0").is_zero());
        assert!(q("0m").is_zero());
        assert!(!q("1n").is_zero());
    }
}
