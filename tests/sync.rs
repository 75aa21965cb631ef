//! `secmetrics sync` and `import --format sarif`: pages land in the store
//! with their cursor, a second pass with nothing changed writes nothing,
//! `--full` marks what the source no longer returns as gone, and failures
//! are recorded without the token.

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("secmetrics.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn sync(dir: &Path, config: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--config", config.to_str().unwrap(), "sync"];
    args.extend_from_slice(extra);
    run(dir, &args)
}

/// The row of a connector in the sync table: [pages, requests, new,
/// replaced, unchanged, skipped, gone].
fn sync_row(out: &str, name: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{out}"));
    line.split_whitespace()
        .skip(1)
        .take(7)
        .map(|n| n.parse().expect("count"))
        .collect()
}

#[test]
fn full_sync_marks_records_the_source_no_longer_returns_as_gone() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let file = inbox.join("assets.ndjson");
    std::fs::write(
        &file,
        "{\"kind\":\"asset\",\"id\":\"a\",\"tier\":1}\n{\"kind\":\"asset\",\"id\":\"b\",\"tier\":2}\n{\"kind\":\"asset\",\"id\":\"c\",\"tier\":3}\n",
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[connectors]]\nkind = \"ndjson\"\nname = \"inventory\"\npaths = [\"{}\"]\n",
            inbox.display()
        ),
    );
    let store = dir.path().join("store");
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        sync_row(&stdout(&o), "inventory"),
        vec![1, 1, 3, 0, 0, 0, 0]
    );
    // Unchanged files are not read again.
    let o = sync(&store, &config, &[]);
    assert_eq!(
        sync_row(&stdout(&o), "inventory"),
        vec![0, 0, 0, 0, 0, 0, 0]
    );
    // `c` disappears from the source: a full pass marks it gone.
    std::fs::write(
        &file,
        "{\"kind\":\"asset\",\"id\":\"a\",\"tier\":1}\n{\"kind\":\"asset\",\"id\":\"b\",\"tier\":2}\n",
    )
    .unwrap();
    let o = sync(&store, &config, &["--full", "--connector", "inventory"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        sync_row(&stdout(&o), "inventory"),
        vec![1, 1, 0, 0, 2, 0, 1]
    );
    let s = status(&store);
    assert_eq!(s["records"]["asset"], 2);
    assert_eq!(s["gone"], 1);
    assert!(s["connectors"]["inventory"]["last_success"].is_string());
}

#[test]
fn full_sync_that_skipped_an_unreadable_item_marks_nothing_gone() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let file = inbox.join("assets.ndjson");
    std::fs::write(
        &file,
        "{\"kind\":\"asset\",\"id\":\"a\",\"tier\":1}\n{\"kind\":\"asset\",\"id\":\"b\",\"tier\":2}\n{\"kind\":\"asset\",\"id\":\"c\",\"tier\":3}\n",
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[connectors]]\nkind = \"ndjson\"\nname = \"inventory\"\npaths = [\"{}\"]\n",
            inbox.display()
        ),
    );
    let store = dir.path().join("store");
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // `c` is still there but unreadable (a bad tier): not gone.
    std::fs::write(
        &file,
        "{\"kind\":\"asset\",\"id\":\"a\",\"tier\":1}\n{\"kind\":\"asset\",\"id\":\"b\",\"tier\":2}\n{\"kind\":\"asset\",\"id\":\"c\",\"tier\":\"x\"}\n",
    )
    .unwrap();
    let o = sync(&store, &config, &["--full", "--connector", "inventory"]);
    // [pages, requests, new, replaced, unchanged, skipped, gone]
    assert_eq!(
        sync_row(&stdout(&o), "inventory"),
        vec![1, 1, 0, 0, 2, 1, 0]
    );
    // A pass that skipped an item is partial: exit code 1, the item named.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("partial: 1 unreadable"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("full pass skipped 1 unreadable item(s); nothing marked gone"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(&format!(
            "inventory: unreadable, skipped: {}:3: field `tier`",
            file.display()
        )),
        "{}",
        stderr(&o)
    );
    let s = status(&store);
    assert_eq!(s["records"]["asset"], 3);
    assert_eq!(s["gone"], 0);
}

