//! GitHub connectors against a GitHub played on loopback: pagination,
//! rate limits, resumption, quota, secret hygiene and conditional requests.

use crate::support::*;
use secmetrics_connectors::github::code_scanning::GithubCodeScanning;
use secmetrics_connectors::github::secret_scanning::GithubSecretScanning;
use secmetrics_connectors::github::GithubCursor;
use secmetrics_connectors::github::GithubSettings;
use secmetrics_connectors::{Connector, Record, SecretValidity, SyncMode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "ghp_TestTokenThatMustNeverBeLogged0001";

fn fast_retry() -> Value {
    json!({"max_attempts": 4, "timeout_secs": 5.0, "backoff_base_ms": 10, "backoff_max_ms": 50,
           "secondary_min_wait_secs": 0.3, "max_wait_secs": 10.0})
}

fn secret_connector(gh: &FakeGithub, extra: Value) -> GithubSecretScanning {
    let mut v = json!({"name": "gh-secrets", "org": "acme", "base_url": gh.base, "rate": 1000.0, "burst": 100,
                       "per_page": 2, "pages_per_commit": 1, "retry": fast_retry()});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    let s: GithubSettings = serde_json::from_value(v).unwrap();
    GithubSecretScanning::new(s, Some(SecretString::from(TOKEN))).unwrap()
}

fn code_connector(gh: &FakeGithub) -> GithubCodeScanning {
    let s: GithubSettings = serde_json::from_value(json!({
        "name": "gh-code", "org": "acme", "base_url": gh.base, "rate": 1000.0, "burst": 100,
        "per_page": 2, "pages_per_commit": 1, "retry": fast_retry(), "assets": {"acme/web": "web-shop"},
        "environments": {"acme/tools": "non_production"}
    }))
    .unwrap();
    GithubCodeScanning::new(s, Some(SecretString::from(TOKEN))).unwrap()
}

fn alerts(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            secret_alert(
                100 - i as u64,
                "acme/web",
                &updated_desc(i),
                &format!("ghp_leak{i:04}"),
            )
        })
        .collect()
}

#[tokio::test]
async fn paginated_sync_follows_link_headers_over_several_pages() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(7));
    gh.set(
        "repos",
        vec![
            repo("acme/web", &updated_desc(0), Some(true)),
            repo("acme/api", &updated_desc(1), None),
            repo("acme/old", &updated_desc(2), Some(false)),
        ],
    );
    let c = secret_connector(&gh, json!({}));
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    // repos: 2 pages of 2; alerts: 4 pages of 2.
    assert_eq!((out.pages, out.requests), (6, 6));
    assert_eq!(sink.count("secret_alert"), 7);
    assert_eq!(sink.count("repo"), 3);
    let seen = gh.seen();
    let pages: Vec<(String, u32)> = seen.iter().map(|s| (s.list.clone(), s.page)).collect();
    assert_eq!(
        pages,
        [
            ("repos", 1),
            ("repos", 2),
            ("secret", 1),
            ("secret", 2),
            ("secret", 3),
            ("secret", 4)
        ]
        .map(|(l, p)| (l.to_string(), p))
    );
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(s.accept.as_deref(), Some("application/vnd.github+json"));
        assert_eq!(s.api_version.as_deref(), Some("2022-11-28"));
        if s.list == "secret" {
            assert!(s.query.contains("hide_secret=true"), "{}", s.query);
            assert!(
                s.query.contains("sort=updated&direction=desc"),
                "{}",
                s.query
            );
        } else {
            assert!(s.query.contains("type=all"), "{}", s.query);
        }
    }
    // Coverage: enabled, unknown (no security_and_analysis) and disabled.
    let repo_of = |id: &str| match &sink.records[&("repo".to_string(), id.to_string())] {
        Record::Repo(r) => r.clone(),
        _ => unreachable!(),
    };
    assert_eq!(repo_of("acme/web").secret_scanning, Some(true));
    assert_eq!(repo_of("acme/api").secret_scanning, None);
    assert_eq!(
        repo_of("acme/api").extra.0["security_and_analysis"],
        "unknown"
    );
    assert_eq!(repo_of("acme/old").secret_scanning, Some(false));
    let Record::SecretAlert(a) =
        &sink.records[&("secret_alert".to_string(), "acme/web#100".to_string())]
    else {
        unreachable!()
    };
    assert_eq!(a.validity, SecretValidity::Active);
    assert_eq!(a.source, "gh-secrets");
    let cursor: GithubCursor = serde_json::from_str(sink.cursor.as_deref().unwrap()).unwrap();
    let ep = &cursor.endpoints["secret_scanning_alerts"];
    assert!(ep.resume.is_none());
    assert_eq!(ep.watermark.as_deref(), Some("2026-06-01T00:00:00Z"));
    assert!(ep.etag.is_some());
}

