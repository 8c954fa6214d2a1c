//! Kubernetes `resource.Quantity`: parsing, exact arithmetic and canonical
//! printing, as needed by LimitRanger and ResourceQuota.
//!
//! Kubernetes keeps an arbitrary-precision decimal rounded up to nano units
//! plus the *format* the value was written in (DecimalSI, BinarySI or
//! DecimalExponent); `String()` re-derives a canonical spelling from both, so
//! `"1000m"` prints as `1`, `"1.5Gi"` as `1536Mi` and `"0.5"` as `500m`.
//! skiff stores the value as an `i128` count of nano-units, which covers
//! ±1.7e29 whole units, far beyond any real quota. Where Kubernetes would grow
//! without bound, parsing reports an error and arithmetic saturates.

use std::cmp::Ordering;
use std::fmt;

const NANO: i128 = 1_000_000_000;
/// Largest value whose milli-value fits an int64; Kubernetes compares in
/// milli-units only below it (`resource.MaxMilliValue`).
pub const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

/// How a quantity was written; decides how it prints back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

/// An exact quantity in nano-units. Equality and ordering ignore the format,
/// as `Quantity.Cmp` does in Kubernetes.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

/// Why a string is not a quantity; its message names the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unable to parse quantity {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for QuantityError {}

/// Kubernetes' own wording for a malformed quantity (`ErrFormatWrong`).
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const SUFFIX_WRONG: &str = "unable to parse quantity's suffix";
const TOO_LARGE: &str = "quantity is too large";

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Self::zero()
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Quantity {
    pub const fn zero() -> Self {
        Quantity {
            nanos: 0,
            format: Format::DecimalSI,
        }
    }

    /// Whole units, DecimalSI (Kubernetes' `NewQuantity(v, DecimalSI)`).
    pub fn from_int(v: i64) -> Self {
        Quantity {
            nanos: i128::from(v) * NANO,
            format: Format::DecimalSI,
        }
    }

    /// Milli-units, DecimalSI (`NewMilliQuantity`).
    pub fn from_milli(v: i64) -> Self {
        Quantity {
            nanos: i128::from(v) * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    pub fn from_nanos(nanos: i128, format: Format) -> Self {
        Quantity { nanos, format }
    }

    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Parses the Kubernetes quantity grammar: `[+-]digits[.digits]` followed
    /// by nothing, a decimal SI suffix (n u m k M G T P E), a binary suffix
    /// (Ki … Ei) or an exponent (`e3`, `E-3`). Values finer than a nano-unit
    /// round up (away from zero), as Kubernetes does so that a tiny request
    /// never becomes zero.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let err = |reason| QuantityError {
            input: input.to_string(),
            reason,
        };
        let bytes = input.as_bytes();
        let mut pos = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                pos = 1;
                true
            }
            Some(b'+') => {
                pos = 1;
                false
            }
            _ => false,
        };
        let int_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_part = &input[int_start..pos];
        let mut frac_part = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_part = &input[frac_start..pos];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err(FORMAT_WRONG));
        }
        let suffix = &input[pos..];
        // (power of ten, power of 1024, format)
        let (exp10, exp1024, format): (i64, u32, Format) = match suffix {
            "" => (0, 0, Format::DecimalSI),
            "n" => (-9, 0, Format::DecimalSI),
            "u" => (-6, 0, Format::DecimalSI),
            "m" => (-3, 0, Format::DecimalSI),
            "k" => (3, 0, Format::DecimalSI),
            "M" => (6, 0, Format::DecimalSI),
            "G" => (9, 0, Format::DecimalSI),
            "T" => (12, 0, Format::DecimalSI),
            "P" => (15, 0, Format::DecimalSI),
            "E" => (18, 0, Format::DecimalSI),
            "Ki" => (0, 1, Format::BinarySI),
            "Mi" => (0, 2, Format::BinarySI),
            "Gi" => (0, 3, Format::BinarySI),
            "Ti" => (0, 4, Format::BinarySI),
            "Pi" => (0, 5, Format::BinarySI),
            "Ei" => (0, 6, Format::BinarySI),
            s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
                let e = parse_exponent(&s[1..]).ok_or_else(|| err(SUFFIX_WRONG))?;
                (e, 0, Format::DecimalExponent)
            }
            s if s.bytes().all(|b| b"eEinumkKMGTP+-0123456789".contains(&b)) => return Err(err(SUFFIX_WRONG)),
            _ => return Err(err(FORMAT_WRONG)),
        };

        // Value = digits × 10^(exp10 - len(frac)) × 1024^exp1024, in nanos.
        let mut digits = format!("{int_part}{frac_part}");
        let mut exp = exp10 - frac_part.len() as i64 + 9;
        let trimmed = digits.trim_start_matches('0').len();
        digits.drain(..digits.len() - trimmed);
        while digits.ends_with('0') {
            digits.pop();
            exp += 1;
        }
        if digits.is_empty() {
            return Ok(Quantity { nanos: 0, format });
        }
        let magnitude = magnitude_nanos(&digits, exp, exp1024).ok_or_else(|| err(TOO_LARGE))?;
        // Kubernetes: a BinarySI value strictly between 0 and 1 prints as DecimalSI.
        let format = if format == Format::BinarySI && magnitude < NANO {
            Format::DecimalSI
        } else {
            format
        };
        Ok(Quantity {
            nanos: if negative { -magnitude } else { magnitude },
            format,
        })
    }

    /// Parses a JSON value holding a quantity: strings, or plain numbers
    /// (clients occasionally send `cpu: 1`).
    pub fn from_json(v: &serde_json::Value) -> Option<Quantity> {
        match v {
            serde_json::Value::String(s) => Quantity::parse(s).ok(),
            serde_json::Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
            _ => None,
        }
    }

    /// Sum; keeps the left operand's format unless it is zero (Kubernetes'
    /// `Add`). Saturates instead of overflowing.
    pub fn add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: if self.nanos == 0 { other.format } else { self.format },
        }
    }

    /// Difference, with the same format rule as [`Quantity::add`].
    pub fn sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: if self.nanos == 0 { other.format } else { self.format },
        }
    }

    /// Whole units rounded up away from zero, saturating to i64 (`Value()`).
    pub fn value(&self) -> i64 {
        scaled_up(self.nanos, NANO)
    }

    /// Milli-units rounded up away from zero, saturating (`MilliValue()`).
    pub fn milli_value(&self) -> i64 {
        scaled_up(self.nanos, 1_000_000)
    }

    /// Canonical text, identical to Kubernetes' `Quantity.String()`.
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

