//! The daemon under load, as an operator runs it: a long NDJSON pass keeps
//! the admin API answering and stops at SIGTERM after the page in flight;
//! a sync that never ends delays no digest.

use crate::common::*;
use crate::daemon::{admin, import_small, readyz, setup, slack_ok, Daemon, FakeHttp};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Pages committed so far by a resync job, from its `current` line
/// ("inv: 12 pages, 12000 records committed").
fn pages_of(job: &serde_json::Value) -> u64 {
    job["current"]
        .as_str()
        .and_then(|c| c.split(": ").nth(1))
        .and_then(|c| c.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_long_ndjson_pass_keeps_the_admin_api_answering_and_sigterm_stops_it_after_the_page_in_flight()
{
    const LINES: usize = 200_000;
    let s = setup("");
    let inbox = s.dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let mut cfg = std::fs::read_to_string(&s.config).unwrap();
    cfg.push_str(&format!(
        "\n[[connectors]]\nkind = \"ndjson\"\nname = \"inv\"\npaths = [\"{}\"]\n",
        inbox.display()
    ));
    std::fs::write(&s.config, cfg).unwrap();
    let d = Daemon::start(s.dir.path(), &s.config);
    d.wait_until("the pass at start (empty inbox) is done", 30, || {
        readyz(&d)["connectors"]["inv"]["synced_since_start"] == true
    });
    // 200,000 findings, written beside the inbox and moved in whole.
    let staged = s.dir.path().join("big.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&staged).unwrap());
        for i in 0..LINES {
            writeln!(
                f,
                r#"{{"kind":"finding","id":"F-{i}","asset":"app-{:03}","severity":"{}","status":"open","opened_at":"2026-09-01T00:00:00Z"}}"#,
                i % 50,
                ["critical", "high", "medium", "low"][i % 4]
            )
            .unwrap();
        }
    }
    std::fs::rename(&staged, inbox.join("big.ndjson")).unwrap();
    let (code, body) = admin(&d.socket(), "POST", "/api/v1/resync", &[], "");
    assert_eq!(code, 202, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_u64()
        .unwrap();
    let job = || {
        let (_, body) = admin(&d.socket(), "GET", &format!("/api/v1/resync/{id}"), &[], "");
        serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()
    };
    d.wait_until("the pass has committed a few pages", 60, || {
        pages_of(&job()) >= 3
    });
    // While the pass runs, health, readiness and metrics answer: each
    // answer comes while the job still runs with pages left to commit.
    for path in ["/healthz", "/readyz", "/metrics", "/healthz", "/healthz"] {
        let (code, _) = admin(&d.socket(), "GET", path, &[], "");
        assert!(code == 200 || code == 503, "{path}: {code}");
        let j = job();
        assert_eq!(
            j["state"], "running",
            "{path} answered only after the pass: {j}"
        );
        assert!(pages_of(&j) < (LINES / 1000) as u64, "{j}");
    }
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    let log = std::fs::read_to_string(s.dir.path().join("daemon.log")).unwrap();
    assert!(
        !log.contains("still running at the end of the grace period"),
        "{log}"
    );
    let store = s.dir.path().join("store");
    let st = status(&store);
    assert_eq!(
        st["connectors"]["inv"]["last_pass"]["state"], "interrupted",
        "{st}"
    );
    let committed = st["records"]["finding"].as_u64().unwrap_or(0);
    assert!(
        committed >= 3000 && committed < LINES as u64 && committed % 1000 == 0,
        "whole pages only, and not the whole file: {committed}"
    );
    // The next start reads the file again and completes it.
    let d = Daemon::start(s.dir.path(), &s.config);
    d.wait_until("the pass at start completes", 120, || {
        readyz(&d)["connectors"]["inv"]["synced_since_start"] == true
    });
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    let st = status(&store);
    assert_eq!(st["records"]["finding"], LINES as u64, "{st}");
    assert_eq!(st["connectors"]["inv"]["last_pass"]["state"], "ok", "{st}");
}

#[test]
fn a_scheduled_sync_that_never_ends_delays_no_digest() {
    // GitHub answers the pass at start, then never answers again.
    let stuck = Arc::new(AtomicBool::new(false));
    let stuck_requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (st, sr) = (stuck.clone(), stuck_requests.clone());
    let github = FakeHttp::start(Arc::new(move |_, path| {
        let json = vec![("content-type".to_string(), "application/json".to_string())];
        if st.load(Ordering::SeqCst) {
            sr.fetch_add(1, Ordering::SeqCst);
            return (200, json, "[]".into(), 600_000);
        }
        if path.contains("/repos") {
            return (200, json, "[]".into(), 0);
        }
        (200, json, "[]".into(), 0)
    }));
    let slack = FakeHttp::start(slack_ok());
    // The digest fires once, 12 s from now; the sync every second.
    let fire = chrono::Utc::now() + chrono::Duration::seconds(12);
    let cron = fire.format("%S %M %H %d %m *").to_string();
    let s = setup(&format!(
        r#"
[daemon.sync_schedules]
gh = "* * * * * *"

[[connectors]]
kind = "github_secret_scanning"
name = "gh"
org = "acme"
base_url = "http://127.0.0.1:{}"
token = "ghp_testtoken"

[[digests]]
name = "monthly"
schedule = "{cron}"
channels = ["slack"]

[slack]
webhook_url = "http://127.0.0.1:{}/services/T/B/X"
"#,
        github.port, slack.port
    ));
    import_small(&s);
    let d = Daemon::start(s.dir.path(), &s.config);
    d.wait_until("the pass at start is done", 30, || {
        readyz(&d)["connectors"]["gh"]["synced_since_start"] == true
    });
    stuck.store(true, Ordering::SeqCst);
    d.wait_until("a scheduled sync is stuck in a request", 30, || {
        stuck_requests.load(Ordering::SeqCst) >= 1
    });
    assert!(
        chrono::Utc::now() < fire,
        "the machine was too slow: the sync got stuck only after the digest's fire time"
    );
    d.wait_until("the digest is delivered despite the stuck sync", 40, || {
        slack.count() >= 1
    });
    // Later fires of the stuck sync are skipped, not piled up.
    assert!(d.log().contains("scheduled sync skipped"), "{}", d.log());
    assert_eq!(stuck_requests.load(Ordering::SeqCst), 1);
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(slack.count(), 1);
}

#[test]
fn with_store_path_unset_the_cli_asks_the_daemon_for_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // As under systemd: the daemon learns its store from $STATE_DIRECTORY;
    // a shell (another HOME, no STATE_DIRECTORY) does not.
    let state = dir.path().join("state");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let file = data("golden/estate-small.ndjson");
    let o = run(&state, &["import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let local = run(
        &state,
        &["report", "--period", "2026-10", "--format", "json"],
    );
    assert!(local.status.success(), "{}", stderr(&local));
    let config = dir.path().join("secmetrics.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nsocket = \"{d}/admin.sock\"\n[daemon]\nsync_schedule = \"0 0 0 1 1 *\"\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start_with_env(dir.path(), &config, &[("STATE_DIRECTORY", &state)]);
    let cli = |args: &[&str]| {
        bin()
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("HOME", &home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("STATE_DIRECTORY")
            .output()
            .unwrap()
    };
    let o = cli(&["status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["store"], state.display().to_string(), "{st}");
    assert_eq!(st["records"]["finding"], 120, "{st}");
    assert_eq!(st["records"]["asset"], 12, "{st}");
    assert!(st["daemon"]["socket"].is_string(), "{st}");
    let o = cli(&["status"]);
    let text = stdout(&o);
    assert!(text.starts_with("daemon       running ("), "{text}");
    assert!(
        text.contains(&format!("store        {} (", state.display())),
        "{text}"
    );
    // The report is the daemon's, figure for figure the same.
    let o = cli(&["report", "--period", "2026-10", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pack = |o: &std::process::Output| {
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_object_mut().unwrap().remove("generated_at");
        v
    };
    assert_eq!(pack(&o), pack(&local));
    assert!(pack(&o)["kpis"]["mttr"].is_object());
    let o = cli(&[
        "report",
        "--period",
        "2026-10",
        "--format",
        "json",
        "--as-sent",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no snapshot kept for 2026-10"),
        "{}",
        stderr(&o)
    );
    let o = cli(&[
        "report",
        "--period",
        "2026-10",
        "--snapshot",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("kept the pack for 2026-10 as sent"),
        "{}",
        stderr(&o)
    );
    let o = cli(&[
        "report",
        "--period",
        "2026-10",
        "--format",
        "json",
        "--as-sent",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = cli(&["report", "--period", "2026-13"]);
    assert_eq!(o.status.code(), Some(2));
    // `check` names the store the daemon holds.
    let o = cli(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("store: {} (held by the daemon", state.display())),
        "{}",
        stdout(&o)
    );
    // No empty store was made in the shell user's home.
    assert!(!home.join(".local").exists());
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
}