#[tokio::test]
async fn rate_limit_403_with_reset_and_429_with_retry_after_are_waited_out() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(6));
    let reset = chrono::Utc::now().timestamp() + 1;
    let reset_s = reset.to_string();
    gh.script(
        "secret",
        2,
        vec![Scripted::new(
            403,
            &[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-used", "5000"),
                ("x-ratelimit-reset", &reset_s),
                ("x-ratelimit-resource", "core"),
            ],
            r#"{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api","status":"403"}"#,
        )],
    );
    gh.script(
        "secret",
        3,
        vec![Scripted::new(
            429,
            &[("retry-after", "1")],
            r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","status":"429"}"#,
        )],
    );
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.count("secret_alert"), 6);
    let seen = gh.seen();
    let statuses: Vec<(u32, u16)> = seen.iter().map(|s| (s.page, s.status)).collect();
    assert_eq!(
        statuses,
        vec![(1, 200), (2, 403), (2, 200), (3, 429), (3, 200)]
    );
    // The retry after the 403 came no earlier than the reset second.
    let wall = |i: Instant| chrono::Utc::now() - chrono::Duration::from_std(i.elapsed()).unwrap();
    assert!(
        wall(seen[2].at).timestamp() >= reset,
        "retried before x-ratelimit-reset"
    );
    // The retry after the 429 waited Retry-After (1 s).
    assert!(seen[4].at - seen[3].at >= Duration::from_millis(990));
    let stats = c.api().http().stats().snapshot();
    assert_eq!(
        (stats.rate_limit_waits, stats.retries, stats.requests),
        (2, 2, 5)
    );
}

#[tokio::test]
async fn secondary_limit_403_without_headers_waits_the_minimum_then_continues() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(2));
    gh.script(
        "secret",
        1,
        vec![Scripted::new(
            403,
            &[],
            r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0680:6A2A.","documentation_url":"https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits","status":"403"}"#,
        )],
    );
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let seen = gh.seen();
    assert_eq!(seen.len(), 2);
    // secondary_min_wait_secs is 0.3 in these settings (60 s by default).
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(290));
    assert_eq!(sink.count("secret_alert"), 2);
}

#[tokio::test]
async fn bad_gateway_mid_pagination_then_restart_resumes_with_none_missing_or_twice() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(9));
    // Page 3 fails on every attempt of the first pass (4 attempts).
    let bad = Scripted::new(502, &[], "<html>502 Bad Gateway</html>");
    gh.script(
        "secret",
        3,
        vec![bad.clone(), bad.clone(), bad.clone(), bad],
    );
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let mut sink = MemorySink::default();
    let err = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("gh-secrets: GET /orgs/acme/secret-scanning/alerts: HTTP 502"),
        "{text}"
    );
    assert!(text.contains("after 4 attempts"), "{text}");
    assert!(
        !text.contains(TOKEN) && !text.contains("hide_secret"),
        "{text}"
    );
    assert_eq!(
        sink.count("secret_alert"),
        4,
        "pages 1 and 2 were committed"
    );
    // Restart from the committed cursor: it names page 3.
    gh.clear_seen();
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let pages: Vec<u32> = gh.seen().iter().map(|s| s.page).collect();
    assert_eq!(pages, vec![3, 4, 5]);
    assert_eq!(out.pages, 3);
    assert_eq!(sink.count("secret_alert"), 9);
    assert!(
        sink.times.values().all(|n| *n == 1),
        "a record was committed twice: {:?}",
        sink.times
    );
}

