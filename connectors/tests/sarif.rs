//! The SARIF reader on our own files in the real shapes (one result per
//! rule of the mapping), and the `sarif` connector's scan-to-scan logic.

use crate::support::MemorySink;
use secmetrics_connectors::sarif::connector::SarifSettings;
use secmetrics_connectors::sarif::{
    import_file, read_results, FindingContext, ReadError, SarifResult, SuppressionPolicy,
};
use secmetrics_connectors::{Connector, Environment, Record, SyncMode};
use serde_json::json;
use std::convert::Infallible;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sarif")
        .join(name)
}

fn fallback() -> chrono::DateTime<chrono::Utc> {
    "2026-04-01T00:00:00Z".parse().unwrap()
}

fn read(path: &Path, policy: &SuppressionPolicy) -> Vec<SarifResult> {
    let mut out = Vec::new();
    read_results(path, policy, fallback(), |r| {
        out.push(r);
        Ok::<(), Infallible>(())
    })
    .unwrap();
    out
}

#[test]
fn every_mapping_rule_gives_the_documented_severity_status_and_rule() {
    let rs = read(&data("rules.sarif"), &SuppressionPolicy::default());
    let got: Vec<(Option<&str>, &str, &str, &str)> = rs
        .iter()
        .map(|r| {
            (
                r.rule_id.as_deref(),
                r.severity.as_str(),
                r.status.as_str(),
                r.validity.as_str(),
            )
        })
        .collect();
    let want = vec![
        (Some("R1"), "critical", "open", "unverified"), // rule score 9.1 beats level warning
        (Some("R2"), "high", "open", "unverified"),     // rule defaultConfiguration error
        (Some("R3"), "medium", "open", "unverified"),   // no level anywhere: warning
        (Some("R4"), "low", "open", "unverified"),      // result score 2.0 beats rule 6.5
        (Some("X1"), "high", "open", "unverified"),     // extension 0, rule 0: 7.5
        (Some("Y1"), "low", "open", "unverified"),      // extension 1 by id: note
        (Some("R2"), "info", "open", "unverified"),     // kind pass
        (Some("R2"), "info", "open", "unverified"),     // level none
        (Some("R2"), "high", "risk_accepted", "unverified"), // external accepted
        (Some("R2"), "high", "closed", "false_positive"), // inSource accepted
        (Some("R2"), "high", "open", "unverified"),     // under review
        (Some("R2"), "high", "closed", "false_positive"), // no status: accepted by default
        (Some("R2"), "high", "remediated", "unverified"), // baselineState absent
        (Some("R2"), "high", "open", "unverified"),     // empty suppressions
        (Some("UNKNOWN"), "medium", "open", "unverified"), // unknown rule: warning
        (Some("R2"), "low", "open", "unverified"),      // result level note beats rule error
        (Some("R5"), "info", "open", "unverified"),     // ruleIndex only, score 0.0
    ];
    assert_eq!(got, want);
    let run_time: chrono::DateTime<chrono::Utc> = "2026-03-01T10:05:00Z".parse().unwrap();
    assert!(
        rs.iter().all(|r| r.scan_time == run_time),
        "the run's endTimeUtc"
    );
    assert_eq!(rs[12].resolved_at, Some(run_time));
    assert_eq!(rs[8].resolved_at, Some(run_time));
    assert_eq!(
        rs[15].first_detected,
        Some("2026-02-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(rs[0].title.as_deref(), Some("Critical by score"));
    assert_eq!(rs[1].title.as_deref(), Some("ErrorByDefault"));
    assert_eq!(rs[14].title.as_deref(), Some("UNKNOWN"));
    assert_eq!(
        (rs[16].uri.as_deref(), rs[16].line),
        (Some("src/indexed.py"), Some(5))
    );
    assert_eq!(rs[0].tool, "RuleTester");
    // Fingerprints: all distinct and stable across reads.
    let again = read(&data("rules.sarif"), &SuppressionPolicy::default());
    let fps: std::collections::BTreeSet<&str> = rs.iter().map(|r| r.fingerprint.as_str()).collect();
    assert_eq!(fps.len(), rs.len());
    assert!(rs
        .iter()
        .zip(&again)
        .all(|(a, b)| a.fingerprint == b.fingerprint));
}

#[test]
fn suppression_mapping_is_configurable() {
    let policy: SuppressionPolicy = serde_json::from_value(json!({
        "external": "open", "in_source": "risk_accepted", "missing_status_accepted": false
    }))
    .unwrap();
    let rs = read(&data("rules.sarif"), &policy);
    assert_eq!(rs[8].status.as_str(), "open");
    assert_eq!(rs[9].status.as_str(), "risk_accepted");
    assert_eq!(rs[11].status.as_str(), "open");
}

#[test]
fn snippets_never_reach_findings() {
    let ctx = FindingContext {
        source: "import".into(),
        asset: "web".into(),
        environment: Environment::Production,
    };
    let mut text = String::new();
    let n = import_file(
        &data("rules.sarif"),
        &ctx,
        &SuppressionPolicy::default(),
        fallback(),
        |f| {
            text.push_str(&format!(
                "{f:?}\n{}\n",
                Record::Finding(f.clone()).to_json()
            ));
            Ok::<(), Infallible>(())
        },
    )
    .unwrap();
    assert_eq!(n, 17);
    assert!(!text.contains("AKIAIOSFODNN7EXAMPLE"), "snippet leaked");
    assert!(
        text.contains("config/settings.py:12"),
        "the location is kept"
    );
}

#[test]
fn a_malformed_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.sarif");
    std::fs::write(
        &p,
        r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":1}]}]}"#,
    )
    .unwrap();
    let err = read_results(&p, &SuppressionPolicy::default(), fallback(), |_| {
        Ok::<(), Infallible>(())
    });
    match err {
        Err(ReadError::Sarif(e)) => assert!(e.to_string().contains("bad.sarif"), "{e}"),
        other => panic!("{other:?}"),
    }
}

fn scan(tool: &str, time: &str, results: &[(&str, &str)]) -> String {
    scan_in(tool, time, None, results)
}

/// A scan whose run has `automationDetails.id` = `id` when given.
fn scan_in(tool: &str, time: &str, id: Option<&str>, results: &[(&str, &str)]) -> String {
    let results: Vec<_> = results
        .iter()
        .map(|(rule, fp)| {
            json!({"ruleId": rule, "level": "error", "message": {"text": "m"},
                   "partialFingerprints": {"primaryLocationLineHash": fp}})
        })
        .collect();
    let mut run = json!({
        "tool": {"driver": {"name": tool, "rules": [{"id": "A", "shortDescription": {"text": "Rule A"}}]}},
        "invocations": [{"executionSuccessful": true, "endTimeUtc": time}],
        "results": results
    });
    if let Some(id) = id {
        run["automationDetails"] = json!({ "id": id });
    }
    json!({"version": "2.1.0", "runs": [run]}).to_string()
}

fn set_mtime(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
}

#[tokio::test]
async fn a_finding_gone_from_the_next_scan_is_resolved_at_that_scans_time() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    let s1 = web.join("scan-1.sarif");
    std::fs::write(
        &s1,
        scan(
            "Semgrep",
            "2026-03-01T00:00:00Z",
            &[("A", "h1"), ("A", "h2")],
        ),
    )
    .unwrap();
    set_mtime(&s1, 1_000);
    std::fs::write(
        dir.path().join("unmapped.sarif"),
        scan("Semgrep", "2026-03-01T00:00:00Z", &[]),
    )
    .unwrap();
    let settings: SarifSettings = serde_json::from_value(json!({
        "name": "sast", "paths": [dir.path().display().to_string()],
        "assets": [{"pattern": format!("{}/web/*", dir.path().display()), "asset": "web-shop"}],
        "environments": {"web-shop": "non_production"}
    }))
    .unwrap();
    let c = settings.build().unwrap();
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out.skipped, 1, "the unmapped file is skipped");
    assert_eq!(sink.count("finding"), 2);

    // The next scan is written at the same path (no category: the path is
    // the scan's identity).
    let s2 = web.join("scan-1.sarif");
    std::fs::write(
        &s2,
        scan(
            "Semgrep",
            "2026-03-08T00:00:00Z",
            &[("A", "h2"), ("A", "h3")],
        ),
    )
    .unwrap();
    set_mtime(&s2, 2_000);
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out.requests, 1, "only the new file is read");
    let findings: Vec<_> = sink
        .records
        .values()
        .map(|r| match r {
            Record::Finding(f) => f.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(findings.len(), 3);
    let first_seen: chrono::DateTime<chrono::Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let second: chrono::DateTime<chrono::Utc> = "2026-03-08T00:00:00Z".parse().unwrap();
    let gone: Vec<_> = findings
        .iter()
        .filter(|f| f.status.as_str() == "remediated")
        .collect();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].resolved_at, Some(second));
    assert_eq!(gone[0].opened_at, first_seen);
    assert_eq!(gone[0].title.as_deref(), Some("Rule A"));
    let still: Vec<_> = findings
        .iter()
        .filter(|f| f.status.as_str() == "open")
        .collect();
    assert_eq!(still.len(), 2);
    assert!(
        still.iter().any(|f| f.opened_at == first_seen),
        "h2 keeps its first-seen time"
    );
    assert!(still.iter().any(|f| f.opened_at == second), "h3 is new");
    assert!(findings
        .iter()
        .all(|f| f.asset == "web-shop" && f.environment == Environment::NonProduction));

    // Nothing changed: nothing read, nothing committed.
    let pages = sink.pages.len();
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.requests, out.pages, sink.pages.len()), (0, 0, pages));
}

