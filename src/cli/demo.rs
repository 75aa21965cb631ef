//! `secmetrics demo`: generate a deterministic estate into a temporary store
//! (imported like real records), print the text pack of the last complete
//! month and write the HTML report beside the store.

use crate::kpi::{self, Period};
use crate::report::{self, Format};
use crate::store::Store;
use anyhow::Context as _;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Options of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Number of findings; the other kinds are proportional.
    #[arg(long, default_value_t = 20_000)]
    pub size: usize,
    /// Directory for the demo store and the HTML report. Default: a new
    /// directory under the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the generator (the same seed gives the same estate).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Records per store write while importing the demo estate.
const BATCH: usize = 500;

/// Run `demo`.
pub fn run(config: &crate::config::Config, args: DemoArgs) -> anyhow::Result<i32> {
    let cfg = &config.kpi;
    let now = chrono::Utc::now();
    let dir = match args.out {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "secmetrics-demo-{}-{}",
            std::process::id(),
            now.timestamp()
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = Store::open(&dir.join("store"))?;

    let mut batch = Vec::with_capacity(BATCH);
    let mut failed = None;
    crate::demo::generate_into(args.size, now, args.seed, |r| {
        if failed.is_some() {
            return;
        }
        batch.push(r);
        if batch.len() >= BATCH {
            if let Err(e) = store.upsert_batch(&batch, now) {
                failed = Some(e);
            }
            batch.clear();
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    if !batch.is_empty() {
        store.upsert_batch(&batch, now)?;
    }

    let estate = crate::reconcile::load(&store, &config.reconcile)?.estate;
    let period = Period::last_complete(crate::kpi::Unit::Month, now, cfg.timezone.0);
    let pack = kpi::with_history(&estate, &period, cfg, now, 6);
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    print!("{}", report::render(&pack, Format::Text, color));
    let html = dir.join(format!("report-{}.html", period.label()));
    std::fs::write(&html, report::render(&pack, Format::Html, false))
        .with_context(|| format!("cannot write {}", html.display()))?;
    println!();
    println!(
        "Demo store: {} ({} findings). HTML report with charts: {}",
        dir.join("store").display(),
        estate.findings.len(),
        html.display()
    );
    println!(
        "Try: secmetrics --data-dir {} report --format markdown",
        dir.join("store").display()
    );
    Ok(0)
}
