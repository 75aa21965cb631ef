//! One weakness seen by several real connectors counts once: a GitHub code
//! scanning alert, the Jira ticket whose description links to it, and the
//! same CodeQL result read from its SARIF file, each synced from a server
//! (or folder) of its own, reconciled before the KPIs.

use crate::common::loopback::Loopback;
use crate::common::*;
use serde_json::{json, Value};
use std::path::Path;

const ALERT_URL: &str = "https://github.com/acme/web/security/code-scanning/7";

/// The code scanning alert, fixed on 2026-10-20 or still open.
fn alert(fixed: bool) -> Value {
    json!([{
        "number": 7, "created_at": "2026-09-01T00:00:00Z", "updated_at": "2026-10-20T00:00:00Z",
        "url": "https://api.github.com/repos/acme/web/code-scanning/alerts/7", "html_url": ALERT_URL,
        "state": if fixed { "fixed" } else { "open" },
        "fixed_at": if fixed { json!("2026-10-20T00:00:00Z") } else { Value::Null },
        "dismissed_by": null, "dismissed_at": null, "dismissed_reason": null,
        "rule": {"id": "js/sql-injection", "severity": "error", "security_severity_level": "high",
                 "description": "Database query built from user-controlled sources"},
        "tool": {"name": "CodeQL", "version": "2.22.4"},
        "most_recent_instance": {"ref": "refs/heads/main", "category": "/language:javascript",
            "location": {"path": "src/db.js", "start_line": 10, "end_line": 10}, "classifications": []},
        "repository": {"id": 1, "name": "web", "full_name": "acme/web"}
    }])
}

/// The Jira ticket tracking the alert, resolved `resolution` on 2026-10-15.
fn ticket(resolution: &str) -> Value {
    json!({"isLast": true, "issues": [{
        "id": "10001", "key": "SEC-1",
        "fields": {
            "summary": "SQL injection in search", "created": "2026-09-10T00:00:00.000+0000",
            "updated": "2026-10-15T00:00:00.000+0000", "priority": {"name": "High"},
            "resolution": {"name": resolution}, "resolutiondate": "2026-10-15T00:00:00.000+0000",
            "status": {"name": "Done", "statusCategory": {"key": "done"}},
            "labels": [], "components": [], "issuelinks": [],
            "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": format!("Tracks {ALERT_URL} found by CodeQL.")}]}]}
        },
        "changelog": {"startAt": 0, "maxResults": 100, "total": 0, "histories": []}
    }]})
}

/// The same CodeQL result as its SARIF upload holds it.
fn sarif() -> String {
    json!({"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "CodeQL", "rules": [{"id": "js/sql-injection",
            "properties": {"security-severity": "8.8"}}]}},
        "invocations": [{"endTimeUtc": "2026-09-02T00:00:00Z"}],
        "results": [{"ruleId": "js/sql-injection", "message": {"text": "m"},
            "partialFingerprints": {"primaryLocationLineHash": "abc:1"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/db.js"},
                "region": {"startLine": 10}}}]}]}]})
    .to_string()
}

struct Setup {
    _dir: tempfile::TempDir,
    store: std::path::PathBuf,
    config: std::path::PathBuf,
}

fn setup(gh: &Loopback, jira: Option<&Loopback>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let scans = dir.path().join("scans");
    std::fs::create_dir_all(&scans).unwrap();
    std::fs::write(scans.join("codeql.sarif"), sarif()).unwrap();
    let mut config = format!(
        "[[connectors]]\nkind = \"github_code_scanning\"\nname = \"codeql\"\norg = \"acme\"\n\
         base_url = \"{}\"\ntoken = \"ghp_TestToken\"\nrate = 100.0\n\
         [connectors.assets]\n\"acme/web\" = \"web-shop\"\n\
         [[connectors]]\nkind = \"sarif\"\nname = \"sast\"\npaths = [\"{}\"]\ndefault_asset = \"web-shop\"\n",
        gh.base,
        scans.display()
    );
    if let Some(j) = jira {
        config.push_str(&format!(
            "[[connectors]]\nkind = \"jira\"\nname = \"jira\"\nbase_url = \"{}\"\napi = \"cloud\"\n\
             email = \"svc@example.com\"\ntoken = \"jira-token\"\nrate = 100.0\n\
             [[connectors.mappings]]\nrecord = \"finding\"\njql = \"project = SEC\"\nasset = \"web-shop\"\n",
            j.base
        ));
    }
    let config_path = dir.path().join("secmetrics.toml");
    std::fs::write(&config_path, config).unwrap();
    Setup {
        store: dir.path().join("store"),
        config: config_path,
        _dir: dir,
    }
}