#[tokio::test]
async fn ndjson_connector_reads_files_once_and_skips_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("estate.ndjson");
    std::fs::write(
        &p,
        "{\"kind\":\"asset\",\"id\":\"web\",\"tier\":1}\n{\"kind\":\"asset\",\"id\":\"bad\"}\n\n{\"kind\":\"review\",\"id\":\"R1\",\"asset\":\"web\",\"type\":\"design\",\"completed_at\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let s: secmetrics_connectors::ConnectorSettings = serde_json::from_value(json!({
        "kind": "ndjson", "name": "files", "paths": [dir.path().display().to_string()], "page_size": 1
    }))
    .unwrap();
    let c = s.build(None).unwrap();
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.skipped, sink.records.len()), (1, 2));
    assert!(sink.all().iter().all(|r| r.source() == "files"));
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out.pages, 0);
}

fn findings_of(
    sink: &MemorySink,
) -> std::collections::BTreeMap<String, secmetrics_connectors::Finding> {
    sink.records
        .values()
        .filter_map(|r| match r {
            Record::Finding(f) => Some((f.fingerprint.clone().unwrap_or_default(), f.clone())),
            _ => None,
        })
        .collect()
}

fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn scans_of_one_asset_and_tool_in_other_categories_never_resolve_each_other() {
    let dir = tempfile::tempdir().unwrap();
    // Two CodeQL language runs of one asset, one file each; and a scan of
    // the same category as the first, later.
    let js = dir.path().join("codeql-js.sarif");
    let py = dir.path().join("codeql-py.sarif");
    let js_id = "/language:javascript/run-1";
    std::fs::write(
        &js,
        scan_in(
            "CodeQL",
            "2026-03-01T00:00:00Z",
            Some(js_id),
            &[("A", "j1"), ("A", "j2")],
        ),
    )
    .unwrap();
    set_mtime(&js, 1_000);
    std::fs::write(
        &py,
        scan_in(
            "CodeQL",
            "2026-03-02T00:00:00Z",
            Some("/language:python/run-1"),
            &[("A", "p1")],
        ),
    )
    .unwrap();
    set_mtime(&py, 2_000);
    let settings: SarifSettings = serde_json::from_value(json!({
        "name": "sast", "paths": [dir.path().display().to_string()],
        "default_asset": "shop"
    }))
    .unwrap();
    let c = settings.build().unwrap();
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.requests, out.skipped), (2, 0));
    // Every sync re-reading both must leave all three open.
    for f in findings_of(&sink).values() {
        assert_eq!(f.status.as_str(), "open", "{}", f.id);
    }
    assert_eq!(findings_of(&sink).len(), 3);
    // Touch both (read again, in the same order): still no flip.
    set_mtime(&js, 3_000);
    set_mtime(&py, 4_000);
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out.requests, 2);
    let f = findings_of(&sink);
    assert!(f
        .values()
        .all(|f| f.status.as_str() == "open" && f.resolved_at.is_none()));
    // A later javascript run (another run id, same category, another file):
    // j1 is resolved at its scan time; p1 (other category) stays open.
    let js2 = dir.path().join("codeql-js-2.sarif");
    std::fs::write(
        &js2,
        scan_in(
            "CodeQL",
            "2026-03-09T00:00:00Z",
            Some("/language:javascript/run-2"),
            &[("A", "j2")],
        ),
    )
    .unwrap();
    set_mtime(&js2, 5_000);
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out.requests, 1);
    let vals: Vec<_> = findings_of(&sink)
        .into_values()
        .map(|f| (f.status.as_str().to_string(), f.resolved_at, f.opened_at))
        .collect();
    assert_eq!(vals.len(), 3);
    let remediated: Vec<_> = vals.iter().filter(|v| v.0 == "remediated").collect();
    assert_eq!(remediated.len(), 1);
    assert_eq!(remediated[0].1, Some(t("2026-03-09T00:00:00Z")));
    assert_eq!(remediated[0].2, t("2026-03-01T00:00:00Z"));
    assert_eq!(vals.iter().filter(|v| v.0 == "open").count(), 2);
    // j2 keeps the first javascript scan's time; p1 its own.
    let mut opened: Vec<_> = vals.iter().filter(|v| v.0 == "open").map(|v| v.2).collect();
    opened.sort();
    assert_eq!(
        opened,
        vec![t("2026-03-01T00:00:00Z"), t("2026-03-02T00:00:00Z")]
    );
}

