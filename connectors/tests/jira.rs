//! The `jira` connector against a Jira played on loopback: Cloud token
//! paging, Data Center offset paging, rate limits, the removed Cloud search,
//! every mapping kind's exact records, changelog history at Jira's times,
//! incremental queries in the user's time zone, resumption, and problems
//! reported once.

use crate::support::fake_jira::*;
use crate::support::*;
use chrono::{DateTime, Utc};
use secmetrics_connectors::jira::{JiraConnector, JiraCursor, JiraSettings};
use secmetrics_connectors::{
    Connector, Domain, Environment, Exception, Extra, Finding, Gate, Identity, Kind, Record,
    Release, Review, ReviewType, Severity, SourceChange, SourceHistory, Status, SyncMode,
    ThreatModel, Tracked, Validity,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN: &str = "ATATT3xFfGF0JiraTokenNeverLogged";
/// base64("svc@example.com:" + TOKEN)
const BASIC: &str = "Basic c3ZjQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMEppcmFUb2tlbk5ldmVyTG9nZ2Vk";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn connector(j: &FakeJira, api: &str, page_size: u32, mappings: Value) -> JiraConnector {
    let mut v = json!({
        "name": "jira", "base_url": j.base, "api": api, "rate": 1000.0, "burst": 100,
        "page_size": page_size, "mappings": mappings,
        "retry": {"max_attempts": 4, "timeout_secs": 5.0, "backoff_base_ms": 10, "backoff_max_ms": 50,
                  "secondary_min_wait_secs": 0.3, "max_wait_secs": 10.0}
    });
    if api == "cloud" {
        v["email"] = json!("svc@example.com");
    }
    let s: JiraSettings = serde_json::from_value(v).unwrap();
    s.build(Some(SecretString::from(TOKEN))).unwrap()
}

fn simple_issues(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            issue(
                &format!("SEC-{i}"),
                "2026-01-01T00:00:00.000+0000",
                &format!("2026-03-01T{:02}:00:00.000+0000", i),
                json!({}),
            )
        })
        .collect()
}

fn finding_mapping() -> Value {
    json!([{"record": "finding", "jql": "project = SEC", "asset": "unassigned"}])
}

fn searches(j: &FakeJira) -> Vec<ApiSeen> {
    j.seen()
        .into_iter()
        .filter(|s| s.path.ends_with("/search/jql") || s.path.ends_with("/search"))
        .collect()
}

#[tokio::test]
async fn cloud_token_paging_across_pages_ends_on_is_last() {
    for empty_token_on_last in [false, true] {
        let j = FakeJira::start(true).await;
        j.set_issues(simple_issues(5));
        j.with(|s| s.empty_token_on_last = empty_token_on_last);
        let c = connector(&j, "cloud", 2, finding_mapping());
        let mut sink = MemorySink::default();
        let out = c
            .sync(None, SyncMode::Incremental, &mut sink)
            .await
            .unwrap();
        assert_eq!(sink.count("finding"), 5);
        assert_eq!((out.pages, out.requests, out.skipped), (3, 3, 0));
        let seen = searches(&j);
        assert_eq!(seen.len(), 3);
        let tokens: Vec<Option<&str>> = seen.iter().map(|s| s.param("nextPageToken")).collect();
        assert_eq!(tokens, [None, Some("tok-2"), Some("tok-4")]);
        for s in &seen {
            assert_eq!(s.path, "/rest/api/3/search/jql");
            assert_eq!(
                s.param("jql"),
                Some("(project = SEC) ORDER BY updated ASC, key ASC")
            );
            assert_eq!(s.param("maxResults"), Some("2"));
            assert_eq!(s.param("expand"), Some("changelog"));
            assert_eq!(s.param("startAt"), None);
            let fields = s.param("fields").unwrap();
            for f in [
                "created",
                "updated",
                "resolution",
                "resolutiondate",
                "priority",
            ] {
                assert!(fields.split(',').any(|x| x == f), "{fields}");
            }
            assert_eq!(s.authorization.as_deref(), Some(BASIC));
        }
        // Nothing asked besides the searches (no field names to resolve,
        // no cursor to turn into a date).
        assert_eq!(j.seen().len(), 3);
        let cursor: JiraCursor = serde_json::from_str(sink.cursor.as_ref().unwrap()).unwrap();
        let mc = &cursor.mappings["finding:project = SEC"];
        assert_eq!(mc.watermark, Some(t("2026-03-01T05:00:00Z")));
        assert_eq!(mc.pass, None);
    }
}

