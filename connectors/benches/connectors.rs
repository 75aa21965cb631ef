//! Connector benchmark (`cargo bench -p secmetrics-connectors`): syncs of
//! 10,000 and 100,000 GitHub secret and code scanning alerts from a local
//! server, and ingest of a generated 200,000-result SARIF file. Prints
//! requests, wall time and peak RSS (reset between phases) for each.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use secmetrics_connectors::github::code_scanning::GithubCodeScanning;
use secmetrics_connectors::github::secret_scanning::GithubSecretScanning;
use secmetrics_connectors::sarif::{import_file, FindingContext, SuppressionPolicy};
use secmetrics_connectors::{
    Committed, Connector, ConnectorSettings, Environment, Page, PageSink, SinkError, SyncMode,
};
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// Counts what it is given and keeps nothing (the store is not measured).
#[derive(Default)]
struct CountingSink {
    records: u64,
    pages: u64,
}

impl PageSink for CountingSink {
    fn commit(&mut self, page: Page) -> Result<Committed, SinkError> {
        self.records += page.records.len() as u64;
        self.pages += 1;
        Ok(Committed {
            inserted: page.records.len() as u64,
            ..Committed::default()
        })
    }

    // The SARIF connector's scan states are written with its cursor; this
    // sink counts the page and holds no state (each case is one pass).
    fn commit_with_state(
        &mut self,
        page: Page,
        _state: secmetrics_connectors::StateChange,
    ) -> Result<Committed, SinkError> {
        self.commit(page)
    }

