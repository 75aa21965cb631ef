//! Backups end to end: `export --all` of a store that holds everything no
//! source can give back (history, overrides and their log, a gone record,
//! KPI snapshots, outbox entries, a connector's cursor and last pass), and
//! `import` of that file into an empty store: the same KPI JSON, the same
//! packs as sent, the same backup again, a connector that resumes rather
//! than re-reads, and a digest that is never sent twice.

use crate::common::*;
use crate::daemon::{setup, start_smtp, FakeHttp, Setup};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const WEBHOOK_SECRET: &str = "B000/SECRETWEBHOOK0123456789";

fn cli(s: &Setup, store: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .arg("--config")
        .arg(&s.config)
        .arg("--data-dir")
        .arg(store)
        .args(args)
        .output()
        .expect("run secmetrics")
}

fn ok(o: std::process::Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// The linked golden estate with a few findings changed: three open ones
/// remediated, one lowered to low severity.
fn changed_estate() -> String {
    let mut remediated = 0;
    let mut lowered = 0;
    read("golden/estate-linked.ndjson")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["kind"] == "finding" && v["status"] == "open" && remediated < 3 {
                v["status"] = "remediated".into();
                v["resolved_at"] = "2026-10-20T00:00:00Z".into();
                remediated += 1;
            } else if v["kind"] == "finding" && v["severity"] == "high" && lowered < 1 {
                v["severity"] = "low".into();
                lowered += 1;
            }
            format!("{v}\n")
        })
        .collect()
}

