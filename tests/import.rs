//! `secmetrics import` and `status`: every line loads or is reported with
//! its line and field, repeats replace, history is kept, and a killed import
//! loses no completed batch.

use crate::common::*;
use std::io::{BufRead, BufReader, Write};

#[test]
fn golden_medium_estate_loads_every_line_and_status_counts_distinct_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = data("golden/estate-medium.ndjson");
    let o = run(dir.path(), &["import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    // 3074 finding lines, 74 of them repeat an earlier identity: 59 with a
    // different body (replaced) and 15 identical (unchanged).
    assert_eq!(summary_row(&out, "finding"), vec![3074, 3000, 59, 15, 0]);
    assert_eq!(summary_row(&out, "total"), vec![4223, 4149, 59, 15, 0]);
    let s = status(dir.path());
    let expect = serde_json::json!({
        "asset": 40, "repo": 120, "finding": 3000, "review": 80, "threat_model": 29,
        "exception": 40, "release": 160, "secret_alert": 600, "incident": 80
    });
    assert_eq!(s["records"], expect);
    assert!(s["last_import"].is_string());
    assert!(s["size_on_disk"].as_u64().unwrap() > 0);
}

#[test]
fn store_directory_is_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = run(&store, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn bad_lines_are_reported_with_line_and_field_and_good_lines_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.ndjson");
    std::fs::write(
        &file,
        [
            r#"{"kind":"asset","id":"a1","tier":1}"#,
            r#"{"kind":"finding","id":"f1","asset":"a1","opened_at":"2026-10-01T00:00:00Z","status":"open"}"#,
            r#"{"kind":"finding","id":"f2","asset":"a1","severity":"high","opened_at":"2026-10-01T00:00:00","status":"open"}"#,
            r#"{"kind":"finding","id":"f3","asset":"a1","severity":"urgent","opened_at":"2026-10-01T00:00:00Z","status":"open"}"#,
            r#"{"kind":"finding","id":"f4","asset":"a1","#,
            "",
            r#"{"kind":"finding","id":"f5","asset":"a1","severity":"high","opened_at":"2026-10-01T00:00:00Z","status":"open"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let store = dir.path().join("store");
    let o = run(&store, &["import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let name = file.display().to_string();
    assert!(
        err.contains(&format!(
            "{name}:2: field `severity`: required field is missing"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:3: field `opened_at`: time \"2026-10-01T00:00:00\" has no UTC offset"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:4: field `severity`: unknown value \"urgent\""
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{name}:5: not valid JSON")), "{err}");
    let out = stdout(&o);
    assert_eq!(summary_row(&out, "finding"), vec![1, 1, 0, 0, 3]);
    assert_eq!(summary_row(&out, "(no"), vec![0, 0, 0, 0, 1]);
    assert_eq!(summary_row(&out, "total"), vec![2, 2, 0, 0, 4]);
    let s = status(&store);
    assert_eq!(s["records"], serde_json::json!({"asset": 1, "finding": 1}));
}

#[test]
fn stdin_is_read_with_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["import", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"kind\":\"asset\",\"id\":\"a1\",\"tier\":2}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(summary_row(&stdout(&o), "asset"), vec![1, 1, 0, 0, 0]);
}

#[test]
fn severity_change_adds_one_history_entry_with_old_and_new() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.ndjson");
    let line = |sev: &str| {
        format!(
            r#"{{"kind":"finding","source":"sast","id":"F-1","asset":"a","severity":"{sev}","opened_at":"2026-09-01T00:00:00Z","status":"open","validity":"valid"}}"#
        )
    };
    let store = dir.path().join("store");
    for sev in ["critical", "critical", "low"] {
        std::fs::write(&f, line(sev)).unwrap();
        let o = run(&store, &["import", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(status(&store)["history_entries"], 1);
    let s = secmetrics::store::Store::open(&store).unwrap();
    let id = secmetrics_connectors::Identity {
        kind: secmetrics_connectors::Kind::Finding,
        source: "sast".into(),
        id: "F-1".into(),
    };
    let h = s.history(&id).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].field.as_str(), h[0].old.as_str(), h[0].new.as_str()),
        ("severity", "critical", "low")
    );
    let estate = s.load_estate().unwrap();
    assert_eq!(estate.severity_changes.len(), 1);
    assert_eq!(
        estate.findings[0].severity,
        secmetrics_connectors::Severity::Low
    );
}

#[test]
fn second_process_gets_a_clear_message_while_the_store_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let _held = secmetrics::store::Store::open(dir.path()).unwrap();
    // sled locks per process: a child process must be refused, not panic.
    let o = run(dir.path(), &["status"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("is in use by another secmetrics process"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn killed_import_keeps_every_completed_batch_and_no_partial_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.ndjson");
    let total = 400_000u64;
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..total {
            writeln!(
                w,
                r#"{{"kind":"finding","source":"gen","id":"F-{i}","asset":"app-{}","severity":"high","opened_at":"2026-01-01T00:00:00Z","status":"open"}}"#,
                i % 50
            )
            .unwrap();
        }
    }
    let store = dir.path().join("store");
    let batch = 1000u64;
    let mut child = bin()
        .arg("--data-dir")
        .arg(&store)
        .args(["import", "--progress", "--batch-size", &batch.to_string()])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reported = 0u64;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line
            .strip_prefix("committed ")
            .and_then(|r| r.strip_suffix(" records"))
        {
            reported = n.parse().unwrap();
            if reported >= 20 * batch {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(reported >= 20 * batch, "import ended before it was killed");
    assert!(reported < total, "import finished before it was killed");
    let s = secmetrics::store::Store::open(&store).unwrap();
    let estate = s.load_estate().unwrap();
    let n = estate.findings.len() as u64;
    assert!(n >= reported, "lost committed records: {n} < {reported}");
    assert_eq!(n % batch, 0, "a partial batch is visible: {n} records");
    // Every stored record is whole and the lines were committed in order.
    let mut ids: Vec<u64> = estate
        .findings
        .iter()
        .map(|f| {
            assert_eq!(f.severity, secmetrics_connectors::Severity::High);
            f.id[2..].parse().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..n).collect::<Vec<_>>());
}

#[test]
fn an_overlong_or_non_utf8_line_is_rejected_and_a_missing_file_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.ndjson");
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"kind\":\"asset\",\"id\":\"a1\",\"tier\":1}\n");
    body.extend_from_slice(
        format!(
            "{{\"kind\":\"asset\",\"id\":\"big\",\"tier\":1,\"pad\":\"{}\"}}\n",
            "x".repeat(3000)
        )
        .as_bytes(),
    );
    body.extend_from_slice(b"{\"kind\":\"asset\",\"id\":\"\xff\",\"tier\":1}\n");
    body.extend_from_slice(b"{\"kind\":\"asset\",\"id\":\"a2\",\"tier\":2}\n");
    std::fs::write(&f, body).unwrap();
    let missing = dir.path().join("nope.ndjson");
    let store = dir.path().join("store");
    let o = run(
        &store,
        &[
            "import",
            "--max-line-bytes",
            "2000",
            f.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let name = f.display().to_string();
    assert!(
        err.contains(&format!(
            "{name}:2: line is 3045 bytes, longer than the limit of 2000 bytes"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{name}:3: not UTF-8 (invalid byte at column 23)")),
        "{err}"
    );
    let out = stdout(&o);
    // Two good assets; the two bad lines name no readable kind.
    assert_eq!(summary_row(&out, "asset"), vec![2, 2, 0, 0, 0]);
    assert_eq!(summary_row(&out, "(no"), vec![0, 0, 0, 0, 2]);
    assert!(out.contains("files failed whole: 1"), "{out}");
    assert_eq!(status(&store)["records"]["asset"], 2);
}

#[test]
fn another_users_store_is_refused_rather_than_written() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = run(&store, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let me = std::fs::metadata(&store).unwrap().uid();
    // Hand the store to another user (the service's dynamic user, say);
    // only root may.
    let chown = std::process::Command::new("chown")
        .args(["-R", "65534"])
        .arg(&store)
        .status();
    if me != 0 || !chown.is_ok_and(|s| s.success()) {
        eprintln!("skipped: giving a store to another user needs root");
        return;
    }
    let before: Vec<_> = std::fs::read_dir(store.join("db"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let o = run(&store, &["status"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("belongs to uid 65534, not to this user (uid 0)"),
        "{err}"
    );
    // Nothing in it was touched or added.
    let after: Vec<_> = std::fs::read_dir(store.join("db"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(before, after);
    for p in after {
        assert_eq!(
            std::fs::metadata(&p).unwrap().uid(),
            65534,
            "{}",
            p.display()
        );
    }
}