#[tokio::test]
async fn data_center_offset_paging_uses_the_servers_max_results_and_ends_on_total() {
    let j = FakeJira::start(false).await;
    j.set_issues(simple_issues(5));
    // The server caps maxResults at 2 whatever is asked.
    j.with(|s| s.max_results_cap = 2);
    let s: JiraSettings = serde_json::from_value(json!({
        "name": "jira-dc", "base_url": j.base, "api": "data_center",
        "rate": 1000.0, "burst": 100, "page_size": 50, "mappings": finding_mapping()
    }))
    .unwrap();
    let c = s.build(Some(SecretString::from(TOKEN))).unwrap();
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.count("finding"), 5);
    assert_eq!((out.pages, out.requests), (3, 3));
    let seen = searches(&j);
    let starts: Vec<Option<&str>> = seen.iter().map(|s| s.param("startAt")).collect();
    assert_eq!(starts, [Some("0"), Some("2"), Some("4")]);
    for s in &seen {
        assert_eq!(s.path, "/rest/api/2/search");
        assert_eq!(s.param("maxResults"), Some("50"));
        assert_eq!(s.param("nextPageToken"), None);
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let Record::Finding(f) = &sink.records[&("finding".to_string(), "SEC-3".to_string())] else {
        panic!()
    };
    assert_eq!(
        f.url.as_deref(),
        Some(format!("{}/browse/SEC-3", j.base).as_str())
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let j = FakeJira::start(true).await;
    j.set_issues(simple_issues(3));
    j.script(
        "/rest/api/3/search/jql",
        vec![Scripted::new(
            429,
            &[
                ("retry-after", "1"),
                ("x-ratelimit-limit", "350"),
                ("x-ratelimit-remaining", "0"),
                ("ratelimit-reason", "jira-burst-based"),
            ],
            r#"{"errorMessages":["Rate limit exceeded."],"errors":{}}"#,
        )],
    );
    let c = connector(&j, "cloud", 2, finding_mapping());
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.count("finding"), 3);
    let seen = searches(&j);
    let statuses: Vec<u16> = seen.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [429, 200, 200]);
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(990));
    let stats = c.http_stats().unwrap();
    assert_eq!(
        (stats.rate_limit_waits, stats.retries, stats.requests),
        (1, 1, 3)
    );
}

#[tokio::test]
async fn the_removed_cloud_search_answers_410_and_the_error_says_so() {
    let j = FakeJira::start(true).await;
    j.set_issues(simple_issues(1));
    let c = connector(&j, "data_center", 2, finding_mapping());
    let mut sink = MemorySink::default();
    let err = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("jira: GET /rest/api/2/search: HTTP 410 Gone"),
        "{err}"
    );
    assert!(err.contains("/rest/api/3/search/jql"), "{err}");
    assert!(err.contains("CHANGE-2046"), "{err}");
    assert!(err.contains("api = \"cloud\""), "{err}");
    assert!(!err.contains(TOKEN));
    assert!(sink.pages.is_empty());
}

