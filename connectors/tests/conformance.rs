//! Conformance on the real third-party payloads in `$SECMETRICS_FIXTURES`
//! (CI sets it to `../shared/fixtures`). Without it these tests print that
//! they were skipped, and why, and pass.
//!
//! Expected values are computed here independently of the reader, from the
//! files parsed as plain `serde_json::Value`s.

use crate::support::*;
use secmetrics_connectors::github::code_scanning::GithubCodeScanning;
use secmetrics_connectors::github::secret_scanning::GithubSecretScanning;
use secmetrics_connectors::github::GithubSettings;
use secmetrics_connectors::http::next_link;
use secmetrics_connectors::sarif::{import_file, FindingContext, SuppressionPolicy};
use secmetrics_connectors::{Connector, Environment, Record, SyncMode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
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

/// The rule object a result points at, resolved from the raw JSON.
fn rule_of<'a>(run: &'a Value, r: &'a Value) -> Option<&'a Value> {
    let tool = &run["tool"];
    let id = r["ruleId"].as_str().or(r["rule"]["id"].as_str());
    let idx = r["rule"]["index"]
        .as_i64()
        .or(r["ruleIndex"].as_i64())
        .filter(|i| *i >= 0);
    let comp = &r["rule"]["toolComponent"];
    let find_id = |rules: &'a Value| {
        rules
            .as_array()
            .and_then(|rs| rs.iter().find(|x| x["id"].as_str() == id))
    };
    if let Some(ci) = comp["index"].as_i64() {
        let rules = &tool["extensions"][ci as usize]["rules"];
        if let Some(rule) = idx.and_then(|i| rules.get(i as usize)) {
            return Some(rule);
        }
        if let Some(rule) = find_id(rules) {
            return Some(rule);
        }
    }
    // An index that points at a rule of another id is wrong (gosec 2.11
    // writes such indexes): the id decides.
    if let Some(rule) = idx.and_then(|i| tool["driver"]["rules"].get(i as usize)) {
        if id.is_none() || rule["id"].as_str().is_none() || rule["id"].as_str() == id {
            return Some(rule);
        }
    }
    find_id(&tool["driver"]["rules"]).or_else(|| {
        tool["extensions"]
            .as_array()
            .and_then(|es| es.iter().find_map(|e| find_id(&e["rules"])))
    })
}

fn score(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn label(v: &Value) -> Option<&'static str> {
    match v.as_str()?.to_ascii_lowercase().as_str() {
        "critical" => Some("critical"),
        "high" => Some("high"),
        "medium" | "moderate" => Some("medium"),
        "low" => Some("low"),
        "info" | "informational" | "information" | "none" | "negligible" => Some("info"),
        _ => None,
    }
}

fn banded(s: f64) -> &'static str {
    match s {
        s if s >= 9.0 => "critical",
        s if s >= 7.0 => "high",
        s if s >= 4.0 => "medium",
        s if s > 0.0 => "low",
        _ => "info",
    }
}

/// The severity by the order the SARIF reader documents: `security-severity`
/// (score or label), then the tools' own properties, then the level.
fn expected_severity(run: &Value, r: &Value) -> &'static str {
    if r["kind"].as_str().is_some_and(|k| k != "fail") {
        return "info";
    }
    let rule = rule_of(run, r);
    let rp = |k: &str| rule.map(|x| &x["properties"][k]).unwrap_or(&Value::Null);
    let standard = |v: &Value| match v.as_str() {
        Some(t) if t.trim().parse::<f64>().is_err() => label(v),
        _ => score(v).map(banded),
    };
    if let Some(s) = standard(&r["properties"]["security-severity"])
        .or_else(|| standard(rp("security-severity")))
    {
        return s;
    }
    if let Some(s) = label(&r["properties"]["issue_severity"])
        .or_else(|| label(rp("issue_severity")))
        .or_else(|| label(rp("cvssv3_baseSeverity")))
        .or_else(|| score(rp("cvssv3_baseScore")).map(banded))
        .or_else(|| label(rp("cvssv2_severity")))
        .or_else(|| {
            score(rp("cvssv2_score")).map(|s| match banded(s) {
                "critical" => "high",
                other => other,
            })
        })
        .or_else(|| {
            rp("tags").as_array().and_then(|tags| {
                tags.iter().find_map(|t| {
                    let t = t.as_str()?;
                    (t.chars().all(|c| c.is_ascii_uppercase()) && t != "NONE")
                        .then(|| label(&Value::String(t.into())))
                        .flatten()
                })
            })
        })
    {
        return s;
    }
    let level = r["level"]
        .as_str()
        .or_else(|| rule.and_then(|x| x["defaultConfiguration"]["level"].as_str()))
        .unwrap_or("warning");
    match level {
        "error" => "high",
        "warning" => "medium",
        "note" => "low",
        "none" => "info",
        other => panic!("unexpected level {other}"),
    }
}

