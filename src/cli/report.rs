//! `secmetrics report`: compute the KPI pack of a period from the store and
//! render it; `--snapshot` keeps the JSON as sent, `--as-sent` prints a kept
//! one unchanged. The clock is read here, never in the engine.

use super::{admin_client, Context};
use crate::report::request::ReportRequest;
use crate::report::Format;
use anyhow::Context as _;
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

impl ReportArgs {
    /// The request these options make.
    pub fn request(&self, color: bool) -> ReportRequest {
        ReportRequest {
            period: self.period.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            format: Some(
                match self.format {
                    Format::Text => "text",
                    Format::Markdown => "markdown",
                    Format::Json => "json",
                    Format::Html => "html",
                }
                .into(),
            ),
            trend: self.trend,
            as_sent: self.as_sent,
            snapshot: self.snapshot,
            color,
            exiting: false,
        }
    }
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

/// Run `report`: asked of the daemon holding the store when one answers
/// (it renders with the same code), else computed here.
pub fn run(ctx: &Context, args: ReportArgs) -> anyhow::Result<i32> {
    let color = args.format == Format::Text
        && args.out.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let mut request = args.request(color);
    request.exiting = true;
    // The period is checked here first: a typo is refused without a trip.
    request.period(chrono::Utc::now(), ctx.config.kpi.timezone.0)?;
    let answer = match admin_client::Daemon::find(ctx) {
        Some(daemon) => daemon.report(&request)?,
        None => {
            let store = ctx.open_store_for_scan()?;
            let answer = request.answer(
                &store,
                &ctx.config.kpi,
                &ctx.config.reconcile,
                chrono::Utc::now(),
            )?;
            // Nothing of a report is left unwritten (a snapshot is flushed
            // by `answer`); the page table is left to the exit, like the
            // records, rather than freed page by page.
            store.flush()?;
            std::mem::forget(store);
            answer
        }
    };
    if let Some(note) = &answer.note {
        eprintln!("{note}");
    }
    write_out(args.out.as_deref(), &answer.text)?;
    Ok(0)
}