fn finding_fixture(j: &FakeJira) {
    let desc_adf = json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": "Found by CodeQL: "},
        {"type": "text", "text": "alert 12", "marks": [{"type": "link", "attrs": {"href": "https://github.com/acme/pay/security/code-scanning/12"}}]},
        {"type": "text", "text": " runbook https://wiki.example.com/x"}]}]});
    let issues = vec![
        issue(
            "SEC-1",
            "2026-01-05T09:30:00.000+0100",
            "2026-02-10T12:00:05.000+0000",
            json!({
                "priority": {"name": "Highest"},
                "components": [{"name": "Billing"}, {"name": "Payments API"}],
                "labels": ["env-staging", "domain-infrastructure", "triaged"],
                "resolution": {"id": "10000", "name": "Done"},
                "resolutiondate": "2026-02-10T12:00:00.000+0000",
                "status": {"name": "Done", "statusCategory": {"key": "done"}},
                "description": desc_adf,
                "customfield_10100": "https://github.com/acme/pay/security/code-scanning/12",
                "customfield_10101": "fp-abc"
            }),
        ),
        issue(
            "SEC-2",
            "2026-01-06T00:00:00.000+0000",
            "2026-03-02T09:00:00.000+0000",
            json!({
                "priority": {"name": "Major"},
                "resolution": {"name": "Won't Do"},
                "status": {"name": "Closed", "statusCategory": {"key": "done"}}
            }),
        ),
        issue(
            "SEC-3",
            "2026-01-07T00:00:00.000+0000",
            "2026-03-03T10:00:00.000+0000",
            json!({
                "priority": {"name": "Low"},
                "resolution": {"name": "Duplicate"},
                "status": {"name": "Closed", "statusCategory": {"key": "done"}},
                "issuelinks": [
                    {"id": "1", "type": {"name": "Relates", "inward": "relates to", "outward": "relates to"}, "inwardIssue": {"key": "SEC-4"}},
                    {"id": "2", "type": {"name": "Duplicate", "inward": "is duplicated by", "outward": "duplicates"}, "outwardIssue": {"key": "SEC-1"}}
                ]
            }),
        ),
        issue(
            "SEC-4",
            "2026-01-08T00:00:00.000+0000",
            "2026-03-04T11:00:00.000+0000",
            json!({
                "priority": {"name": "Lowest"},
                "description": "Leaked token, see https://github.com/acme/web/security/secret-scanning/4. Ticket [old|https://jira.example.com/browse/OLD-1]"
            }),
        ),
        issue(
            "SEC-5",
            "2026-01-09T00:00:00.000+0000",
            "2026-03-05T12:00:00.000+0000",
            json!({"priority": {"name": "P9"}}),
        ),
    ];
    j.set_issues(issues);
    j.with(|s| {
        s.histories.insert(
            "SEC-1".into(),
            vec![
                history(1, "2026-01-05T10:00:00.000+0100", json!([item("status", "status", Some("To Do"), Some("In Progress"))])),
                history(2, "2026-01-06T10:00:00.000+0000", json!([item("priority", "priority", Some("Medium"), Some("Highest"))])),
                history(3, "2026-01-07T10:00:00.000+0000", json!([item("Flagged", "customfield_10021", None, Some("Impediment"))])),
                history(4, "2026-02-10T12:00:00.000+0000", json!([
                    item("resolution", "resolution", None, Some("Done")),
                    item("status", "status", Some("In Progress"), Some("Done"))
                ])),
            ],
        );
        s.histories.insert(
            "SEC-2".into(),
            vec![
                history(5, "2026-03-01T08:00:00.000+0000", json!([
                    item("status", "status", Some("Open"), Some("Closed")),
                    item("resolution", "resolution", None, Some("Won't Do"))
                ])),
                history(6, "2026-03-02T09:00:00.000+0000", json!([item("priority", "priority", Some("Highest"), Some("Major"))])),
            ],
        );
        // Embedded changelogs hold one history: longer ones are truncated.
        s.embed_max = 1;
        s.changelog_page = 2;
        s.remote_links.insert(
            "SEC-1".into(),
            vec![
                json!({"id": 1, "object": {"url": "https://github.com/acme/pay/security/secret-scanning/3", "title": "alert"}}),
                json!({"id": 2, "object": {"url": "https://confluence.example.com/page", "title": "doc"}}),
            ],
        );
    });
}

fn finding_settings() -> Value {
    json!([{
        "record": "finding", "jql": "project = SEC AND issuetype = Vulnerability",
        "asset_from": "component", "asset": "unassigned", "assets": {"Payments API": "payments-api"},
        "environment_from": "label:env-", "environments": {"staging": "non_production"},
        "domain_from": "label:domain-",
        "refs_field": "Alert URL", "fingerprint_from": "field:Fingerprint", "remote_links": true
    }])
}

