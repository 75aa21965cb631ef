//! `secmetrics report` end to end: import a golden estate into a fresh
//! store, report 2026-10 as JSON, compare with the expected pack; keep a
//! snapshot and get it back unchanged after the records change.

use crate::common as util;
use crate::kpi_golden::compare;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn secmetrics(data_dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_secmetrics"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SECMETRICS_CONFIG")
        .output()
        .expect("run secmetrics");
    assert!(
        out.status.success(),
        "secmetrics {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn import(data_dir: &Path, fixture: &str) {
    let path = util::data(fixture);
    secmetrics(data_dir, &["import", path.to_str().expect("utf-8 path")]);
}

fn report_json(data_dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["report", "--period", "2026-10", "--format", "json"];
    args.extend_from_slice(extra);
    String::from_utf8(secmetrics(data_dir, &args).stdout).expect("utf-8")
}

fn check_golden_via_cli(name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    import(dir.path(), &format!("golden/{name}.ndjson"));
    let actual: Value = serde_json::from_str(&report_json(dir.path(), &[])).expect("json");
    let expected: Value =
        serde_json::from_str(&util::read(&format!("golden/{name}.expected.json"))).expect("json");
    let mut mismatches = Vec::new();
    compare("$", &expected, Some(&actual), &mut mismatches);
    assert!(mismatches.is_empty(), "{name}:\n{}", mismatches.join("\n"));
}

#[test]
fn report_json_of_imported_small_estate_matches_expected() {
    check_golden_via_cli("estate-small");
}

#[test]
fn report_json_of_imported_medium_estate_matches_expected() {
    check_golden_via_cli("estate-medium");
}

#[test]
fn snapshot_is_returned_unchanged_as_sent_after_records_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    import(dir.path(), "golden/estate-small.ndjson");
    let sent = report_json(dir.path(), &["--snapshot"]);
    // More records arrive: the live pack changes, the kept one must not.
    import(dir.path(), "golden/estate-medium.ndjson");
    let live = report_json(dir.path(), &[]);
    assert_ne!(strip_generated(&live), strip_generated(&sent));
    let as_sent = report_json(dir.path(), &["--as-sent"]);
    assert_eq!(as_sent, sent);
}

/// The pack without `generated_at`, which differs between two runs.
fn strip_generated(json: &str) -> Value {
    let mut v: Value = serde_json::from_str(json).expect("json");
    if let Some(o) = v.as_object_mut() {
        o.remove("generated_at");
    }
    v
}

#[test]
fn as_sent_without_a_snapshot_says_how_to_keep_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_secmetrics"))
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "report",
            "--period",
            "2026-09",
            "--format",
            "json",
            "--as-sent",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--snapshot"));
}

#[test]
fn report_renders_text_markdown_and_html() {
    let dir = tempfile::tempdir().expect("tempdir");
    import(dir.path(), "golden/estate-small.ndjson");
    let text = secmetrics(dir.path(), &["report", "--period", "2026-10"]).stdout;
    let text = String::from_utf8(text).expect("utf-8");
    assert!(text.contains("Design review coverage"));
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
    let html = dir.path().join("pack.html");
    secmetrics(
        dir.path(),
        &[
            "report",
            "--period",
            "2026-10",
            "--format",
            "html",
            "--out",
            html.to_str().expect("path"),
        ],
    );
    let page = std::fs::read_to_string(&html).expect("html written");
    assert_eq!(page.matches("<svg").count(), 3);
}

#[test]
fn demo_prints_the_text_pack_and_writes_the_html_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_secmetrics"))
        .args(["demo", "--size", "3000", "--out"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(stdout.contains("Security KPI pack"));
    assert!(stdout.contains("HTML report"));
    // The shipped demo configuration: every KPI has an owner and a target.
    for noise in ["no owner", "has no owner", "no target"] {
        assert!(!stdout.contains(noise), "{noise:?} in\n{stdout}");
    }
    assert!(stdout.contains("(owner: Security operations)"), "{stdout}");
    assert!(stdout.contains("target (>="), "{stdout}");
    let html = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".html"));
    assert!(html);
}