#[test]
fn full_sarif_pass_marks_gone_despite_an_unmapped_file_but_not_after_an_unreadable_one() {
    let dir = tempfile::tempdir().unwrap();
    let scans = dir.path().join("scans");
    std::fs::create_dir_all(scans.join("web")).unwrap();
    let web = scans.join("web").join("a.sarif");
    std::fs::write(&web, sarif_scan("2026-03-01T00:00:00Z", &["h1", "h2"])).unwrap();
    std::fs::write(
        scans.join("unmapped.sarif"),
        sarif_scan("2026-03-01T00:00:00Z", &["u"]),
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[connectors]]\nkind = \"sarif\"\nname = \"sast\"\npaths = [\"{0}\"]\n\
             [[connectors.assets]]\npattern = \"{0}/web/*\"\nasset = \"web\"\n",
            scans.display()
        ),
    );
    let store = dir.path().join("store");
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // [pages, requests, new, replaced, unchanged, skipped, gone]
    assert_eq!(sync_row(&stdout(&o), "sast"), vec![2, 2, 2, 0, 0, 1, 0]);
    // The web file is replaced by a malformed one: nothing is marked gone.
    std::fs::write(&web, "{\"runs\": [").unwrap();
    let o = sync(&store, &config, &["--full"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(sync_row(&stdout(&o), "sast"), vec![2, 2, 0, 0, 0, 2, 0]);
    assert_eq!(status(&store)["gone"], 0);
    // The web file is deleted: its two findings are gone, the unmapped
    // file (skipped on purpose) does not prevent it.
    std::fs::remove_file(&web).unwrap();
    let o = sync(&store, &config, &["--full"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sync_row(&stdout(&o), "sast"), vec![1, 1, 0, 0, 0, 1, 2]);
    assert_eq!(status(&store)["gone"], 2);
    // The cursor forgets the file that is no longer there.
    let cursor = secmetrics::store::Store::open(&store)
        .unwrap()
        .cursor("sast")
        .unwrap()
        .and_then(|c| c.cursor)
        .unwrap();
    assert!(!cursor.contains("a.sarif"), "{cursor}");
    assert!(cursor.contains("unmapped.sarif"), "{cursor}");
}

#[test]
fn unknown_connector_name_is_an_error_listing_the_configured_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[connectors]]\nkind = \"ndjson\"\nname = \"inventory\"\npaths = []\n",
    );
    let o = sync(dir.path(), &config, &["--connector", "jira"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("no connector named \"jira\" in the configuration (configured: inventory)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn import_sarif_loads_every_result_as_a_finding_of_the_asset() {
    let dir = tempfile::tempdir().unwrap();
    let sarif =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors/tests/data/sarif/rules.sarif");
    let o = run(
        dir.path(),
        &[
            "import",
            "--format",
            "sarif",
            "--asset",
            "web-shop",
            sarif.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary_row(&stdout(&o), "finding"), vec![17, 17, 0, 0, 0]);
    // Again: the same ids, nothing new.
    let o = run(
        dir.path(),
        &[
            "import",
            "--format",
            "sarif",
            "--asset",
            "web-shop",
            sarif.to_str().unwrap(),
        ],
    );
    assert_eq!(summary_row(&stdout(&o), "finding"), vec![17, 0, 0, 17, 0]);
    assert_eq!(status(dir.path())["records"]["finding"], 17);
}

/// A one-run SARIF log of tool `T` scanned at `time` with results
/// (fingerprints) `fps`.
fn sarif_scan(time: &str, fps: &[&str]) -> String {
    let results: Vec<serde_json::Value> = fps
        .iter()
        .map(|fp| {
            serde_json::json!({"ruleId": "A", "level": "error", "message": {"text": "m"},
                "partialFingerprints": {"primaryLocationLineHash": fp}})
        })
        .collect();
    serde_json::json!({"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "T", "rules": [{"id": "A"}]}},
        "invocations": [{"endTimeUtc": time}],
        "results": results
    }]})
    .to_string()
}

fn stored_findings(store: &Path) -> Vec<(String, String)> {
    let s = secmetrics::store::Store::open(store).unwrap();
    let mut out: Vec<(String, String)> = s
        .load_estate()
        .unwrap()
        .findings
        .iter()
        .map(|f| {
            (
                f.fingerprint.clone().unwrap_or_default(),
                f.opened_at.to_rfc3339(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn import_sarif_again_keeps_the_first_scans_opened_at() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let first = dir.path().join("first.sarif");
    let later = dir.path().join("later.sarif");
    std::fs::write(&first, sarif_scan("2026-03-01T00:00:00Z", &["h1"])).unwrap();
    std::fs::write(&later, sarif_scan("2026-03-08T00:00:00Z", &["h1", "h2"])).unwrap();
    let import = |f: &Path| {
        let o = run(
            &store,
            &[
                "import",
                "--format",
                "sarif",
                "--asset",
                "web",
                f.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        o
    };
    import(&first);
    let o = import(&later);
    // h1 is unchanged (same opened_at), h2 new.
    assert_eq!(summary_row(&stdout(&o), "finding"), vec![2, 1, 0, 1, 0]);
    let f = stored_findings(&store);
    assert_eq!(f.len(), 2);
    let opened: Vec<&str> = f.iter().map(|(_, t)| t.as_str()).collect();
    assert!(opened.contains(&"2026-03-01T00:00:00+00:00"), "{f:?}");
    assert!(opened.contains(&"2026-03-08T00:00:00+00:00"), "{f:?}");
    // Both files in one command, the later first: the earliest still wins.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = dir2.path().join("store");
    let o = run(
        &store2,
        &[
            "import",
            "--format",
            "sarif",
            "--asset",
            "web",
            later.to_str().unwrap(),
            first.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stored_findings(&store2), f);
}

#[test]
fn sarif_connector_keeps_the_first_opened_at_when_the_first_scan_file_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let scans = dir.path().join("scans");
    std::fs::create_dir(&scans).unwrap();
    let file = scans.join("web.sarif");
    std::fs::write(&file, sarif_scan("2026-03-01T00:00:00Z", &["h1"])).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[connectors]]\nkind = \"sarif\"\nname = \"sast\"\npaths = [\"{}\"]\ndefault_asset = \"web\"\n",
            scans.display()
        ),
    );
    let store = dir.path().join("store");
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The next scan overwrites the file; a full pass re-reads only it.
    std::fs::write(&file, sarif_scan("2026-03-08T00:00:00Z", &["h1", "h2"])).unwrap();
    let o = sync(&store, &config, &["--full"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // [pages, requests, new, replaced, unchanged, skipped, gone]: h1 is
    // unchanged (it keeps 03-01), h2 new.
    assert_eq!(sync_row(&stdout(&o), "sast"), vec![1, 1, 1, 0, 1, 0, 0]);
    let f = stored_findings(&store);
    assert_eq!(f.len(), 2);
    let mut opened: Vec<&str> = f.iter().map(|(_, t)| t.as_str()).collect();
    opened.sort();
    assert_eq!(
        opened,
        vec!["2026-03-01T00:00:00+00:00", "2026-03-08T00:00:00+00:00"]
    );
}

/// A minimal GitHub on loopback (std only): org secret scanning alerts in
/// pages of 2 with `Link` headers and ETags; records each request line and
/// its `If-None-Match`.
/// Request targets and the status each got.
type RequestLog = Arc<Mutex<Vec<(String, u16)>>>;

fn tiny_github(alerts: usize) -> (String, RequestLog) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let (b, l) = (base.clone(), log.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut if_none_match = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("if-none-match") {
                        if_none_match = Some(v.trim().to_string());
                    }
                }
            }
            let target = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let page: usize = target
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("page="))
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let items: Vec<serde_json::Value> = (0..alerts)
                .skip((page - 1) * 2)
                .take(2)
                .map(|i| {
                    serde_json::json!({
                        "number": 100 - i, "created_at": "2026-01-01T00:00:00Z",
                        "updated_at": format!("2026-06-01T00:{:02}:00Z", 59 - i),
                        "state": "open", "secret_type": "slack_api_token",
                        "secret": format!("xoxb-not-a-real-token-{i}"),
                        "validity": "unknown", "push_protection_bypassed": false,
                        "repository": {"full_name": "acme/web"}
                    })
                })
                .collect();
            let body = serde_json::to_string(&items).unwrap();
            let etag = format!("\"{:x}\"", body.len() * 31 + page);
            let mut head = String::new();
            let status = if if_none_match.as_deref() == Some(etag.as_str()) {
                head.push_str("HTTP/1.1 304 Not Modified\r\n");
                304
            } else {
                head.push_str("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
                if page * 2 < alerts {
                    let path = target.split('?').next().unwrap_or("");
                    head.push_str(&format!(
                        "link: <{b}{path}?hide_secret=true&per_page=2&page={}>; rel=\"next\"\r\n",
                        page + 1
                    ));
                }
                200
            };
            let body = if status == 304 { String::new() } else { body };
            head.push_str(&format!(
                "etag: {etag}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            ));
            l.lock().unwrap().push((target, status));
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
            let mut rest = Vec::new();
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(10)));
            let _ = stream.read_to_end(&mut rest);
        }
    });
    (base, log)
}

#[test]
fn github_sync_commits_pages_with_cursor_and_a_second_pass_writes_nothing() {
    let (base, log) = tiny_github(5);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("gh-token");
    std::fs::write(&token_file, "ghp_TokenFromACredentialFile42\n").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[connectors]]\nkind = \"github_secret_scanning\"\nname = \"gh\"\norg = \"acme\"\n\
             base_url = \"{base}\"\ntoken_file = \"{}\"\nrate = 100.0\nper_page = 2\n\
             [connectors.coverage]\nenabled = false\n",
            token_file.display()
        ),
    );
    let store = dir.path().join("store");
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sync_row(&stdout(&o), "gh"), vec![3, 3, 5, 0, 0, 0, 0]);
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .all(|(t, _)| t.contains("hide_secret=true")));
    log.lock().unwrap().clear();
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sync_row(&stdout(&o), "gh"), vec![0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .map(|(_, s)| *s)
            .collect::<Vec<_>>(),
        vec![304]
    );
    // The secrets never reach the store.
    let s = status(&store);
    assert_eq!(s["records"]["secret_alert"], 5);
    for entry in walk(&store) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(22).any(|w| w == b"xoxb-not-a-real-token-"),
            "secret bytes in {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_failed_pass_is_recorded_with_its_path_and_status_but_never_the_token() {
    // A port held (bound, never listening) for the whole test: every
    // attempt is refused, and no other program can take the port meanwhile.
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let closed = {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(closed).unwrap();
        socket
    };
    let base = format!("http://{}", closed.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[connectors]]\nkind = \"github_code_scanning\"\nname = \"gh-code\"\norg = \"acme\"\n\
             base_url = \"{base}\"\ntoken = \"ghp_InlineTokenNeverShown\"\n\
             [connectors.retry]\nmax_attempts = 2\nbackoff_base_ms = 1\n"
        ),
    );
    let store = dir.path().join("store");
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("gh-code: GET /orgs/acme/code-scanning/alerts: connection failed"),
        "{err}"
    );
    assert!(!err.contains("ghp_InlineTokenNeverShown"));
    let s = status(&store);
    let last = s["connectors"]["gh-code"]["last_error"].as_str().unwrap();
    assert!(
        last.contains("GET /orgs/acme/code-scanning/alerts"),
        "{last}"
    );
    assert!(
        !last.contains("ghp_") && !last.contains("per_page"),
        "{last}"
    );
}