fn expected_status(r: &Value) -> &'static str {
    if r["baselineState"] == "absent" {
        return "remediated";
    }
    let accepted = r["suppressions"].as_array().and_then(|ss| {
        ss.iter()
            .find(|s| s["status"].is_null() || s["status"] == "accepted")
    });
    match accepted {
        Some(s) if s["kind"] == "inSource" => "closed",
        Some(_) => "risk_accepted",
        None => "open",
    }
}

#[test]
fn every_sarif_fixture_imports_with_its_exact_result_count_and_severities() {
    let Some(dir) = fixtures("sarif conformance") else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("sarif"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sarif"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the eight SARIF fixtures, found {}",
        files.len()
    );
    let ctx = FindingContext {
        source: "import".into(),
        asset: "fixture".into(),
        environment: Environment::Production,
    };
    for path in files {
        let log = load(path.clone());
        let mut want: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let mut snippets = Vec::new();
        let mut total = 0;
        for run in log["runs"].as_array().unwrap() {
            for r in run["results"].as_array().into_iter().flatten() {
                total += 1;
                *want
                    .entry((expected_severity(run, r), expected_status(r)))
                    .or_default() += 1;
                for l in r["locations"].as_array().into_iter().flatten() {
                    if let Some(s) = l["physicalLocation"]["region"]["snippet"]["text"].as_str() {
                        if s.trim().len() >= 6 {
                            snippets.push(s.trim().to_string());
                        }
                    }
                }
            }
        }
        let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut ids = std::collections::BTreeSet::new();
        let mut text = String::new();
        let n = import_file(
            &path,
            &ctx,
            &SuppressionPolicy::default(),
            chrono::Utc::now(),
            |f| {
                *got.entry((f.severity.as_str().into(), f.status.as_str().into()))
                    .or_default() += 1;
                ids.insert(f.id.clone());
                text.push_str(&Record::Finding(f).to_json().to_string());
                Ok::<(), Infallible>(())
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(n as usize, total, "{name}: result count");
        assert_eq!(ids.len(), total, "{name}: every result is its own finding");
        let want: BTreeMap<(String, String), usize> = want
            .into_iter()
            .map(|((a, b), n)| ((a.into(), b.into()), n))
            .collect();
        assert_eq!(got, want, "{name}: (severity, status) counts");
        for s in snippets {
            assert!(
                !text.contains(&s),
                "{name}: snippet text {s:?} reached a finding"
            );
        }
        println!("{name}: {total} results, {got:?}");
    }
}

#[test]
fn recorded_link_headers_lead_to_the_recorded_next_requests() {
    let Some(dir) = fixtures("link header conformance") else {
        return;
    };
    let rec = load(dir.join("github/pagination-link-headers.recording.json"));
    let gets: Vec<&Value> = rec
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "get")
        .collect();
    assert!(gets.len() >= 2);
    for (i, r) in gets.iter().enumerate() {
        let h = r["rawHeaders"].as_array().unwrap();
        let link = h
            .chunks(2)
            .find(|kv| kv[0].as_str().unwrap().eq_ignore_ascii_case("link"))
            .map(|kv| kv[1].as_str().unwrap());
        let next = link.and_then(next_link);
        match gets.get(i + 1) {
            Some(n) => assert_eq!(
                next.as_deref(),
                Some(format!("https://api.github.com{}", n["path"].as_str().unwrap()).as_str())
            ),
            None => assert_eq!(next, None, "the last page has no next"),
        }
    }
}

fn settings_json(base: &str, kind_extra: Value) -> Value {
    let mut v = json!({"name": "gh", "org": "github", "base_url": base, "rate": 1000.0, "burst": 100, "pages_per_commit": 1,
        "retry": {"max_attempts": 3, "backoff_base_ms": 10, "backoff_max_ms": 20, "secondary_min_wait_secs": 0.2}});
    for (k, x) in kind_extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[tokio::test]
async fn github_fixtures_served_on_loopback_convert_exactly() {
    let Some(dir) = fixtures("github conformance") else {
        return;
    };
    let gh = FakeGithub::start().await;
    let alerts = load(dir.join("github/secret-scanning-alerts.json"));
    let secrets: Vec<String> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["secret"].as_str().map(String::from))
        .collect();
    assert!(!secrets.is_empty(), "the fixture carries plaintext secrets");
    gh.set("secret", alerts.as_array().unwrap().clone());
    gh.set(
        "repos",
        load(dir.join("github/org-repos.json"))
            .as_array()
            .unwrap()
            .clone(),
    );
    // The recorded response headers of the same replay, on every page.
    let hdrs = load(dir.join("github/secret-scanning-alerts.response-headers.json"));
    gh.state.lock().unwrap().page_headers = hdrs["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().to_lowercase(),
                kv[1].as_str().unwrap().to_string(),
            )
        })
        .filter(|(k, _)| k.starts_with("x-ratelimit") || k == "x-github-api-version-selected")
        .collect();
    // The recorded primary rate-limit refusal (403, remaining 0, no reset
    // header) answers the first alerts request once.
    let refusal = load(dir.join("github/error-rate-limit-exceeded-403.json"));
    let rh: Vec<(String, String)> = refusal["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().to_string(),
                kv[1].as_str().unwrap().to_string(),
            )
        })
        .filter(|(k, _)| k.starts_with("x-ratelimit"))
        .collect();
    let rh: Vec<(&str, &str)> = rh.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    gh.script(
        "secret",
        1,
        vec![Scripted::new(403, &rh, &refusal["body"].to_string())],
    );
    let s: GithubSettings = serde_json::from_value(settings_json(&gh.base, json!({}))).unwrap();
    let c = GithubSecretScanning::new(s, None).unwrap();
    let mut sink = MemorySink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let statuses: Vec<u16> = gh.seen().iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![200, 403, 200],
        "repos, refused alerts, retried alerts"
    );

    let Record::SecretAlert(a2) =
        &sink.records[&("secret_alert".into(), "octocat/Hello-World#2".into())]
    else {
        panic!()
    };
    assert_eq!(a2.resolution.map(|r| r.as_str()), Some("false_positive"));
    assert_eq!(
        a2.resolved_at.unwrap().to_rfc3339(),
        "2020-11-07T02:47:13+00:00"
    );
    assert_eq!(a2.opened_at.to_rfc3339(), "2020-11-06T18:48:51+00:00");
    assert!(a2.push_protection_bypassed);
    assert_eq!(a2.validity.as_str(), "active");
    assert_eq!(a2.secret_type.as_deref(), Some("adafruit_io_key"));
    let Record::SecretAlert(a1) =
        &sink.records[&("secret_alert".into(), "octocat/Hello-World#1".into())]
    else {
        panic!()
    };
    assert_eq!((a1.resolution, a1.resolved_at), (None, None));
    assert_eq!(a1.validity.as_str(), "unknown");
    assert!(!a1.push_protection_bypassed);
    let Record::Repo(r) = &sink.records[&("repo".into(), "octocat/Hello-World".into())] else {
        panic!()
    };
    assert_eq!(
        (r.secret_scanning, r.push_protection, r.in_scope),
        (Some(true), Some(false), true)
    );
    let all = format!(
        "{:?}{}",
        sink.pages,
        sink.cursor.clone().unwrap_or_default()
    );
    for s in &secrets {
        assert!(
            !all.contains(s.as_str()),
            "a fixture secret reached the records"
        );
    }
}

