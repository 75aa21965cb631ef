//! Conformance of the `jira` and `pagerduty` connectors on the real payloads
//! in `$SECMETRICS_FIXTURES/jira` and `/pagerduty`, served by the loopback
//! fakes exactly as recorded. Without the variable these tests print that
//! they were skipped, and why, and pass. Every file in those folders has a
//! case here: a new file fails the suite until it gets one.
//!
//! Expected values are computed here from the files parsed as plain
//! `serde_json::Value`s, with the contract's tables written out.

use crate::support::fake_jira::*;
use crate::support::fake_pagerduty::*;
use crate::support::*;
use chrono::{DateTime, Utc};
use secmetrics_connectors::jira::issue::History;
use secmetrics_connectors::jira::JiraSettings;
use secmetrics_connectors::pagerduty::PagerdutySettings;
use secmetrics_connectors::{Connector, Record, SyncMode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::PathBuf;

fn fixtures(test: &str) -> Option<PathBuf> {
    match std::env::var_os("SECMETRICS_FIXTURES") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            println!("{test}: skipped: SECMETRICS_FIXTURES is not set (CI sets it to ../shared/fixtures)");
            None
        }
    }
}

fn load(p: PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Jira's `+0000` times, read independently of the connector.
fn jira_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .to_utc()
}

/// The issue's default priority table.
fn severity_of(priority: &str) -> Option<&'static str> {
    Some(match priority.to_lowercase().as_str() {
        "highest" | "blocker" | "critical" => "critical",
        "high" | "major" => "high",
        "medium" => "medium",
        "low" | "minor" => "low",
        "lowest" | "trivial" => "info",
        _ => return None,
    })
}

/// The issue's default resolution table.
fn meaning(resolution: Option<&str>) -> Option<(&'static str, &'static str)> {
    Some(match resolution.map(str::to_lowercase).as_deref() {
        None => ("open", "unverified"),
        Some("done" | "fixed") => ("remediated", "valid"),
        Some("duplicate") => ("closed", "duplicate"),
        Some("cannot reproduce" | "invalid" | "not a problem" | "incomplete") => {
            ("closed", "invalid")
        }
        Some("won't do" | "won't fix" | "later") => ("risk_accepted", "valid"),
        Some(_) => return None,
    })
}

fn jira(j: &FakeJira, api: &str) -> secmetrics_connectors::jira::JiraConnector {
    let s: JiraSettings = serde_json::from_value(json!({
        "name": "jira", "base_url": j.base, "api": api, "rate": 1000.0, "burst": 100,
        "mappings": [{"record": "finding", "jql": "project = SEC", "asset": "fixture"}]
    }))
    .unwrap();
    s.build(Some(SecretString::from("t"))).unwrap()
}

