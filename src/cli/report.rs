//! `secmetrics report`: compute the KPI pack of a period from the store and
//! render it; `--snapshot` keeps the JSON as sent, `--as-sent` prints a kept
//! one unchanged. The clock is read here, never in the engine.

use super::Context;
use crate::kpi::{self, Period};
use crate::report::{self, Format};
use anyhow::Context as _;
use secmetrics_connectors::Time;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Options of `report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Period to report: a month `YYYY-MM`, an ISO week `YYYY-Www` or a
    /// day `YYYY-MM-DD`, between midnights in `kpi.timezone`. Default: the
    /// last complete month there.
    #[arg(long, value_name = "PERIOD", conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// Start of an arbitrary period (RFC 3339, or `YYYY-MM-DD` for midnight
    /// in `kpi.timezone`), inclusive.
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<String>,
    /// End of an arbitrary period (RFC 3339, or `YYYY-MM-DD` for midnight in
    /// `kpi.timezone`), exclusive.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,
    /// Output format: text, markdown, json or html.
    #[arg(long, default_value = "text", value_parser = parse_format)]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Headline history over this many periods (charts of the HTML report;
    /// default 6 for html, none otherwise).
    #[arg(long, value_name = "N", value_parser = parse_trend)]
    pub trend: Option<usize>,
    /// Keep the pack's JSON in the store as the pack sent for this period.
    #[arg(long, conflicts_with = "as_sent")]
    pub snapshot: bool,
    /// Print the pack kept with `--snapshot` for this period, unchanged
    /// (JSON), instead of computing it again.
    #[arg(long)]
    pub as_sent: bool,
}

fn parse_trend(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= 120 => Ok(n),
        _ => Err(format!("`{s}` is not a number of periods from 0 to 120")),
    }
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// Parse `YYYY-MM-DD` (midnight in `zone`) or RFC 3339 with an explicit
/// offset.
fn parse_time(s: &str, zone: chrono_tz::Tz) -> anyhow::Result<Time> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(kpi::period::midnight(zone, d));
    }
    Ok(chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("`{s}` is neither YYYY-MM-DD nor RFC 3339 with an offset"))?
        .to_utc())
}

/// The period the options name, in the reporting time zone `zone`; the
/// last complete month there by default.
pub fn period_of(args: &ReportArgs, now: Time, zone: chrono_tz::Tz) -> anyhow::Result<Period> {
    Ok(match (&args.period, &args.from, &args.to) {
        (Some(p), _, _) => Period::parse(p, zone)?,
        (None, Some(from), Some(to)) => {
            Period::range_in(parse_time(from, zone)?, parse_time(to, zone)?, zone)?
        }
        _ => Period::last_complete(kpi::Unit::Month, now, zone),
    })
}

fn write_out(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// Run `report`.
pub fn run(ctx: &Context, args: ReportArgs) -> anyhow::Result<i32> {
    let now = chrono::Utc::now();
    let period = period_of(&args, now, ctx.config.kpi.timezone.0)?;
    let key = report::snapshot_key(&period);
    let store = ctx.open_store()?;

    if args.as_sent {
        if args.format != Format::Json {
            anyhow::bail!("--as-sent prints the JSON kept for the period; use --format json");
        }
        let Some(bytes) = store.snapshot(&key)? else {
            anyhow::bail!(
                "no snapshot kept for {key}; `secmetrics report --period {key} --snapshot` keeps one"
            );
        };
        let text = String::from_utf8(bytes).context("stored snapshot is not UTF-8")?;
        write_out(args.out.as_deref(), &text)?;
        return Ok(0);
    }

    let started = std::time::Instant::now();
    let estate = store.load_estate().context("cannot load the records")?;
    let loaded = started.elapsed();
    let cfg = &ctx.config.kpi;
    let trend = args
        .trend
        .unwrap_or(if args.format == Format::Html { 6 } else { 0 });
    let pack = kpi::with_history(&estate, &period, cfg, now, trend);
    tracing::debug!(
        findings = estate.findings.len(),
        load_ms = loaded.as_millis() as u64,
        compute_ms = (started.elapsed() - loaded).as_millis() as u64,
        "KPI pack computed"
    );
    if args.snapshot {
        let json = report::render(&pack, Format::Json, false);
        store.put_snapshot(&key, json.as_bytes())?;
        store.flush()?;
        eprintln!("kept the pack for {key} as sent");
    }
    let color = args.format == Format::Text
        && args.out.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    write_out(
        args.out.as_deref(),
        &report::render(&pack, args.format, color),
    )?;
    Ok(0)
}