fn sync_and_report(s: &Setup) -> Value {
    let o = bin()
        .arg("--data-dir")
        .arg(&s.store)
        .arg("--config")
        .arg(&s.config)
        .arg("sync")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    report(&s.store, &s.config)
}

fn report(store: &Path, config: &Path) -> Value {
    let o = bin()
        .arg("--data-dir")
        .arg(store)
        .arg("--config")
        .arg(config)
        .args(["report", "--period", "2026-10", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn jira_server(resolution: &str) -> Loopback {
    let j = Loopback::start();
    j.route(
        "/rest/api/3/search/jql",
        200,
        &ticket(resolution).to_string(),
    );
    j.route(
        "/rest/api/3/myself",
        200,
        r#"{"accountId":"1","timeZone":"UTC"}"#,
    );
    j
}

fn mttr_high(pack: &Value) -> (u64, Option<f64>) {
    let cell = &pack["kpis"]["mttr"]["by_severity"]["high"]["production"];
    (cell["count"].as_u64().unwrap(), cell["mean_days"].as_f64())
}

#[test]
fn the_same_codeql_result_through_code_scanning_and_sarif_counts_once() {
    let gh = Loopback::start();
    gh.route(
        "/orgs/acme/code-scanning/alerts",
        200,
        &alert(false).to_string(),
    );
    let s = setup(&gh, None);
    let pack = sync_and_report(&s);
    assert_eq!(gh.seen().len(), 1, "{:?}", gh.seen());
    let aging = &pack["kpis"]["findings_aging"];
    // Two records, one weakness: one open finding, the other a duplicate.
    assert_eq!(aging["total"], json!({"0_30": 0, "31_90": 1, "over_90": 0}));
    assert_eq!(aging["by_severity"]["high"]["31_90"], 1);
    assert_eq!(aging["excluded"]["duplicate"], 1);
}

#[test]
fn a_ticket_resolved_duplicate_makes_the_pair_count_zero_times() {
    let gh = Loopback::start();
    gh.route(
        "/orgs/acme/code-scanning/alerts",
        200,
        &alert(true).to_string(),
    );
    let jira = jira_server("Duplicate");
    let s = setup(&gh, Some(&jira));
    let pack = sync_and_report(&s);
    assert_eq!(mttr_high(&pack), (0, None));
    assert_eq!(pack["kpis"]["sla_attainment"]["closed"], 0);
    // The decision travelled to every member: all three excluded, two of
    // them resolved in October.
    assert_eq!(pack["kpis"]["mttr"]["excluded"]["duplicate"], 2);
    assert_eq!(pack["kpis"]["findings_aging"]["total"]["31_90"], 0);
}

#[test]
fn a_ticket_resolved_done_counts_once_with_the_earliest_open_and_the_first_fix() {
    let gh = Loopback::start();
    gh.route(
        "/orgs/acme/code-scanning/alerts",
        200,
        &alert(true).to_string(),
    );
    let jira = jira_server("Done");
    let s = setup(&gh, Some(&jira));
    let pack = sync_and_report(&s);
    // Opened 2026-09-01 (the alert), fixed 2026-10-15 (the ticket, before
    // the alert's 10-20): 44 days, once.
    assert_eq!(mttr_high(&pack), (1, Some(44.0)));
    let sla = &pack["kpis"]["sla_attainment"]["by_severity"]["high"];
    assert_eq!(
        (sla["closed"].as_u64(), sla["within_sla"].as_u64()),
        (Some(1), Some(0))
    );
    // The alert (fixed 10-20) is the duplicate left out; the SARIF result
    // is still open in its file: named in warnings.
    assert_eq!(pack["kpis"]["mttr"]["excluded"]["duplicate"], 1);
    let warnings = pack["warnings"].to_string();
    assert!(warnings.contains("still open"), "{warnings}");
}
