//! End-to-end sync benchmark (`cargo bench --bench sync`): 100,000 GitHub
//! secret scanning alerts and 100,000 code scanning alerts from a local
//! server into a sled store through `sync_one`: a first pass into an empty
//! store, a `--full` pass (re-reads all, tracks identities to mark the rest
//! gone), and a pass with nothing changed. Prints requests, records
//! written, wall time and peak RSS (reset before each pass).

use secmetrics::store::Store;
use secmetrics::sync::sync_one;
use secmetrics_connectors::{ConnectorSettings, SyncMode};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Instant;

mod common;

use common::{peak_rss_mib, reset_peak_rss};

fn item(code: bool, i: usize) -> String {
    let repo = format!("acme/repo-{}", i % 500);
    let updated = format!(
        "2026-06-01T{:02}:{:02}:{:02}Z",
        23 - (i / 3600) % 24,
        59 - (i / 60) % 60,
        59 - i % 60
    );
    if code {
        format!(
            r#"{{"number":{n},"created_at":"2026-01-01T00:00:00Z","updated_at":"{updated}","html_url":"https://github.com/{repo}/security/code-scanning/{n}","state":"{state}","fixed_at":{fixed},"dismissed_at":null,"dismissed_reason":null,"rule":{{"id":"js/sql-injection","severity":"error","security_severity_level":"high","description":"Database query built from user-controlled sources"}},"tool":{{"name":"CodeQL","version":"2.22.4"}},"most_recent_instance":{{"ref":"refs/heads/main","category":"/language:javascript","location":{{"path":"src/file{f}.js","start_line":10}},"classifications":[]}},"repository":{{"full_name":"{repo}"}}}}"#,
            n = i + 1,
            state = if i % 4 == 0 { "fixed" } else { "open" },
            fixed = if i % 4 == 0 {
                "\"2026-03-01T00:00:00Z\""
            } else {
                "null"
            },
            f = i % 1000
        )
    } else {
        format!(
            r#"{{"number":{n},"created_at":"2026-01-01T00:00:00Z","updated_at":"{updated}","html_url":"https://github.com/{repo}/security/secret-scanning/{n}","state":"open","resolution":null,"resolved_at":null,"secret_type":"github_personal_access_token","secret":"ghp_{i:036}","validity":"unknown","push_protection_bypassed":false,"repository":{{"full_name":"{repo}"}}}}"#,
            n = i + 1
        )
    }
}

/// A keep-alive HTTP/1.1 server on loopback serving `total` alerts per list
/// in pages of 100, with `Link` and a stable `ETag` per page.
fn serve(total: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let b = b.clone();
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut inm = None;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("if-none-match") {
                                inm = Some(v.trim().to_string());
                            }
                        }
                    }
                    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    let page: usize = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("page="))
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(1);
                    let code = path.contains("code-scanning");
                    let etag = format!("\"{}-{page}-{total}\"", if code { "c" } else { "s" });
                    if inm.as_deref() == Some(etag.as_str()) {
                        let _ = out.write_all(
                            format!("HTTP/1.1 304 Not Modified\r\netag: {etag}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        );
                        continue;
                    }
                    let start = (page - 1) * 100;
                    let end = (start + 100).min(total);
                    let mut body = String::from("[");
                    for i in start..end {
                        if i > start {
                            body.push(',');
                        }
                        body.push_str(&item(code, i));
                    }
                    body.push(']');
                    let pages = total.div_ceil(100);
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\netag: {etag}\r\ncontent-length: {}\r\n",
                        body.len()
                    );
                    if page < pages {
                        let q: Vec<&str> = query
                            .split('&')
                            .filter(|kv| !kv.starts_with("page="))
                            .collect();
                        head.push_str(&format!(
                            "link: <{b}{path}?{}&page={}>; rel=\"next\"\r\n",
                            q.join("&"),
                            page + 1
                        ));
                    }
                    head.push_str("\r\n");
                    // One write: a head and body sent apart stall on Nagle
                    // and delayed ACKs.
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
        let pages_per_commit: u32 = args[pos + 3].parse().unwrap();
        run_case(&kind, total, pages_per_commit);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("sync benchmark: run with `cargo bench --bench sync`");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (total, pages_per_commit) in [("10000", "1"), ("100000", "1"), ("100000", "10")] {
        for kind in ["github_secret_scanning", "github_code_scanning"] {
            let status = std::process::Command::new(&exe)
                .args(["--case", kind, total, pages_per_commit])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}

fn run_case(kind: &str, total: usize, pages_per_commit: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = serve(total);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut settings = serde_json::json!({
        "kind": kind, "name": "bench", "org": "acme", "base_url": base,
        "rate": 100000.0, "burst": 1000, "pages_per_commit": pages_per_commit
    });
    if kind == "github_secret_scanning" {
        settings["coverage"] = serde_json::json!({"enabled": false});
    }
    let connector = serde_json::from_value::<ConnectorSettings>(settings)
        .unwrap()
        .build(None)
        .unwrap();
    for (pass, mode) in [
        ("first", SyncMode::Incremental),
        ("full", SyncMode::Full),
        ("again", SyncMode::Incremental),
    ] {
        reset_peak_rss();
        let before = connector.http_stats().unwrap().requests;
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
        println!(
            "{kind:<23} {total:>7} alerts, {pages_per_commit:>2} pages/commit, {pass:<5} pass: requests {requests:>5}, records written {written:>7}, wall {wall:>6.2} s, peak RSS {:>6.1} MiB",
            peak_rss_mib()
        );
    }
}
