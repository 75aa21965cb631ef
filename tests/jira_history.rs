//! Jira's changelog reaches the store's history stamped with the time Jira
//! recorded each change, not the time secmetrics synced: a downgrade made
//! in March shows in March's pack even when first synced in December, a
//! second sync writes no entry twice, and a later resolution is history at
//! its Jira time only (no second entry at the sync time).

use crate::common::loopback::Loopback;
use crate::common::*;
use std::path::Path;

/// A Jira Cloud on loopback answering `/search/jql` with `page`, `/myself`
/// with UTC, and anything else with Jira's 404.
fn tiny_jira(page: &str) -> Loopback {
    let jira = Loopback::start();
    jira.route("/", 404, r#"{"errorMessages":["no"],"errors":{}}"#);
    jira.route("/rest/api/3/search/jql", 200, page);
    jira.route(
        "/rest/api/3/myself",
        200,
        r#"{"accountId":"1","timeZone":"UTC"}"#,
    );
    jira
}

fn issue_page(resolved: bool) -> String {
    let mut histories = vec![serde_json::json!({
        "id": "1", "created": "2026-03-05T10:00:00.000+0000",
        "items": [{"field": "priority", "fieldId": "priority", "fromString": "Highest", "toString": "Medium"}]
    })];
    let mut fields = serde_json::json!({
        "summary": "SQL injection in search", "created": "2026-02-01T09:00:00.000+0000",
        "updated": "2026-03-05T10:00:00.000+0000", "priority": {"name": "Medium"},
        "resolution": null, "resolutiondate": null, "labels": [], "components": [],
        "status": {"name": "To Do", "statusCategory": {"key": "new"}}, "issuelinks": []
    });
    if resolved {
        histories.push(serde_json::json!({
            "id": "2", "created": "2026-04-01T08:00:00.000+0000",
            "items": [{"field": "resolution", "fieldId": "resolution", "fromString": null, "toString": "Done"},
                      {"field": "status", "fieldId": "status", "fromString": "To Do", "toString": "Done"}]
        }));
        fields["resolution"] = serde_json::json!({"name": "Done"});
        fields["resolutiondate"] = serde_json::json!("2026-04-01T08:00:00.000+0000");
        fields["updated"] = serde_json::json!("2026-04-01T08:00:00.000+0000");
        fields["status"] = serde_json::json!({"name": "Done", "statusCategory": {"key": "done"}});
    }
    serde_json::json!({"isLast": true, "issues": [{
        "id": "10001", "key": "SEC-1", "fields": fields,
        "changelog": {"startAt": 0, "maxResults": 100, "total": histories.len(), "histories": histories}
    }]})
    .to_string()
}

fn sync(store: &Path, config: &Path) {
    let o = bin()
        .arg("--data-dir")
        .arg(store)
        .arg("--config")
        .arg(config)
        .arg("sync")
        .env("JIRA_TOKEN", "jira-api-token-never-stored")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn downgrades(store: &Path, period: &str) -> serde_json::Value {
    let o = run(store, &["report", "--period", period, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["severity_downgrades"].clone()
}

#[test]
fn changelog_history_is_stamped_with_jiras_times_and_written_once() {
    let jira = tiny_jira(&issue_page(false));
    let base = &jira.base;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("secmetrics.toml");
    std::fs::write(
        &config,
        format!(
            "[[connectors]]\nkind = \"jira\"\nname = \"jira\"\nbase_url = \"{base}\"\napi = \"cloud\"\n\
             email = \"svc@example.com\"\ntoken_env = \"JIRA_TOKEN\"\nrate = 100.0\n\
             [[connectors.mappings]]\nrecord = \"finding\"\njql = \"project = SEC\"\nasset = \"payments-api\"\n"
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    sync(&store, &config);
    // The downgrade happened (in Jira) in March 2026.
    assert_eq!(
        downgrades(&store, "2026-03"),
        serde_json::json!({"count": 1, "ids": ["SEC-1"]})
    );
    let now = chrono::Utc::now().format("%Y-%m").to_string();
    assert_eq!(downgrades(&store, &now)["count"], 0);
    assert_eq!(status(&store)["history_entries"], 1);
    // Read again: nothing is written twice.
    sync(&store, &config);
    assert_eq!(status(&store)["history_entries"], 1);
    // Resolved in Jira on April 1st: status and validity history at that
    // time, and no observed entries for the same change at the sync time.
    jira.route("/rest/api/3/search/jql", 200, &issue_page(true));
    sync(&store, &config);
    assert_eq!(status(&store)["history_entries"], 3);
    sync(&store, &config);
    assert_eq!(status(&store)["history_entries"], 3);
    let o = run(&store, &["export", "--kind", "finding"]);
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(f["status"], "remediated");
    assert_eq!(f["resolved_at"], "2026-04-01T08:00:00Z");
    assert_eq!(f["severity"], "medium");
    // The token never reaches the store.
    for entry in walkdir(&store) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!bytes
            .windows(27)
            .any(|w| w == b"jira-api-token-never-stored"));
    }
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}