/// The KPI JSON of October 2026 without its generation time.
fn kpis(s: &Setup, store: &Path) -> String {
    let text = ok(cli(
        s,
        store,
        &["report", "--period", "2026-10", "--format", "json"],
    ));
    text.lines()
        .filter(|l| !l.trim_start().starts_with("\"generated_at\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The row of `connector` in a sync table: [pages, requests, new,
/// replaced, unchanged, skipped, gone].
fn sync_row(out: &str, connector: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(connector))
        .unwrap_or_else(|| panic!("no row {connector} in\n{out}"));
    line.split_whitespace()
        .skip(1)
        .take(7)
        .map(|n| n.parse().expect("count"))
        .collect()
}

fn backup(s: &Setup, store: &Path, file: &Path) -> String {
    let o = cli(
        s,
        store,
        &["export", "--all", "--out", file.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::read_to_string(file).unwrap()
}

#[test]
fn a_backup_restores_the_kpis_the_packs_as_sent_the_outbox_and_the_cursors() {
    // Slack refuses for now (the entry stays pending); SMTP takes the mail.
    let slack = FakeHttp::start(Arc::new(|_, _| (500, vec![], "down".into(), 0)));
    let (smtp_port, mails) = start_smtp();
    let s = setup(&format!(
        r#"
[[connectors]]
kind = "ndjson"
name = "files"
paths = ["{inbox}"]

[[digests]]
name = "monthly"
schedule = "0 0 8 1 * *"
channels = ["slack", "email"]

[slack]
webhook_url_file = "{webhook}"

[email]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "secmetrics <secmetrics@example.test>"
to = ["ciso@example.test"]
"#,
        inbox = "INBOX",
        webhook = "WEBHOOK",
    ));
    let dir = s.dir.path();
    let inbox = dir.join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let webhook = dir.join("webhook");
    std::fs::write(
        &webhook,
        format!(
            "http://127.0.0.1:{}/services/T000/{WEBHOOK_SECRET}\n",
            slack.port
        ),
    )
    .unwrap();
    let config = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("INBOX", inbox.to_str().unwrap())
        .replace("WEBHOOK", webhook.to_str().unwrap());
    std::fs::write(&s.config, config).unwrap();
    let a = dir.join("a");

    // The estate, then again with changes: history entries.
    let estate = data("golden/estate-linked.ndjson");
    ok(cli(&s, &a, &["import", estate.to_str().unwrap()]));
    let changed = dir.join("changed.ndjson");
    std::fs::write(&changed, changed_estate()).unwrap();
    let out = ok(cli(&s, &a, &["import", changed.to_str().unwrap()]));
    // 20 identities repeated in the file with other bodies flip twice per
    // import (40), plus the 4 changed.
    assert_eq!(summary_row(&out, "finding")[2], 44, "{out}");

    // Overrides: one kept, one set and removed (both in the log).
    let first_finding = |status: &str| -> String {
        read("golden/estate-linked.ndjson")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["kind"] == "finding" && v["status"] == status && v["source"] == "sast")
            .map(|v| format!("finding/sast/{}", v["id"].as_str().unwrap()))
            .unwrap()
    };
    let kept = first_finding("open");
    let removed = first_finding("remediated");
    ok(cli(
        &s,
        &a,
        &[
            "override",
            &kept,
            "--validity",
            "false_positive",
            "--severity",
            "low",
            "--reason",
            "scanner noise",
            "--by",
            "alice",
        ],
    ));
    ok(cli(
        &s,
        &a,
        &[
            "override",
            &removed,
            "--validity",
            "invalid",
            "--reason",
            "typo",
            "--by",
            "bob",
        ],
    ));
    ok(cli(
        &s,
        &a,
        &["override", "--remove", &removed, "--by", "bob"],
    ));

    // A connector's cursor, and a record it no longer returns (gone).
    std::fs::write(
        inbox.join("extra.ndjson"),
        concat!(
            r#"{"kind":"release","id":"r-keep","asset":"app-001","at":"2026-10-05T00:00:00Z","gate":"passed"}"#,
            "\n",
            r#"{"kind":"release","id":"r-gone","asset":"app-001","at":"2026-10-06T00:00:00Z","gate":"failed","reason":"sca"}"#,
            "\n"
        ),
    )
    .unwrap();
    ok(cli(&s, &a, &["sync"]));
    std::fs::write(
        inbox.join("extra.ndjson"),
        concat!(
            r#"{"kind":"release","id":"r-keep","asset":"app-001","at":"2026-10-05T00:00:00Z","gate":"passed"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = ok(cli(&s, &a, &["sync", "--full"]));
    assert_eq!(sync_row(&out, "files")[6], 1, "one record gone: {out}");

    // A snapshot, and a digest: email sent, Slack pending.
    ok(cli(
        &s,
        &a,
        &[
            "report",
            "--period",
            "2026-10",
            "--format",
            "json",
            "--snapshot",
        ],
    ));
    let o = cli(&s, &a, &["digest", "monthly", "--period", "2026-10"]);
    assert!(
        stdout(&o).contains("sent 1, failed 1, waiting in the outbox 1"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(mails.lock().unwrap().len(), 1);
    assert_eq!(slack.count(), 1, "one attempt, refused");

    // The backup.
    let file_a = dir.join("a.backup.ndjson");
    let text_a = backup(&s, &a, &file_a);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file_a).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let last: serde_json::Value = serde_json::from_str(text_a.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "$end");
    let lines = &last["lines"];
    assert_eq!(lines["$record"], 1486 + 2, "{last}");
    assert_eq!(lines["$override"], 1, "{last}");
    assert_eq!(lines["$override_log"], 3, "{last}");
    assert_eq!(lines["$cursor"], 1, "{last}");
    assert_eq!(lines["$last_pass"], 1, "{last}");
    assert_eq!(lines["$snapshot"], 2, "{last}");
    assert_eq!(lines["$outbox"], 2, "{last}");
    assert_eq!(lines["$last_import"], 1, "{last}");
    // Every history entry (18 from the first import, more from the second).
    let history = status(&a)["history_entries"].as_u64().unwrap();
    assert!(history > 18, "{history}");
    assert_eq!(lines["$history"], history, "{last}");
    let gone: Vec<&str> = text_a
        .lines()
        .filter(|l| l.contains("\"gone_at\""))
        .collect();
    assert_eq!(gone.len(), 1);
    assert!(gone[0].contains("\"r-gone\""), "{}", gone[0]);
    // No secret of the configuration is in it.
    assert!(!text_a.contains(WEBHOOK_SECRET));
    assert!(!text_a.contains("push-secret-token"));

    // Restored into an empty store.
    let b = dir.join("b");
    let out = ok(cli(&s, &b, &["import", file_a.to_str().unwrap()]));
    assert!(out.contains("restored the backup"), "{out}");
    let (st_a, st_b) = (status(&a), status(&b));
    for key in [
        "records",
        "gone",
        "history_entries",
        "last_import",
        "outbox",
        "outbox_undelivered",
        "connectors",
        "digests",
    ] {
        assert_eq!(st_a[key], st_b[key], "status `{key}`");
    }
    assert_eq!(st_b["outbox_undelivered"][0]["state"], "pending", "{st_b}");
    assert_eq!(kpis(&s, &a), kpis(&s, &b));
    let as_sent = |store: &Path| {
        ok(cli(
            &s,
            store,
            &[
                "report",
                "--period",
                "2026-10",
                "--format",
                "json",
                "--as-sent",
            ],
        ))
    };
    assert_eq!(as_sent(&a), as_sent(&b));
    assert!(as_sent(&b).contains("\"generated_at\""));
    assert_eq!(ok(cli(&s, &a, &["export"])), ok(cli(&s, &b, &["export"])));
    for record in [&kept, &removed] {
        assert_eq!(
            ok(cli(
                &s,
                &a,
                &["explain", record, "--format", "json", "--period", "2026-10"]
            )),
            ok(cli(
                &s,
                &b,
                &["explain", record, "--format", "json", "--period", "2026-10"]
            )),
        );
    }
    // The backup of the restored store is the same file (but its header).
    let text_b = backup(&s, &b, &dir.join("b.backup.ndjson"));
    let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&text_a), body(&text_b));

    // The connector resumes from its cursor: the unchanged file is not read.
    let out = ok(cli(&s, &b, &["sync"]));
    assert_eq!(sync_row(&out, "files")[..5], [0, 0, 0, 0, 0], "{out}");
    // A store without the cursor would read it again.
    let c = dir.join("c");
    let out = ok(cli(&s, &c, &["sync"]));
    assert_eq!(sync_row(&out, "files")[2], 1, "{out}");

    // The digest: the delivered email is never sent again, the pending
    // Slack entry is still pending and retried.
    let o = cli(&s, &b, &["digest", "monthly", "--period", "2026-10"]);
    assert!(
        stdout(&o).contains("was queued before"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(
        mails.lock().unwrap().len(),
        1,
        "the email is not sent twice"
    );
    let st = status(&b);
    assert_eq!(st["outbox"]["sent"], 1, "{st}");
    assert_eq!(st["outbox"]["pending"], 1, "Slack still refuses: {st}");
    assert!(mails.lock().unwrap()[0].contains("ciso@example.test"));
}

#[test]
fn a_backup_is_restored_only_into_an_empty_store_unless_merged_and_only_whole() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let estate = data("golden/estate-small.ndjson");
    let o = run(&a, &["import", estate.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let file = dir.path().join("backup.ndjson");
    let o = run(&a, &["export", "--all", "--out", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();

    // Into the store it came from: refused, saying why and what to do.
    let o = run(&a, &["import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("is not empty (it holds records"), "{e}");
    assert!(e.contains("--merge-backup"), "{e}");
    // Merged on purpose: the same records.
    let o = run(&a, &["import", "--merge-backup", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&run(&a, &["export"])).lines().count(), 305);

    // Cut short: refused, nothing written.
    let cut = dir.path().join("cut.ndjson");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).unwrap();
    let b = dir.path().join("b");
    let o = run(&b, &["import", cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("has no `$end` line"), "{}", stderr(&o));
    assert_eq!(stdout(&run(&b, &["export"])), "");
    // A line missing: the counts disagree.
    let mut missing = lines.clone();
    missing.remove(5);
    std::fs::write(&cut, missing.join("\n")).unwrap();
    let o = run(&b, &["import", cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the `$end` line counts"),
        "{}",
        stderr(&o)
    );
    // A bad line: named with its line number, nothing written.
    let mut bad = lines.clone();
    let broken = bad[3].replace("\"first_seen_at\":\"", "\"first_seen_at\":\"x");
    bad[3] = &broken;
    std::fs::write(&cut, bad.join("\n")).unwrap();
    let o = run(&b, &["import", cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains(&format!("{}:4: ", cut.display())), "{e}");
    assert!(e.contains("nothing was restored"), "{e}");
    assert_eq!(stdout(&run(&b, &["export"])), "");
    // A newer backup format: refused with what to do.
    let newer = lines[0].replace("\"format\":1", "\"format\":99");
    let mut v = lines.clone();
    v[0] = &newer;
    std::fs::write(&cut, v.join("\n")).unwrap();
    let o = run(&b, &["import", cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("written by a newer secmetrics (0.1.0 with backup format 99"),
        "{}",
        stderr(&o)
    );
    // With other files, or on standard input: refused.
    let o = run(
        &b,
        &["import", file.to_str().unwrap(), estate.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("it is restored alone"),
        "{}",
        stderr(&o)
    );
    let o = bin()
        .arg("--data-dir")
        .arg(&b)
        .args(["import", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("restored from a file, not standard input"),
        "{}",
        stderr(&o)
    );
    // The whole file: restored.
    let o = run(&b, &["import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&run(&b, &["export"])), stdout(&run(&a, &["export"])));
}

#[test]
fn a_backup_that_would_hold_a_configured_secret_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "ghp_backupsecret0123456789\n").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\npush_token_file = \"{}\"\n",
            dir.path().join("token").display()
        ),
    )
    .unwrap();
    let store: PathBuf = dir.path().join("s");
    // A producer that pasted the token into a record (the store cannot
    // tell a token from text).
    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        r#"{"kind":"release","id":"r1","asset":"a","at":"2026-10-01T00:00:00Z","gate":"passed","note":"ghp_backupsecret0123456789"}"#,
    )
    .unwrap();
    let run_c = |args: &[&str]| {
        bin()
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&store)
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(
        run_c(&["import", input.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let out = dir.path().join("backup.ndjson");
    let o = run_c(&["export", "--all", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("a `$record` line would hold the configured secret `admin.push_token`"),
        "{e}"
    );
    assert!(!e.contains("ghp_backupsecret"), "{e}");
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn while_the_daemon_holds_the_store_the_backup_comes_through_its_socket() {
    use crate::daemon::{import_small, Daemon};
    let s = setup("");
    import_small(&s);
    let store = s.dir.path().join("store");
    let d = Daemon::start(s.dir.path(), &s.config);
    // The CLI cannot open the store; it asks the daemon.
    let file = s.dir.path().join("live.ndjson");
    let o = bin()
        .arg("--config")
        .arg(&s.config)
        .args(["export", "--all", "--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("backed up 308 lines to"),
        "{}",
        stderr(&o)
    );
    let live = std::fs::read_to_string(&file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(d.log().contains("backup sent through the admin API"));
    assert!(!live.contains("push-secret-token"));
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    // The same as a backup made with the daemon stopped.
    let file2 = s.dir.path().join("stopped.ndjson");
    let stopped = backup(&s, &store, &file2);
    let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&live), body(&stopped));
    // And it restores.
    let b = s.dir.path().join("b");
    ok(cli(&s, &b, &["import", file.to_str().unwrap()]));
    assert_eq!(
        ok(cli(&s, &b, &["export"])),
        ok(cli(&s, &store, &["export"]))
    );
}

#[test]
fn a_backup_is_not_restored_into_the_store_a_running_daemon_holds() {
    use crate::daemon::{import_small, Daemon};
    let s = setup("");
    import_small(&s);
    let store = s.dir.path().join("store");
    let file = s.dir.path().join("b.ndjson");
    backup(&s, &store, &file);
    let d = Daemon::start(s.dir.path(), &s.config);
    let o = cli(&s, &store, &["import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a backup is restored with the daemon stopped"),
        "{}",
        stderr(&o)
    );
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
}