#[tokio::test]
async fn findings_map_every_field_and_their_history_comes_from_the_changelog() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let j = FakeJira::start(true).await;
    finding_fixture(&j);
    let c = connector(&j, "cloud", 10, finding_settings());
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.skipped, out.unreadable), (1, 1));
    let get = |id: &str| match sink.records.get(&("finding".to_string(), id.to_string())) {
        Some(Record::Finding(f)) => f.clone(),
        other => panic!("{id}: {other:?}"),
    };
    let url = |k: &str| Some(format!("{}/browse/{k}", j.base));
    let extra = |v: Value| Extra(v.as_object().unwrap().clone());
    assert_eq!(
        get("SEC-1"),
        Finding {
            id: "SEC-1".into(),
            source: "jira".into(),
            asset: "payments-api".into(),
            title: Some("SEC-1 summary".into()),
            severity: Severity::Critical,
            environment: Environment::NonProduction,
            domain: Domain::Infrastructure,
            opened_at: t("2026-01-05T08:30:00Z"),
            status: Status::Remediated,
            resolved_at: Some(t("2026-02-10T12:00:00Z")),
            validity: Validity::Valid,
            duplicate_of: None,
            fingerprint: Some("fp-abc".into()),
            url: url("SEC-1"),
            refs: vec![
                "https://github.com/acme/pay/security/code-scanning/12".into(),
                "https://github.com/acme/pay/security/secret-scanning/3".into(),
            ],
            extra: extra(json!({
                "jira_status": "Done", "jira_resolution": "Done", "resolved_at_from": "resolutiondate",
            })),
        }
    );
    assert_eq!(
        get("SEC-2"),
        Finding {
            id: "SEC-2".into(),
            source: "jira".into(),
            asset: "unassigned".into(),
            title: Some("SEC-2 summary".into()),
            severity: Severity::High,
            environment: Environment::Production,
            domain: Domain::Application,
            opened_at: t("2026-01-06T00:00:00Z"),
            status: Status::RiskAccepted,
            // No resolutiondate: the last transition into a done status.
            resolved_at: Some(t("2026-03-01T08:00:00Z")),
            validity: Validity::Valid,
            duplicate_of: None,
            fingerprint: None,
            url: url("SEC-2"),
            refs: Vec::new(),
            extra: extra(json!({
                "jira_status": "Closed", "jira_resolution": "Won't Do", "resolved_at_from": "changelog"
            })),
        }
    );
    assert_eq!(
        get("SEC-3"),
        Finding {
            id: "SEC-3".into(),
            source: "jira".into(),
            asset: "unassigned".into(),
            title: Some("SEC-3 summary".into()),
            severity: Severity::Low,
            environment: Environment::Production,
            domain: Domain::Application,
            opened_at: t("2026-01-07T00:00:00Z"),
            status: Status::Closed,
            // Neither resolutiondate nor changelog: `updated`.
            resolved_at: Some(t("2026-03-03T10:00:00Z")),
            validity: Validity::Duplicate,
            duplicate_of: Some("SEC-1".into()),
            fingerprint: None,
            url: url("SEC-3"),
            refs: Vec::new(),
            extra: extra(json!({
                "jira_status": "Closed", "jira_resolution": "Duplicate", "resolved_at_from": "updated"
            })),
        }
    );
    assert_eq!(
        get("SEC-4"),
        Finding {
            id: "SEC-4".into(),
            source: "jira".into(),
            asset: "unassigned".into(),
            title: Some("SEC-4 summary".into()),
            severity: Severity::Info,
            environment: Environment::Production,
            domain: Domain::Application,
            opened_at: t("2026-01-08T00:00:00Z"),
            status: Status::Open,
            resolved_at: None,
            validity: Validity::Unverified,
            duplicate_of: None,
            fingerprint: None,
            url: url("SEC-4"),
            refs: vec!["https://github.com/acme/web/security/secret-scanning/4".into()],
            extra: extra(json!({
                "jira_status": "To Do",
            })),
        }
    );
    assert_eq!(sink.count("finding"), 4);
    // History: from the changelog, at Jira's times.
    let identity = |id: &str| Identity {
        kind: Kind::Finding,
        source: "jira".into(),
        id: id.into(),
    };
    let change = |field, old: &str, new: &str, at: &str| SourceChange {
        field,
        old: old.into(),
        new: new.into(),
        at: t(at),
    };
    let fields = vec![Tracked::Severity, Tracked::Status, Tracked::Validity];
    assert_eq!(
        sink.history[0],
        SourceHistory {
            identity: identity("SEC-1"),
            fields: fields.clone(),
            changes: vec![
                change(
                    Tracked::Severity,
                    "medium",
                    "critical",
                    "2026-01-06T10:00:00Z"
                ),
                change(
                    Tracked::Status,
                    "open",
                    "remediated",
                    "2026-02-10T12:00:00Z"
                ),
                change(
                    Tracked::Validity,
                    "unverified",
                    "valid",
                    "2026-02-10T12:00:00Z"
                ),
            ],
        }
    );
    assert_eq!(
        sink.history[1],
        SourceHistory {
            identity: identity("SEC-2"),
            fields: fields.clone(),
            changes: vec![
                change(
                    Tracked::Status,
                    "open",
                    "risk_accepted",
                    "2026-03-01T08:00:00Z"
                ),
                change(
                    Tracked::Validity,
                    "unverified",
                    "valid",
                    "2026-03-01T08:00:00Z"
                ),
                change(
                    Tracked::Severity,
                    "critical",
                    "high",
                    "2026-03-02T09:00:00Z"
                ),
            ],
        }
    );
    assert_eq!(sink.history[2].changes, vec![]);
    assert_eq!(sink.history.len(), 4);
    // SEC-1 (4 histories, 1 embedded) took two changelog pages; SEC-2 one.
    let paths = j.seen_paths();
    let count = |p: &str| paths.iter().filter(|x| *x == p).count();
    assert_eq!(count("/rest/api/3/issue/SEC-1/changelog"), 2);
    assert_eq!(count("/rest/api/3/issue/SEC-2/changelog"), 1);
    assert_eq!(count("/rest/api/3/issue/SEC-3/changelog"), 0);
    assert_eq!(count("/rest/api/3/field"), 1);
    assert_eq!(count("/rest/api/3/issue/SEC-1/remotelink"), 1);
    // The fields asked include the resolved custom field ids.
    let fields_param = searches(&j)[0].param("fields").unwrap().to_string();
    assert!(fields_param.contains("customfield_10100"), "{fields_param}");
    assert!(fields_param.contains("customfield_10101"), "{fields_param}");
    assert!(fields_param.contains("description"), "{fields_param}");

    // SEC-5's unmapped priority is reported with key and field, once,
    // though the next pass reads it again.
    let out2 = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out2.unreadable, 1);
    let text = logs.text();
    let reports: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("SEC-5"))
        .collect();
    assert_eq!(reports.len(), 1, "{text}");
    assert!(reports[0].contains("field `priority`"), "{}", reports[0]);
    assert!(reports[0].contains("\"P9\""), "{}", reports[0]);
    assert!(!text.contains(TOKEN));
    // The field list is asked once per connector instance.
    assert_eq!(
        j.seen_paths()
            .iter()
            .filter(|p| *p == "/rest/api/3/field")
            .count(),
        1
    );
}

