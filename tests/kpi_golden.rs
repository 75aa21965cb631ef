//! Golden estates: the pack for 2026-10 (records reconciled, then the KPI
//! engine) must contain every field of the independent implementation's
//! `.expected.json` with equal values.

use crate::common as util;
use secmetrics::kpi::{self, KpiConfig, Period};
use secmetrics::reconcile::ReconcileConfig;
use serde_json::Value;

/// Relative tolerance for floats, as the golden README states.
const REL_TOL: f64 = 1e-9;

fn numbers_equal(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= REL_TOL * a.abs().max(b.abs())
}

/// Every field of `expected` present in `actual` and equal; mismatches are
/// collected with their JSON path.
pub fn compare(path: &str, expected: &Value, actual: Option<&Value>, out: &mut Vec<String>) {
    let Some(actual) = actual else {
        out.push(format!("{path}: missing (expected {expected})"));
        return;
    };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                compare(&format!("{path}.{k}"), v, a.get(k), out);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{path}: expected {expected}, found {actual}"));
                return;
            }
            for (i, v) in e.iter().enumerate() {
                compare(&format!("{path}[{i}]"), v, a.get(i), out);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            if !numbers_equal(e, a) {
                out.push(format!("{path}: expected {e}, found {a}"));
            }
        }
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path}: expected {e}, found {a}")),
    }
}

fn check_golden(name: &str) {
    check_golden_with(
        name,
        &format!("{name}.expected.json"),
        &ReconcileConfig::default(),
    );
}

fn check_golden_with(name: &str, expected: &str, cfg: &ReconcileConfig) {
    let estate = util::reconciled_estate(&format!("golden/{name}.ndjson"), cfg);
    let expected: Value = serde_json::from_str(&util::read(&format!("golden/{expected}")))
        .expect("expected file is JSON");
    let period = Period::parse_month("2026-10").expect("period");
    let generated_at = "2026-11-02T06:00:00Z".parse().expect("time");
    let pack = kpi::compute(&estate, &period, &KpiConfig::default(), generated_at);
    let actual = serde_json::to_value(&pack).expect("pack serializes");
    let mut mismatches = Vec::new();
    compare("$", &expected, Some(&actual), &mut mismatches);
    assert!(
        mismatches.is_empty(),
        "{name}: {} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn small_golden_estate_matches_expected_pack() {
    check_golden("estate-small");
}

#[test]
fn medium_golden_estate_matches_expected_pack() {
    check_golden("estate-medium");
}

#[test]
fn linked_golden_estate_matches_expected_pack_without_precedence() {
    check_golden("estate-linked");
}

#[test]
fn linked_golden_estate_matches_expected_pack_with_codeql_first() {
    check_golden_with(
        "estate-linked",
        "estate-linked.precedence-codeql.expected.json",
        &ReconcileConfig {
            precedence: vec!["codeql".into()],
        },
    );
}

#[test]
fn comparison_reports_the_path_of_a_mismatch() {
    let expected: Value = serde_json::json!({"a": {"b": [1.0, null]}});
    let actual: Value = serde_json::json!({"a": {"b": [1.0000000000001, 0]}});
    let mut out = Vec::new();
    compare("$", &expected, Some(&actual), &mut out);
    assert_eq!(out, vec!["$.a.b[1]: expected null, found 0".to_string()]);
}