#[test]
fn an_arbitrary_range_over_the_same_month_gives_the_same_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    import(dir.path(), "golden/estate-small.ndjson");
    let month: Value = serde_json::from_str(&report_json(dir.path(), &[])).expect("json");
    let out = secmetrics(
        dir.path(),
        &[
            "report",
            "--from",
            "2026-10-01",
            "--to",
            "2026-11-01T00:00:00Z",
            "--format",
            "json",
        ],
    );
    let range: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(range["period"], month["period"]);
    // The previous period of a range has the same length (31 days), so only
    // the current figures are comparable with the month's.
    assert_eq!(range["previous_period"]["start"], "2026-08-31T00:00:00Z");
    for (id, kpi) in month["kpis"].as_object().expect("kpis") {
        assert_eq!(range["kpis"][id]["headline"], kpi["headline"], "{id}");
    }
}

#[test]
fn a_bad_period_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_secmetrics"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["report", "--period", "2026-13"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2026-13"));
}

#[test]
fn a_severity_lowered_by_a_later_import_is_reported_as_a_downgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |sev: &str| {
        format!(
            r#"{{"kind":"finding","id":"F-1","asset":"a","severity":"{sev}","opened_at":"2026-01-01T00:00:00Z","status":"open"}}"#
        )
    };
    for (name, sev) in [("before.ndjson", "critical"), ("after.ndjson", "low")] {
        let path = dir.path().join(name);
        std::fs::write(&path, line(sev) + "\n").expect("write");
        secmetrics(
            &dir.path().join("store"),
            &["import", path.to_str().expect("path")],
        );
    }
    // History is stamped with the import time, so ask for a range around now.
    let now = chrono::Utc::now();
    let from = (now - chrono::TimeDelta::days(1)).to_rfc3339();
    let to = (now + chrono::TimeDelta::days(1)).to_rfc3339();
    let out = secmetrics(
        &dir.path().join("store"),
        &["report", "--from", &from, "--to", &to, "--format", "json"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["severity_downgrades"]["count"], 1);
    assert_eq!(v["severity_downgrades"]["ids"][0], "F-1");
    assert!(v["warnings"].as_array().expect("warnings").iter().any(|w| w
        .as_str()
        .is_some_and(|w| w.contains("from critical to low"))));
}

#[test]
fn report_periods_run_between_midnights_in_kpi_timezone() {
    let dir = tempfile::tempdir().expect("tempdir");
    import(dir.path(), "golden/estate-small.ndjson");
    let config = dir.path().join("tokyo.toml");
    std::fs::write(&config, "[kpi]\ntimezone = \"Asia/Tokyo\"\n").unwrap();
    let report = |period: &str| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_secmetrics"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["report", "--period", period, "--format", "json"])
            .env_remove("SECMETRICS_CONFIG")
            .output()
            .expect("run secmetrics");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    // kpi-spec "Conventions": --period 2026-10 in Asia/Tokyo.
    let month = report("2026-10");
    assert_eq!(month["period"]["start"], "2026-09-30T15:00:00Z");
    assert_eq!(month["period"]["end"], "2026-10-31T15:00:00Z");
    assert_eq!(month["previous_period"]["start"], "2026-08-31T15:00:00Z");
    let week = report("2026-W44");
    assert_eq!(week["period"]["start"], "2026-10-25T15:00:00Z");
    assert_eq!(week["period"]["end"], "2026-11-01T15:00:00Z");
    assert_eq!(week["previous_period"]["end"], "2026-10-25T15:00:00Z");
    let day = report("2026-10-31");
    assert_eq!(day["period"]["start"], "2026-10-30T15:00:00Z");
    assert_eq!(day["period"]["end"], "2026-10-31T15:00:00Z");
    // A Tokyo month differs from the UTC one: records near the boundary
    // fall on the other side.
    let utc: Value = serde_json::from_str(&report_json(dir.path(), &[])).expect("json");
    assert_eq!(utc["period"]["start"], "2026-10-01T00:00:00Z");
}
