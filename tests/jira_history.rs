//! Jira's changelog reaches the store's history stamped with the time Jira
//! recorded each change, not the time secmetrics synced: a downgrade made
//! in March shows in March's pack even when first synced in December, a
//! second sync writes no entry twice, and a later resolution is history at
//! its Jira time only (no second entry at the sync time).

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A Jira Cloud on loopback (std only) answering `/search/jql` with the
/// page held in `page` and `/myself` with UTC.
fn tiny_jira(page: Arc<Mutex<String>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let target = request_line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if target.starts_with("/rest/api/3/search/jql") {
                ("200 OK", page.lock().unwrap().clone())
            } else if target.starts_with("/rest/api/3/myself") {
                (
                    "200 OK",
                    r#"{"accountId":"1","timeZone":"UTC"}"#.to_string(),
                )
            } else {
                (
                    "404 Not Found",
                    r#"{"errorMessages":["no"],"errors":{}}"#.to_string(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
            let mut rest = Vec::new();
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(10)));
            let _ = stream.read_to_end(&mut rest);
        }
    });
    base
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
    let page = Arc::new(Mutex::new(issue_page(false)));
    let base = tiny_jira(page.clone());
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
    *page.lock().unwrap() = issue_page(true);
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