#[tokio::test]
async fn review_threat_model_exception_and_release_mappings_produce_exact_records() {
    let j = FakeJira::start(true).await;
    let i = |key: &str, created: &str, fields: Value| {
        issue(key, created, "2026-03-10T00:00:00.000+0000", fields)
    };
    let done = json!({"name": "Done", "statusCategory": {"key": "done"}});
    j.set_issues(vec![
        i("DR-1", "2026-01-01T00:00:00.000+0000", json!({
            "labels": ["review-design"], "components": [{"name": "Payments API"}],
            "resolution": {"name": "Done"}, "resolutiondate": "2026-02-01T10:00:00.000+0000", "status": done
        })),
        i("DR-2", "2026-01-01T00:00:00.000+0000", json!({"components": [{"name": "Payments API"}]})),
        i("DR-3", "2026-01-01T00:00:00.000+0000", json!({
            "components": [{"name": "Payments API"}], "resolution": {"name": "Won't Do"},
            "resolutiondate": "2026-02-01T10:00:00.000+0000", "status": done
        })),
        i("DR-4", "2026-01-01T00:00:00.000+0000", json!({
            "components": [{"name": "Ledger"}], "resolution": {"name": "Fixed"},
            "resolutiondate": "2026-02-02T10:00:00.000+0000", "status": done
        })),
        i("TM-1", "2026-01-01T00:00:00.000+0000", json!({
            "labels": ["asset-payments-api"], "customfield_10400": "2026-01-15"
        })),
        i("TM-2", "2026-01-01T00:00:00.000+0000", json!({
            "labels": ["asset-ledger"], "resolution": {"name": "Done"},
            "resolutiondate": "2026-01-20T08:00:00.000+0000", "status": done
        })),
        i("TM-3", "2026-01-01T00:00:00.000+0000", json!({"labels": ["asset-ledger"]})),
        i("EX-1", "2026-01-01T00:00:00.000+0000", json!({
            "components": [{"name": "Payments API"}],
            "customfield_10201": "2026-01-03", "customfield_10200": "2026-06-30",
            "customfield_10202": "Compensating WAF rule",
            "issuelinks": [
                {"type": {"name": "Relates"}, "outwardIssue": {"key": "SEC-1"}},
                {"type": {"name": "Blocks"}, "inwardIssue": {"key": "SEC-9"}},
                {"type": {"name": "Relates"}, "inwardIssue": {"key": "SEC-12"}}
            ]
        })),
        i("EX-2", "2026-01-02T00:00:00.000+0000", json!({
            "components": [{"name": "Ledger"}], "resolution": {"name": "Done"},
            "resolutiondate": "2026-02-15T00:00:00.000+0000", "status": done
        })),
        i("EX-3", "2026-01-02T00:00:00.000+0000", json!({
            "components": [{"name": "Ledger"}], "customfield_10200": "next year"
        })),
        i("REL-1", "2026-01-01T00:00:00.000+0000", json!({
            "components": [{"name": "Payments API"}],
            "customfield_10302": "2026-02-20T15:00:00.000+0000",
            "customfield_10300": {"self": "x", "value": "Passed with exception", "id": "10001"},
            "customfield_10301": "EX-1 accepted"
        })),
        i("REL-2", "2026-01-01T00:00:00.000+0000", json!({
            "components": [{"name": "Ledger"}], "customfield_10300": {"value": "Failed"},
            "resolution": {"name": "Done"}, "resolutiondate": "2026-02-21T09:00:00.000+0000", "status": done
        })),
        i("REL-3", "2026-01-01T00:00:00.000+0000", json!({
            "components": [{"name": "Ledger"}], "customfield_10302": "2026-02-22",
            "customfield_10300": {"value": "Skipped"}
        })),
        i("REL-4", "2026-01-01T00:00:00.000+0000", json!({
            "components": [{"name": "Ledger"}], "customfield_10300": {"value": "Passed"}
        })),
    ]);
    let assets = json!({"Payments API": "payments-api", "Ledger": "ledger"});
    let c = connector(
        &j,
        "cloud",
        50,
        json!([
            {"record": "review", "jql": "project = DR", "assets": assets, "review_type_from": "label:review-"},
            {"record": "threat_model", "jql": "project = TM", "asset_from": "label:asset-",
             "reviewed_at_field": "Model reviewed"},
            {"record": "exception", "jql": "project = EX", "assets": assets, "opened_at_field": "Approved on",
             "expires_at_field": "customfield_10200", "reason_field": "Risk reason", "link_types": ["relates"]},
            {"record": "release", "jql": "project = REL", "assets": assets, "at_field": "Release date",
             "gate_field": "Gate outcome", "reason_field": "Gate reason"}
        ]),
    );
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    // Left out on purpose: DR-2 (open), DR-3 (won't do), TM-3 (never
    // reviewed), REL-4 (not released). Problems: EX-3, REL-3.
    assert_eq!((out.skipped, out.unreadable), (6, 2));
    let url = |k: &str| json!(format!("{}/browse/{k}", j.base));
    let extra = |mut v: Value, k: &str| {
        v["url"] = url(k);
        Extra(v.as_object().unwrap().clone())
    };
    let mut got: Vec<Record> = sink.records.values().cloned().collect();
    got.sort_by(|a, b| a.id().cmp(b.id()));
    let want = vec![
        Record::Review(Review {
            id: "DR-1".into(),
            source: "jira".into(),
            asset: "payments-api".into(),
            review_type: ReviewType::Design,
            completed_at: t("2026-02-01T10:00:00Z"),
            extra: extra(
                json!({"jira_status": "Done", "jira_resolution": "Done", "resolved_at_from": "resolutiondate"}),
                "DR-1",
            ),
        }),
        Record::Review(Review {
            id: "DR-4".into(),
            source: "jira".into(),
            asset: "ledger".into(),
            review_type: ReviewType::Security,
            completed_at: t("2026-02-02T10:00:00Z"),
            extra: extra(
                json!({"jira_status": "Done", "jira_resolution": "Fixed", "resolved_at_from": "resolutiondate"}),
                "DR-4",
            ),
        }),
        Record::Exception(Exception {
            id: "EX-1".into(),
            source: "jira".into(),
            asset: "payments-api".into(),
            opened_at: t("2026-01-03T00:00:00Z"),
            expires_at: Some(t("2026-07-01T00:00:00Z")),
            closed_at: None,
            findings: vec!["SEC-1".into(), "SEC-12".into()],
            reason: Some("Compensating WAF rule".into()),
            extra: extra(json!({"jira_status": "To Do"}), "EX-1"),
        }),
        Record::Exception(Exception {
            id: "EX-2".into(),
            source: "jira".into(),
            asset: "ledger".into(),
            opened_at: t("2026-01-02T00:00:00Z"),
            expires_at: None,
            closed_at: Some(t("2026-02-15T00:00:00Z")),
            findings: vec![],
            reason: None,
            extra: extra(
                json!({"jira_status": "Done", "jira_resolution": "Done", "resolved_at_from": "resolutiondate"}),
                "EX-2",
            ),
        }),
        Record::Release(Release {
            id: "REL-1".into(),
            source: "jira".into(),
            asset: "payments-api".into(),
            at: t("2026-02-20T15:00:00Z"),
            gate: Gate::PassedWithException,
            reason: Some("EX-1 accepted".into()),
            extra: extra(json!({"jira_status": "To Do"}), "REL-1"),
        }),
        Record::Release(Release {
            id: "REL-2".into(),
            source: "jira".into(),
            asset: "ledger".into(),
            at: t("2026-02-21T09:00:00Z"),
            gate: Gate::Failed,
            reason: None,
            extra: extra(
                json!({"jira_status": "Done", "jira_resolution": "Done", "resolved_at_from": "resolutiondate"}),
                "REL-2",
            ),
        }),
        Record::ThreatModel(ThreatModel {
            id: "TM-1".into(),
            source: "jira".into(),
            asset: "payments-api".into(),
            reviewed_at: t("2026-01-15T00:00:00Z"),
            extra: extra(
                json!({"jira_status": "To Do", "reviewed_at_from": "field"}),
                "TM-1",
            ),
        }),
        Record::ThreatModel(ThreatModel {
            id: "TM-2".into(),
            source: "jira".into(),
            asset: "ledger".into(),
            reviewed_at: t("2026-01-20T08:00:00Z"),
            extra: extra(
                json!({"jira_status": "Done", "jira_resolution": "Done", "resolved_at_from": "resolutiondate"}),
                "TM-2",
            ),
        }),
    ];
    assert_eq!(got, want);
    // One query per mapping, each with its own JQL.
    let jqls: Vec<String> = searches(&j)
        .iter()
        .map(|s| s.param("jql").unwrap().to_string())
        .collect();
    assert_eq!(
        jqls,
        [
            "(project = DR) ORDER BY updated ASC, key ASC",
            "(project = TM) ORDER BY updated ASC, key ASC",
            "(project = EX) ORDER BY updated ASC, key ASC",
            "(project = REL) ORDER BY updated ASC, key ASC"
        ]
    );
    // Only findings carry source-stamped history.
    assert!(sink.history.is_empty());
}

