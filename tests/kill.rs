//! Kill test: a real `secmetrics run` is killed with SIGKILL at random
//! points and restarted each time, while an operator pushes NDJSON batches
//! (`POST /api/v1/records`), the GitHub connector syncs page by page from a
//! GitHub played on loopback (each page and its cursor one store write),
//! digests are rendered (`POST /api/v1/digests/NAME?period=P`, over a
//! demo store large enough that rendering takes a while) and sent to a
//! Slack that answers slowly. Each kill lands in one of four phases, in
//! turn: a push, a sync pass, a render, a send.
//!
//! The operator's side is what a person or a producer does: a push or a
//! digest request that got no answer is made again after the restart.
//! At the end the daemon finishes its work and stops; each digest entry
//! that was left `unconfirmed` by a kill during its send is checked
//! against what Slack received, and only one Slack never got is resent
//! (`digest NAME --period P --resend`). Then:
//! - the store equals a clean run's (same demo store, same pushes, same
//!   GitHub, no kills): `secmetrics export` byte for byte;
//! - Slack received every requested period's digest exactly once: the
//!   daemon itself never sent one twice, and none was lost (each one
//!   missing was `unconfirmed`, visible, and resent).
//!
//! Size: 4 kills by default (one per phase, for CI); `SECMETRICS_SOAK=long`
//! runs 50, and a number runs that many.

use crate::common::*;
use crate::daemon::{FakeHttp, Seen};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PUSH_TOKEN: &str = "kill-test-push-token";
/// GitHub alert pages (one alert each) a full pass reads.
const PAGES: usize = 40;
/// Records per pushed batch.
const BATCH: usize = 3000;

fn kills() -> usize {
    match std::env::var("SECMETRICS_SOAK").as_deref() {
        Ok("long") => 50,
        Ok(n) => n.parse().unwrap_or(4),
        Err(_) => 4,
    }
}

/// A small seeded generator (xorshift64*): the kill points are random but
/// the same on every run.
struct Rng(u64);

impl Rng {
    fn gen_range(&mut self, r: std::ops::Range<u64>) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        r.start + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (r.end - r.start)
    }
}

/// A fake HTTP service on loopback answering `answer(path, port)` with
/// (status, headers, body) after `delay_ms` (the daemon tests' `FakeHttp`,
/// which records each request when it arrives, before the delay).
fn serve(
    delay_ms: u64,
    answer: impl Fn(&str, u16) -> (u16, Vec<(String, String)>, String) + Send + Sync + 'static,
) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = FakeHttp::start_on(
        listener,
        Arc::new(move |_, path: &str| {
            let (status, headers, body) = answer(path, port);
            (status, headers, body, delay_ms)
        }),
    );
    (port, fake.seen)
}

/// A GitHub org whose secret scanning list has `PAGES` pages of one
/// alert; its port.
fn github() -> u16 {
    let (port, _) = serve(60, move |path, port| {
        let json = vec![("content-type".to_string(), "application/json".to_string())];
        if path.contains("/repos") {
            return (200, json, "[]".into());
        }
        let page: usize = path
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let mut headers = json;
        if page < PAGES {
            headers.push((
                "link".into(),
                format!("<http://127.0.0.1:{port}/orgs/acme/secret-scanning/alerts?per_page=1&page={}>; rel=\"next\"", page + 1),
            ));
        }
        let body = format!(
            r#"[{{"number":{page},"created_at":"2026-10-{:02}T00:00:00Z","updated_at":"2026-10-20T00:00:00Z","state":"open","resolution":null,"resolved_at":null,"secret_type":"aws_access_key_id","secret":"AKIAFAKEFAKEFAKE{page:04}","validity":"active","push_protection_bypassed":false,"repository":{{"full_name":"acme/app-{}"}}}}]"#,
            1 + page % 19,
            page % 7
        );
        (200, headers, body)
    });
    port
}