#[tokio::test]
async fn configured_quota_is_never_exceeded() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(16));
    let (rate, burst) = (8.0, 2u32);
    let c = secret_connector(
        &gh,
        json!({"coverage": {"enabled": false}, "per_page": 1, "rate": rate, "burst": burst}),
    );
    let mut sink = MemorySink::default();
    let t0 = Instant::now();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let elapsed = t0.elapsed();
    let at: Vec<Instant> = gh.seen().iter().map(|s| s.at).collect();
    assert_eq!(at.len(), 16);
    // In any closed one-second window a GCRA quota admits at most
    // rate + burst requests.
    let max_in_window = at
        .iter()
        .map(|start| {
            at.iter()
                .filter(|t| **t >= *start && **t - *start <= Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        max_in_window <= rate as usize + burst as usize,
        "{max_in_window} requests in one second"
    );
    // And the quota did pace: 16 requests, 2 at once, then 8 per second.
    assert!(
        elapsed >= Duration::from_secs_f64((16.0 - burst as f64) / rate - 0.05),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn secret_values_appear_nowhere_in_records_cursor_or_logs() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let gh = FakeGithub::start().await;
    let secret = "ghp_R3alLeakedCredentialValue9876543210";
    let mut items = alerts(3);
    for a in &mut items {
        a["secret"] = Value::String(secret.into());
    }
    // One malformed alert is skipped and logged: its secret must not be.
    let mut broken = secret_alert(1, "acme/web", &updated_desc(5), secret);
    broken["created_at"] = json!("not a time");
    items.push(broken);
    gh.set("secret", items);
    // A retried page, so the retry path logs too.
    gh.script(
        "secret",
        1,
        vec![Scripted::new(500, &[], "{\"message\":\"Server Error\"}")],
    );
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((sink.count("secret_alert"), out.skipped), (3, 1));
    let committed = format!("{:?}", sink.pages);
    let json_out: Vec<String> = sink.all().iter().map(|r| r.to_json().to_string()).collect();
    let log_text = logs.text();
    assert!(log_text.contains("item skipped"), "the skip was logged");
    for hay in [
        &committed,
        &json_out.join("\n"),
        sink.cursor.as_ref().unwrap(),
        &log_text,
    ] {
        assert!(!hay.contains(secret), "secret found");
        assert!(!hay.contains(TOKEN), "token found");
    }
    assert!(!format!("{c:?}").contains(TOKEN));
}

#[tokio::test]
async fn second_sync_with_nothing_changed_costs_one_request_per_endpoint_and_commits_nothing() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(5));
    gh.set(
        "repos",
        vec![repo("acme/web", &updated_desc(0), Some(true))],
    );
    gh.set(
        "code",
        (0..5)
            .map(|i| code_alert(50 - i as u64, "acme/web", &updated_desc(i)))
            .collect(),
    );
    let secrets = secret_connector(&gh, json!({}));
    let code = code_connector(&gh);
    let mut s1 = MemorySink::default();
    let mut s2 = MemorySink::default();
    secrets
        .sync(None, SyncMode::Incremental, &mut s1)
        .await
        .unwrap();
    code.sync(None, SyncMode::Incremental, &mut s2)
        .await
        .unwrap();
    let (p1, p2) = (s1.pages.len(), s2.pages.len());
    gh.clear_seen();
    let o1 = secrets
        .sync(s1.cursor.clone(), SyncMode::Incremental, &mut s1)
        .await
        .unwrap();
    let o2 = code
        .sync(s2.cursor.clone(), SyncMode::Incremental, &mut s2)
        .await
        .unwrap();
    let seen = gh.seen();
    assert_eq!(
        seen.len(),
        3,
        "repos, secret alerts, code alerts: one request each"
    );
    assert!(seen
        .iter()
        .all(|s| s.status == 304 && s.if_none_match.is_some()));
    assert_eq!((o1.pages, o2.pages), (0, 0));
    assert_eq!(
        (s1.pages.len(), s2.pages.len()),
        (p1, p2),
        "nothing committed"
    );

    // One alert changes: it moves to the front. The pass reads until the
    // first item older than the watermark (page 2 here) and commits only
    // the changed alert.
    let mut items = alerts(5);
    items.insert(
        0,
        secret_alert(200, "acme/api", "2026-06-02T00:00:00Z", "ghp_new"),
    );
    gh.set("secret", items);
    gh.clear_seen();
    let before = s1.pages.len();
    let o = secrets
        .sync(s1.cursor.clone(), SyncMode::Incremental, &mut s1)
        .await
        .unwrap();
    let pages: Vec<(String, u32, u16)> = gh
        .seen()
        .iter()
        .map(|s| (s.list.clone(), s.page, s.status))
        .collect();
    assert_eq!(
        pages,
        vec![
            ("repos".to_string(), 1, 304),
            ("secret".to_string(), 1, 200),
            ("secret".to_string(), 2, 200)
        ]
    );
    assert_eq!(o.pages, 2);
    let new: Vec<&str> = s1.pages[before..]
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.id()))
        .collect();
    assert_eq!(new, vec!["acme/api#200"]);

    // A full pass ignores ETags and watermark and reads everything again.
    gh.clear_seen();
    let o = secrets
        .sync(s1.cursor.clone(), SyncMode::Full, &mut s1)
        .await
        .unwrap();
    assert!(gh
        .seen()
        .iter()
        .all(|s| s.if_none_match.is_none() && s.status == 200));
    assert_eq!(
        o.committed.inserted + o.committed.unchanged + o.committed.replaced,
        7
    );
}