fn parse_exponent(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Anything past a few hundred is out of range either way; cap so the
    // arithmetic below cannot overflow on absurd exponents.
    let v: i64 = digits.parse().unwrap_or(i64::MAX).min(10_000);
    Some(if neg { -v } else { v })
}

/// `digits × 10^exp × 1024^exp1024`, with digits free of leading and trailing
/// zeros, rounded up to an integer. `None` on overflow.
fn magnitude_nanos(digits: &str, exp: i64, exp1024: u32) -> Option<i128> {
    let binary = 1024i128.checked_pow(exp1024)?;
    if exp >= 0 {
        let m: i128 = digits.parse().ok()?;
        let scale = 10i128.checked_pow(u32::try_from(exp).ok()?)?;
        return m.checked_mul(scale)?.checked_mul(binary);
    }
    let drop = usize::try_from(-exp).ok()?;
    if exp1024 == 0 {
        // Pure decimal: dropped digits are all below a nano-unit.
        if drop >= digits.len() {
            return Some(1);
        }
        let kept: i128 = digits[..digits.len() - drop].parse().ok()?;
        let rest_nonzero = digits[digits.len() - drop..].bytes().any(|b| b != b'0');
        return kept.checked_add(i128::from(rest_nonzero));
    }
    // Binary with a fraction: multiply first, then divide rounding up.
    let m: i128 = digits.parse().ok()?;
    let product = m.checked_mul(binary)?;
    if drop > 38 {
        return Some(1);
    }
    let divisor = 10i128.pow(drop as u32);
    let q = product / divisor;
    Some(if product % divisor != 0 { q + 1 } else { q })
}

