//! The command line: global options, one module per command, and the
//! context (configuration, store location) the commands share.

pub mod admin_client;
mod check;
mod demo;
mod digest;
mod explain;
mod export;
mod import;
mod overrides;
pub mod report;
mod resync;
mod run;
mod status;
mod sync;

use crate::config::Config;
use crate::store::Store;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// secmetrics: exact product-security KPIs from the tools you already run.
#[derive(Debug, Parser)]
#[command(name = "secmetrics", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without one, defaults apply.
    #[arg(long, global = true, env = "SECMETRICS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store directory (overrides `store.path`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load records (NDJSON, `-` for stdin) into the store.
    Import(import::ImportArgs),
    /// Write the current records as NDJSON (records.md format), sorted by
    /// kind, source and id.
    Export(export::ExportArgs),
    /// Records per kind and source, last import, connector cursors, store size.
    Status(status::StatusArgs),
    /// Validate the configuration (and its secrets) and say what is wrong.
    Check,
    /// Compute and render the KPI pack of a period.
    Report(report::ReportArgs),
    /// Generate a demo estate into a temporary store and show its pack.
    Demo(demo::DemoArgs),
    /// One pass of the configured connectors: what changed since each
    /// connector's cursor (or everything, with `--full`).
    Sync(sync::SyncArgs),
    /// Run the daemon: scheduled syncs and digests, outbox, admin API.
    Run,
    /// Ask the running daemon to sync now (or sync here when none runs).
    Resync(resync::ResyncArgs),
    /// Render a digest now and send it (or print it with `--dry-run`).
    Digest(digest::DigestArgs),
    /// Set, list or remove a manual override of a finding's validity and
    /// severity (applied before reconciliation; no sync undoes it).
    Override(overrides::OverrideArgs),
    /// Why a record counts where it counts: stored record, history,
    /// overrides, reconciliation group and the KPIs of a period.
    Explain(explain::ExplainArgs),
}

/// What every command gets: the loaded configuration and where the store is.
pub struct Context {
    /// The configuration.
    pub config: Config,
    /// The configuration file, if one was given.
    pub config_path: Option<PathBuf>,
    /// The store directory.
    pub store_path: PathBuf,
    /// The store was named (`--data-dir` or `store.path`), not defaulted:
    /// a daemon answering on the socket is asked only when it holds that
    /// one.
    pub store_given: bool,
}

impl Context {
    /// Open the store, with a plain message when the daemon holds it, or
    /// when it belongs to another user: opening it would leave files that
    /// user (the service's dynamic user, say) cannot write.
    pub fn open_store(&self) -> anyhow::Result<Store> {
        self.check_owner()?;
        Ok(Store::open(&self.store_path)?)
    }

    /// [`Context::open_store`] for a command that reads the records once
    /// (report, export): see [`Store::open_for_scan`].
    pub fn open_store_for_scan(&self) -> anyhow::Result<Store> {
        self.check_owner()?;
        Ok(Store::open_for_scan(&self.store_path)?)
    }

    fn check_owner(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(meta), Some(me)) = (std::fs::metadata(&self.store_path), effective_uid()) {
            if meta.uid() != me {
                anyhow::bail!(
                    "the store at {} belongs to uid {}, not to this user (uid {me}): it is \
                     another user's store (the service's, under systemd), and writing it \
                     from here would leave files that user cannot write. Ask the daemon \
                     (start it: `secmetrics status` and `report` go through it), or run \
                     the command as that user (`systemd-run --pty -p DynamicUser=yes -p \
                     StateDirectory=secmetrics secmetrics --config FILE status`)",
                    self.store_path.display(),
                    meta.uid()
                );
            }
        }
        Ok(())
    }
}

/// This process's effective user id (from `/proc/self/status`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    uid_of(&status)
}

/// The effective uid of a `/proc/PID/status` text (`Uid: real effective ...`).
fn uid_of(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Run the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("secmetrics: {e:#}");
            2
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Check = cli.command {
        return Ok(check::run(cli.config.as_deref()));
    }
    let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    crate::logging::init(&config.log);
    let ctx = Context {
        store_path: config.store_path(cli.data_dir.as_deref()),
        store_given: cli.data_dir.is_some() || config.store.path.is_some(),
        config,
        config_path: cli.config,
    };
    match cli.command {
        Command::Import(args) => import::run(&ctx, args),
        Command::Export(args) => export::run(&ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::Report(args) => report::run(&ctx, args),
        // Without a configuration of its own, the demo runs with the
        // shipped demo configuration (owners, targets, maturity).
        Command::Demo(args) => match ctx.config_path {
            Some(_) => demo::run(&ctx.config, args),
            None => demo::run(&Config::demo(), args),
        },
        Command::Sync(args) => sync::run(&ctx, args),
        Command::Run => run::run(ctx),
        Command::Resync(args) => resync::run(&ctx, args),
        Command::Digest(args) => digest::run(&ctx, args),
        Command::Override(args) => overrides::run(&ctx, args),
        Command::Explain(args) => explain::run(&ctx, args),
        Command::Check => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_effective_uid_is_the_second_of_the_uid_line() {
        let status = "Name:\tsecmetrics\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(super::uid_of(status), Some(0));
        assert_eq!(super::uid_of("Name: x\n"), None);
    }
}