#[tokio::test]
async fn code_scanning_alerts_map_asset_environment_and_severity() {
    let gh = FakeGithub::start().await;
    let mut fixed = code_alert(2, "acme/tools", &updated_desc(0));
    fixed["state"] = json!("fixed");
    fixed["fixed_at"] = json!("2026-05-31T23:00:00Z");
    fixed["rule"]["security_severity_level"] = Value::Null;
    fixed["rule"]["severity"] = json!("note");
    gh.set(
        "code",
        vec![fixed, code_alert(1, "acme/web", &updated_desc(1))],
    );
    let c = code_connector(&gh);
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let f = |id: &str| match &sink.records[&("finding".to_string(), id.to_string())] {
        Record::Finding(f) => f.clone(),
        _ => unreachable!(),
    };
    let web = f("acme/web#1");
    assert_eq!(web.asset, "web-shop");
    assert_eq!(web.severity.as_str(), "high");
    assert_eq!(web.environment.as_str(), "production");
    assert_eq!(
        web.url.as_deref(),
        Some("https://github.com/acme/web/security/code-scanning/1")
    );
    let tools = f("acme/tools#2");
    assert_eq!(
        tools.asset, "acme/tools",
        "unmapped repos keep their name as asset"
    );
    assert_eq!(tools.environment.as_str(), "non_production");
    assert_eq!(
        (tools.severity.as_str(), tools.status.as_str()),
        ("low", "remediated")
    );
    assert_eq!(
        tools.resolved_at.unwrap().to_rfc3339(),
        "2026-05-31T23:00:00+00:00"
    );
}

#[tokio::test]
async fn link_to_another_host_is_not_followed() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(4));
    gh.state.lock().unwrap().foreign_link = true;
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let mut sink = MemorySink::default();
    let err = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("points away from the configured base URL"),
        "{err}"
    );
    assert_eq!(gh.seen().len(), 1);
}

#[tokio::test]
async fn errors_name_connector_method_path_and_status_never_token_or_query() {
    let gh = FakeGithub::start().await;
    gh.script(
        "secret",
        1,
        vec![Scripted::new(
            403,
            &[("x-ratelimit-remaining", "4999")],
            r#"{"message":"Resource not accessible by personal access token","documentation_url":"https://docs.github.com/rest/secret-scanning/secret-scanning#list-secret-scanning-alerts-for-an-organization","status":"403"}"#,
        )],
    );
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let err = c
        .sync(None, SyncMode::Incremental, &mut MemorySink::default())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "gh-secrets: GET /orgs/acme/secret-scanning/alerts: HTTP 403: Resource not accessible by personal access token"
    );
    assert_eq!(gh.seen().len(), 1, "a plain 403 is not retried");
}

#[tokio::test]
async fn a_timed_out_request_is_retried() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(2));
    gh.script(
        "secret",
        1,
        vec![Scripted::new(200, &[], "[]").delayed(1500)],
    );
    let mut retry = fast_retry();
    retry["timeout_secs"] = json!(0.4);
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}, "retry": retry}));
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.count("secret_alert"), 2);
    assert_eq!(c.api().http().stats().snapshot().retries, 1);
}