#[tokio::test]
async fn files_without_a_category_never_resolve_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.sarif");
    let b = dir.path().join("sub").join("a.sarif");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(&a, scan("Semgrep", "2026-03-01T00:00:00Z", &[("A", "x")])).unwrap();
    set_mtime(&a, 1_000);
    std::fs::write(&b, scan("Semgrep", "2026-03-02T00:00:00Z", &[("A", "y")])).unwrap();
    set_mtime(&b, 2_000);
    let settings: SarifSettings = serde_json::from_value(json!({
        "name": "sast", "paths": [dir.path().display().to_string()],
        "default_asset": "mono"
    }))
    .unwrap();
    let c = settings.build().unwrap();
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let f = findings_of(&sink);
    assert_eq!(f.len(), 2);
    assert!(f.values().all(|f| f.status.as_str() == "open"));
}

#[tokio::test]
async fn a_cancelled_pass_stops_between_pages_of_one_file_and_reads_it_again_later() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.sarif");
    std::fs::write(
        &f,
        scan(
            "Semgrep",
            "2026-03-01T00:00:00Z",
            &[("A", "1"), ("A", "2"), ("A", "3"), ("A", "4"), ("A", "5")],
        ),
    )
    .unwrap();
    let settings: SarifSettings = serde_json::from_value(json!({
        "name": "sast", "paths": [dir.path().display().to_string()],
        "default_asset": "mono", "page_size": 2
    }))
    .unwrap();
    let c = settings.build().unwrap();
    let mut sink = MemorySink {
        cancel_after: Some(1),
        ..MemorySink::default()
    };
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(out.interrupted);
    assert_eq!((out.pages, sink.records.len()), (1, 2));
    assert_eq!(sink.cursor, None, "the file is not marked read");
    sink.cancel_after = None;
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(!out.interrupted);
    assert_eq!((out.requests, out.pages, sink.records.len()), (1, 3, 5));
    assert!(sink.cursor.is_some());
}

