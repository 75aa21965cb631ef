//! Fault soak: hundreds of incremental sync passes of the GitHub (secret
//! scanning with coverage, code scanning), Jira and PagerDuty connectors,
//! each through a chaos proxy (`support::chaos`: 5xx, 429 with and without
//! `Retry-After`, timeouts after the request was sent, resets, cut
//! transfers, truncated and malformed JSON pages, expired Jira page
//! tokens), while the sources change between passes (new alerts, issues
//! and incidents; resolutions, fixes, priority changes, acknowledgements,
//! coverage switched on and off). Each connector keeps its cursor in its
//! own sink, as the store does.
//!
//! Then the faults stop and each connector's next pass must succeed, and
//! what its sink holds must equal a clean sync of the final sources into a
//! new sink (no proxy): every record present, with its latest version,
//! nothing extra; the Jira changelog history the same set of changes.
//! Every failed pass returned one error that names its connector and a
//! cause the proxy injected; no pass was partial; no error named a token.
//!
//! Size: 100 iterations (400 passes) by default, for CI;
//! `SECMETRICS_SOAK=long` runs 1,000 (4,000 passes), and a number runs
//! that many.

use crate::support::chaos::{ChaosProxy, Fault};
use crate::support::fake_jira::{history, issue, item, FakeJira};
use crate::support::fake_pagerduty::{incident, log_entry, FakePagerduty};
use crate::support::*;
use chrono::{DateTime, Duration as CDuration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secmetrics_connectors::github::code_scanning::GithubCodeScanning;
use secmetrics_connectors::github::secret_scanning::GithubSecretScanning;
use secmetrics_connectors::github::GithubSettings;
use secmetrics_connectors::jira::JiraSettings;
use secmetrics_connectors::pagerduty::PagerdutySettings;
use secmetrics_connectors::{Connector, SyncMode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const GH_TOKEN: &str = "ghp_SoakTokenThatMustNeverBeLogged";
const JIRA_TOKEN: &str = "jira-soak-token-never-logged";
const PD_KEY: &str = "pd-soak-key-never-logged";

/// Iterations of the soak: `SECMETRICS_SOAK=long` (1,000), a number, or
/// 100.
fn iterations() -> usize {
    match std::env::var("SECMETRICS_SOAK").as_deref() {
        Ok("long") => 1000,
        Ok(n) => n.parse().unwrap_or(100),
        Err(_) => 100,
    }
}

/// Client settings for a soak: short backoffs, few attempts, so faults
/// are absorbed by retries or fail the pass quickly; `timeout_secs` bounds
/// each request (short while faults are injected: a request left
/// unanswered costs that much).
fn retry(timeout_secs: f64) -> Value {
    json!({"max_attempts": 3, "timeout_secs": timeout_secs, "backoff_base_ms": 5,
           "backoff_max_ms": 20, "secondary_min_wait_secs": 0.05, "max_wait_secs": 5.0})
}

fn github_settings(name: &str, base: &str, timeout_secs: f64) -> GithubSettings {
    serde_json::from_value(json!({
        "name": name, "org": "acme", "base_url": base, "rate": 100000.0, "burst": 1000,
        "per_page": 4, "pages_per_commit": 1, "retry": retry(timeout_secs),
        "assets": {"acme/repo-00": "payments-api"}
    }))
    .unwrap()
}

/// The four connectors against the proxies at `gh`, `jira` and `pd`.
fn connectors(gh: &str, jira: &str, pd: &str, timeout_secs: f64) -> Vec<Box<dyn Connector>> {
    let secrets = GithubSecretScanning::new(
        github_settings("gh-secrets", gh, timeout_secs),
        Some(SecretString::from(GH_TOKEN)),
    )
    .unwrap();
    let code = GithubCodeScanning::new(
        github_settings("gh-code", gh, timeout_secs),
        Some(SecretString::from(GH_TOKEN)),
    )
    .unwrap();
    let jira: JiraSettings = serde_json::from_value(json!({
        "name": "jira", "base_url": jira, "api": "cloud", "email": "svc@example.com",
        "rate": 100000.0, "burst": 1000, "page_size": 2, "overlap_secs": 1800,
        "retry": retry(timeout_secs),
        "mappings": [{"record": "finding", "jql": "project = SEC", "asset": "unassigned"}]
    }))
    .unwrap();
    let pd: PagerdutySettings = serde_json::from_value(json!({
        "name": "pagerduty", "base_url": pd, "rate": 100000.0, "burst": 1000, "page_size": 4,
        "lookback_days": 30, "window_days": 12, "retry": retry(timeout_secs)
    }))
    .unwrap();
    vec![
        Box::new(secrets),
        Box::new(code),
        Box::new(jira.build(Some(SecretString::from(JIRA_TOKEN))).unwrap()),
        Box::new(pd.build(Some(SecretString::from(PD_KEY))).unwrap()),
    ]
}

/// The sources, changed a little between passes.
struct World {
    gh: FakeGithub,
    jira: FakeJira,
    pd: FakePagerduty,
    rng: StdRng,
    /// Minutes after 2026-06-01 of the last GitHub or Jira change.
    clock: i64,
    secrets: Vec<Value>,
    code: Vec<Value>,
    repos: Vec<Value>,
    issues: Vec<Value>,
    incidents: Vec<Value>,
    changes: u64,
}

fn minutes(m: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
        .unwrap()
        .to_utc()
        + CDuration::minutes(m)
}

fn gh_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn jira_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// PagerDuty stamps incidents with its own clock: now, to the second.
fn pd_now() -> String {
    gh_time(Utc::now())
}

impl World {
    async fn start(seed: u64) -> World {
        let mut w = World {
            gh: FakeGithub::start().await,
            jira: FakeJira::start(true).await,
            pd: FakePagerduty::start().await,
            rng: StdRng::seed_from_u64(seed),
            clock: 0,
            secrets: Vec::new(),
            code: Vec::new(),
            repos: Vec::new(),
            issues: Vec::new(),
            incidents: Vec::new(),
            changes: 0,
        };
        for _ in 0..10 {
            w.add_secret();
            w.add_code();
            w.add_issue();
        }
        for i in 0..9 {
            let name = format!("acme/repo-{i:02}");
            let on = i % 3 != 2;
            w.repos.push(repo(
                &name,
                "2026-05-01T00:00:00Z",
                Some(on).filter(|_| i != 4),
            ));
        }
        // Incidents of the last weeks, some still open.
        let base = Utc::now() - CDuration::days(20);
        for i in 0..8 {
            let created = gh_time(base + CDuration::hours(i * 30));
            let id = format!("PINIT{i}");
            let status = if i % 2 == 0 { "resolved" } else { "triggered" };
            let mut v = incident(&id, &created, status, json!({"incident_number": i}));
            if status == "resolved" {
                let at = gh_time(base + CDuration::hours(i * 30 + 2));
                v["resolved_at"] = json!(at);
                v["last_status_change_at"] = json!(at);
                w.pd.with(|s| {
                    s.log_entries.insert(
                        id.clone(),
                        vec![log_entry("resolve_log_entry", &at, "user_reference")],
                    )
                });
            }
            w.incidents.push(v);
        }
        w.publish();
        w
    }

    fn tick(&mut self) -> DateTime<Utc> {
        self.clock += 1;
        self.changes += 1;
        minutes(self.clock)
    }

    fn add_secret(&mut self) {
        let t = gh_time(self.tick());
        let n = self.secrets.len() as u64 + 1;
        let repo = format!("acme/repo-{:02}", n % 9);
        let mut a = secret_alert(n, &repo, &t, &format!("ghp_leaked{n:06}"));
        a["created_at"] = json!(t);
        self.secrets.push(a);
    }

    fn add_code(&mut self) {
        let t = gh_time(self.tick());
        let n = self.code.len() as u64 + 1;
        let mut a = code_alert(n, &format!("acme/repo-{:02}", n % 9), &t);
        a["created_at"] = json!(t);
        a["most_recent_instance"]["location"]["start_line"] = json!(n);
        self.code.push(a);
    }

    fn add_issue(&mut self) {
        let t = jira_time(self.tick());
        let key = format!("SEC-{}", self.issues.len() + 1);
        let p = ["Highest", "High", "Medium", "Low"][self.rng.gen_range(0..4)];
        self.issues.push(issue(
            &key,
            &t,
            &t,
            json!({"priority": {"name": p}, "components": [{"name": "payments-api"}]}),
        ));
    }

    /// One random change of one source.
    fn change(&mut self) {
        match self.rng.gen_range(0..10) {
            0 => self.add_secret(),
            1 => {
                // Resolve an open secret alert.
                let open: Vec<usize> = (0..self.secrets.len())
                    .filter(|i| self.secrets[*i]["state"] == "open")
                    .collect();
                if let Some(&i) = open.get(self.rng.gen_range(0..open.len().max(1))) {
                    let t = gh_time(self.tick());
                    let a = &mut self.secrets[i];
                    a["state"] = json!("resolved");
                    a["resolution"] = json!("revoked");
                    a["resolved_at"] = json!(t);
                    a["validity"] = json!("inactive");
                    a["updated_at"] = json!(t);
                }
            }
            2 => self.add_code(),
            3 => {
                // Fix an open code scanning alert.
                let open: Vec<usize> = (0..self.code.len())
                    .filter(|i| self.code[*i]["state"] == "open")
                    .collect();
                if let Some(&i) = open.get(self.rng.gen_range(0..open.len().max(1))) {
                    let t = gh_time(self.tick());
                    let a = &mut self.code[i];
                    a["state"] = json!("fixed");
                    a["fixed_at"] = json!(t);
                    a["updated_at"] = json!(t);
                }
            }
            4 => {
                // Coverage switched (no `updated_at` change: the list is
                // read whole), or a new repository.
                let i = self.rng.gen_range(0..self.repos.len() + 1);
                self.changes += 1;
                if i == self.repos.len() {
                    let name = format!("acme/repo-{:02}", 9 + i);
                    self.repos
                        .push(repo(&name, "2026-05-01T00:00:00Z", Some(true)));
                } else {
                    let r = &mut self.repos[i];
                    let on = r["security_and_analysis"]["secret_scanning"]["status"] == "enabled";
                    let s = if on { "disabled" } else { "enabled" };
                    r["security_and_analysis"] = json!({
                        "advanced_security": {"status": s},
                        "secret_scanning": {"status": s},
                        "secret_scanning_push_protection": {"status": "disabled"}
                    });
                }
            }
            5 => self.add_issue(),
            6 => {
                // A priority change, with its changelog history.
                let i = self.rng.gen_range(0..self.issues.len());
                if self.issues[i]["fields"]["resolution"].is_null() {
                    let now = self.tick();
                    let t = jira_time(now);
                    let key = self.issues[i]["key"].as_str().unwrap().to_string();
                    let old = self.issues[i]["fields"]["priority"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let new = ["Highest", "High", "Medium", "Low"]
                        .into_iter()
                        .find(|p| *p != old)
                        .unwrap();
                    let f = &mut self.issues[i]["fields"];
                    f["priority"] = json!({"name": new});
                    f["updated"] = json!(t);
                    self.history(
                        &key,
                        &t,
                        item("priority", "priority", Some(&old), Some(new)),
                    );
                }
            }
            7 => {
                // A resolution.
                let open: Vec<usize> = (0..self.issues.len())
                    .filter(|i| self.issues[*i]["fields"]["resolution"].is_null())
                    .collect();
                if let Some(&i) = open.get(self.rng.gen_range(0..open.len().max(1))) {
                    let t = jira_time(self.tick());
                    let key = self.issues[i]["key"].as_str().unwrap().to_string();
                    let f = &mut self.issues[i]["fields"];
                    f["resolution"] = json!({"name": "Done"});
                    f["resolutiondate"] = json!(t);
                    f["status"] = json!({"name": "Done", "statusCategory": {"key": "done"}});
                    f["updated"] = json!(t);
                    self.history(
                        &key,
                        &t,
                        item("resolution", "resolution", None, Some("Done")),
                    );
                }
            }
            8 => {
                // A new incident (PagerDuty's clock: now).
                self.changes += 1;
                let id = format!("PNEW{}", self.incidents.len());
                self.incidents.push(incident(
                    &id,
                    &pd_now(),
                    "triggered",
                    json!({"urgency": "high"}),
                ));
            }
            _ => {
                // An open incident is acknowledged, or resolved.
                let open: Vec<usize> = (0..self.incidents.len())
                    .filter(|i| self.incidents[*i]["status"] != "resolved")
                    .collect();
                if let Some(&i) = open.get(self.rng.gen_range(0..open.len().max(1))) {
                    self.changes += 1;
                    let t = pd_now();
                    let id = self.incidents[i]["id"].as_str().unwrap().to_string();
                    let v = &mut self.incidents[i];
                    let entry = if v["status"] == "triggered" {
                        v["status"] = json!("acknowledged");
                        v["acknowledgements"] = json!([{"at": t}]);
                        log_entry("acknowledge_log_entry", &t, "user_reference")
                    } else {
                        v["status"] = json!("resolved");
                        v["acknowledgements"] = json!([]);
                        v["resolved_at"] = json!(t);
                        log_entry("resolve_log_entry", &t, "user_reference")
                    };
                    v["last_status_change_at"] = json!(t);
                    self.pd
                        .with(|s| s.log_entries.entry(id).or_default().push(entry));
                }
            }
        }
    }

    fn history(&mut self, key: &str, at: &str, change: Value) {
        let key = key.to_string();
        let at = at.to_string();
        self.jira.with(|s| {
            let list = s.histories.entry(key).or_default();
            let id = list.len() as u32 + 1;
            list.push(history(id, &at, json!([change])));
        });
    }

    /// Hand the current state to the fakes (GitHub lists newest-updated
    /// first, repositories by name).
    fn publish(&mut self) {
        let by_updated = |v: &Vec<Value>| {
            let mut v = v.clone();
            v.sort_by(|a, b| b["updated_at"].as_str().cmp(&a["updated_at"].as_str()));
            v
        };
        self.gh.set("secret", by_updated(&self.secrets));
        self.gh.set("code", by_updated(&self.code));
        let mut repos = self.repos.clone();
        repos.sort_by(|a, b| a["full_name"].as_str().cmp(&b["full_name"].as_str()));
        self.gh.set("repos", repos);
        self.jira.set_issues(self.issues.clone());
        let incidents = self.incidents.clone();
        self.pd.with(|s| s.incidents = incidents);
    }
}

/// The cause an error names, from the faults the proxy injects.
fn cause(e: &str) -> Option<&'static str> {
    let causes = [
        ("HTTP 5", "5xx after the last attempt"),
        ("HTTP 429", "429 after the last attempt"),
        ("HTTP 400", "expired page token"),
        ("timed out", "timeout"),
        ("reading the body failed", "cut transfer"),
        ("request failed", "reset"),
        ("connection", "reset"),
        ("not a JSON array", "truncated or malformed page"),
        ("not what Jira sends", "truncated or malformed page"),
        ("not what PagerDuty sends", "truncated or malformed page"),
    ];
    causes
        .iter()
        .find(|(needle, _)| e.contains(needle))
        .map(|(_, c)| *c)
}

/// The changes a sink was handed, as the store keeps them (each once).
fn history_set(sink: &MemorySink) -> BTreeSet<String> {
    sink.history
        .iter()
        .flat_map(|h| {
            h.changes.iter().map(move |c| {
                format!(
                    "{} {:?} {} -> {} at {}",
                    h.identity.id, c.field, c.old, c.new, c.at
                )
            })
        })
        .collect()
}

#[tokio::test]
async fn hundreds_of_syncs_through_chaos_end_equal_to_a_clean_sync() {
    let rounds = iterations();
    let started = std::time::Instant::now();
    let mut world = World::start(0x5eed_50a4).await;
    let proxies = [
        ChaosProxy::start(&world.gh.base, 0.2, 1).await,
        ChaosProxy::start(&world.jira.base, 0.2, 2).await,
        ChaosProxy::start(&world.pd.base, 0.2, 3).await,
    ];
    let lanes = connectors(&proxies[0].base, &proxies[1].base, &proxies[2].base, 0.3);
    let mut sinks: Vec<MemorySink> = lanes.iter().map(|_| MemorySink::default()).collect();
    let mut ok = vec![0u64; lanes.len()];
    let mut failed: Vec<BTreeMap<&'static str, u64>> = vec![BTreeMap::new(); lanes.len()];

    for round in 0..rounds {
        for _ in 0..world.rng.gen_range(0..4) {
            world.change();
        }
        world.publish();
        for (i, c) in lanes.iter().enumerate() {
            let cursor = sinks[i].cursor.clone();
            match c.sync(cursor, SyncMode::Incremental, &mut sinks[i]).await {
                Ok(out) => {
                    assert!(
                        !out.is_partial() && !out.interrupted,
                        "round {round}: {} pass partial or interrupted: {out:?}",
                        c.name()
                    );
                    ok[i] += 1;
                }
                Err(e) => {
                    let text = e.to_string();
                    assert!(
                        text.contains(c.name()),
                        "round {round}: the error does not name its connector: {text}"
                    );
                    let Some(why) = cause(&text) else {
                        panic!(
                            "round {round}: {}: an error of no injected cause: {text}",
                            c.name()
                        )
                    };
                    for secret in [GH_TOKEN, JIRA_TOKEN, PD_KEY] {
                        assert!(!text.contains(secret), "a token in an error: {text}");
                    }
                    *failed[i].entry(why).or_default() += 1;
                }
            }
        }
    }

    // The faults stop: the next pass of each connector succeeds (the same
    // cursors, as after a restart; a timeout that no busy test machine
    // trips).
    for p in &proxies {
        p.set_enabled(false);
    }
    let after = connectors(&proxies[0].base, &proxies[1].base, &proxies[2].base, 30.0);
    for (i, c) in after.iter().enumerate() {
        let cursor = sinks[i].cursor.clone();
        let out = c
            .sync(cursor, SyncMode::Incremental, &mut sinks[i])
            .await
            .unwrap_or_else(|e| panic!("{}: the pass after the faults failed: {e}", c.name()));
        assert!(!out.is_partial(), "{out:?}");
    }

    // A clean sync of the final sources by new connectors with empty
    // sinks, through the proxies with faults off (Jira records carry the
    // base URL in their links).
    let clean = connectors(&proxies[0].base, &proxies[1].base, &proxies[2].base, 30.0);
    for (i, c) in clean.iter().enumerate() {
        let mut fresh = MemorySink::default();
        let out = c
            .sync(None, SyncMode::Incremental, &mut fresh)
            .await
            .unwrap_or_else(|e| panic!("{}: the clean sync failed: {e}", c.name()));
        assert!(!out.is_partial(), "{out:?}");
        let soaked = &sinks[i];
        let missing: Vec<_> = fresh
            .records
            .keys()
            .filter(|k| !soaked.records.contains_key(*k))
            .collect();
        let extra: Vec<_> = soaked
            .records
            .keys()
            .filter(|k| !fresh.records.contains_key(*k))
            .collect();
        let stale: Vec<_> = fresh
            .records
            .iter()
            .filter(|(k, r)| soaked.records.get(*k).is_some_and(|s| s != *r))
            .map(|(k, _)| k)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty() && stale.is_empty(),
            "{}: after the soak, missing {missing:?}, extra {extra:?}, stale {stale:?}",
            c.name()
        );
        assert_eq!(
            history_set(soaked),
            history_set(&fresh),
            "{}: the changelog history differs",
            c.name()
        );
    }

    // Every kind of fault was injected, and the records are there.
    let mut faults: BTreeMap<Fault, u64> = BTreeMap::new();
    let mut requests = 0;
    for p in &proxies {
        let s = p.stats();
        requests += s.requests;
        for (f, n) in s.faults {
            *faults.entry(f).or_default() += n;
        }
    }
    for f in Fault::ALL {
        assert!(
            faults.get(&f) > Some(&0),
            "no {f:?} was injected: {faults:?}"
        );
    }
    let counts: Vec<usize> = sinks.iter().map(|s| s.records.len()).collect();
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
    let failures: u64 = failed.iter().flat_map(|m| m.values()).sum();
    assert!(failures > 0, "no pass failed: the chaos did nothing");
    println!(
        "soak: {rounds} rounds, {} passes ({} ok, {failures} failed), {} source changes, \
         {requests} requests through the proxies, faults {faults:?}, failed passes by \
         connector and cause {:?}, records {counts:?}, {:.1} s",
        rounds * lanes.len(),
        ok.iter().sum::<u64>(),
        world.changes,
        lanes
            .iter()
            .map(|c| c.name())
            .zip(&failed)
            .collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
}