#[tokio::test]
async fn a_reset_connection_is_retried_and_a_persistent_one_fails_naming_the_path() {
    let (base, accepted) = flaky_server(2, "[]").await;
    let s: GithubSettings = serde_json::from_value(json!({
        "name": "gh-secrets", "org": "acme", "base_url": base, "rate": 1000.0, "burst": 100,
        "coverage": {"enabled": false}, "retry": fast_retry()
    }))
    .unwrap();
    let c = GithubSecretScanning::new(s, Some(SecretString::from(TOKEN))).unwrap();
    let out = c
        .sync(None, SyncMode::Incremental, &mut MemorySink::default())
        .await
        .unwrap();
    assert_eq!(out.pages, 1);
    assert_eq!(*accepted.lock().unwrap(), 3, "two resets, then the answer");

    let (base, _) = flaky_server(100, "[]").await;
    let s: GithubSettings = serde_json::from_value(json!({
        "name": "gh-secrets", "org": "acme", "base_url": base, "rate": 1000.0, "burst": 100,
        "coverage": {"enabled": false}, "retry": fast_retry()
    }))
    .unwrap();
    let c = GithubSecretScanning::new(s, Some(SecretString::from(TOKEN))).unwrap();
    let err = c
        .sync(None, SyncMode::Incremental, &mut MemorySink::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("gh-secrets: GET /orgs/acme/secret-scanning/alerts: "),
        "{err}"
    );
    assert!(err.ends_with("(after 4 attempts)"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains("per_page"), "{err}");
}

#[tokio::test]
async fn a_rate_limit_wait_longer_than_allowed_fails_at_once() {
    let gh = FakeGithub::start().await;
    gh.script(
        "secret",
        1,
        vec![Scripted::new(429, &[("retry-after", "3600")], "{}")],
    );
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let t = Instant::now();
    let err = c
        .sync(None, SyncMode::Incremental, &mut MemorySink::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err,
        "gh-secrets: GET /orgs/acme/secret-scanning/alerts: HTTP 429: rate limited for 3600 s, longer than the allowed wait"
    );
}

#[tokio::test]
async fn a_cancelled_pass_stops_after_the_page_in_flight_and_resumes_later() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(6));
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let mut sink = MemorySink {
        cancel_after: Some(1),
        ..MemorySink::default()
    };
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(out.interrupted);
    assert_eq!((out.pages, gh.seen().len()), (1, 1));
    sink.cancel_after = None;
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(!out.interrupted);
    assert_eq!(sink.count("secret_alert"), 6);
    assert!(sink.times.values().all(|n| *n == 1));
    let stats = c.http_stats().unwrap();
    assert_eq!(stats.requests, 3);
}

#[tokio::test]
async fn several_http_pages_per_commit_resume_after_the_last_committed_one() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(9));
    let bad = Scripted::new(502, &[], "bad gateway");
    gh.script(
        "secret",
        4,
        vec![bad.clone(), bad.clone(), bad.clone(), bad],
    );
    let c = secret_connector(
        &gh,
        json!({"coverage": {"enabled": false}, "pages_per_commit": 2}),
    );
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap_err();
    // Pages 1 and 2 went out in one commit; page 3 was fetched but not
    // committed when page 4 failed.
    assert_eq!((sink.pages.len(), sink.count("secret_alert")), (1, 4));
    gh.clear_seen();
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        gh.seen().iter().map(|s| s.page).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(out.pages, 2);
    assert_eq!(sink.count("secret_alert"), 9);
    assert!(sink.times.values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_spent_quota_on_a_successful_page_is_waited_out_before_the_next_request() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(4));
    let reset = chrono::Utc::now().timestamp() + 1;
    gh.state.lock().unwrap().page_headers = vec![
        ("x-ratelimit-limit".into(), "5000".into()),
        ("x-ratelimit-remaining".into(), "0".into()),
        ("x-ratelimit-reset".into(), reset.to_string()),
    ];
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let seen = gh.seen();
    assert_eq!(
        seen.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![200, 200]
    );
    let wall = |i: Instant| chrono::Utc::now() - chrono::Duration::from_std(i.elapsed()).unwrap();
    assert!(
        wall(seen[1].at).timestamp() >= reset,
        "the second page was asked before the reset"
    );
    assert_eq!(c.api().http().stats().snapshot().rate_limit_waits, 1);
}