#[tokio::test]
async fn the_next_pass_asks_for_updates_since_the_cursor_in_the_users_time_zone() {
    let j = FakeJira::start(true).await;
    j.set_issues(vec![
        issue(
            "SEC-1",
            "2026-01-01T00:00:00.000+0000",
            "2026-03-01T09:00:00.000+0000",
            json!({}),
        ),
        issue(
            "SEC-2",
            "2026-01-01T00:00:00.000+0000",
            "2026-03-01T10:00:00.000+0000",
            json!({}),
        ),
    ]);
    j.with(|s| s.time_zone = Some("Australia/Sydney".into()));
    let c = connector(&j, "cloud", 10, finding_mapping());
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    j.clear_seen();
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let seen = j.seen();
    assert_eq!(seen[0].path, "/rest/api/3/myself");
    // 10:00Z minus the 5-minute overlap is 20:55 in Sydney (AEDT, +11).
    assert_eq!(
        seen[1].param("jql"),
        Some("(project = SEC) AND updated >= \"2026-03-01 20:55\" ORDER BY updated ASC, key ASC")
    );
    assert_eq!(seen.len(), 2);
    // SEC-2 read again (the overlap), unchanged.
    assert_eq!(out.committed.unchanged, 1);
    assert_eq!(out.committed.inserted + out.committed.replaced, 0);

    // A full pass ignores the cursor.
    j.clear_seen();
    c.sync(sink.cursor.clone(), SyncMode::Full, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        searches(&j)[0].param("jql"),
        Some("(project = SEC) ORDER BY updated ASC, key ASC")
    );
}

