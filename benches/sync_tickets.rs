//! End-to-end sync benchmark of the ticket and incident connectors
//! (`cargo bench --bench sync_tickets`): Jira Cloud issues (each with an
//! embedded changelog of two histories) and PagerDuty incidents (each
//! resolved, so its log entries are read) from local servers into a sled
//! store through `sync_one`: a first pass into an empty store, a `--full`
//! pass, and an incremental pass with nothing changed. Two sizes each, to
//! show memory stays flat with size. Prints requests, records written,
//! history entries, wall time and peak RSS (reset before each pass).

use secmetrics::store::Store;
use secmetrics::sync::sync_one;
use secmetrics_connectors::{Committed, ConnectorSettings, Page, PageSink, SinkError, SyncMode};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Instant;

mod common;

use common::{peak_rss_mib, reset_peak_rss};

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Issues are updated one second apart from here.
const JIRA_EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn jira_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

fn jira_issue(i: usize) -> String {
    let updated = JIRA_EPOCH + i as i64;
    let created = updated - 86_400 * 30;
    let priority = ["Highest", "High", "Medium", "Low", "Lowest"][i % 5];
    let resolved = i % 3 == 0;
    let (resolution, resolutiondate, status) = if resolved {
        (
            r#"{"id":"10000","name":"Done"}"#.to_string(),
            format!("\"{}\"", jira_time(updated)),
            r#"{"name":"Done","statusCategory":{"key":"done"}}"#,
        )
    } else {
        (
            "null".into(),
            "null".into(),
            r#"{"name":"To Do","statusCategory":{"key":"new"}}"#,
        )
    };
    format!(
        r#"{{"id":"{id}","key":"SEC-{id}","self":"https://x/rest/api/3/issue/{id}","fields":{{"summary":"Finding {id} in component","created":"{created}","updated":"{updated_t}","priority":{{"name":"{priority}"}},"labels":["env-prod","security"],"components":[{{"name":"svc-{svc}"}}],"resolution":{resolution},"resolutiondate":{resolutiondate},"status":{status},"issuetype":{{"name":"Vulnerability"}},"issuelinks":[],"description":{{"type":"doc","version":1,"content":[{{"type":"paragraph","content":[{{"type":"text","text":"See https://github.com/acme/svc-{svc}/security/code-scanning/{id} for the alert."}}]}}]}}}},"changelog":{{"startAt":0,"maxResults":2,"total":2,"histories":[{{"id":"{id}1","created":"{h1}","items":[{{"field":"priority","fieldId":"priority","fromString":"Medium","toString":"{priority}"}}]}},{{"id":"{id}2","created":"{h2}","items":[{{"field":"status","fieldId":"status","fromString":"To Do","toString":"In Progress"}}]}}]}}}}"#,
        id = i + 1,
        created = jira_time(created),
        updated_t = jira_time(updated),
        svc = i % 200,
        h1 = jira_time(created + 3600),
        h2 = jira_time(created + 7200),
    )
}

/// PagerDuty incidents are created `PD_STEP` seconds apart from
/// `pd_epoch` (about 155 days in all for 20,000: one 180-day window, so the
/// 10,000-offset ceiling is met and split).
const PD_STEP: i64 = 670;

fn pd_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn pd_incident(epoch: i64, i: usize) -> String {
    let created = epoch + i as i64 * PD_STEP;
    format!(
        r#"{{"id":"P{i:06}","type":"incident","summary":"[#{n}] Suspicious login","self":"https://api.pagerduty.com/incidents/P{i:06}","html_url":"https://acme.pagerduty.com/incidents/P{i:06}","incident_number":{n},"title":"Suspicious login","created_at":"{c}","updated_at":"{r}","status":"resolved","incident_key":"k{i}","service":{{"id":"PSVC{s}","type":"service_reference","summary":"service-{s}"}},"assignments":[],"last_status_change_at":"{r}","resolved_at":"{r}","acknowledgements":[],"priority":{{"id":"PP","type":"priority_reference","summary":"P{p}"}},"urgency":"high","teams":[],"escalation_policy":{{"id":"PEP1","type":"escalation_policy_reference"}}}}"#,
        n = i + 1,
        c = pd_time(created),
        r = pd_time(created + 1800),
        s = i % 50,
        p = 1 + i % 5,
    )
}