#[test]
fn check_builds_every_connector_and_names_the_one_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[connectors]]\nkind = \"github_code_scanning\"\nname = \"gh-code\"\norg = \"acme\"\n\
         token = \"ghp_x\"\nper_page = 500\n",
    );
    let o = bin()
        .args(["--config", config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "configuration error: connector gh-code: `per_page` must be 1 to 100, found 500"
    );
    let config = write_config(
        dir.path(),
        "[[connectors]]\nkind = \"sarif\"\nname = \"sast\"\npaths = [\"/tmp\"]\n\
         [[connectors.assets]]\npattern = \"/scans/[\"\nasset = \"x\"\n",
    );
    let o = bin()
        .args(["--config", config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("connector sast: asset pattern \"/scans/[\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_sarif_file_is_named_skipped_until_it_changes_and_the_other_files_import() {
    let dir = tempfile::tempdir().unwrap();
    let scans = dir.path().join("scans");
    std::fs::create_dir_all(&scans).unwrap();
    let good1 = scans.join("a.sarif");
    std::fs::write(&good1, sarif_scan("2026-03-01T00:00:00Z", &["a1", "a2"])).unwrap();
    // Metadata that parses, and a second result whose `startLine` is a
    // string: the reader gets through the first result, then fails.
    let bad = scans.join("b.sarif");
    let bad_text = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"T2","rules":[{"id":"A"}]}},
"results":[{"ruleId":"A","message":{"text":"m"},"partialFingerprints":{"h":"b1"}},
{"ruleId":"A","message":{"text":"m"},"locations":[{"physicalLocation":{"region":{"startLine":"1"}}}]}]}]}"#;
    std::fs::write(&bad, bad_text).unwrap();
    let good2 = scans.join("c.sarif");
    std::fs::write(&good2, sarif_scan("2026-03-02T00:00:00Z", &["c1"])).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[connectors]]\nkind = \"sarif\"\nname = \"sast\"\npaths = [\"{}\"]\ndefault_asset = \"web\"\npage_size = 1\n",
            scans.display()
        ),
    );
    let store = dir.path().join("store");
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("partial: 1 unreadable"), "{out}");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "sast: unreadable, skipped: {}: a result cannot be read: invalid type: string \"1\", expected u64 at line 3 column",
            bad.display()
        )),
        "{err}"
    );
    // a1, a2, c1, and b1 (committed before the bad result) are stored.
    let s = status(&store);
    assert_eq!(s["records"]["finding"], 4);
    assert_eq!(s["connectors"]["sast"]["last_pass"]["state"], "partial");
    assert_eq!(s["connectors"]["sast"]["last_pass"]["unreadable"], 1);
    // Nothing changed: no file is read again, the bad one is still counted.
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // [pages, requests, new, replaced, unchanged, skipped, gone]
    assert_eq!(sync_row(&stdout(&o), "sast"), vec![0, 0, 0, 0, 0, 1, 0]);
    // Fixed: read again, the pass is ok.
    std::fs::write(&bad, sarif_scan("2026-03-03T00:00:00Z", &["b1", "b2"])).unwrap();
    let o = sync(&store, &config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(" ok"), "{}", stdout(&o));
    let s = status(&store);
    assert_eq!(s["records"]["finding"], 6);
    assert_eq!(s["connectors"]["sast"]["last_pass"]["state"], "ok");
}