/// Cancels once the server has seen `at` requests.
struct CancelAt {
    inner: MemorySink,
    gh: FakeGithub,
    at: usize,
}

impl secmetrics_connectors::PageSink for CancelAt {
    fn commit(
        &mut self,
        page: secmetrics_connectors::Page,
    ) -> Result<secmetrics_connectors::Committed, secmetrics_connectors::SinkError> {
        self.inner.commit(page)
    }
    fn cancelled(&self) -> bool {
        self.gh.seen().len() >= self.at
    }
}

#[tokio::test]
async fn cancelling_with_uncommitted_pages_commits_them_before_stopping() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(10));
    let c = secret_connector(
        &gh,
        json!({"coverage": {"enabled": false}, "pages_per_commit": 3}),
    );
    let mut sink = CancelAt {
        inner: MemorySink::default(),
        gh: gh.clone(),
        at: 2,
    };
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert!(out.interrupted);
    assert_eq!((out.pages, sink.inner.count("secret_alert")), (1, 4));
    gh.clear_seen();
    let mut rest = sink.inner;
    c.sync(rest.cursor.clone(), SyncMode::Incremental, &mut rest)
        .await
        .unwrap();
    assert_eq!(
        gh.seen().iter().map(|s| s.page).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(rest.count("secret_alert"), 10);
    assert!(rest.times.values().all(|n| *n == 1));
}

#[tokio::test]
async fn repo_coverage_is_read_whole_every_pass_with_an_etag_per_page() {
    let gh = FakeGithub::start().await;
    gh.set("secret", alerts(1));
    let repos = |c_scanning: Option<bool>| {
        vec![
            repo("acme/a", &updated_desc(0), Some(true)),
            repo("acme/b", &updated_desc(1), Some(false)),
            repo("acme/c", &updated_desc(2), c_scanning),
        ]
    };
    gh.set("repos", repos(Some(false)));
    let c = secret_connector(&gh, json!({}));
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let seen = gh.seen();
    assert!(seen
        .iter()
        .filter(|s| s.list == "repos")
        .all(|s| s.query.contains("sort=full_name&direction=asc")));
    let list = |gh: &FakeGithub| -> Vec<(String, u32, u16)> {
        gh.seen()
            .iter()
            .map(|s| (s.list.clone(), s.page, s.status))
            .collect()
    };
    let row = |l: &str, p: u32, s: u16| (l.to_string(), p, s);

    // Nothing changed: each repos page answers 304, nothing is committed.
    gh.clear_seen();
    let pages = sink.pages.len();
    let o = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        list(&gh),
        vec![
            row("repos", 1, 304),
            row("repos", 2, 304),
            row("secret", 1, 304)
        ]
    );
    assert_eq!((o.requests, o.pages, sink.pages.len()), (3, 0, pages));

    // Secret scanning is enabled on acme/c (page 2) and its `updated_at`
    // does not move: the next incremental pass sees it.
    gh.set("repos", repos(Some(true)));
    gh.clear_seen();
    let o = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        list(&gh),
        vec![
            row("repos", 1, 304),
            row("repos", 2, 200),
            row("secret", 1, 304)
        ]
    );
    assert_eq!((o.requests, o.pages), (3, 1));
    let new: Vec<&str> = sink.pages[pages..]
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.id()))
        .collect();
    assert_eq!(new, vec!["acme/c"]);
    let Record::Repo(r) = &sink.records[&("repo".to_string(), "acme/c".to_string())] else {
        unreachable!()
    };
    assert_eq!(r.secret_scanning, Some(true));

    // And unchanged again: 304s only.
    gh.clear_seen();
    let o = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        list(&gh),
        vec![
            row("repos", 1, 304),
            row("repos", 2, 304),
            row("secret", 1, 304)
        ]
    );
    assert_eq!(o.pages, 0);

    // A fourth repository fills page 2 (which changes). A page added after
    // a full last page would not change its ETag (only its Link), so the
    // page after it is asked too: empty now, it answers 304 from then on.
    let mut four = repos(Some(true));
    four.push(repo("acme/d", &updated_desc(3), Some(true)));
    gh.set("repos", four.clone());
    gh.clear_seen();
    c.sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        list(&gh),
        vec![
            row("repos", 1, 304),
            row("repos", 2, 200),
            row("repos", 3, 200),
            row("secret", 1, 304)
        ]
    );
    // Unchanged with a full last page: 304s only, nothing written.
    gh.clear_seen();
    let o = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        list(&gh),
        vec![
            row("repos", 1, 304),
            row("repos", 2, 304),
            row("repos", 3, 304),
            row("secret", 1, 304)
        ]
    );
    assert_eq!((o.requests, o.pages), (4, 0));
    // A fifth starts page 3: page 2 answers 304, page 3 brings it.
    let mut five = four;
    five.push(repo("acme/e", &updated_desc(4), Some(false)));
    gh.set("repos", five);
    gh.clear_seen();
    c.sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(
        list(&gh),
        vec![
            row("repos", 1, 304),
            row("repos", 2, 304),
            row("repos", 3, 200),
            row("secret", 1, 304)
        ]
    );
    assert_eq!(sink.count("repo"), 5);
}

