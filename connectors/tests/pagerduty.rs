//! The `pagerduty` connector against a PagerDuty played on loopback: field
//! mapping, triage from log entries, `more` paging, the 10,000-offset
//! ceiling, six-month windows over the lookback, rate limits and the
//! cursor of later passes.

use crate::support::fake_pagerduty::*;
use crate::support::*;
use chrono::{DateTime, Duration as CDuration, Utc};
use secmetrics_connectors::pagerduty::{PagerdutyConnector, PagerdutyCursor, PagerdutySettings};
use secmetrics_connectors::{Connector, Extra, Incident, Record, Severity, SyncMode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "u+PdReadOnlyKeyNeverLogged";

fn connector(pd: &FakePagerduty, extra: Value) -> PagerdutyConnector {
    let mut v = json!({"name": "pagerduty", "base_url": pd.base, "rate": 1000.0, "burst": 100,
        "retry": {"max_attempts": 4, "timeout_secs": 5.0, "backoff_base_ms": 10, "backoff_max_ms": 50,
                  "secondary_min_wait_secs": 0.3, "max_wait_secs": 10.0}});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    let s: PagerdutySettings = serde_json::from_value(v).unwrap();
    s.build(Some(SecretString::from(KEY))).unwrap()
}

/// A day ten days ago at midnight UTC, and a time `mins` minutes after it.
fn base() -> DateTime<Utc> {
    let d = (Utc::now() - CDuration::days(10)).date_naive();
    d.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

fn at(mins: i64) -> String {
    (base() + CDuration::minutes(mins)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn tm(mins: i64) -> DateTime<Utc> {
    base() + CDuration::minutes(mins)
}

fn records(sink: &MemorySink) -> Vec<Incident> {
    sink.records
        .values()
        .map(|r| match r {
            Record::Incident(i) => i.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn incidents_map_and_triage_comes_from_the_acknowledge_log_entry() {
    let pd = FakePagerduty::start().await;
    pd.with(|s| {
        s.incidents = vec![
            // Resolved: PagerDuty emptied `acknowledgements`; the log has them.
            incident("PA1", &at(600), "resolved", json!({
                "incident_number": 101, "resolved_at": at(690), "last_status_change_at": at(690),
                "priority": {"id": "PP1", "type": "priority_reference", "summary": "P1"},
                "service": {"id": "PSVC1", "type": "service_reference", "summary": "Payments API"}
            })),
            // Never changed status: no log request.
            incident("PA2", &at(610), "triggered", json!({"incident_number": 102, "urgency": "low"})),
            // Re-acknowledged: the list holds the later one, the log the first.
            incident("PA3", &at(720), "acknowledged", json!({
                "incident_number": 103, "last_status_change_at": at(730),
                "acknowledgements": [{"at": at(730), "acknowledger": {"id": "PX", "type": "user_reference"}}],
                "priority": {"summary": "P5"}
            })),
            // Resolved by a person without an acknowledgement.
            incident("PA4", &at(800), "resolved", json!({
                "incident_number": 104, "resolved_at": at(810), "last_status_change_at": at(810),
                "priority": {"summary": "P3"}
            })),
            incident("PA5", "yesterday", "triggered", json!({})),
        ];
        s.log_entries.insert(
            "PA1".into(),
            vec![
                log_entry("resolve_log_entry", &at(690), "user_reference"),
                log_entry("acknowledge_log_entry", &at(620), "user_reference"),
                log_entry("acknowledge_log_entry", &at(607), "user_reference"),
                log_entry("notify_log_entry", &at(601), "service_reference"),
                log_entry("trigger_log_entry", &at(600), "service_reference"),
            ],
        );
        s.log_entries.insert(
            "PA3".into(),
            vec![
                log_entry("trigger_log_entry", &at(720), "service_reference"),
                log_entry("acknowledge_log_entry", &at(725), "user_reference"),
                log_entry("unacknowledge_log_entry", &at(728), "service_reference"),
                log_entry("acknowledge_log_entry", &at(730), "user_reference"),
            ],
        );
        s.log_entries.insert(
            "PA4".into(),
            vec![
                log_entry("trigger_log_entry", &at(800), "service_reference"),
                log_entry("resolve_log_entry", &at(810), "user_reference"),
            ],
        );
    });
    let c = connector(
        &pd,
        json!({"lookback_days": 30, "services": {"PSVC1": "payments-api"},
               "validated": {"from": "priority", "true_values": ["P1", "P2"], "false_values": ["p5"]}}),
    );
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.skipped, out.unreadable), (1, 1));
    let extra = |v: Value| Extra(v.as_object().unwrap().clone());
    let url = |id: &str| format!("https://acme.pagerduty.com/incidents/{id}");
    assert_eq!(
        records(&sink),
        vec![
            Incident {
                id: "PA1".into(),
                source: "pagerduty".into(),
                asset: Some("payments-api".into()),
                severity: Some(Severity::Critical),
                alerted_at: tm(600),
                triaged_at: Some(tm(607)),
                contained_at: Some(tm(690)),
                validated: Some(true),
                extra: extra(
                    json!({"incident_number": 101, "status": "resolved", "urgency": "high",
                    "priority": "P1", "service_id": "PSVC1", "url": url("PA1"), "triaged_from": "log_entries"})
                ),
            },
            Incident {
                id: "PA2".into(),
                source: "pagerduty".into(),
                asset: Some("Checkout".into()),
                severity: None,
                alerted_at: tm(610),
                triaged_at: None,
                contained_at: None,
                validated: None,
                extra: extra(
                    json!({"incident_number": 102, "status": "triggered", "urgency": "low",
                    "service_id": "PSVC9", "url": url("PA2")})
                ),
            },
            Incident {
                id: "PA3".into(),
                source: "pagerduty".into(),
                asset: Some("Checkout".into()),
                severity: Some(Severity::Info),
                alerted_at: tm(720),
                triaged_at: Some(tm(725)),
                contained_at: None,
                validated: Some(false),
                extra: extra(
                    json!({"incident_number": 103, "status": "acknowledged", "urgency": "high",
                    "priority": "P5", "service_id": "PSVC9", "url": url("PA3"), "triaged_from": "log_entries"})
                ),
            },
            Incident {
                id: "PA4".into(),
                source: "pagerduty".into(),
                asset: Some("Checkout".into()),
                severity: Some(Severity::Medium),
                alerted_at: tm(800),
                triaged_at: Some(tm(810)),
                contained_at: Some(tm(810)),
                validated: None,
                extra: extra(
                    json!({"incident_number": 104, "status": "resolved", "urgency": "high",
                    "priority": "P3", "service_id": "PSVC9", "url": url("PA4"), "triaged_from": "log_entries"})
                ),
            },
        ]
    );
    let seen = pd.seen();
    let logs: Vec<&str> = seen
        .iter()
        .filter(|s| s.path.ends_with("/log_entries"))
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(
        logs,
        [
            "/incidents/PA1/log_entries",
            "/incidents/PA3/log_entries",
            "/incidents/PA4/log_entries"
        ]
    );
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Token token={KEY}").as_str())
        );
        assert_eq!(
            s.accept.as_deref(),
            Some("application/vnd.pagerduty+json;version=2")
        );
    }
    let list = pd.list_requests();
    assert_eq!(list[0].param("sort_by"), Some("created_at:asc"));
    assert_eq!(list[0].param("limit"), Some("100"));
    assert_eq!(list[0].param("offset"), Some("0"));
}

#[tokio::test]
async fn more_pages_are_read_and_the_offset_ceiling_splits_the_window() {
    let pd = FakePagerduty::start().await;
    // 10,050 incidents one second apart in one window: offsets stop at 9,900.
    let start = base();
    let n = 10_050;
    pd.with(|s| {
        s.incidents = (0..n)
            .map(|i| {
                let c = (start + CDuration::seconds(i as i64))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                incident(&format!("P{i:05}"), &c, "triggered", json!({}))
            })
            .collect();
    });
    let c = connector(&pd, json!({}));
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.count("incident"), n);
    let list = pd.list_requests();
    // Lookback windows before the incidents are empty; count those with offsets.
    let with_items: Vec<&ApiSeen> = list
        .iter()
        .filter(|s| {
            s.time("until") > start && s.time("since") <= start + CDuration::seconds(n as i64)
        })
        .collect();
    let offsets: Vec<u64> = with_items
        .iter()
        .map(|s| s.param("offset").unwrap().parse().unwrap())
        .collect();
    assert_eq!(offsets.len(), 101);
    assert_eq!(offsets[99], 9_900);
    // The split: the same window from the 10,000th incident's time, offset 0.
    assert_eq!(offsets[100], 0);
    assert_eq!(
        with_items[100].time("since"),
        start + CDuration::seconds(9_999)
    );
    assert_eq!(
        with_items[100].param("until"),
        with_items[99].param("until")
    );
    assert!(list.iter().all(|s| s.status == 200));
    // The incident at the split point was read twice, none missed.
    assert_eq!(
        sink.times[&("incident".to_string(), "P09999".to_string())],
        2
    );
    assert_eq!(out.pages as usize, list.len());
}

#[tokio::test]
async fn the_lookback_is_read_in_windows_of_at_most_six_months_then_from_the_cursor() {
    let pd = FakePagerduty::start().await;
    let old_open = (Utc::now() - CDuration::days(100))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let old_text = old_open.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    pd.with(|s| {
        s.incidents = vec![
            incident("POLD", &old_text, "triggered", json!({})),
            incident(
                "PNEW",
                &at(10),
                "resolved",
                json!({"resolved_at": at(20), "last_status_change_at": at(20)}),
            ),
        ];
    });
    let c = connector(&pd, json!({"page_size": 2}));
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let list = pd.list_requests();
    assert_eq!(list.len(), 3);
    for w in list.windows(2) {
        assert_eq!(
            w[0].param("until"),
            w[1].param("since"),
            "windows are contiguous"
        );
    }
    for s in &list {
        assert!(s.time("until") - s.time("since") <= CDuration::days(180));
    }
    let first = list[0].time("since");
    let last = list[2].time("until");
    assert_eq!(last - first, CDuration::days(400));
    let cursor: PagerdutyCursor = serde_json::from_str(sink.cursor.as_ref().unwrap()).unwrap();
    assert_eq!(cursor.watermark, Some(last));
    // POLD is still open: the next pass starts at its creation.
    assert_eq!(cursor.reread_from, Some(old_open));
    assert_eq!(cursor.pass, None);

    pd.with(|s| s.seen.clear());
    c.sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let list = pd.list_requests();
    assert_eq!(list[0].time("since"), old_open);
    // Once resolved, the next pass starts at the cursor minus the overlap.
    pd.with(|s| {
        s.incidents[0]["status"] = json!("resolved");
        s.incidents[0]["resolved_at"] = json!(at(0));
    });
    c.sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let cursor: PagerdutyCursor = serde_json::from_str(sink.cursor.as_ref().unwrap()).unwrap();
    assert_eq!(cursor.reread_from, None);
    pd.with(|s| s.seen.clear());
    c.sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let list = pd.list_requests();
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].time("since"),
        cursor.watermark.unwrap() - CDuration::seconds(600)
    );
}

