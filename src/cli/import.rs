//! `secmetrics import FILE...`: load NDJSON records (or, with `--format
//! sarif`, SARIF results as findings) into the store in atomic batches,
//! report every bad line with its file, line and field, and keep every good
//! line. A backup (`export --all`, recognised by its `$backup` first line)
//! is restored instead (see [`crate::backup::restore`]).

use super::Context;
use crate::store::{Counts, WriteOptions};
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
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Print a line on stderr after each committed batch.
    #[arg(long)]
    pub progress: bool,
    /// Restore a backup (`export --all`) into a store that is not empty:
    /// each backed-up value replaces the store's under the same key and
    /// nothing else is removed. Without it such a restore is refused.
    #[arg(long)]
    pub merge_backup: bool,
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

/// The writer thread stopped (the store refused a batch): its error is
/// the one reported.
#[derive(Debug, thiserror::Error)]
#[error("the store writer stopped")]
struct WriterStopped;

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
///
/// Two threads: this one reads and parses, a writer commits the batches in
/// order (each one atomic and flushed) while the next is parsed. A batch
/// is written only after every batch before it, so what a crash leaves is
/// always whole batches, in order.
pub fn run(ctx: &Context, args: ImportArgs) -> anyhow::Result<i32> {
    if let Some(code) = restore_if_backup(ctx, &args)? {
        return Ok(code);
    }
    let store = ctx.open_store()?;
    let opts = WriteOptions {
        // A SARIF finding seen before keeps its earliest detection time: the
        // store compares with the stored version as it writes.
        keep_first_opened: args.format == ImportFormat::Sarif,
    };
    let max_line_bytes = args
        .max_line_bytes
        .unwrap_or(ctx.config.ndjson.max_line_bytes);
    std::thread::scope(|scope| {
        // Room for one batch waiting while one is written and one is parsed.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(1);
        let store = &store;
        let progress = args.progress;
        let writer = scope.spawn(move || -> anyhow::Result<BTreeMap<Kind, Counts>> {
            let mut totals: BTreeMap<Kind, Counts> = BTreeMap::new();
            let mut committed = 0u64;
            for batch in rx {
                let outcome = store.upsert_batch_with(&batch, chrono::Utc::now(), opts)?;
                for (kind, c) in outcome.by_kind {
                    let t = totals.entry(kind).or_default();
                    t.new += c.new;
                    t.replaced += c.replaced;
                    t.unchanged += c.unchanged;
                }
                committed += batch.len() as u64;
                if progress {
                    eprintln!("committed {committed} records");
                }
            }
            Ok(totals)
        });
        let mut importer = Importer {
            batch: Vec::with_capacity(args.batch_size as usize),
            batch_size: args.batch_size as usize,
            writer: Some(tx),
            tally: BTreeMap::new(),
            unparsed_rejected: 0,
            max_line_bytes,
            failed_files: 0,
        };
        let failed_files = importer.read_all(&args);
        // The last batch, then the writer's end: its totals, or the store
        // error that stopped it (which also stopped the reading).
        let flushed = importer.flush();
        importer.writer = None;
        let totals = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the store writer panicked"))??;
        flushed?;
        for (kind, c) in totals {
            let t = importer.tally.entry(kind).or_default();
            t.new += c.new;
            t.replaced += c.replaced;
            t.unchanged += c.unchanged;
        }
        let rejected = importer.print_summary(failed_files?);
        Ok(if rejected > 0 || importer.failed_files > 0 {
            1
        } else {
            0
        })
    })
}

