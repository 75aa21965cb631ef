//! `secmetrics import FILE...`: load NDJSON records (or, with `--format
//! sarif`, SARIF results as findings) into the store in atomic batches,
//! report every bad line with its file, line and field, and keep every good
//! line.

use super::Context;
use crate::store::{BatchOutcome, Store, WriteOptions};
use secmetrics_connectors::{ndjson, Kind, Record};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// Options of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Files to load; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Input format.
    #[arg(long, value_enum, default_value_t = ImportFormat::Ndjson)]
    pub format: ImportFormat,
    /// SARIF only: the asset of every finding. Default: each file's name
    /// without its `.sarif`/`.json` extension.
    #[arg(long, value_name = "ID")]
    pub asset: Option<String>,
    /// `source` for lines that name none.
    #[arg(long, default_value = "import")]
    pub source: String,
    /// Records per atomic, durable write.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Print a line on stderr after each committed batch.
    #[arg(long)]
    pub progress: bool,
    /// Lines longer than this many bytes are rejected (default:
    /// `ndjson.max_line_bytes` of the configuration, 1 MiB).
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<usize>,
}

/// Input formats of `import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// The normalized records of `records.md`, one JSON object per line.
    Ndjson,
    /// SARIF 2.1.0 logs: each result becomes a finding of `--asset`.
    Sarif,
}

/// Per-kind tallies of one import.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    loaded: u64,
    new: u64,
    replaced: u64,
    unchanged: u64,
    rejected: u64,
}

/// Import the files; exit code 1 when any line or file was rejected.
pub fn run(ctx: &Context, args: ImportArgs) -> anyhow::Result<i32> {
    let store = ctx.open_store()?;
    let mut importer = Importer {
        store: &store,
        batch: Vec::with_capacity(args.batch_size as usize),
        batch_size: args.batch_size as usize,
        progress: args.progress,
        committed: 0,
        tally: BTreeMap::new(),
        unparsed_rejected: 0,
        max_line_bytes: args
            .max_line_bytes
            .unwrap_or(ctx.config.ndjson.max_line_bytes),
        opts: WriteOptions::default(),
    };
    let mut failed_files = 0u64;
    if args.format == ImportFormat::Sarif {
        for file in &args.files {
            if let Err(e) = importer.read_sarif(file, &args) {
                eprintln!("{}: {e:#}", file.display());
                failed_files += 1;
            }
        }
        importer.flush()?;
        let rejected = importer.print_summary(failed_files);
        return Ok(if rejected > 0 || failed_files > 0 {
            1
        } else {
            0
        });
    }
    for file in &args.files {
        let origin = file.display().to_string();
        let reader: Box<dyn BufRead> = if origin == "-" {
            Box::new(BufReader::new(std::io::stdin().lock()))
        } else {
            match std::fs::File::open(file) {
                Ok(f) => Box::new(BufReader::with_capacity(1 << 16, f)),
                Err(e) => {
                    eprintln!("{origin}: cannot open: {e}");
                    failed_files += 1;
                    continue;
                }
            }
        };
        if let Err(e) = importer.read(reader, &origin, &args.source) {
            eprintln!("{origin}: {e:#}");
            failed_files += 1;
        }
    }
    importer.flush()?;
    let rejected = importer.print_summary(failed_files);
    Ok(if rejected > 0 || failed_files > 0 {
        1
    } else {
        0
    })
}

struct Importer<'a> {
    store: &'a Store,
    batch: Vec<Record>,
    batch_size: usize,
    progress: bool,
    committed: u64,
    tally: BTreeMap<Kind, Tally>,
    unparsed_rejected: u64,
    max_line_bytes: usize,
    opts: WriteOptions,
}

