//! Summary statistics of the spec's conventions: mean, median and the
//! nearest-rank p90, all null over an empty list.

use serde::Serialize;

/// Mean, median and p90 of a list of values (days or hours).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Summary {
    /// Arithmetic mean; null for an empty list.
    pub mean: Option<f64>,
    /// Middle value (mean of the two middle values for even n).
    pub median: Option<f64>,
    /// Nearest-rank value at rank ceil(0.9 n) of the sorted list.
    pub p90: Option<f64>,
}

/// Arithmetic mean; `None` for an empty list.
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

/// Median of an already sorted list; `None` when empty.
pub fn median_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Nearest-rank p90 of an already sorted list: the value at rank
/// ceil(0.9 n), 1-based. Integer arithmetic, because 0.9 * n in floating
/// point can land just above a whole number and push the rank one too far.
pub fn p90_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (9 * n).div_ceil(10);
    Some(sorted[rank.max(1) - 1])
}

/// Mean, median and p90 of `values`; sorts the list in place.
pub fn summarize(values: &mut [f64]) -> Summary {
    values.sort_unstable_by(f64::total_cmp);
    Summary {
        mean: mean(values),
        median: median_sorted(values),
        p90: p90_sorted(values),
    }
}

/// numerator / denominator, `None` when the denominator is 0 (never NaN).
pub fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator != 0).then(|| numerator as f64 / denominator as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_has_no_mean_median_or_p90() {
        assert_eq!(summarize(&mut []), Summary::default());
    }

    #[test]
    fn median_of_odd_list_is_the_middle_value() {
        assert_eq!(summarize(&mut [5.0, 1.0, 3.0]).median, Some(3.0));
    }

    #[test]
    fn median_of_even_list_is_the_mean_of_the_two_middle_values() {
        assert_eq!(summarize(&mut [4.0, 1.0, 3.0, 2.0]).median, Some(2.5));
    }

    #[test]
    fn p90_is_the_nearest_rank_value() {
        // n = 10: rank 9; n = 11: rank ceil(9.9) = 10; n = 1: rank 1.
        let mut ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(summarize(&mut ten).p90, Some(9.0));
        let mut eleven: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(summarize(&mut eleven).p90, Some(10.0));
        assert_eq!(summarize(&mut [7.0]).p90, Some(7.0));
        let mut three = [1.0, 2.0, 3.0];
        assert_eq!(summarize(&mut three).p90, Some(3.0));
    }

    #[test]
    fn ratio_with_empty_denominator_is_null() {
        assert_eq!(ratio(0, 0), None);
        assert_eq!(ratio(1, 4), Some(0.25));
    }
}
