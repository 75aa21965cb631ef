//! Reconciliation end to end: the linked golden estate through the pure
//! engine and through `import` + `report`, with and without
//! `reconcile.precedence`; the pack does not depend on record order, on
//! importing twice, or on which source arrived first.

use crate::common as util;
use crate::kpi_golden::compare;
use secmetrics::kpi::{self, KpiConfig, Period};
use secmetrics::reconcile::{self, ReconcileConfig};
use serde_json::Value;
use std::path::Path;

const LINKED: &str = "golden/estate-linked.ndjson";

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        util::stderr(o),
        util::stdout(o)
    );
    util::stdout(o)
}

fn config(dir: &Path, body: &str) -> String {
    let p = dir.join("secmetrics.toml");
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_string()
}

fn import(store: &Path, cfg: Option<&str>, file: &Path) {
    let mut args = Vec::new();
    if let Some(c) = cfg {
        args.extend(["--config", c]);
    }
    args.extend(["import", file.to_str().unwrap()]);
    ok(&util::run(store, &args));
}

fn report(store: &Path, cfg: Option<&str>) -> String {
    let mut args = Vec::new();
    if let Some(c) = cfg {
        args.extend(["--config", c]);
    }
    args.extend(["report", "--period", "2026-10", "--format", "json"]);
    ok(&util::run(store, &args))
}

/// The pack JSON without `generated_at` (the one field allowed to differ).
fn without_generated_at(json: &str) -> String {
    let mut v: Value = serde_json::from_str(json).expect("json");
    v.as_object_mut().unwrap().remove("generated_at");
    serde_json::to_string_pretty(&v).unwrap()
}

fn check(actual: &str, expected_file: &str) {
    let actual: Value = serde_json::from_str(actual).expect("json");
    let expected: Value =
        serde_json::from_str(&util::read(&format!("golden/{expected_file}"))).expect("json");
    let mut mismatches = Vec::new();
    compare("$", &expected, Some(&actual), &mut mismatches);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn imported_linked_estate_reports_the_expected_pack_without_config() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    import(&store, None, &util::data(LINKED));
    let json = report(&store, None);
    check(&json, "estate-linked.expected.json");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["inconsistent_findings"], 1);
    assert!(v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w == "Finding `F-570` (codeql) was resolved on 2026-10-19 before it was opened on 2026-12-01; left out of mttr and sla_attainment."));
}

#[test]
fn imported_linked_estate_reports_the_precedence_pack_with_codeql_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = config(dir.path(), "[reconcile]\nprecedence = [\"codeql\"]\n");
    import(&store, Some(&cfg), &util::data(LINKED));
    check(
        &report(&store, Some(&cfg)),
        "estate-linked.precedence-codeql.expected.json",
    );
    // The precedence decides the numbers: without it, the other golden.
    check(&report(&store, None), "estate-linked.expected.json");
}

#[test]
fn an_unknown_reconcile_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[reconcile]\nprecedense = [\"codeql\"]\n");
    let o = util::run(&dir.path().join("store"), &["--config", &cfg, "status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        util::stderr(&o).contains("precedense"),
        "{}",
        util::stderr(&o)
    );
}

/// A deterministic permutation (no RNG crate needed): multiply the index
/// by a number coprime with the length.
fn shuffled(lines: &[&str], step: usize) -> Vec<String> {
    let n = lines.len();
    let mut step = step % n;
    while gcd(step, n) != 1 {
        step += 1;
    }
    (0..n)
        .map(|i| lines[(i * step + 7) % n].to_string())
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The file's lines with repeated identities collapsed to the last one, so
/// that any order of them means the same records.
fn distinct_lines(text: &str) -> Vec<String> {
    let mut last: std::collections::HashMap<String, usize> = Default::default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for (i, l) in lines.iter().enumerate() {
        let r = secmetrics_connectors::ndjson::parse_line(l, "import").unwrap();
        last.insert(r.identity().to_string(), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| lines[i].to_string()).collect()
}

/// Equal texts, or a panic naming the first line that differs.
fn assert_same(actual: &str, expected: &str, what: &str) {
    if actual == expected {
        return;
    }
    let line = actual
        .lines()
        .zip(expected.lines())
        .position(|(a, e)| a != e)
        .unwrap_or(0);
    panic!(
        "{what}: line {} differs: {:?} != {:?}",
        line + 1,
        actual.lines().nth(line),
        expected.lines().nth(line)
    );
}

fn pure_pack(lines: &[String], cfg: &ReconcileConfig) -> String {
    let records = lines
        .iter()
        .map(|l| secmetrics_connectors::ndjson::parse_line(l, "import").unwrap());
    let mut estate = secmetrics::estate::Estate::from_records(records);
    reconcile::reconcile(&mut estate, cfg);
    let period = Period::parse_month("2026-10").unwrap();
    let at = "2026-11-02T06:00:00Z".parse().unwrap();
    kpi::compute(&estate, &period, &KpiConfig::default(), at).to_json_pretty()
}

#[test]
fn record_order_does_not_change_the_pure_pack() {
    let lines = distinct_lines(&util::read(LINKED));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    for cfg in [
        ReconcileConfig::default(),
        ReconcileConfig {
            precedence: vec!["codeql".into()],
        },
    ] {
        let expected = pure_pack(&lines, &cfg);
        let mut reversed = lines.clone();
        reversed.reverse();
        assert_same(&pure_pack(&reversed, &cfg), &expected, "reversed");
        for step in [3, 101, 997] {
            assert_same(
                &pure_pack(&shuffled(&refs, step), &cfg),
                &expected,
                &format!("permutation {step}"),
            );
        }
    }
}

#[test]
fn shuffled_import_twice_and_sources_in_either_order_give_the_same_json() {
    let dir = tempfile::tempdir().unwrap();
    let lines = distinct_lines(&util::read(LINKED));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let write = |name: &str, lines: &[String]| {
        let p = dir.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    let original = dir.path().join("a");
    import(&original, None, &write("original.ndjson", &lines));
    let expected = without_generated_at(&report(&original, None));

    let shuffled_store = dir.path().join("b");
    import(
        &shuffled_store,
        None,
        &write("shuffled.ndjson", &shuffled(&refs, 389)),
    );
    assert_eq!(
        without_generated_at(&report(&shuffled_store, None)),
        expected
    );

    // The same file imported twice: nothing counts twice.
    import(&original, None, &write("again.ndjson", &lines));
    assert_same(
        &without_generated_at(&report(&original, None)),
        &expected,
        "original",
    );

    // Tickets first then scanners, and scanners first then tickets.
    let (tickets, rest): (Vec<String>, Vec<String>) = lines
        .iter()
        .cloned()
        .partition(|l| l.contains("\"source\": \"jira\""));
    assert!(tickets.len() > 100, "the estate has tickets");
    let jira_first = dir.path().join("c");
    import(&jira_first, None, &write("tickets.ndjson", &tickets));
    import(&jira_first, None, &write("scanners.ndjson", &rest));
    let scanners_first = dir.path().join("d");
    import(&scanners_first, None, &write("scanners.ndjson", &rest));
    import(&scanners_first, None, &write("tickets.ndjson", &tickets));
    assert_same(
        &without_generated_at(&report(&jira_first, None)),
        &expected,
        "jira_first",
    );
    assert_eq!(
        without_generated_at(&report(&scanners_first, None)),
        expected
    );
}