impl Importer<'_> {
    fn read(&mut self, reader: Box<dyn BufRead>, origin: &str, source: &str) -> anyhow::Result<()> {
        let opts = ndjson::StreamOptions {
            origin,
            default_source: source,
            max_line_bytes: self.max_line_bytes,
        };
        let mut failed: Option<anyhow::Error> = None;
        // Rejected lines per declared kind (`None`: no kind could be read).
        let mut rejected: BTreeMap<Option<Kind>, u64> = BTreeMap::new();
        let read = ndjson::read_stream(
            reader,
            &opts,
            |_, record| {
                self.tally.entry(record.kind()).or_default().loaded += 1;
                self.batch.push(record);
                if self.batch.len() >= self.batch_size {
                    if let Err(e) = self.flush() {
                        failed = Some(e);
                        return Err(std::io::Error::other("the store refused a batch"));
                    }
                }
                Ok(())
            },
            |e| {
                eprintln!("{e}");
                *rejected.entry(e.kind).or_default() += 1;
            },
        );
        for (kind, n) in rejected {
            match kind {
                Some(kind) => self.tally.entry(kind).or_default().rejected += n,
                None => self.unparsed_rejected += n,
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        read.map_err(|e| anyhow::anyhow!("read error: {e}"))
    }

    /// Stream one SARIF file's results into the batches as findings.
    fn read_sarif(&mut self, file: &std::path::Path, args: &ImportArgs) -> anyhow::Result<()> {
        use secmetrics_connectors::sarif::{
            import_file, FindingContext, ReadError, SuppressionPolicy,
        };
        if file.as_os_str() == "-" {
            anyhow::bail!("SARIF is read from files (it takes two passes), not standard input");
        }
        let asset = match &args.asset {
            Some(a) => a.clone(),
            None => sarif_asset_of(file),
        };
        let ctx = FindingContext {
            source: args.source.clone(),
            asset,
            environment: secmetrics_connectors::Environment::Production,
        };
        // Runs without an invocation time were scanned when the file was written.
        let modified = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_else(|_| chrono::Utc::now());
        // A finding seen before keeps its earliest detection time: the store
        // compares with the stored version as it writes (no second read).
        self.opts.keep_first_opened = true;
        let result = import_file(file, &ctx, &SuppressionPolicy::default(), modified, |f| {
            self.tally.entry(Kind::Finding).or_default().loaded += 1;
            self.batch.push(Record::Finding(f));
            if self.batch.len() >= self.batch_size {
                self.flush()?;
            }
            Ok::<(), anyhow::Error>(())
        });
        // Written before the next file is read, so its findings see these.
        self.flush()?;
        match result {
            Ok(_) => Ok(()),
            Err(ReadError::Sarif(e)) => Err(anyhow::anyhow!("{}", e.message)),
            Err(ReadError::Stopped(e)) => Err(e),
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let outcome: BatchOutcome =
            self.store
                .upsert_batch_with(&self.batch, chrono::Utc::now(), self.opts)?;
        for (kind, c) in outcome.by_kind {
            let t = self.tally.entry(kind).or_default();
            t.new += c.new;
            t.replaced += c.replaced;
            t.unchanged += c.unchanged;
        }
        self.committed += self.batch.len() as u64;
        self.batch.clear();
        if self.progress {
            eprintln!("committed {} records", self.committed);
        }
        Ok(())
    }

    /// Print the per-kind table and the files that could not be read at
    /// all; returns the number of rejected lines.
    fn print_summary(&self, failed_files: u64) -> u64 {
        println!(
            "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "kind", "loaded", "new", "replaced", "unchanged", "rejected"
        );
        let mut total = Tally::default();
        for (kind, t) in &self.tally {
            println!(
                "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9}",
                kind.as_str(),
                t.loaded,
                t.new,
                t.replaced,
                t.unchanged,
                t.rejected
            );
            total.loaded += t.loaded;
            total.new += t.new;
            total.replaced += t.replaced;
            total.unchanged += t.unchanged;
            total.rejected += t.rejected;
        }
        if self.unparsed_rejected > 0 {
            println!(
                "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "(no kind)", 0, 0, 0, 0, self.unparsed_rejected
            );
        }
        total.rejected += self.unparsed_rejected;
        println!(
            "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "total", total.loaded, total.new, total.replaced, total.unchanged, total.rejected
        );
        if failed_files > 0 {
            println!("files failed whole: {failed_files}");
        }
        total.rejected
    }
}

/// The default asset of a SARIF file: its name without `.sarif`, `.json`
/// or `.sarif.json`.
fn sarif_asset_of(file: &std::path::Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".sarif.json")
        .or_else(|| name.strip_suffix(".sarif"))
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(&name);
    stem.to_string()
}