/// What the contract says one issue becomes: None when a mapped field is
/// missing or unreadable.
fn expected_finding(issue: &Value) -> Option<Value> {
    let f = &issue["fields"];
    let created = f["created"].as_str()?;
    let severity = severity_of(f["priority"]["name"].as_str()?)?;
    let resolution = f["resolution"]["name"].as_str();
    let (status, validity) = meaning(resolution)?;
    let resolved_at = if status == "open" {
        Value::Null
    } else if let Some(d) = f["resolutiondate"].as_str() {
        json!(jira_time(d).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    } else {
        // No resolutiondate and no changelog: `updated`.
        json!(jira_time(f["updated"].as_str()?).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    };
    Some(json!({
        "id": issue["key"], "severity": severity, "status": status, "validity": validity,
        "opened_at": jira_time(created).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "resolved_at": resolved_at, "title": f["summary"]
    }))
}

fn got_finding(r: &Record) -> Value {
    let v = r.to_json();
    json!({
        "id": v["id"], "severity": v["severity"], "status": v["status"], "validity": v["validity"],
        "opened_at": v["opened_at"], "resolved_at": v.get("resolved_at").cloned().unwrap_or(Value::Null),
        "title": v["title"]
    })
}

/// Serve `pages` as the search answers and check every issue against the
/// contract: records for readable issues, one unreadable count for each
/// other.
async fn search_case(name: &str, api: &str, pages: Vec<Value>) -> MemorySink {
    let j = FakeJira::start(api == "cloud").await;
    j.with(|s| s.raw_pages = pages.clone().into());
    let c = jira(&j, api);
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let issues: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["issues"].as_array().unwrap())
        .collect();
    let want: Vec<Value> = issues.iter().filter_map(|i| expected_finding(i)).collect();
    let got: Vec<Value> = sink.all().into_iter().map(got_finding).collect();
    assert_eq!(got, want, "{name}: findings");
    assert_eq!(
        out.unreadable as usize,
        issues.len() - want.len(),
        "{name}: unreadable issues"
    );
    // One search per page, in order.
    let searches: Vec<ApiSeen> = j
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/search"))
        .collect();
    assert_eq!(searches.len(), pages.len(), "{name}: requests");
    if api == "cloud" {
        for (i, s) in searches.iter().enumerate().skip(1) {
            assert_eq!(
                s.param("nextPageToken"),
                pages[i - 1]["nextPageToken"].as_str(),
                "{name}: token of page {}",
                i + 1
            );
        }
    }
    println!(
        "{name}: {} issues, {} findings, {} unreadable",
        issues.len(),
        want.len(),
        out.unreadable
    );
    sink
}

#[tokio::test]
async fn every_jira_payload_is_read_as_the_contract_says() {
    let Some(dir) = fixtures("jira conformance") else {
        return;
    };
    let dir = dir.join("jira");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let f = |n: &str| load(dir.join(n));
    for name in &names {
        match name.as_str() {
            "search-jql-response.json" => {
                search_case(name, "cloud", vec![f(name)]).await;
            }
            "search-jql-page1-of-2.json" => {
                search_case(
                    "search-jql-page1-of-2.json + page2",
                    "cloud",
                    vec![f(name), f("search-jql-page2-of-2.json")],
                )
                .await;
            }
            "search-jql-page2-of-2.json" => {} // with page 1
            "search-v2-response.json" | "search-v3-legacy-response.json" => {
                search_case(name, "data_center", vec![f(name)]).await;
            }
            "issue-with-changelog.json" => {
                let issue = f(name);
                let sink = search_case(
                    name,
                    "cloud",
                    vec![json!({"isLast": true, "issues": [issue.clone()]})],
                )
                .await;
                // History: priority and resolution items at Jira's times.
                let mut want = Vec::new();
                let mut histories: Vec<&Value> = issue["changelog"]["histories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .collect();
                histories.sort_by_key(|h| jira_time(h["created"].as_str().unwrap()));
                for h in histories {
                    let at = jira_time(h["created"].as_str().unwrap());
                    for i in h["items"].as_array().unwrap() {
                        let (from, to) = (i["fromString"].as_str(), i["toString"].as_str());
                        match i["field"].as_str() {
                            Some("priority") => {
                                let (a, b) = (
                                    severity_of(from.unwrap()).unwrap(),
                                    severity_of(to.unwrap()).unwrap(),
                                );
                                if a != b {
                                    want.push(("severity", a.to_string(), b.to_string(), at));
                                }
                            }
                            Some("resolution") => {
                                let (a, b) = (meaning(from).unwrap(), meaning(to).unwrap());
                                if a.0 != b.0 {
                                    want.push(("status", a.0.into(), b.0.into(), at));
                                }
                                if a.1 != b.1 {
                                    want.push(("validity", a.1.into(), b.1.into(), at));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                let got: Vec<(&str, String, String, DateTime<Utc>)> = sink.history[0]
                    .changes
                    .iter()
                    .map(|c| (c.field.as_str(), c.old.clone(), c.new.clone(), c.at))
                    .collect();
                assert_eq!(got, want, "{name}: history");
                assert_eq!(
                    want.len(),
                    4,
                    "{name}: two priority changes and a resolution"
                );
            }
            "changelog-page.json" => {
                let page = f(name);
                let total = page["total"].as_u64().unwrap();
                let embedded = json!({"startAt": 0, "maxResults": 1, "total": total, "histories": [page["values"][0].clone()]});
                let issue = json!({"key": "TT-1", "fields": {
                    "created": "2026-01-01T00:00:00.000+0000", "updated": "2026-01-02T00:00:00.000+0000",
                    "priority": {"name": "High"}, "resolution": null, "status": {"name": "Open"}},
                    "changelog": embedded});
                let j = FakeJira::start(true).await;
                j.with(|s| {
                    s.raw_pages = VecDeque::from([json!({"isLast": true, "issues": [issue]})]);
                    s.raw_changelog
                        .insert("TT-1".into(), VecDeque::from([page.clone()]));
                });
                let c = jira(&j, "cloud");
                let mut sink = MemorySink::default();
                c.sync(None, SyncMode::Incremental, &mut sink)
                    .await
                    .unwrap();
                let pages: Vec<ApiSeen> = j
                    .seen()
                    .into_iter()
                    .filter(|s| s.path.ends_with("/changelog"))
                    .collect();
                let next = page["startAt"].as_u64().unwrap()
                    + page["values"].as_array().unwrap().len() as u64;
                let starts: Vec<Option<&str>> = pages.iter().map(|s| s.param("startAt")).collect();
                // The recorded page says isLast: false; the next is asked after it.
                assert_eq!(
                    starts,
                    [Some("0"), Some(next.to_string().as_str())],
                    "{name}"
                );
                assert_eq!(sink.count("finding"), 1, "{name}");
                assert!(
                    sink.history[0].changes.is_empty(),
                    "{name}: label changes are no history"
                );
            }
            "changelog-bulkfetch-response.json" => {
                let v = f(name);
                for log in v["issueChangeLogs"].as_array().unwrap() {
                    for h in log["changeHistories"].as_array().unwrap() {
                        let parsed: History = serde_json::from_value(h.clone()).unwrap();
                        let secs = h["created"].as_i64().unwrap();
                        assert_eq!(parsed.at().map(|t| t.timestamp()), Some(secs), "{name}");
                        assert_eq!(parsed.items.len(), h["items"].as_array().unwrap().len());
                    }
                }
            }
            "resolutions-apache-jira-dc.json" => {
                let list = f(name);
                let issues: Vec<Value> = list
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .map(|(i, r)| json!({"key": format!("SEC-{}", i + 1), "fields": {
                        "summary": r["description"], "created": "2026-01-01T00:00:00.000+0000",
                        "updated": "2026-01-03T00:00:00.000+0000", "resolutiondate": "2026-01-02T00:00:00.000+0000",
                        "priority": {"name": "Major"}, "resolution": {"id": r["id"], "name": r["name"]},
                        "status": {"name": "Closed", "statusCategory": {"key": "done"}}}}))
                    .collect();
                let n = issues.len();
                let sink = search_case(
                    name,
                    "data_center",
                    vec![json!({"startAt": 0, "maxResults": 1000, "total": n, "issues": issues})],
                )
                .await;
                for name_ in [
                    "Fixed",
                    "Won't Fix",
                    "Duplicate",
                    "Invalid",
                    "Incomplete",
                    "Cannot Reproduce",
                    "Later",
                    "Not A Problem",
                ] {
                    assert!(
                        sink.all().iter().any(|r| r
                            .extra()
                            .0
                            .get("jira_resolution")
                            .and_then(Value::as_str)
                            == Some(name_)),
                        "{name}: {name_} maps by default"
                    );
                }
            }
            other => panic!("no conformance case for jira/{other}: add one"),
        }
    }
}

#[tokio::test]
async fn every_pagerduty_payload_is_read_as_the_contract_says() {
    let Some(dir) = fixtures("pagerduty conformance") else {
        return;
    };
    let dir = dir.join("pagerduty");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "incident-log-entries.json",
            "incident.json",
            "incidents.json"
        ],
        "a new PagerDuty fixture needs a case here"
    );
    let logs = load(dir.join("incident-log-entries.json"));
    let list = load(dir.join("incidents.json"));
    let single = load(dir.join("incident.json"));
    let time = |v: &Value| -> Option<DateTime<Utc>> {
        v.as_str()
            .map(|s| DateTime::parse_from_rfc3339(s).unwrap().to_utc())
    };
    // The list page as recorded (limit 1, more: true), then the incident
    // of `incident.json` on the next page.
    let mut second = single["incident"].clone();
    second["id"] = json!("PSINGLE");
    let pd = FakePagerduty::start().await;
    pd.with(|s| {
        s.raw_pages = VecDeque::from([
            list.clone(),
            json!({"incidents": [second.clone()], "limit": 100, "offset": 1, "more": false}),
        ]);
        for id in ["PT4KHLK", "PSINGLE"] {
            s.log_entries
                .insert(id.into(), logs["log_entries"].as_array().unwrap().clone());
        }
    });
    let s: PagerdutySettings = serde_json::from_value(json!({
        "name": "pagerduty", "base_url": pd.base, "rate": 1000.0, "burst": 100, "lookback_days": 30
    }))
    .unwrap();
    let c = s.build(Some(SecretString::from("k"))).unwrap();
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let incidents: Vec<&Value> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&second])
        .collect();
    assert_eq!(sink.count("incident"), incidents.len());
    let log_ack = logs["log_entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "acknowledge_log_entry")
        .filter_map(|e| time(&e["created_at"]))
        .min();
    for raw in incidents {
        let id = raw["id"].as_str().unwrap();
        let Record::Incident(got) = &sink.records[&("incident".to_string(), id.to_string())] else {
            panic!()
        };
        let acks = raw["acknowledgements"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| time(&a["at"]))
            .min();
        let triaged = match (log_ack, acks) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let resolved = raw["status"] == "resolved";
        let severity = match raw["priority"]["summary"].as_str() {
            Some("P1") => Some("critical"),
            Some("P2") => Some("high"),
            Some("P3") => Some("medium"),
            Some("P4") => Some("low"),
            Some("P5") => Some("info"),
            _ => None,
        };
        assert_eq!(got.alerted_at, time(&raw["created_at"]).unwrap(), "{id}");
        assert_eq!(got.triaged_at, triaged, "{id}");
        assert_eq!(
            got.contained_at,
            if resolved {
                time(&raw["resolved_at"])
            } else {
                None
            },
            "{id}"
        );
        assert_eq!(got.severity.map(|s| s.as_str()), severity, "{id}");
        assert_eq!(
            got.asset.as_deref(),
            raw["service"]["summary"].as_str(),
            "{id}"
        );
        assert_eq!(got.validated, None, "{id}: no rule configured");
        println!(
            "pagerduty {id}: {:?}",
            Record::Incident(got.clone()).to_json()
        );
    }
    // The recorded page said `more`: the next offset was asked.
    let offsets: Vec<Option<String>> = pd
        .list_requests()
        .iter()
        .map(|s| s.param("offset").map(String::from))
        .collect();
    assert_eq!(offsets[..2], [Some("0".into()), Some("1".into())]);
}
