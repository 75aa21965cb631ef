//! `secmetrics sync [--connector NAME] [--full]`: one pass of every
//! configured connector (or one), each page written with its cursor in one
//! atomic store write. Ctrl-C cuts the request in flight at once; the pages
//! committed stay and the next pass resumes from them.

use super::Context;
use crate::config::connector_token;
use crate::sync::{run_passes, Built, PassLimits, PassObserver, PassState, SyncError, SyncReport};
use secmetrics_connectors::{Cancel, SyncMode};
use std::io::IsTerminal;

/// Options of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Only this connector (its `name` in `[[connectors]]`).
    #[arg(long, value_name = "NAME")]
    pub connector: Option<String>,
    /// Re-read everything and mark records the source no longer returns as
    /// gone (with the time) instead of reading what changed.
    #[arg(long)]
    pub full: bool,
}

/// The connectors `args` selects, each built (or why it could not be).
pub fn select(ctx: &Context, connector: Option<&str>) -> anyhow::Result<Vec<Built>> {
    let selected: Vec<_> = match connector {
        Some(name) => match ctx.config.connector(name) {
            Some(c) => vec![c.clone()],
            None => {
                let names: Vec<&str> = ctx.config.connectors.iter().map(|c| c.name()).collect();
                anyhow::bail!(
                    "no connector named {name:?} in the configuration (configured: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                );
            }
        },
        None => ctx.config.connectors.clone(),
    };
    // Build every selected connector first: a bad token or setting is
    // reported before anything is fetched.
    let mut built = Vec::new();
    for settings in selected {
        let name = settings.name().to_string();
        let token = connector_token(&settings)?;
        let c = settings.build(token).map_err(|e| e.to_string());
        if let Err(e) = &c {
            anyhow::bail!("connector {name}: {e}");
        }
        built.push((name, c));
    }
    Ok(built)
}

/// The table `sync` prints: one row per pass, progress on a terminal.
struct Table {
    terminal: bool,
}

impl PassObserver for Table {
    fn progress(&mut self, connector: &str, pages: u64, records: u64) {
        if self.terminal {
            eprint!("\r{connector}: {pages} pages, {records} records committed…");
        }
    }

    fn finished(&mut self, connector: &str, result: &Result<SyncReport, SyncError>) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
        match result {
            Ok(report) => {
                print_row(report);
                for p in &report.outcome.problems {
                    eprintln!("{connector}: unreadable, skipped: {p}");
                }
                if report.outcome.unreadable > report.outcome.problems.len() as u64 {
                    eprintln!(
                        "{connector}: {} more unreadable item(s) not named here",
                        report.outcome.unreadable - report.outcome.problems.len() as u64
                    );
                }
            }
            Err(e) => {
                println!("{connector:<24} {:>57}  failed", "");
                eprintln!("{e}");
            }
        }
    }
}

/// Run the passes; exit code 1 when any connector failed, skipped items it
/// could not read, or was interrupted.
pub fn run(ctx: &Context, args: SyncArgs) -> anyhow::Result<i32> {
    if ctx.config.connectors.is_empty() && args.connector.is_none() {
        eprintln!("no [[connectors]] configured; nothing to sync");
        return Ok(0);
    }
    let connectors = select(ctx, args.connector.as_deref())?;
    let store = ctx.open_store()?;
    let mode = if args.full {
        SyncMode::Full
    } else {
        SyncMode::Incremental
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cancel = Cancel::new();
    let summary = runtime.block_on(async {
        let signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: the request in flight is cut; committed pages stay");
                signal.cancel();
            }
        });
        println!(
            "{:<24} {:>6} {:>8} {:>8} {:>8} {:>9} {:>7} {:>5}  status",
            "connector", "pages", "requests", "new", "replaced", "unchanged", "skipped", "gone"
        );
        let mut table = Table {
            terminal: std::io::stderr().is_terminal(),
        };
        run_passes(
            &store,
            connectors,
            mode,
            cancel.clone(),
            PassLimits::of(&ctx.config),
            &mut table,
        )
        .await
    });
    Ok(
        if summary.failed + summary.partial + summary.interrupted > 0 {
            1
        } else {
            0
        },
    )
}

fn print_row(r: &SyncReport) {
    let o = &r.outcome;
    let mut status = match r.state {
        PassState::Partial => format!("partial: {} unreadable", o.unreadable),
        other => other.as_str().to_string(),
    };
    if let Some(h) = r.http {
        if h.retries > 0 || h.rate_limit_waits > 0 {
            status.push_str(&format!(
                " ({} retries, {} rate-limit waits)",
                h.retries, h.rate_limit_waits
            ));
        }
    }
    println!(
        "{:<24} {:>6} {:>8} {:>8} {:>8} {:>9} {:>7} {:>5}  {status}",
        r.name,
        o.pages,
        o.requests,
        o.committed.inserted,
        o.committed.replaced,
        o.committed.unchanged,
        o.skipped,
        r.gone
    );
}