fn without_repository(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("repository");
    v
}

#[tokio::test]
async fn repository_level_lists_are_read_per_repo_with_their_own_cursors() {
    let gh = FakeGithub::start().await;
    // acme/web: three alerts on its own list (no `repository` there), and
    // coverage on; acme/old: secret scanning off (its list answers 404).
    gh.set(
        "secret:acme/web",
        (0..3)
            .map(|i| {
                without_repository(secret_alert(
                    10 - i as u64,
                    "acme/web",
                    &updated_desc(i),
                    "ghp_x",
                ))
            })
            .collect(),
    );
    gh.set_missing(
        "secret:acme/old",
        "Secret scanning is disabled on this repository.",
    );
    gh.set_object(
        "repo:acme/web",
        repo("acme/web", "2026-05-01T00:00:00Z", Some(true)),
    );
    gh.set_object(
        "repo:acme/old",
        repo("acme/old", "2026-05-01T00:00:00Z", Some(false)),
    );
    let mut v = json!({"name": "gh-secrets", "repos": ["acme/web", "acme/old"], "base_url": gh.base,
        "rate": 1000.0, "burst": 100, "per_page": 2, "retry": fast_retry(),
        "assets": {"acme/web": "web-shop"}});
    v["coverage"] = json!({"enabled": true});
    let c = GithubSecretScanning::new(
        serde_json::from_value(v).unwrap(),
        Some(SecretString::from(TOKEN)),
    )
    .unwrap();
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    // 2 repo objects, 2 pages of acme/web's alerts, 1 answer 404.
    assert_eq!(out.requests, 5);
    assert_eq!((out.skipped, out.unreadable), (1, 0));
    assert_eq!(sink.count("repo"), 2);
    assert_eq!(sink.count("secret_alert"), 3);
    let ids: Vec<&str> = sink
        .records
        .keys()
        .filter(|(k, _)| k == "secret_alert")
        .map(|(_, id)| id.as_str())
        .collect();
    assert_eq!(ids, vec!["acme/web#10", "acme/web#8", "acme/web#9"]);
    match &sink.records[&("repo".to_string(), "acme/web".to_string())] {
        Record::Repo(r) => {
            assert_eq!(r.asset.as_deref(), Some("web-shop"));
            assert_eq!(r.secret_scanning, Some(true));
        }
        _ => unreachable!(),
    }
    let cursor: GithubCursor = serde_json::from_str(sink.cursor.as_deref().unwrap()).unwrap();
    let keys: Vec<&str> = cursor.endpoints.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "repo:acme/old",
            "repo:acme/web",
            "secret_scanning_alerts:acme/web"
        ]
    );
    // Nothing changed: each repository costs one 304, the list one 304,
    // the disabled one its 404; nothing is written.
    gh.clear_seen();
    let mut again = MemorySink {
        cursor: sink.cursor.clone(),
        ..MemorySink::default()
    };
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut again)
        .await
        .unwrap();
    let statuses: Vec<(String, u16)> = gh
        .seen()
        .iter()
        .map(|s| (s.list.clone(), s.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("repo:acme/web".to_string(), 304),
            ("repo:acme/old".to_string(), 304),
            ("secret:acme/web".to_string(), 304),
            ("secret:acme/old".to_string(), 404),
        ]
    );
    assert_eq!((out.pages, again.all().len()), (0, 0));
}