#[tokio::test]
async fn code_scanning_fixtures_served_on_loopback_convert_exactly() {
    let Some(dir) = fixtures("code scanning conformance") else {
        return;
    };
    let gh = FakeGithub::start().await;
    let org = load(dir.join("github/code-scanning-alerts.json"));
    // The real repo-level list has no `repository` (the org list adds it).
    let mut real = load(dir.join("github/code-scanning-alerts-repo-real.json"));
    for a in real.as_array_mut().unwrap() {
        a["repository"] = json!({"full_name": "matt-davis27/PyGithub"});
    }
    let mut items = org.as_array().unwrap().clone();
    items.extend(real.as_array().unwrap().iter().cloned());
    let n_real = real.as_array().unwrap().len();
    let n_fixed = real
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "fixed")
        .count();
    gh.set("code", items);
    let s: GithubSettings = serde_json::from_value(settings_json(&gh.base, json!({}))).unwrap();
    let c = GithubCodeScanning::new(s, None).unwrap();
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out.skipped, 0);
    assert_eq!(sink.count("finding"), 2 + n_real);
    let f = |id: &str| match &sink.records[&("finding".to_string(), id.to_string())] {
        Record::Finding(f) => f.clone(),
        _ => unreachable!(),
    };
    // The org example: #4 open (rule severity error → high), #3 dismissed
    // as "false positive".
    let open = f("octocat/Hello-World#4");
    assert_eq!(
        (open.severity.as_str(), open.status.as_str()),
        ("high", "open")
    );
    let dismissed = f("octocat/Hello-World#3");
    assert_eq!(
        (dismissed.status.as_str(), dismissed.validity.as_str()),
        ("closed", "false_positive")
    );
    assert_eq!(
        dismissed.resolved_at.map(|t| t.to_rfc3339()),
        org[1]["dismissed_at"]
            .as_str()
            .map(|t| chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .to_utc()
                .to_rfc3339())
    );
    // The real CodeQL alerts: security_severity_level medium; fixed ones
    // remediated at fixed_at.
    let mut fixed = 0;
    for a in real.as_array().unwrap() {
        let id = format!("matt-davis27/PyGithub#{}", a["number"]);
        let g = f(&id);
        assert_eq!(g.severity.as_str(), "medium", "{id}");
        if a["state"] == "fixed" {
            fixed += 1;
            assert_eq!(g.status.as_str(), "remediated");
            assert_eq!(
                g.resolved_at.unwrap(),
                chrono::DateTime::parse_from_rfc3339(a["fixed_at"].as_str().unwrap()).unwrap()
            );
        } else {
            assert_eq!((g.status.as_str(), g.resolved_at), ("open", None));
        }
    }
    assert_eq!(fixed, n_fixed);
}