fn pd_log_entries(epoch: i64, i: usize) -> String {
    let created = epoch + i as i64 * PD_STEP;
    format!(
        r#"{{"log_entries":[{{"id":"Q1{i}","type":"resolve_log_entry","created_at":"{r}","agent":{{"type":"user_reference"}}}},{{"id":"Q2{i}","type":"acknowledge_log_entry","created_at":"{a}","agent":{{"type":"user_reference"}}}},{{"id":"Q3{i}","type":"trigger_log_entry","created_at":"{c}","agent":{{"type":"service_reference"}}}}],"limit":100,"offset":0,"more":false,"total":null}}"#,
        c = pd_time(created),
        a = pd_time(created + 300),
        r = pd_time(created + 1800),
    )
}

/// A keep-alive HTTP/1.1 server on loopback answering Jira and PagerDuty.
fn serve(total: usize, pd_epoch: i64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    let params: Vec<(String, String)> = query
                        .split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (decode(k), decode(v)))
                        .collect();
                    let param =
                        |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
                    let body = if path == "/rest/api/3/myself" {
                        r#"{"accountId":"1","timeZone":"UTC"}"#.to_string()
                    } else if path == "/rest/api/3/search/jql" {
                        let jql = param("jql").unwrap_or("");
                        // updated >= "YYYY-MM-DD HH:MM" (UTC): the first issue at or after.
                        let first = jql
                            .find("updated >= \"")
                            .and_then(|i| {
                                chrono::NaiveDateTime::parse_from_str(
                                    &jql[i + 12..i + 28],
                                    "%Y-%m-%d %H:%M",
                                )
                                .ok()
                            })
                            .map(|t| {
                                (t.and_utc().timestamp() - JIRA_EPOCH).clamp(0, total as i64)
                                    as usize
                            })
                            .unwrap_or(0);
                        let offset: usize = param("nextPageToken")
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(first);
                        let max: usize = param("maxResults")
                            .and_then(|m| m.parse().ok())
                            .unwrap_or(50);
                        let end = (offset + max).min(total);
                        let mut b = String::from("{\"issues\":[");
                        for i in offset..end {
                            if i > offset {
                                b.push(',');
                            }
                            b.push_str(&jira_issue(i));
                        }
                        b.push_str("],");
                        if end < total {
                            b.push_str(&format!("\"nextPageToken\":\"{end}\",\"isLast\":false}}"));
                        } else {
                            b.push_str("\"isLast\":true}");
                        }
                        b
                    } else if path == "/incidents" {
                        let t = |k: &str| {
                            param(k)
                                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                                .map(|d| d.timestamp())
                                .unwrap_or(0)
                        };
                        let idx = |secs: i64| {
                            ((secs - pd_epoch + PD_STEP - 1).max(0) / PD_STEP).min(total as i64)
                                as usize
                        };
                        let (lo, hi) = (idx(t("since")), idx(t("until")));
                        let offset: usize =
                            param("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
                        let limit: usize =
                            param("limit").and_then(|o| o.parse().ok()).unwrap_or(25);
                        assert!(offset + limit <= 10_000, "offset ceiling passed");
                        let start = (lo + offset).min(hi);
                        let end = (start + limit).min(hi);
                        let mut b = String::from("{\"incidents\":[");
                        for i in start..end {
                            if i > start {
                                b.push(',');
                            }
                            b.push_str(&pd_incident(pd_epoch, i));
                        }
                        b.push_str(&format!(
                            "],\"limit\":{limit},\"offset\":{offset},\"more\":{},\"total\":null}}",
                            end < hi
                        ));
                        b
                    } else if let Some(id) = path
                        .strip_prefix("/incidents/P")
                        .and_then(|p| p.strip_suffix("/log_entries"))
                    {
                        pd_log_entries(pd_epoch, id.parse().unwrap_or(0))
                    } else {
                        "{}".to_string()
                    };
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    head.push_str(&body);
                    if out.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    base
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Each case runs in its own process so one case's memory cannot
    // inflate the next one's peak RSS.
    if let Some(pos) = args.iter().position(|a| a == "--case") {
        let kind = args[pos + 1].clone();
        let total: usize = args[pos + 2].parse().unwrap();
        run_case(&kind, total);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("ticket sync benchmark: run with `cargo bench --bench sync_tickets`");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (kind, total) in [
        ("jira", "5000"),
        ("jira", "50000"),
        ("pagerduty", "2000"),
        ("pagerduty", "20000"),
    ] {
        let status = std::process::Command::new(&exe)
            .args(["--case", kind, total])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn run_case(kind: &str, total: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let pd_epoch = now - 200 * 86_400;
    let base = serve(total, pd_epoch);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let settings = match kind {
        "jira" => serde_json::json!({
            "kind": "jira", "name": "jira", "base_url": base, "api": "cloud",
            "rate": 100000.0, "burst": 1000, "page_size": 100,
            "mappings": [{"record": "finding", "jql": "project = SEC", "asset": "unassigned",
                          "environment_from": "label:env-", "environments": {"prod": "production"}}]
        }),
        _ => serde_json::json!({
            "kind": "pagerduty", "name": "pagerduty", "base_url": base,
            "rate": 100000.0, "burst": 1000,
            "validated": {"from": "priority", "true_values": ["P1", "P2", "P3"], "false_values": ["P5"]}
        }),
    };
    let connector = serde_json::from_value::<ConnectorSettings>(settings)
        .unwrap()
        .build(Some(secrecy::SecretString::from("bench-token")))
        .unwrap();
    let unit = if kind == "jira" {
        "issues"
    } else {
        "incidents"
    };
    // The connector alone: records counted and dropped (no store), so what
    // grows with size in the passes below is the store, not the connector.
    {
        struct Counting(u64);
        impl PageSink for Counting {
            fn commit(&mut self, page: Page) -> Result<Committed, SinkError> {
                self.0 += page.records.len() as u64;
                Ok(Committed::default())
            }
        }
        reset_peak_rss();
        let mut sink = Counting(0);
        let t = Instant::now();
        let out = rt
            .block_on(connector.sync(None, SyncMode::Full, &mut sink))
            .unwrap();
        println!(
            "{kind:<9} {total:>6} {unit:<9} connector only (records dropped): requests {:>6}, records {:>6}, wall {:>6.2} s, peak RSS {:>6.1} MiB",
            out.requests,
            sink.0,
            t.elapsed().as_secs_f64(),
            peak_rss_mib()
        );
    }
    for (pass, mode) in [
        ("first", SyncMode::Incremental),
        ("full", SyncMode::Full),
        ("again", SyncMode::Incremental),
    ] {
        reset_peak_rss();
        let before = connector.http_stats().unwrap().requests;
        let history_before = store.status().unwrap().history_entries;
        let t = Instant::now();
        let report = rt
            .block_on(sync_one(
                &store,
                connector.as_ref(),
                mode,
                secmetrics_connectors::Cancel::new(),
            ))
            .unwrap();
        let wall = t.elapsed().as_secs_f64();
        let requests = connector.http_stats().unwrap().requests - before;
        let written = report.outcome.committed.inserted + report.outcome.committed.replaced;
        let history = store.status().unwrap().history_entries - history_before;
        println!(
            "{kind:<9} {total:>6} {unit:<9} {pass:<5} pass: requests {requests:>6}, records written {written:>6}, history {history:>6}, wall {wall:>6.2} s, peak RSS {:>6.1} MiB",
            peak_rss_mib()
        );
    }
}
