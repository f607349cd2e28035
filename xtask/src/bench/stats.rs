//! Small statistics for benchmark rounds: median, spread and formatting. Failed measurements
//! are NaN; they are shown as `fail` and left out of the statistics.

/// The values that are numbers (NaN left out), sorted.
fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// The median of the numbers in `v` (mean of the middle two for an even count); NaN if none.
pub fn median(v: &[f64]) -> f64 {
    let s = sorted(v);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The smallest and largest number in `v`; NaN if none.
pub fn min_max(v: &[f64]) -> (f64, f64) {
    let s = sorted(v);
    match (s.first(), s.last()) {
        (Some(&lo), Some(&hi)) => (lo, hi),
        _ => (f64::NAN, f64::NAN),
    }
}

/// The spread of the numbers in `v`: (largest − smallest) / median, in %; NaN if none.
pub fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = min_max(v);
    ratio(hi - lo, median(v)) * 100.0
}

/// The sum of the numbers in `v`.
pub fn sum(v: &[f64]) -> f64 {
    v.iter().filter(|x| !x.is_nan()).sum()
}

/// `a / b`, NaN when either is not a number or `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

/// A value with `digits` decimals, or `fail` for NaN.
pub fn num(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "fail".into()
    } else {
        format!("{x:.digits$}")
    }
}

/// The spread of `v` for a row: `0%` when every value is the same (all zeros too), `-`
/// when the median is 0 but the values differ, `fail` when there are none.
pub fn spread_text(v: &[f64]) -> String {
    let (lo, hi) = min_max(v);
    if lo.is_nan() {
        "fail".into()
    } else if lo == hi {
        "0%".into()
    } else {
        let s = spread(v);
        if s.is_nan() {
            "-".into()
        } else {
            format!("{s:.0}%")
        }
    }
}

/// One setup's row of a benchmark table: its label padded to `width`, the median, min, max,
/// spread and every round, with `digits` decimals.
pub fn row(label: &str, width: usize, v: &[f64], digits: usize) -> String {
    let (lo, hi) = min_max(v);
    format!(
        "  {label:<width$} median {:>9} (min {}, max {}, spread {})  rounds {}",
        num(median(v), digits),
        num(lo, digits),
        num(hi, digits),
        spread_text(v),
        rounds(v, digits)
    )
}

/// Every round's value, `a / b / c`.
pub fn rounds(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|&x| num(x, digits))
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread_skip_failures() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 5.0, 1.0]), 3.0);
        assert!(median(&[f64::NAN]).is_nan());
        assert_eq!(min_max(&[2.0, f64::NAN, -1.0, 7.0]), (-1.0, 7.0));
        assert_eq!(sum(&[1.5, f64::NAN, 2.0]), 3.5);
        assert_eq!(spread(&[90.0, 100.0, 110.0, f64::NAN]), 20.0);
        assert!(spread(&[f64::NAN]).is_nan());
        assert_eq!(spread_text(&[0.0, 0.0]), "0%");
        assert_eq!(spread_text(&[-1.0, 0.0, 1.0]), "-");
        assert_eq!(spread_text(&[f64::NAN]), "fail");
        assert_eq!(spread_text(&[90.0, 100.0, 110.0]), "20%");
        assert_eq!(
            row("x", 4, &[1.0, 3.0, 2.0], 1),
            "  x    median       2.0 (min 1.0, max 3.0, spread 100%)  rounds 1.0 / 3.0 / 2.0"
        );
        assert!(ratio(1.0, 0.0).is_nan());
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert_eq!(rounds(&[1.0, f64::NAN, 2.25], 1), "1.0 / fail / 2.2");
    }
}