/// A daemon process.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("daemon.log"))
            .unwrap();
        let child = bin()
            .arg("--config")
            .arg(dir.join("secmetrics.toml"))
            .arg("run")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            dir: dir.to_path_buf(),
        };
        d.wait_until("the admin socket answers", 60, || {
            d.admin("GET", "/healthz", &[], "").0 == 200
        });
        d
    }

    fn admin(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        admin(&self.dir.join("admin.sock"), method, path, headers, body)
    }

    fn readyz(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin("GET", "/readyz", &[], "").1)
            .unwrap_or(serde_json::Value::Null)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn wait_until(&self, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = self.log();
        panic!(
            "timed out waiting until {what}; daemon log (end):\n{}",
            &log[log.len().saturating_sub(6000)..]
        );
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over the admin socket: (status, body); status 0
/// when the daemon died before answering.
fn admin(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: secmetrics\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).is_ok() {
        let _ = s.write_all(body.as_bytes());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A directory with the demo store copied in and a configuration.
fn prepare(dir: &Path, demo_store: &Path, github_port: u16, slack_port: u16) {
    copy_dir(demo_store, &dir.join("store"));
    std::fs::write(dir.join("push_token"), format!("{PUSH_TOKEN}\n")).unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("secmetrics.toml"),
        format!(
            r#"[store]
path = "{d}/store"

[log]
format = "json"

[admin]
socket = "{d}/admin.sock"
push_token_file = "{d}/push_token"
push_max_bytes = 16777216

[daemon]
sync_schedule = "0 0 0 1 1 *"
retry_base_secs = 1
retry_max_secs = 2
shutdown_grace_secs = 20

[[connectors]]
kind = "github_secret_scanning"
name = "gh"
org = "acme"
base_url = "http://127.0.0.1:{github_port}"
token = "ghp_killtesttoken"
rate = 1000.0
burst = 100
per_page = 1
pages_per_commit = 1

[[digests]]
name = "monthly"
schedule = "0 0 8 1 1 *"
channels = ["slack"]

[slack]
webhook_url = "http://127.0.0.1:{slack_port}/services/T/B/X"
timeout_secs = 30
"#
        ),
    )
    .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The `n`-th pushed batch: `BATCH` findings of one asset.
fn batch(n: usize) -> String {
    let mut out = String::new();
    for i in 0..BATCH {
        out.push_str(&format!(
            r#"{{"kind":"finding","id":"push-{n}-{i}","asset":"pushed-{}","severity":"{}","opened_at":"2026-0{}-0{}T10:00:00Z","status":"open","title":"pushed finding {n}/{i}"}}"#,
            i % 13,
            ["critical", "high", "medium", "low"][i % 4],
            1 + n % 9,
            1 + i % 9
        ));
        out.push('\n');
    }
    out
}

fn push(socket: &Path, n: usize) -> u16 {
    admin(
        socket,
        "POST",
        "/api/v1/records",
        &[("authorization", &format!("Bearer {PUSH_TOKEN}"))],
        &batch(n),
    )
    .0
}

/// The digest periods the operator asks for, one per month.
fn period(n: usize) -> String {
    format!("{}-{:02}", 2025 + n / 12, 1 + n % 12)
}

fn request_digest(socket: &Path, n: usize) -> u16 {
    admin(
        socket,
        "POST",
        &format!("/api/v1/digests/monthly?period={}", period(n)),
        &[],
        "",
    )
    .0
}

fn export(dir: &Path) -> String {
    let o = bin()
        .arg("--config")
        .arg(dir.join("secmetrics.toml"))
        .arg("export")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// Slack messages received per period.
fn received(slack: &Seen) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, body) in slack.lock().unwrap().iter() {
        if let Some(i) = body.find("Product security KPIs — ") {
            let p = &body[i + "Product security KPIs — ".len()..][..7];
            *out.entry(p.to_string()).or_default() += 1;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Push,
    Sync,
    Render,
    Send,
}

#[test]
fn killed_at_random_points_the_store_equals_a_clean_run_and_every_digest_arrives_once() {
    let started = Instant::now();
    let kills = kills();
    let mut rng = Rng(0x6b11_1000_5eed);
    let work = tempfile::tempdir().unwrap();
    // A store large enough that rendering a digest takes a while.
    let demo = bin()
        .args(["demo", "--size", "30000", "--out"])
        .arg(work.path().join("demo"))
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", stderr(&demo));
    let demo_store = work.path().join("demo/store");

    let gh_port = github();
    let (slack_port, slack) = serve(700, |_, _| (200, vec![], "ok".into()));
    let dir = work.path().join("killed");
    prepare(&dir, &demo_store, gh_port, slack_port);
    let socket = dir.join("admin.sock");

    // What the operator has had answered.
    let mut pushes_acked: Vec<bool> = Vec::new();
    let mut digests_acked: Vec<bool> = Vec::new();
    let mut landed: BTreeMap<Phase, (usize, usize)> = BTreeMap::new();
    let phases = [Phase::Push, Phase::Sync, Phase::Render, Phase::Send];
    // How long a push and a render take here, measured once without a
    // kill: kills are then drawn within those spans.
    let (push_ms, render_ms) = {
        let d = Daemon::start(&dir);
        let t = Instant::now();
        assert_eq!(push(&socket, 0), 200, "{}", d.log());
        let push_ms = t.elapsed().as_millis() as u64;
        pushes_acked.push(true);
        let t = Instant::now();
        assert_eq!(request_digest(&socket, 0), 200, "{}", d.log());
        let render_ms = t.elapsed().as_millis() as u64;
        digests_acked.push(true);
        d.wait_until("the first digest is delivered", 60, || {
            d.readyz()["outbox"]["sent"].as_u64() == Some(1)
        });
        assert_eq!(d.terminate(), Some(0));
        (push_ms.max(20), render_ms.max(20))
    };
    for k in 0..kills {
        let phase = phases[k % 4];
        let d = Daemon::start(&dir);
        // Work the last kill left unanswered is asked for again.
        for (n, acked) in pushes_acked.iter_mut().enumerate() {
            if !*acked {
                *acked = push(&socket, n) == 200;
            }
        }
        for (n, acked) in digests_acked.iter_mut().enumerate() {
            if !*acked {
                *acked = request_digest(&socket, n) == 200;
            }
        }
        let inside = match phase {
            Phase::Push => {
                let n = pushes_acked.len();
                let s = socket.clone();
                let t = std::thread::spawn(move || push(&s, n));
                std::thread::sleep(Duration::from_millis(rng.gen_range(push_ms / 10..push_ms)));
                d.kill9();
                let answered = t.join().unwrap() == 200;
                pushes_acked.push(answered);
                !answered
            }
            Phase::Sync => {
                // Every start syncs; a kill lands among its page writes.
                std::thread::sleep(Duration::from_millis(rng.gen_range(100..1500)));
                let passing = d.readyz()["connectors"]["gh"]["synced_since_start"] != true;
                d.kill9();
                passing
            }
            Phase::Render => {
                let n = digests_acked.len();
                let s = socket.clone();
                let t = std::thread::spawn(move || request_digest(&s, n));
                std::thread::sleep(Duration::from_millis(
                    rng.gen_range(render_ms / 10..render_ms),
                ));
                d.kill9();
                let answered = t.join().unwrap() == 200;
                digests_acked.push(answered);
                !answered
            }
            Phase::Send => {
                let n = digests_acked.len();
                let before = slack.lock().unwrap().len();
                let code = request_digest(&socket, n);
                assert_eq!(code, 200, "the digest request failed: {}", d.log());
                digests_acked.push(true);
                // The send starts; Slack takes 700 ms to answer.
                d.wait_until("the digest is being sent", 30, || {
                    slack.lock().unwrap().len() > before
                        || d.readyz()["outbox"]["sending"].as_u64() > Some(0)
                });
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..900)));
                let sending = d.readyz()["outbox"]["sending"].as_u64() > Some(0);
                d.kill9();
                sending
            }
        };
        let e = landed.entry(phase).or_default();
        e.0 += 1;
        e.1 += usize::from(inside);
    }

    // The last start: everything unanswered is asked for again, the sync
    // pass and the deliveries finish, the daemon stops.
    let d = Daemon::start(&dir);
    for (n, acked) in pushes_acked.iter_mut().enumerate() {
        if !*acked {
            *acked = push(&socket, n) == 200;
        }
    }
    for (n, acked) in digests_acked.iter_mut().enumerate() {
        if !*acked {
            *acked = request_digest(&socket, n) == 200;
        }
    }
    assert!(pushes_acked.iter().all(|a| *a), "{pushes_acked:?}");
    assert!(digests_acked.iter().all(|a| *a), "{digests_acked:?}");
    d.wait_until("the sync pass and every delivery are done", 120, || {
        let r = d.readyz();
        r["connectors"]["gh"]["synced_since_start"] == true
            && r["outbox"]["pending"].as_u64().unwrap_or(0) == 0
            && r["outbox"]["sending"].as_u64().unwrap_or(0) == 0
    });
    assert_eq!(d.terminate(), Some(0));

    // At most once: the daemon never sent a period twice.
    let by_daemon = received(&slack);
    assert!(
        by_daemon.values().all(|n| *n == 1),
        "a digest was sent twice: {by_daemon:?}"
    );
    // None lost: a period Slack never got was left unconfirmed by a kill
    // during its send, and is resent by the operator.
    let st = {
        let o = bin()
            .arg("--config")
            .arg(dir.join("secmetrics.toml"))
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    assert_eq!(st["outbox"]["failed"].as_u64().unwrap_or(0), 0, "{st}");
    let unconfirmed: Vec<String> = st["outbox_undelivered"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "unconfirmed")
        .map(|e| e["period"].as_str().unwrap().to_string())
        .collect();
    let mut resent = 0;
    for n in 0..digests_acked.len() {
        let p = period(n);
        if by_daemon.contains_key(&p) {
            continue;
        }
        assert!(
            unconfirmed.contains(&p),
            "{p} was never received and is not unconfirmed: {st}"
        );
        let o = bin()
            .arg("--config")
            .arg(dir.join("secmetrics.toml"))
            .args(["digest", "monthly", "--period", &p, "--resend"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        resent += 1;
    }
    let all = received(&slack);
    let expected: BTreeMap<String, usize> =
        (0..digests_acked.len()).map(|n| (period(n), 1)).collect();
    assert_eq!(all, expected, "every digest exactly once");

    // The clean run: same demo store, same pushes, same GitHub, no kills.
    let clean = work.path().join("clean");
    let (quiet_slack, _) = serve(0, |_, _| (200, vec![], "ok".into()));
    prepare(&clean, &demo_store, gh_port, quiet_slack);
    let c = Daemon::start(&clean);
    for n in 0..pushes_acked.len() {
        assert_eq!(push(&clean.join("admin.sock"), n), 200);
    }
    c.wait_until("the clean sync pass is done", 120, || {
        c.readyz()["connectors"]["gh"]["synced_since_start"] == true
    });
    assert_eq!(c.terminate(), Some(0));
    let (killed, clean) = (export(&dir), export(&clean));
    assert_eq!(
        killed.lines().count(),
        clean.lines().count(),
        "record counts differ"
    );
    assert!(killed == clean, "the export differs from a clean run's");
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap();
    assert!(!log.contains(PUSH_TOKEN) && !log.contains("ghp_killtesttoken"));
    println!(
        "kill test: a push takes {push_ms} ms, a render {render_ms} ms; {kills} kills (phase: (kills, landed inside it)) {landed:?}, {} pushes of {BATCH} records, \
         {} digests ({} left unconfirmed by a kill, {resent} of them never received and resent), \
         {} records exported equal to the clean run, {:.1} s",
        pushes_acked.len(),
        digests_acked.len(),
        unconfirmed.len(),
        killed.lines().count(),
        started.elapsed().as_secs_f64()
    );
}
