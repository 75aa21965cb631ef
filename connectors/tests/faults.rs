//! Regressions found by the fault soak (`soak.rs`) and the fuzz targets
//! (`fuzz/`), each pinned down on its own.

use crate::support::fake_jira::*;
use crate::support::fake_pagerduty::*;
use crate::support::*;
use chrono::{Duration as CDuration, SecondsFormat, Utc};
use secmetrics_connectors::github::{parse_page, GithubSettings, ListKind};
use secmetrics_connectors::jira::convert::{Context, FieldIds, Outcome};
use secmetrics_connectors::jira::mapping::MappingSettings;
use secmetrics_connectors::jira::{parse_search_page, JiraSettings};
use secmetrics_connectors::pagerduty::{PagerdutyConnector, PagerdutySettings};
use secmetrics_connectors::{Connector, Record, SyncMode};
use secrecy::SecretString;
use serde_json::json;

/// What a gateway may answer with `200`: JSON, but no page.
const GATEWAY: &str = r#"{"message":"upstream temporarily unavailable"}"#;

fn retry() -> serde_json::Value {
    json!({"max_attempts": 2, "timeout_secs": 5.0, "backoff_base_ms": 5, "backoff_max_ms": 10,
           "secondary_min_wait_secs": 0.05, "max_wait_secs": 5.0})
}

fn pagerduty(pd: &FakePagerduty) -> PagerdutyConnector {
    let s: PagerdutySettings = serde_json::from_value(json!({
        "name": "pagerduty", "base_url": pd.base, "rate": 1000.0, "burst": 100,
        "lookback_days": 30, "retry": retry()
    }))
    .unwrap();
    s.build(Some(SecretString::from("pd-key"))).unwrap()
}

fn ago(hours: i64) -> String {
    (Utc::now() - CDuration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn a_pagerduty_incidents_answer_without_a_page_fails_the_pass_instead_of_ending_the_window() {
    let pd = FakePagerduty::start().await;
    pd.with(|s| {
        s.incidents = vec![incident("P1", &ago(48), "triggered", json!({}))];
        s.script.insert(
            "/incidents".into(),
            vec![Scripted::new(200, &[], GATEWAY)].into(),
        );
    });
    let c = pagerduty(&pd);
    let mut sink = MemorySink::default();
    let e = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("pagerduty: GET /incidents: the answer is not what PagerDuty sends"),
        "{e}"
    );
    assert!(e.contains("missing field `incidents`"), "{e}");
    assert!(
        sink.pages.is_empty(),
        "a page was committed: {:?}",
        sink.pages
    );
    // The next pass reads the window the failed one could not.
    c.sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.count("incident"), 1);
}

#[tokio::test]
async fn a_pagerduty_log_answer_without_entries_fails_the_pass_instead_of_losing_the_triage() {
    let pd = FakePagerduty::start().await;
    let (created, acked, resolved) = (ago(30), ago(29), ago(28));
    pd.with(|s| {
        s.incidents = vec![incident(
            "P1",
            &created,
            "resolved",
            json!({"resolved_at": resolved, "last_status_change_at": resolved}),
        )];
        s.log_entries.insert(
            "P1".into(),
            vec![log_entry("acknowledge_log_entry", &acked, "user_reference")],
        );
        s.script.insert(
            "/incidents/P1/log_entries".into(),
            vec![Scripted::new(200, &[], "{}")].into(),
        );
    });
    let c = pagerduty(&pd);
    let mut sink = MemorySink::default();
    let e = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "pagerduty: GET /incidents/P1/log_entries: the answer is not what PagerDuty sends"
        ),
        "{e}"
    );
    assert!(sink.records.is_empty());
    c.sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let Some(Record::Incident(i)) = sink.records.values().next() else {
        panic!("no incident: {:?}", sink.records)
    };
    assert_eq!(
        i.triaged_at
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        Some(acked)
    );
}

#[tokio::test]
async fn a_jira_search_answer_without_issues_fails_the_pass_instead_of_ending_it() {
    let j = FakeJira::start(true).await;
    j.set_issues(vec![issue(
        "SEC-1",
        "2026-03-01T00:00:00.000+0000",
        "2026-03-02T00:00:00.000+0000",
        json!({}),
    )]);
    j.script(
        "/rest/api/3/search/jql",
        vec![Scripted::new(200, &[], GATEWAY)],
    );
    let s: JiraSettings = serde_json::from_value(json!({
        "name": "jira", "base_url": j.base, "rate": 1000.0, "burst": 100, "retry": retry(),
        "mappings": [{"record": "finding", "jql": "project = SEC", "asset": "unassigned"}]
    }))
    .unwrap();
    let c = s.build(Some(SecretString::from("jira-token"))).unwrap();
    let mut sink = MemorySink::default();
    let e = c
        .sync(None, SyncMode::Full, &mut sink)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("jira: GET /rest/api/3/search/jql: the answer is not what Jira sends"),
        "{e}"
    );
    assert!(e.contains("missing field `issues`"), "{e}");
    // Had it read as an empty last page, a full pass would have ended
    // "ok" and marked every record gone.
    assert!(sink.pages.is_empty());
    c.sync(None, SyncMode::Full, &mut sink).await.unwrap();
    assert_eq!(sink.count("finding"), 1);
}

#[test]
fn an_empty_id_key_or_full_name_is_no_identity_and_the_item_is_skipped() {
    // Found by the `pagerduty_page` fuzz target: a record with an empty id
    // was kept, and its export did not import ("must not be empty").
    let pd = PagerdutySettings::build(
        serde_json::from_value(json!({"name": "pagerduty"})).unwrap(),
        None,
    )
    .unwrap();
    let page = br#"{"incidents": [{"id": "", "created_at": "2026-06-01T10:00:00Z", "status": "triggered"},
                                  {"id": "P2", "created_at": "2026-06-01T11:00:00Z", "status": "triggered"}],
                    "more": false}"#;
    let items = pd.parse_incidents_page(page).unwrap();
    assert_eq!(
        items[0].as_ref().unwrap_err(),
        "incident ?: field `id` is missing or empty"
    );
    assert_eq!(items[1].as_ref().unwrap().id, "P2");

    let m = serde_json::from_value::<MappingSettings>(
        json!({"record": "finding", "jql": "project = SEC", "asset": "unassigned"}),
    )
    .unwrap()
    .validate()
    .unwrap();
    let fields = FieldIds::default();
    let ctx = Context {
        source: "jira",
        base_url: "https://acme.atlassian.net",
        fields: &fields,
    };
    let body = json!({"issues": [issue("", "2026-03-01T00:00:00.000+0000", "2026-03-02T00:00:00.000+0000", json!({}))],
                      "isLast": true});
    let out = parse_search_page(&m, &ctx, body.to_string().as_bytes()).unwrap();
    match &out[0] {
        Outcome::Problem(p) => assert_eq!(
            (p.field.as_str(), p.message.as_str()),
            ("issue", "an issue without `key`")
        ),
        other => panic!("{other:?}"),
    }

    let gh: GithubSettings = serde_json::from_value(json!({"name": "gh", "org": "acme"})).unwrap();
    let repos = json!([
        repo("", "2026-01-01T00:00:00Z", Some(true)),
        repo("acme/api", "2026-01-01T00:00:00Z", Some(true))
    ]);
    let out = parse_page(&gh, ListKind::Repos, None, repos.to_string().as_bytes()).unwrap();
    assert_eq!(
        out[0].as_ref().unwrap_err(),
        "`full_name` is missing or empty"
    );
    assert_eq!(out[1].as_ref().unwrap().id(), "acme/api");
}
