//! KPI engine and reconciliation benchmark: the whole pack (current and
//! previous period) over a generated estate of 1,000,000 findings plus
//! proportional other kinds, and the reconcile stage over the same estate
//! linked the way real sources link (urls, shared fingerprints, tickets
//! with refs). Prints times and peak RSS (VmHWM). Run with
//! `cargo bench --bench kpi` (release build); `KPI_BENCH_FINDINGS` changes
//! the size; `KPI_BENCH_STORE=1` also measures loading and reconciling
//! from a sled store (writes the estate into a temporary store first);
//! `KPI_BENCH_STORE=DIR` keeps that store in DIR and reuses it next time.

use secmetrics::kpi::{self, KpiConfig, Period};
use secmetrics::reconcile::{self, ReconcileConfig};
use std::time::Instant;

/// Peak resident set size in MiB, from /proc/self/status (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn summary(mut times: Vec<f64>) -> String {
    times.sort_by(f64::total_cmp);
    format!(
        "min {:.3} s, median {:.3} s, max {:.3} s over {} runs",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    )
}

fn main() {
    let findings: usize = std::env::var("KPI_BENCH_FINDINGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let now = "2026-11-15T12:00:00Z".parse().expect("time");
    let t = Instant::now();
    let estate = secmetrics::demo::estate(findings, now, 42);
    let generate = t.elapsed();
    println!(
        "estate: {} findings, {} assets, {} repos, {} releases, {} secret alerts, {} exceptions, {} incidents (generated in {:.2} s)",
        estate.findings.len(),
        estate.assets.len(),
        estate.repos.len(),
        estate.releases.len(),
        estate.secret_alerts.len(),
        estate.exceptions.len(),
        estate.incidents.len(),
        generate.as_secs_f64()
    );
    let period = Period::parse_month("2026-10").expect("period");
    let cfg = KpiConfig::default();
    let mut times = Vec::new();
    let mut pack = None;
    for _ in 0..5 {
        let t = Instant::now();
        let p = kpi::compute(&estate, &period, &cfg, now);
        times.push(t.elapsed().as_secs_f64());
        pack = Some(p);
    }
    let pack = pack.expect("ran");
    println!("compute (current + previous period): {}", summary(times));
    println!(
        "headline check: open critical/high over 90 days = {:?}",
        pack.kpis.findings_aging.as_ref().and_then(|k| k.headline)
    );
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS after the KPI runs (VmHWM): {mib:.0} MiB");
    }

    // Reconciliation over the same estate, linked.
    let mut linked = estate;
    secmetrics::demo::link(&mut linked, 42);
    let with_links = linked
        .findings
        .iter()
        .filter(|f| f.fingerprint.is_some() || !f.refs.is_empty())
        .count();
    println!(
        "linked estate: {} findings ({} with a fingerprint or refs, all with a url)",
        linked.findings.len(),
        with_links
    );
    let rcfg = ReconcileConfig {
        precedence: vec!["jira".into()],
    };
    let mut times = Vec::new();
    let mut groups = 0;
    let mut members = 0;
    let mut reconciled = None;
    for _ in 0..5 {
        let mut e = linked.clone();
        let t = Instant::now();
        let d = reconcile::reconcile(&mut e, &rcfg);
        times.push(t.elapsed().as_secs_f64());
        groups = d.groups.len();
        members = d.groups.iter().map(|g| g.members.len()).sum::<usize>();
        reconciled = Some(e);
    }
    println!(
        "reconcile ({groups} groups, {members} findings in them): {}",
        summary(times)
    );
    let reconciled = reconciled.expect("ran");
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let p = kpi::compute(&reconciled, &period, &cfg, now);
        times.push(t.elapsed().as_secs_f64());
        std::hint::black_box(p);
    }
    println!("compute on the reconciled estate: {}", summary(times));
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS (VmHWM): {mib:.0} MiB");
    }

    if let Some(dir) = std::env::var_os("KPI_BENCH_STORE") {
        from_store(linked, &rcfg, now, dir);
    }
}

/// Write the linked estate into a store (or reuse the one kept in DIR),
/// then time loading it raw and loading it reconciled (what every pack
/// path does).
fn from_store(
    linked: secmetrics::estate::Estate,
    rcfg: &ReconcileConfig,
    now: secmetrics_connectors::Time,
    dir: std::ffi::OsString,
) {
    let keep = dir != "1";
    let dir = if keep {
        std::path::PathBuf::from(dir)
    } else {
        std::env::temp_dir().join(format!("secmetrics-kpi-bench-{}", std::process::id()))
    };
    let reuse = keep && dir.exists();
    let store = secmetrics::store::Store::open(&dir).expect("store");
    if !reuse {
        write_store(&store, linked, now);
    }
    measure_store(&store, rcfg);
    drop(store);
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn write_store(
    store: &secmetrics::store::Store,
    linked: secmetrics::estate::Estate,
    now: secmetrics_connectors::Time,
) {
    use secmetrics_connectors::Record;
    let t = Instant::now();
    let mut batch = Vec::with_capacity(20_000);
    let write = |batch: &mut Vec<Record>| {
        store.upsert_batch(batch, now).expect("write");
        batch.clear();
    };
    let secmetrics::estate::Estate {
        assets, findings, ..
    } = linked;
    for r in assets
        .into_iter()
        .map(Record::Asset)
        .chain(findings.into_iter().map(Record::Finding))
    {
        batch.push(r);
        if batch.len() == 20_000 {
            write(&mut batch);
        }
    }
    write(&mut batch);
    println!("store written in {:.1} s", t.elapsed().as_secs_f64());
}

fn measure_store(store: &secmetrics::store::Store, rcfg: &ReconcileConfig) {
    let (mut raw, mut rec, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let t = Instant::now();
        let mut estate = store.load_estate().expect("load");
        raw.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(reconcile::reconcile(&mut estate, rcfg));
        rec.push(t.elapsed().as_secs_f64());
        drop(estate);
        let t = Instant::now();
        let r = reconcile::load(store, rcfg).expect("load");
        full.push(t.elapsed().as_secs_f64());
        drop(r);
    }
    println!("Store::load_estate: {}", summary(raw));
    println!("reconcile of the loaded estate: {}", summary(rec));
    println!(
        "reconcile::load (load + overrides + reconcile): {}",
        summary(full)
    );
}