#[tokio::test]
async fn an_unreadable_alert_makes_the_pass_partial_and_keeps_it_from_hiding_behind_a_304() {
    let gh = FakeGithub::start().await;
    let mut items = alerts(3);
    items[1]["created_at"] = json!("yesterday");
    gh.set("secret", items.clone());
    let c = secret_connector(&gh, json!({"coverage": {"enabled": false}}));
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.unreadable, out.skipped), (1, 1));
    assert!(out.is_partial());
    assert_eq!(
        out.problems,
        vec![
            "secret_scanning_alerts: alert 99: `created_at`: \"yesterday\" is not an RFC 3339 time: premature end of input"
        ]
    );
    assert_eq!(sink.count("secret_alert"), 2);
    // The next pass is not a 304: it reads the list again (the unreadable
    // alert is still unreadable).
    gh.clear_seen();
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(gh.seen()[0].status, 200);
    assert_eq!(out.unreadable, 1);
    // Fixed at the source: read, and the pass is clean.
    items[1]["created_at"] = json!("2026-01-01T00:00:00Z");
    gh.set("secret", items);
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out.unreadable, 0);
    assert_eq!(sink.count("secret_alert"), 3);
    // Now the validators are kept: nothing changed is one 304.
    gh.clear_seen();
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let statuses: Vec<u16> = gh.seen().iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![304]);
    assert_eq!(out.pages, 0);
}

#[tokio::test]
async fn a_code_scanning_alert_and_its_sarif_result_share_a_fingerprint_and_the_alert_keeps_its_url(
) {
    let gh = FakeGithub::start().await;
    gh.set("code", vec![code_alert(4, "acme/web", &updated_desc(0))]);
    let c = code_connector(&gh);
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let Record::Finding(alert) = &sink.records[&("finding".to_string(), "acme/web#4".to_string())]
    else {
        unreachable!()
    };
    assert_eq!(
        alert.url.as_deref(),
        Some("https://github.com/acme/web/security/code-scanning/4")
    );
    // The same result as the CodeQL SARIF upload holds it: a relative URI
    // with a `./`, the rule in an extension, its own partial fingerprint.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("codeql.sarif");
    std::fs::write(
        &p,
        json!({"version": "2.1.0", "runs": [{
            "tool": {"driver": {"name": "CodeQL"}, "extensions": [{"name": "codeql/javascript-queries",
                "rules": [{"id": "js/sql-injection", "properties": {"security-severity": "8.8"}}]}]},
            "results": [{"ruleId": "js/sql-injection", "rule": {"id": "js/sql-injection", "index": 0, "toolComponent": {"index": 0}},
                "message": {"text": "m"}, "partialFingerprints": {"primaryLocationLineHash": "abc:1"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": "./src/db.js", "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": 10, "startColumn": 5}}}]}]}]})
        .to_string(),
    )
    .unwrap();
    let ctx = secmetrics_connectors::sarif::FindingContext {
        source: "sast".into(),
        asset: "web-shop".into(),
        environment: secmetrics_connectors::Environment::Production,
    };
    let mut from_sarif = Vec::new();
    secmetrics_connectors::sarif::import_file(
        &p,
        &ctx,
        &Default::default(),
        chrono::Utc::now(),
        |f| {
            from_sarif.push(f);
            Ok::<(), ()>(())
        },
    )
    .unwrap();
    assert_eq!(from_sarif.len(), 1);
    assert_eq!(alert.asset, from_sarif[0].asset);
    assert!(alert.fingerprint.is_some());
    assert_eq!(alert.fingerprint, from_sarif[0].fingerprint);
}

#[tokio::test]
async fn a_422_names_githubs_error_details_and_is_not_retried() {
    let gh = FakeGithub::start().await;
    gh.script(
        "code",
        1,
        vec![Scripted::new(
            422,
            &[],
            r#"{"message":"Validation Failed","errors":[{"resource":"CodeScanningAlert","field":"tool_name","code":"invalid"}],"documentation_url":"https://docs.github.com/rest","status":"422"}"#,
        )],
    );
    let c = code_connector(&gh);
    let err = c
        .sync(None, SyncMode::Incremental, &mut MemorySink::default())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "gh-code: GET /orgs/acme/code-scanning/alerts: HTTP 422: Validation Failed: [CodeScanningAlert.tool_name: invalid]"
    );
    assert_eq!(gh.seen().len(), 1);
}