/// (open, remediated) findings among the sink's records.
fn open_and_remediated(sink: &MemorySink) -> (usize, usize) {
    let count = |status: &str| {
        sink.records
            .values()
            .filter(|r| matches!(r, Record::Finding(f) if f.status.as_str() == status))
            .count()
    };
    (count("open"), count("remediated"))
}

#[tokio::test]
async fn scan_states_are_keys_of_their_own_written_with_the_file_that_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    let (a, b) = (web.join("a.sarif"), web.join("b.sarif"));
    std::fs::write(
        &a,
        scan(
            "Semgrep",
            "2026-03-01T00:00:00Z",
            &[("A", "h1"), ("A", "h2")],
        ),
    )
    .unwrap();
    set_mtime(&a, 1_000);
    std::fs::write(&b, scan("Semgrep", "2026-03-01T00:00:00Z", &[("A", "h5")])).unwrap();
    set_mtime(&b, 1_000);
    let settings: SarifSettings = serde_json::from_value(json!({
        "name": "sast", "paths": [dir.path().display().to_string()],
        "default_asset": "web-shop"
    }))
    .unwrap();
    let c = settings.build().unwrap();
    let key_a = "web-shop\u{1f}Semgrep\u{1f}p:web/a.sarif".to_string();
    let key_b = "web-shop\u{1f}Semgrep\u{1f}p:web/b.sarif".to_string();

    // First pass: one key per scan, the first write resets what was there;
    // the cursor holds files only.
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        sink.state.keys().cloned().collect::<Vec<_>>(),
        vec![key_a.clone(), key_b.clone()]
    );
    assert_eq!(sink.state_changes.len(), 2, "one write per file");
    assert!(sink.state_changes[0].reset);
    assert!(!sink.state_changes[1].reset);
    let cursor: serde_json::Value = serde_json::from_str(sink.cursor.as_ref().unwrap()).unwrap();
    assert!(cursor.get("scans").is_none(), "{cursor}");
    assert_eq!(cursor["files"].as_object().unwrap().len(), 2);

    // The next scan of a: its own key only is written, h1 is resolved.
    std::fs::write(&a, scan("Semgrep", "2026-03-08T00:00:00Z", &[("A", "h2")])).unwrap();
    set_mtime(&a, 2_000);
    c.sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let last = sink.state_changes.last().unwrap();
    assert!(!last.reset);
    assert_eq!(
        last.writes
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>(),
        vec![key_a.clone()]
    );
    assert_eq!(open_and_remediated(&sink), (2, 1), "h1 resolved");

    // A cursor of the version that kept scans in it moves them to keys of
    // their own (one write, with the cursor), and they work: the next scan
    // of b resolves h5.
    let mut legacy = cursor.clone();
    legacy["files"] = serde_json::from_str::<serde_json::Value>(sink.cursor.as_ref().unwrap())
        .unwrap()["files"]
        .clone();
    legacy["scans"] = sink
        .state
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::from_str(v).unwrap()))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let held = sink.state.clone();
    let mut old = MemorySink {
        records: sink.records.clone(),
        ..MemorySink::default()
    };
    let out = c
        .sync(Some(legacy.to_string()), SyncMode::Incremental, &mut old)
        .await
        .unwrap();
    assert_eq!(out.requests, 0, "no file changed");
    assert_eq!(old.state, held);
    assert_eq!(old.state_changes.len(), 1);
    let moved: serde_json::Value = serde_json::from_str(old.cursor.as_ref().unwrap()).unwrap();
    assert!(moved.get("scans").is_none(), "{moved}");
    std::fs::write(&b, scan("Semgrep", "2026-03-09T00:00:00Z", &[])).unwrap();
    set_mtime(&b, 3_000);
    c.sync(old.cursor.clone(), SyncMode::Incremental, &mut old)
        .await
        .unwrap();
    assert_eq!(open_and_remediated(&old), (1, 2), "h5 resolved");

    // A full pass ignores the stored states and replaces them whole: a scan
    // whose file is gone leaves no key, and nothing is resolved.
    old.state.insert(
        "web-shop\u{1f}Semgrep\u{1f}p:web/gone.sarif".into(),
        old.state[&key_a].clone(),
    );
    let before = old.state_changes.len();
    c.sync(old.cursor.clone(), SyncMode::Full, &mut old)
        .await
        .unwrap();
    assert!(old.state_changes[before].reset);
    assert_eq!(
        old.state.keys().cloned().collect::<Vec<_>>(),
        vec![key_a, key_b]
    );
    assert_eq!(open_and_remediated(&old), (1, 2));
}