#[tokio::test]
async fn the_sarif_connector_reads_the_fixture_folder_whole() {
    let Some(dir) = fixtures("sarif connector conformance") else {
        return;
    };
    let folder = dir.join("sarif");
    let mut total = 0;
    let mut files = 0;
    for e in std::fs::read_dir(&folder).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sarif") {
            files += 1;
            for run in load(p)["runs"].as_array().unwrap() {
                total += run["results"].as_array().map_or(0, Vec::len);
            }
        }
    }
    let s: secmetrics_connectors::ConnectorSettings = serde_json::from_value(json!({
        "kind": "sarif", "name": "sast", "paths": [folder.display().to_string()],
        "default_asset": "fixtures", "page_size": 10
    }))
    .unwrap();
    let c = s.build(None).unwrap();
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.requests, out.skipped), (files, 0));
    assert_eq!(sink.count("finding"), total);
    // Read again: every file is known, nothing is read or written.
    let pages = sink.pages.len();
    let out = c
        .sync(sink.cursor.clone(), SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.requests, sink.pages.len()), (0, pages));
}

#[tokio::test]
async fn the_real_repository_level_code_scanning_list_converts_without_repository() {
    let Some(dir) = fixtures("repository-level code scanning conformance") else {
        return;
    };
    let gh = FakeGithub::start().await;
    let real = load(dir.join("github/code-scanning-alerts-repo-real.json"));
    let items = real.as_array().unwrap().clone();
    assert!(items.iter().all(|a| a.get("repository").is_none()));
    gh.set("code:matt-davis27/PyGithub", items.clone());
    let mut v = settings_json(&gh.base, json!({"repos": ["matt-davis27/PyGithub"]}));
    v.as_object_mut().unwrap().remove("org");
    let s: GithubSettings = serde_json::from_value(v).unwrap();
    let c = GithubCodeScanning::new(s, None).unwrap();
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.unreadable, out.skipped), (0, 0));
    assert_eq!(sink.count("finding"), items.len());
    for a in &items {
        let id = format!("matt-davis27/PyGithub#{}", a["number"]);
        let Record::Finding(f) = &sink.records[&("finding".to_string(), id.clone())] else {
            unreachable!()
        };
        assert_eq!(f.url.as_deref(), a["html_url"].as_str(), "{id}");
        let loc = &a["most_recent_instance"]["location"];
        assert_eq!(
            f.fingerprint,
            secmetrics_connectors::fingerprint::location_fingerprint(
                a["tool"]["name"].as_str().unwrap(),
                a["rule"]["id"].as_str().unwrap(),
                loc["path"].as_str().unwrap(),
                loc["start_line"].as_u64()
            ),
            "{id}"
        );
    }
}