/// Restore when the one file given is a backup; `None`: not a backup.
fn restore_if_backup(ctx: &Context, args: &ImportArgs) -> anyhow::Result<Option<i32>> {
    use crate::backup::restore;
    let backups: Vec<&PathBuf> = match args.format {
        ImportFormat::Sarif => Vec::new(),
        ImportFormat::Ndjson => args
            .files
            .iter()
            .filter(|f| f.as_os_str() != "-" && restore::is_backup(f).unwrap_or(false))
            .collect(),
    };
    let Some(backup) = backups.first() else {
        if args.merge_backup {
            anyhow::bail!(
                "--merge-backup restores a backup (`export --all`), and no file given is one"
            );
        }
        return Ok(None);
    };
    if args.files.len() > 1 {
        anyhow::bail!(
            "{} is a backup (export --all): it is restored alone, give it as the only file",
            backup.display()
        );
    }
    let store =
        ctx.open_store()
            .map_err(|e| match e.downcast_ref::<crate::store::StoreError>() {
                Some(crate::store::StoreError::Locked(path)) => anyhow::anyhow!(
                    "{} is a backup, and the store at {} is in use by another secmetrics process \
                 (the daemon?): a backup is restored with the daemon stopped (`systemctl stop \
                 secmetrics`), into an empty store",
                    backup.display(),
                    path.display()
                ),
                _ => e,
            })?;
    let restored = restore::restore(
        &store,
        backup,
        restore::Options {
            merge: args.merge_backup,
        },
    )?;
    println!(
        "restored the backup {} into {}",
        backup.display(),
        store.path().display()
    );
    println!("{:<14} {:>9}", "line kind", "restored");
    for (kind, n) in &restored {
        println!("{kind:<14} {n:>9}");
    }
    println!("{:<14} {:>9}", "total", restored.values().sum::<u64>());
    Ok(Some(0))
}

struct Importer {
    batch: Vec<Record>,
    batch_size: usize,
    /// Sends full batches to the writer thread; `None` once closed.
    writer: Option<std::sync::mpsc::SyncSender<Vec<Record>>>,
    tally: BTreeMap<Kind, Tally>,
    unparsed_rejected: u64,
    max_line_bytes: usize,
    failed_files: u64,
}

impl Importer {
    /// Read every file of the command; returns how many failed whole, or
    /// the store error that stopped the import.
    fn read_all(&mut self, args: &ImportArgs) -> anyhow::Result<u64> {
        for file in &args.files {
            let result = if args.format == ImportFormat::Sarif {
                self.read_sarif(file, args)
            } else {
                let origin = file.display().to_string();
                let reader: anyhow::Result<Box<dyn BufRead>> = if origin == "-" {
                    Ok(Box::new(BufReader::new(std::io::stdin().lock())))
                } else {
                    std::fs::File::open(file)
                        .map(|f| Box::new(BufReader::with_capacity(1 << 16, f)) as Box<dyn BufRead>)
                        .map_err(|e| anyhow::anyhow!("cannot open: {e}"))
                };
                reader.and_then(|r| self.read(r, &origin, &args.source))
            };
            if let Err(e) = result {
                if e.downcast_ref::<WriterStopped>().is_some() {
                    // The writer's own error is reported by the caller.
                    return Ok(self.failed_files);
                }
                eprintln!("{}: {e:#}", file.display());
                self.failed_files += 1;
            }
        }
        Ok(self.failed_files)
    }

    fn read(
        &mut self,
        mut reader: Box<dyn BufRead>,
        origin: &str,
        source: &str,
    ) -> anyhow::Result<()> {
        // A backup on standard input (files were recognised before).
        let head = reader.fill_buf()?;
        if let Some(first) = head.split(|b| *b == b'\n').next() {
            if head.contains(&b'\n') && crate::backup::restore::starts_as_backup(first) {
                anyhow::bail!(
                    "this is a backup (export --all): it is restored from a file, not standard \
                     input (it is read twice, checked whole before anything is written); \
                     save it and give its path"
                );
            }
        }
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
        let result = import_file(file, &ctx, &SuppressionPolicy::default(), modified, |f| {
            self.tally.entry(Kind::Finding).or_default().loaded += 1;
            self.batch.push(Record::Finding(f));
            if self.batch.len() >= self.batch_size {
                self.flush()?;
            }
            Ok::<(), anyhow::Error>(())
        });
        // The file's last batch; the writer commits batches in order, so
        // the next file's findings are compared with these.
        self.flush()?;
        match result {
            Ok(_) => Ok(()),
            Err(ReadError::Sarif(e)) => Err(anyhow::anyhow!("{}", e.message)),
            Err(ReadError::Stopped(e)) => Err(e),
        }
    }

    /// Hand the batch to the writer thread (waiting while one batch is
    /// already queued).
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        match &self.writer {
            Some(w) => w.send(batch).map_err(|_| anyhow::Error::new(WriterStopped)),
            None => Err(anyhow::Error::new(WriterStopped)),
        }
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