#[tokio::test]
async fn an_interrupted_pass_resumes_from_the_newest_committed_update() {
    let j = FakeJira::start(true).await;
    j.set_issues(simple_issues(5));
    let c = connector(&j, "cloud", 2, finding_mapping());
    let mut sink = MemorySink {
        cancel_after: Some(1),
        ..MemorySink::default()
    };
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(out.interrupted);
    assert_eq!(sink.count("finding"), 2);
    let cursor: JiraCursor = serde_json::from_str(sink.cursor.as_ref().unwrap()).unwrap();
    let pass = cursor.mappings["finding:project = SEC"]
        .pass
        .clone()
        .unwrap();
    assert_eq!(pass.max_seen, Some(t("2026-03-01T02:00:00Z")));
    assert_eq!(pass.since, None);
    sink.cancel_after = None;
    j.clear_seen();
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(!out.interrupted);
    assert_eq!(
        searches(&j)[0].param("jql"),
        Some("(project = SEC) AND updated >= \"2026-03-01 01:55\" ORDER BY updated ASC, key ASC")
    );
    assert_eq!(sink.count("finding"), 5);
    // SEC-2 (at the resume point) was read twice, the others once.
    let times: Vec<u32> = (1..=5)
        .map(|i| sink.times[&("finding".to_string(), format!("SEC-{i}"))])
        .collect();
    assert_eq!(times, [1, 2, 1, 1, 1]);
    let cursor: JiraCursor = serde_json::from_str(sink.cursor.as_ref().unwrap()).unwrap();
    let mc = &cursor.mappings["finding:project = SEC"];
    assert_eq!(
        (mc.watermark, mc.pass.clone()),
        (Some(t("2026-03-01T05:00:00Z")), None)
    );
}