#[tokio::test]
async fn a_429_with_ratelimit_reset_is_waited_out() {
    let pd = FakePagerduty::start().await;
    pd.with(|s| s.incidents = vec![incident("PA1", &at(5), "triggered", json!({}))]);
    pd.with(|s| {
        s.script.insert(
            "/incidents".into(),
            vec![Scripted::new(
                429,
                &[
                    ("ratelimit-limit", "960"),
                    ("ratelimit-remaining", "0"),
                    ("ratelimit-reset", "1"),
                ],
                r#"{"error":{"message":"Rate Limit Exceeded","code":2020}}"#,
            )]
            .into(),
        );
    });
    let c = connector(&pd, json!({"lookback_days": 30}));
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.count("incident"), 1);
    let list = pd.list_requests();
    assert_eq!(list[0].status, 429);
    assert_eq!(list[1].status, 200);
    assert!(list[1].at - list[0].at >= Duration::from_millis(990));
    assert_eq!(c.http_stats().unwrap().rate_limit_waits, 1);
}

#[tokio::test]
async fn validation_from_resolution_notes() {
    let pd = FakePagerduty::start().await;
    pd.with(|s| {
        s.incidents = vec![
            incident("PN1", &at(1), "resolved", json!({"resolved_at": at(2), "last_status_change_at": at(2)})),
            incident("PN2", &at(3), "resolved", json!({"resolved_at": at(4), "last_status_change_at": at(4)})),
            incident("PN3", &at(5), "resolved", json!({"resolved_at": at(6), "last_status_change_at": at(6)})),
        ];
        s.notes.insert("PN1".into(), vec![json!({"id": "N1", "content": "Resolution: False Positive (scanner)", "created_at": at(2)})]);
        s.notes.insert("PN2".into(), vec![json!({"id": "N2", "content": "Confirmed intrusion; keys rotated", "created_at": at(4)})]);
    });
    let c = connector(
        &pd,
        json!({"validated": {"from": "resolution_note", "true_values": ["confirmed"], "false_values": ["false positive"]}}),
    );
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let got: Vec<(String, Option<bool>)> = records(&sink)
        .into_iter()
        .map(|i| (i.id, i.validated))
        .collect();
    assert_eq!(
        got,
        [
            ("PN1".to_string(), Some(false)),
            ("PN2".to_string(), Some(true)),
            ("PN3".to_string(), None)
        ]
    );
}

