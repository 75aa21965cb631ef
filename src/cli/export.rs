//! `secmetrics export`: the current records as NDJSON in the format of
//! `records.md` (UTC times with `Z`), sorted by kind, source and id, so a
//! user (or a test) sees exactly what the connectors produced; `import` of
//! the file into an empty store gives the same records.

use super::Context;
use anyhow::Context as _;
use secmetrics_connectors::Kind;
use std::io::Write;
use std::path::PathBuf;

/// Options of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Only records of this kind (e.g. `finding`).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only records of this source (connector name, or `import`).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Write here (atomically: a temporary file renamed into place)
    /// instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Export; prints the count on standard error when writing a file.
pub fn run(ctx: &Context, args: ExportArgs) -> anyhow::Result<i32> {
    let kind = match args.kind.as_deref() {
        None => None,
        Some(k) => Some(Kind::parse(k).ok_or_else(|| {
            anyhow::anyhow!(
                "--kind {k:?}: unknown kind (expected one of {})",
                Kind::expected()
            )
        })?),
    };
    let store = ctx.open_store_for_scan()?;
    let mut groups: Vec<(Kind, String)> = store
        .record_groups()?
        .into_iter()
        .filter(|(k, s)| {
            kind.map_or(true, |want| *k == want) && args.source.as_deref().map_or(true, |w| s == w)
        })
        .collect();
    // Kinds by name, as the file spells them; sources and ids in byte order.
    groups.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    let (mut out, temp): (Box<dyn Write>, Option<PathBuf>) = match &args.out {
        None => (
            Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            None,
        ),
        Some(path) => {
            let temp = path.with_file_name(format!(
                ".{}.partial",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "export".into())
            ));
            let file = std::fs::File::create(&temp)
                .with_context(|| format!("cannot create {}", temp.display()))?;
            (Box::new(std::io::BufWriter::new(file)), Some(temp))
        }
    };
    let mut count = 0u64;
    for (kind, source) in &groups {
        for stored in store.records_of(*kind, source) {
            let stored = stored?;
            if stored.gone_at_us.is_some() {
                continue;
            }
            serde_json::to_writer(&mut out, &stored.record.to_json())?;
            out.write_all(b"\n")?;
            count += 1;
        }
    }
    out.flush()?;
    drop(out);
    if let (Some(temp), Some(path)) = (temp, &args.out) {
        std::fs::File::open(&temp)?.sync_all()?;
        std::fs::rename(&temp, path)
            .with_context(|| format!("cannot move the export to {}", path.display()))?;
        eprintln!("exported {count} records to {}", path.display());
    }
    Ok(0)
}