#[test]
fn settings_errors_name_the_mapping_and_key() {
    let build = |v: Value| {
        serde_json::from_value::<JiraSettings>(v)
            .map_err(|e| e.to_string())
            .and_then(|s| s.build(None).map(|_| ()).map_err(|e| e.to_string()))
    };
    let e = build(
        json!({"name": "j", "base_url": "https://x.atlassian.net", "mappings": [
            {"record": "finding", "jql": "project = SEC"},
            {"record": "exception", "jql": "project = EX", "gate_field": "Gate"}
        ]}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "connector j: mappings[1] (exception): `gate_field` does not apply to record = \"exception\""
    );
    let e = build(
        json!({"name": "j", "base_url": "https://x.atlassian.net", "email": "a@b.c",
                         "mappings": [{"record": "finding", "jql": "project = SEC"}]}),
    )
    .unwrap_err();
    assert!(e.contains("`email` is set but no token"), "{e}");
    let e = build(json!({"name": "j", "base_url": "https://x.atlassian.net", "mappings": []}))
        .unwrap_err();
    assert!(e.contains("no [[connectors.mappings]]"), "{e}");
    let e = build(
        json!({"name": "j", "base_url": "https://x.atlassian.net", "api": "server",
                         "mappings": [{"record": "finding", "jql": "x"}]}),
    )
    .unwrap_err();
    assert!(e.contains("server") && e.contains("data_center"), "{e}");
}

#[tokio::test]
async fn a_search_that_times_out_after_it_was_sent_is_retried() {
    let j = FakeJira::start(true).await;
    j.set_issues(simple_issues(3));
    // The server takes the request and answers after the client's timeout.
    j.script(
        "/rest/api/3/search/jql",
        vec![Scripted::new(200, &[], r#"{"issues":[],"isLast":true}"#).delayed(2_000)],
    );
    let s: JiraSettings = serde_json::from_value(json!({
        "name": "jira", "base_url": j.base, "api": "cloud", "rate": 1000.0, "burst": 100,
        "page_size": 10, "mappings": finding_mapping(),
        "retry": {"max_attempts": 3, "timeout_secs": 0.3, "backoff_base_ms": 10, "backoff_max_ms": 20}
    }))
    .unwrap();
    let c = s.build(None).unwrap();
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    // The late answer (no issues) was never used: the retry read all three.
    assert_eq!(sink.count("finding"), 3);
    assert_eq!(c.http_stats().unwrap().retries, 1);
}