fn scaled_up(nanos: i128, unit: i128) -> i64 {
    let q = nanos / unit;
    let q = if nanos % unit != 0 { q + nanos.signum() } else { q };
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        if self.format == Format::BinarySI
            && self.nanos % NANO == 0
            && (self.nanos >= 1024 * NANO || self.nanos <= -1024 * NANO)
        {
            const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut v = self.nanos / NANO;
            let mut k = 0;
            while k < 6 && v % 1024 == 0 {
                v /= 1024;
                k += 1;
            }
            return write!(f, "{v}{}", SUFFIXES[k]);
        }
        // Strip powers of ten, then step back down to a multiple of three so
        // the mantissa is an integer with an SI suffix.
        let mut m = self.nanos;
        let mut e: i64 = -9;
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        let r = e.rem_euclid(3);
        m *= 10i128.pow(r as u32);
        e -= r;
        let suffix = match (self.format, e) {
            (_, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        write!(f, "{m}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        match Quantity::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        }
    }

    fn canon(s: &str) -> String {
        q(s).to_string()
    }

    #[test]
    fn canonical_forms_match_kubernetes() {
        let cases = [
            ("100m", "100m"),
            ("0.1", "100m"),
            (".5", "500m"),
            ("1", "1"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("1.5", "1500m"),
            ("2000m", "2"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1.5k", "1500"),
            ("1200000", "1200k"),
            ("128Mi", "128Mi"),
            ("1024Ki", "1Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1025", "1025"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1e-3", "1e-3"),
            ("1E", "1E"),
            ("-1", "-1"),
            ("-100m", "-100m"),
            ("+5", "5"),
            ("0", "0"),
            ("-0", "0"),
            ("0Gi", "0"),
            ("1n", "1n"),
            ("1u", "1u"),
            ("1.", "1"),
            ("1000000000000000000000", "1e21"),
            ("3M", "3M"),
            ("12Ti", "12Ti"),
        ];
        for (input, want) in cases {
            assert_eq!(canon(input), want, "input {input}");
        }
    }

    #[test]
    fn sub_nano_rounds_up_away_from_zero() {
        assert_eq!(q("0.0000000001").nanos(), 1);
        assert_eq!(q("-0.0000000001").nanos(), -1);
        assert_eq!(q("1.0000000001").nanos(), 1_000_000_001);
        assert_eq!(q("1.5n").to_string(), "2n");
    }

    #[test]
    fn fractional_binary_falls_back_to_decimal() {
        // 1.1Gi is not a whole number of bytes.
        assert_eq!(canon("1.1Gi"), "1181116006400m");
    }

    #[test]
    fn rejects_malformed_input_naming_it() {
        for bad in [
            "", ".", "abc", "1K", "1e", "1Mb", "--1", "1.2.3", " 1", "1 ", "e3", "1ee3",
        ] {
            let e = match Quantity::parse(bad) {
                Ok(v) => panic!("{bad:?} parsed as {v}"),
                Err(e) => e,
            };
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(
            Quantity::parse("abc").map_err(|e| e.to_string()),
            Err(format!("unable to parse quantity \"abc\": {FORMAT_WRONG}"))
        );
        assert_eq!(
            Quantity::parse("1K").map_err(|e| e.reason),
            Err("unable to parse quantity's suffix")
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(Quantity::parse("1e400").is_err());
        assert!(Quantity::parse("999999999999999999999999999999999999999999Ei").is_err());
        assert_eq!(q("0e400").nanos(), 0);
        assert_eq!(q("1e-400").nanos(), 1);
        let big = Quantity::from_nanos(i128::MAX, Format::DecimalSI);
        assert_eq!(big.add(&q("1")).nanos(), i128::MAX);
        assert_eq!(big.value(), i64::MAX);
    }

    #[test]
    fn value_and_milli_value_round_up() {
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("-1.5").value(), -2);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("128Mi").value(), 134_217_728);
    }

    #[test]
    fn arithmetic_keeps_left_format_unless_zero() {
        let sum = Quantity::zero().add(&q("128Mi"));
        assert_eq!(sum.to_string(), "128Mi");
        assert_eq!(sum.add(&q("128Mi")).to_string(), "256Mi");
        assert_eq!(q("500m").add(&q("1")).to_string(), "1500m");
        assert_eq!(q("1").sub(&q("1")).to_string(), "0");
        assert_eq!(q("1Gi").add(&q("500m")).to_string(), "1073741824500m");
        assert_eq!(q("1").add(&q("1Ki")).to_string(), "1025");
    }

    #[test]
    fn ordering_ignores_format() {
        assert_eq!(q("1k"), q("1000"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("1Ki") > q("1k"));
        assert!(q("999m") < q("1"));
        assert_eq!(q("1Gi").cmp(&q("1024Mi")), Ordering::Equal);
    }

    #[test]
    fn json_numbers_are_accepted() {
        assert_eq!(Quantity::from_json(&serde_json::json!(2)), Some(q("2")));
        assert_eq!(Quantity::from_json(&serde_json::json!(0.5)), Some(q("500m")));
        assert_eq!(Quantity::from_json(&serde_json::json!(null)), None);
    }
}