#[test]
fn settings_are_checked() {
    let build = |v: Value| {
        serde_json::from_value::<PagerdutySettings>(v)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                s.build(Some(SecretString::from("k")))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
    };
    let e = build(json!({"name": "pd", "window_days": 200})).unwrap_err();
    assert!(e.contains("`window_days` must be 1 to 180"), "{e}");
    let e = build(json!({"name": "pd", "validated": {"from": "field", "true_values": ["x"]}}))
        .unwrap_err();
    assert!(e.contains("`validated.field`"), "{e}");
    let e = build(json!({"name": "pd", "severities": {"P1": "sev1"}})).unwrap_err();
    assert!(e.contains("severities.\"P1\"") && e.contains("sev1"), "{e}");
    let e = build(json!({"name": "pd", "lookback": 3})).unwrap_err();
    assert!(e.contains("lookback"), "{e}");
}

#[tokio::test]
async fn an_interrupted_pass_resumes_with_no_incident_missing() {
    let pd = FakePagerduty::start().await;
    pd.with(|s| {
        s.incidents = (0..7)
            .map(|i| incident(&format!("PI{i}"), &at(i * 10), "triggered", json!({})))
            .collect();
    });
    let c = connector(&pd, json!({"page_size": 2, "lookback_days": 30}));
    let mut sink = MemorySink {
        cancel_after: Some(2),
        ..MemorySink::default()
    };
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(out.interrupted);
    assert_eq!(sink.count("incident"), 4);
    let cursor: PagerdutyCursor = serde_json::from_str(sink.cursor.as_ref().unwrap()).unwrap();
    let pass = cursor.pass.clone().unwrap();
    // Resume at the newest creation time committed.
    assert_eq!(pass.pos, tm(30));
    sink.cancel_after = None;
    pd.with(|s| s.seen.clear());
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(!out.interrupted);
    assert_eq!(pd.list_requests()[0].time("since"), tm(30));
    assert_eq!(sink.count("incident"), 7);
    let times: Vec<u32> = (0..7)
        .map(|i| sink.times[&("incident".to_string(), format!("PI{i}"))])
        .collect();
    assert_eq!(times, [1, 1, 1, 2, 1, 1, 1]);
    let cursor: PagerdutyCursor = serde_json::from_str(sink.cursor.as_ref().unwrap()).unwrap();
    assert_eq!(cursor.pass, None);
    assert_eq!(cursor.watermark, Some(pass.until));
}