/// A server on loopback that accepts connections, reads the request and
/// never answers. Returns its base URL and how many it accepted.
fn silent_server() -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(0usize));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for sock in listener.incoming().flatten() {
            *count.lock().unwrap() += 1;
            let mut reader = BufReader::new(sock.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            held.push(sock);
        }
    });
    (base, accepted)
}

fn hung_github_config(dir: &Path, base: &str, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "{extra}\n[[connectors]]\nkind = \"github_secret_scanning\"\nname = \"gh\"\norg = \"acme\"\n\
             base_url = \"{base}\"\ntoken = \"ghp_NeverLoggedToken0000000000000000000\"\n\
             [connectors.coverage]\nenabled = false\n"
        ),
    )
}

#[test]
fn ctrl_c_cuts_a_request_to_a_server_that_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (base, accepted) = silent_server();
    let config = hung_github_config(dir.path(), &base, "");
    let store = dir.path().join("store");
    let started = std::time::Instant::now();
    let child = bin()
        .arg("--data-dir")
        .arg(&store)
        .args(["--config", config.to_str().unwrap(), "sync"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the request is in flight, then interrupt.
    while *accepted.lock().unwrap() == 0 {
        assert!(started.elapsed().as_secs() < 20, "no request arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let interrupted_at = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    // The default request timeout is 30 s with 6 attempts: the pass did
    // not wait for any of them.
    assert!(
        interrupted_at.elapsed().as_secs() < 25,
        "Ctrl-C took {:?}",
        interrupted_at.elapsed()
    );
    assert_eq!(*accepted.lock().unwrap(), 1, "no retry after Ctrl-C");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("interrupted"), "{out}\n{}", stderr(&o));
    assert!(!stderr(&o).contains("NeverLogged"));
    let s = status(&store);
    assert_eq!(s["connectors"]["gh"]["last_pass"]["state"], "interrupted");
}

#[test]
fn a_pass_past_its_time_bound_is_stopped_and_reported_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = silent_server();
    let config = hung_github_config(dir.path(), &base, "[sync]\nmax_pass_secs = 1\n");
    let store = dir.path().join("store");
    let started = std::time::Instant::now();
    let o = sync(&store, &config, &[]);
    assert!(
        started.elapsed().as_secs() < 25,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("failed"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(
            "gh: the pass ran past its time bound of 1 s (`sync.max_pass_secs`) and was stopped"
        ),
        "{}",
        stderr(&o)
    );
    let s = status(&store);
    assert_eq!(s["connectors"]["gh"]["last_pass"]["state"], "failed");
    assert!(s["connectors"]["gh"]["last_error"]
        .as_str()
        .unwrap()
        .contains("time bound"));
}
