//! `cargo bench --bench figures`: every figure the issues ask for, measured
//! on this machine in one run, as the user runs them (the release binary,
//! a fresh store, wall time and peak RSS of the whole command), printed as
//! the Markdown table of `docs/performance.md`.
//!
//! Inputs are generated here: 1,000,000 findings with proportional other
//! kinds (the demo estate, exported as NDJSON), a 200,000-result SARIF
//! file of about 130 MB. The sync figures come from the `sync` and
//! `sync_tickets` benches, run as part of this one. Set
//! `SECMETRICS_FIGURES_QUICK=1` for a tenth of the sizes (a smoke run).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One measured command: wall time and the peak RSS of its process.
struct Run {
    wall: Duration,
    peak_kib: u64,
}

/// Run `secmetrics ARGS` to its end, measuring it (`wait4` gives the
/// child's own peak RSS, and reaps it).
#[allow(clippy::zombie_processes)]
fn measure(args: &[&str]) -> Run {
    let mut log = tempfile::tempfile().expect("a log file");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_secmetrics"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log.try_clone().expect("a log file")))
        .spawn()
        .expect("run secmetrics");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; `usage` is a plain C struct.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    let mut err = String::new();
    use std::io::Seek;
    let _ = log.rewind();
    let _ = log.read_to_string(&mut err);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "secmetrics {args:?} failed: {err}"
    );
    Run {
        wall,
        peak_kib: usage.ru_maxrss as u64,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A SARIF log of `n` results in the shape CodeQL-like tools write: rules
/// with `security-severity`, locations with regions and snippets, code
/// flows, partial fingerprints (about 650 bytes a result).
fn write_sarif(path: &Path, n: usize) -> u64 {
    let f = std::fs::File::create(path).unwrap();
    let mut w = BufWriter::with_capacity(1 << 20, f);
    write!(w, r#"{{"version":"2.1.0","runs":[{{"tool":{{"driver":{{"name":"BenchScanner","version":"1.0","rules":["#).unwrap();
    for r in 0..200 {
        if r > 0 {
            write!(w, ",").unwrap();
        }
        write!(w, r#"{{"id":"R{r}","shortDescription":{{"text":"Rule {r}"}},"defaultConfiguration":{{"level":"warning"}},"properties":{{"security-severity":"{}.{}","tags":["security"]}}}}"#, r % 10, r % 7).unwrap();
    }
    write!(w, r#"]}}}},"invocations":[{{"executionSuccessful":true,"endTimeUtc":"2026-03-01T00:00:00Z"}}],"results":["#).unwrap();
    for i in 0..n {
        if i > 0 {
            write!(w, ",").unwrap();
        }
        let (r, m, l) = (i % 200, i % 50, i % 900 + 1);
        write!(w, r#"{{"ruleId":"R{r}","ruleIndex":{r},"level":"error","message":{{"text":"Finding {i}: a tainted value reaches a sink."}},"locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"src/module{m}/file{i}.py","uriBaseId":"%SRCROOT%"}},"region":{{"startLine":{l},"startColumn":5,"endLine":{l},"endColumn":40,"snippet":{{"text":"password = 'not-a-real-secret-{i}'"}}}}}}}}],"partialFingerprints":{{"primaryLocationLineHash":"{i:016x}:1"}},"codeFlows":[{{"threadFlows":[{{"locations":[{{"location":{{"physicalLocation":{{"artifactLocation":{{"uri":"src/module{m}/entry.py"}},"region":{{"startLine":{l}}}}}}}}}]}}]}}],"properties":{{"precision":"high"}}}}"#).unwrap();
    }
    write!(w, "]}}]}}").unwrap();
    w.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// CPU seconds (user + system) a process has used, from `/proc`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based): 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// One GET over the admin socket: (status, body bytes).
fn get(socket: &Path, path: &str) -> (u16, usize) {
    use std::os::unix::net::UnixStream;
    let Ok(mut s) = UnixStream::connect(socket) else {
        return (0, 0);
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: secmetrics\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out.len())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Start the daemon on `store`, wait until it is ready, then measure its
/// CPU over `idle` and `/metrics` over 50 scrapes.
fn daemon(dir: &Path, store: &Path, idle: Duration) -> (f64, u64, f64, f64) {
    let socket = dir.join("admin.sock");
    let config = dir.join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n[admin]\nsocket = \"{}\"\n",
            store.display(),
            socket.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_secmetrics"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&socket, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "the daemon did not get ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id();
    let before = cpu_secs(pid);
    std::thread::sleep(idle);
    let idle_cpu = cpu_secs(pid) - before;
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let mut scrapes: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let (status, _) = get(&socket, "/metrics");
            assert_eq!(status, 200);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    scrapes.sort_by(|a, b| a.total_cmp(b));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    (
        idle_cpu,
        rss_kib,
        percentile(&scrapes, 0.5),
        percentile(&scrapes, 0.99),
    )
}

/// Run another bench of this package and keep its output.
fn bench(name: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["bench", "--bench", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo bench");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let quick = std::env::var_os("SECMETRICS_FIGURES_QUICK").is_some();
    let (findings, results) = if quick {
        (100_000, 20_000)
    } else {
        (1_000_000, 200_000)
    };
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { dir.path().join(name) };
    let mut rows: Vec<(String, String, String)> = Vec::new();

    // Inputs.
    eprintln!("figures: generating {findings} findings and {results} SARIF results…");
    let demo = d("demo");
    let size = findings.to_string();
    measure(&["demo", "--size", &size, "--out", demo.to_str().unwrap()]);
    let ndjson = d("estate.ndjson");
    let demo_store = demo.join("store");
    measure(&[
        "--data-dir",
        demo_store.to_str().unwrap(),
        "export",
        "--out",
        ndjson.to_str().unwrap(),
    ]);
    // Counted streaming: this process's own peak RSS must stay small, since
    // a child's `ru_maxrss` starts from its parent's peak (Linux carries
    // the high-water mark of the address space the child leaves at exec).
    let lines = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&ndjson).unwrap(),
    ))
    .count();
    let sarif = d("scan.sarif");
    let sarif_bytes = write_sarif(&sarif, results);

    // SARIF import into an empty store.
    let s = d("sarif-store");
    let r = measure(&[
        "--data-dir",
        s.to_str().unwrap(),
        "import",
        "--format",
        "sarif",
        "--asset",
        "web",
        sarif.to_str().unwrap(),
    ]);
    rows.push((
        format!(
            "`import --format sarif`, {results} results ({:.0} MB), empty store",
            sarif_bytes as f64 / 1e6
        ),
        secs(r.wall),
        mib(r.peak_kib),
    ));

    // NDJSON import into an empty store.
    let store = d("store");
    let r = measure(&[
        "--data-dir",
        store.to_str().unwrap(),
        "import",
        ndjson.to_str().unwrap(),
    ]);
    rows.push((
        format!("`import` of {lines} NDJSON records ({findings} findings), empty store"),
        secs(r.wall),
        mib(r.peak_kib),
    ));

    // The report over that store, whole command, three runs.
    let out = d("pack.json");
    let mut walls = Vec::new();
    let mut peak = 0;
    for _ in 0..3 {
        let r = measure(&[
            "--data-dir",
            store.to_str().unwrap(),
            "report",
            "--period",
            "2026-10",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ]);
        walls.push(r.wall);
        peak = peak.max(r.peak_kib);
    }
    walls.sort();
    rows.push((
        "`report --format json` over it, whole command (3 runs)".to_string(),
        format!(
            "{} to {} (median {})",
            secs(walls[0]),
            secs(walls[2]),
            secs(walls[1])
        ),
        mib(peak),
    ));

    // Reconciliation alone, on the estate loaded from that store.
    {
        let st = secmetrics::store::Store::open(&store).unwrap();
        let loaded = Instant::now();
        let mut estate = st.load_estate().unwrap();
        let load = loaded.elapsed();
        let t = Instant::now();
        secmetrics::reconcile::reconcile(&mut estate, &Default::default());
        let rec = t.elapsed();
        rows.push((
            format!(
                "store load for KPIs, then reconcile ({} findings), in process",
                estate.findings.len()
            ),
            format!("load {}, reconcile {}", secs(load), secs(rec)),
            "—".into(),
        ));
    }

    // The daemon on that store: idle CPU and scrapes.
    let idle = Duration::from_secs(if quick { 5 } else { 30 });
    let (cpu, rss, p50, p99) = daemon(dir.path(), &store, idle);
    rows.push((
        format!(
            "daemon idle CPU over {} s ({findings} findings)",
            idle.as_secs()
        ),
        format!("{cpu:.2} s"),
        format!("{} RSS", mib(rss)),
    ));
    rows.push((
        "daemon `/metrics` scrape, 50 in a row".into(),
        format!("median {p50:.1} ms, p99 {p99:.1} ms"),
        "—".into(),
    ));

    println!("| figure | wall | peak RSS |");
    println!("|---|---|---|");
    for (what, wall, rss) in &rows {
        println!("| {what} | {wall} | {rss} |");
    }

    if !quick {
        println!("\n### `cargo bench --bench sync` (GitHub alerts into the store)\n");
        println!("{}", bench("sync"));
        println!("\n### `cargo bench --bench sync_tickets` (Jira and PagerDuty)\n");
        println!("{}", bench("sync_tickets"));
    }
}
