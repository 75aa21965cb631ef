//! KPI engine benchmark: the whole pack (current and previous period) over a
//! generated estate of 1,000,000 findings plus proportional other kinds.
//! Prints compute time and peak RSS (VmHWM). Run with
//! `cargo bench --bench kpi` (release build); `KPI_BENCH_FINDINGS` changes
//! the size.

use secmetrics::kpi::{self, KpiConfig, Period};
use std::time::Instant;

/// Peak resident set size in MiB, from /proc/self/status (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
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
    times.sort_by(f64::total_cmp);
    let pack = pack.expect("ran");
    println!(
        "compute (current + previous period): min {:.3} s, median {:.3} s, max {:.3} s over {} runs",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
    println!(
        "headline check: open critical/high over 90 days = {:?}",
        pack.kpis.findings_aging.as_ref().and_then(|k| k.headline)
    );
    match peak_rss_mib() {
        Some(mib) => println!("peak RSS (VmHWM): {mib:.0} MiB"),
        None => println!("peak RSS: not available on this platform"),
    }
}
