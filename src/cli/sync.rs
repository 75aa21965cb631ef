//! `secmetrics sync [--connector NAME] [--full]`: one pass of every
//! configured connector (or one), each page written with its cursor in one
//! atomic store write. Ctrl-C finishes the page in flight and stops.

use super::Context;
use crate::config::connector_token;
use crate::sync::{sync_one_observed, SyncReport};
use anyhow::Context as _;
use secmetrics_connectors::SyncMode;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// Run the passes; exit code 1 when any connector failed.
pub fn run(ctx: &Context, args: SyncArgs) -> anyhow::Result<i32> {
    let selected: Vec<_> = match &args.connector {
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
    if selected.is_empty() {
        eprintln!("no [[connectors]] configured; nothing to sync");
        return Ok(0);
    }
    // Build every selected connector first: a bad token or setting is
    // reported before anything is fetched.
    let mut connectors = Vec::new();
    for settings in selected {
        let name = settings.name().to_string();
        let token = connector_token(&settings)?;
        let c = settings
            .build(token)
            .with_context(|| format!("connector {name}"))?;
        connectors.push(c);
    }
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
    let cancel = Arc::new(AtomicBool::new(false));
    let failed = runtime.block_on(async {
        let flag = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the page in flight");
                flag.store(true, Ordering::Relaxed);
            }
        });
        println!(
            "{:<24} {:>6} {:>8} {:>8} {:>8} {:>9} {:>7} {:>5}  status",
            "connector", "pages", "requests", "new", "replaced", "unchanged", "skipped", "gone"
        );
        let mut failed = 0;
        for c in &connectors {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            // A live counter on a terminal: pages and records committed.
            let name = c.name().to_string();
            let mut show = |pages: u64, records: u64| {
                eprint!("\r{name}: {pages} pages, {records} records committed…");
            };
            let progress: Option<crate::sync::Progress<'_>> = if std::io::stderr().is_terminal() {
                Some(&mut show)
            } else {
                None
            };
            let result =
                sync_one_observed(&store, c.as_ref(), mode, cancel.clone(), progress).await;
            if std::io::stderr().is_terminal() {
                eprint!("\r\x1b[2K");
            }
            match result {
                Ok(report) => print_row(&report),
                Err(e) => {
                    failed += 1;
                    println!("{:<24} {:>57}  failed", c.name(), "");
                    eprintln!("{e}");
                }
            }
        }
        failed
    });
    Ok(if failed > 0 { 1 } else { 0 })
}

fn print_row(r: &SyncReport) {
    let o = &r.outcome;
    let mut status = if o.interrupted {
        "interrupted".to_string()
    } else {
        "ok".to_string()
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