    fn state(&self, _prefix: &str) -> Result<Vec<(String, String)>, SinkError> {
        Ok(Vec::new())
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn reset_peak_rss() {
    // "5" resets the peak resident set size (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Serves `total` items per list, generated page by page.
#[derive(Clone)]
struct Gen {
    total: usize,
    base: String,
}

fn secret_item(i: usize) -> serde_json::Value {
    let repo = format!("acme/repo-{}", i % 500);
    json!({
        "number": i + 1, "created_at": "2026-01-01T00:00:00Z",
        "updated_at": format!("2026-06-01T{:02}:{:02}:{:02}Z", (i / 3600) % 24, (i / 60) % 60, i % 60),
        "url": format!("https://api.github.com/repos/{repo}/secret-scanning/alerts/{}", i + 1),
        "html_url": format!("https://github.com/{repo}/security/secret-scanning/{}", i + 1),
        "state": if i % 3 == 0 { "resolved" } else { "open" },
        "resolution": if i % 3 == 0 { json!("revoked") } else { json!(null) },
        "resolved_at": if i % 3 == 0 { json!("2026-02-01T00:00:00Z") } else { json!(null) },
        "secret_type": "github_personal_access_token",
        "secret_type_display_name": "GitHub Personal Access Token",
        "secret": format!("ghp_{:036}", i),
        "validity": "unknown", "push_protection_bypassed": i % 7 == 0,
        "push_protection_bypassed_at": null, "publicly_leaked": false, "multi_repo": false,
        "repository": {"id": i % 500, "name": format!("repo-{}", i % 500), "full_name": repo, "private": true}
    })
}

fn code_item(i: usize) -> serde_json::Value {
    let repo = format!("acme/repo-{}", i % 500);
    json!({
        "number": i + 1, "created_at": "2026-01-01T00:00:00Z",
        "updated_at": format!("2026-06-01T{:02}:{:02}:{:02}Z", (i / 3600) % 24, (i / 60) % 60, i % 60),
        "html_url": format!("https://github.com/{repo}/security/code-scanning/{}", i + 1),
        "state": if i % 4 == 0 { "fixed" } else { "open" },
        "fixed_at": if i % 4 == 0 { json!("2026-03-01T00:00:00Z") } else { json!(null) },
        "dismissed_by": null, "dismissed_at": null, "dismissed_reason": null, "dismissed_comment": null,
        "rule": {"id": "js/sql-injection", "severity": "error", "security_severity_level": "high",
                 "description": "Database query built from user-controlled sources", "name": "js/sql-injection",
                 "tags": ["security", "external/cwe/cwe-089"]},
        "tool": {"name": "CodeQL", "guid": null, "version": "2.22.4"},
        "most_recent_instance": {"ref": "refs/heads/main", "analysis_key": ".github/workflows/codeql.yml:analyze",
            "environment": "{\"language\":\"javascript\"}", "category": "/language:javascript", "state": "open",
            "commit_sha": "39406e42cb832f683daa691dd652a8dc36ee8930",
            "message": {"text": "This query depends on a user-provided value."},
            "location": {"path": format!("src/file{}.js", i % 1000), "start_line": 10, "end_line": 10,
                         "start_column": 5, "end_column": 20}, "classifications": []},
        "repository": {"id": i % 500, "name": format!("repo-{}", i % 500), "full_name": repo}
    })
}

async fn serve(State(g): State<Arc<Gen>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let page: usize = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let per_page = 100;
    let pages = g.total.div_ceil(per_page);
    let start = (page - 1) * per_page;
    let end = (start + per_page).min(g.total);
    let code = path.contains("code-scanning");
    let items: Vec<serde_json::Value> = (start..end)
        .map(|i| if code { code_item(i) } else { secret_item(i) })
        .collect();
    let mut r = Response::new(Body::from(serde_json::to_vec(&items).unwrap()));
    *r.status_mut() = StatusCode::OK;
    if page < pages {
        let base_q: Vec<&str> = query
            .split('&')
            .filter(|kv| !kv.starts_with("page="))
            .collect();
        let link = format!(
            "<{}{}?{}&page={}>; rel=\"next\", <{}{}?{}&page={}>; rel=\"last\"",
            g.base,
            path,
            base_q.join("&"),
            page + 1,
            g.base,
            path,
            base_q.join("&"),
            pages
        );
        r.headers_mut()
            .insert("link", HeaderValue::from_str(&link).unwrap());
    }
    r
}

async fn start(total: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(serve)
        .with_state(Arc::new(Gen {
            total,
            base: base.clone(),
        }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn github(kind: &str, total: usize) {
    let base = start(total).await;
    let settings = json!({"name": "bench", "org": "acme", "base_url": base, "rate": 100000.0,
                          "burst": 1000, "coverage": {"enabled": false}});
    let (connector, stats): (Box<dyn Connector>, _) = if kind == "secret" {
        let c = GithubSecretScanning::new(serde_json::from_value(settings).unwrap(), None).unwrap();
        let s = c.api().http().stats();
        (Box::new(c), s)
    } else {
        let mut settings = settings;
        settings.as_object_mut().unwrap().remove("coverage");
        let c = GithubCodeScanning::new(serde_json::from_value(settings).unwrap(), None).unwrap();
        let s = c.api().http().stats();
        (Box::new(c), s)
    };
    reset_peak_rss();
    let t = Instant::now();
    let mut sink = CountingSink::default();
    connector
        .sync(None, SyncMode::Full, &mut sink)
        .await
        .unwrap();
    let wall = t.elapsed();
    assert_eq!(sink.records, total as u64);
    println!(
        "github {kind:<6} alerts {total:>7}: requests {:>5}, wall {:>6.2} s, {:>7.0} records/s, peak RSS {:>6.1} MiB",
        stats.snapshot().requests,
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        peak_rss_mib()
    );
}

fn write_sarif(path: &std::path::Path, results: usize) -> u64 {
    let f = std::fs::File::create(path).unwrap();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    write!(w, r#"{{"version":"2.1.0","$schema":"https://json.schemastore.org/sarif-2.1.0.json","runs":[{{"tool":{{"driver":{{"name":"BenchScanner","version":"1.0","rules":["#).unwrap();
    for r in 0..200 {
        if r > 0 {
            write!(w, ",").unwrap();
        }
        write!(w, r#"{{"id":"R{r}","shortDescription":{{"text":"Rule {r}"}},"defaultConfiguration":{{"level":"warning"}},"properties":{{"security-severity":"{}.{}","tags":["security"]}}}}"#, r % 10, r % 7).unwrap();
    }
    write!(w, r#"]}}}},"invocations":[{{"executionSuccessful":true,"endTimeUtc":"2026-03-01T00:00:00Z"}}],"results":["#).unwrap();
    for i in 0..results {
        if i > 0 {
            write!(w, ",").unwrap();
        }
        write!(w, r#"{{"ruleId":"R{r}","ruleIndex":{r},"level":"error","message":{{"text":"Finding {i} in a generated file with a message of realistic length for a SAST tool."}},"locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"src/module{m}/file{i}.py","uriBaseId":"%SRCROOT%"}},"region":{{"startLine":{l},"startColumn":5,"endLine":{l},"endColumn":40,"snippet":{{"text":"password = 'not-a-real-secret-{i}'"}}}}}}}}],"partialFingerprints":{{"primaryLocationLineHash":"{i:016x}:1"}},"properties":{{"precision":"high"}}}}"#,
            r = i % 200, m = i % 50, l = i % 900 + 1).unwrap();
    }
    write!(w, "]}}]}}").unwrap();
    w.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

async fn sarif(results: usize) {
    let dir = std::env::temp_dir().join(format!("secmetrics-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.sarif");
    let bytes = write_sarif(&path, results);
    let ctx = FindingContext {
        source: "bench".into(),
        asset: "bench".into(),
        environment: Environment::Production,
    };
    // Import (stateless, as `secmetrics import --format sarif`): pages of 1000.
    reset_peak_rss();
    let t = Instant::now();
    let mut sink = CountingSink::default();
    let mut page = Vec::with_capacity(1000);
    let n = import_file(
        &path,
        &ctx,
        &SuppressionPolicy::default(),
        chrono::Utc::now(),
        |f| {
            page.push(secmetrics_connectors::Record::Finding(f));
            if page.len() == 1000 {
                sink.commit(Page {
                    records: std::mem::take(&mut page),
                    cursor: None,
                })
            } else {
                Ok(Committed::default())
            }
            .map(|_| ())
        },
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(n as usize, results);
    let wall = t.elapsed();
    println!(
        "sarif import  {results:>7} results ({:>5.0} MiB): wall {:>6.2} s, {:>7.0} results/s, peak RSS {:>6.1} MiB",
        bytes as f64 / 1048576.0,
        wall.as_secs_f64(),
        results as f64 / wall.as_secs_f64(),
        peak_rss_mib()
    );
    // The `sarif` connector (keeps scan state for the next scan's diff).
    let c = serde_json::from_value::<ConnectorSettings>(json!({
        "kind": "sarif", "name": "bench", "paths": [path.display().to_string()], "default_asset": "bench"
    }))
    .unwrap()
    .build(None)
    .unwrap();
    reset_peak_rss();
    let t = Instant::now();
    let mut sink = CountingSink::default();
    c.sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    let wall = t.elapsed();
    assert_eq!(sink.records as usize, results);
    println!(
        "sarif connector {results:>5} results: wall {:>6.2} s, {:>7.0} results/s, peak RSS {:>6.1} MiB (includes the per-asset scan state)",
        wall.as_secs_f64(),
        results as f64 / wall.as_secs_f64(),
        peak_rss_mib()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    // Each case runs in its own process so one case's memory cannot
    // inflate the next one's peak RSS.
    if let Some(pos) = args.iter().position(|a| a == "--case") {
        let what = args[pos + 1].clone();
        let n: usize = args[pos + 2].parse().unwrap();
        rt().block_on(async {
            match what.as_str() {
                "sarif" => sarif(n).await,
                kind => github(kind, n).await,
            }
        });
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    if !args.iter().any(|a| a == "--bench") {
        println!("connectors benchmark: run with `cargo bench -p secmetrics-connectors`");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (what, n) in [
        ("secret", "10000"),
        ("code", "10000"),
        ("secret", "100000"),
        ("code", "100000"),
        ("sarif", "20000"),
        ("sarif", "200000"),
    ] {
        let status = std::process::Command::new(&exe)
            .args(["--case", what, n])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
