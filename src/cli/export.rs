//! `secmetrics export`: the current records as NDJSON in the format of
//! `records.md` (UTC times with `Z`), sorted by kind, source and id, so a
//! user (or a test) sees exactly what the connectors produced; `import` of
//! the file into an empty store gives the same records. `--all` writes a
//! backup instead: everything the store holds (see [`crate::backup`]).

use super::Context;
use anyhow::Context as _;
use secmetrics_connectors::Kind;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// A backup: also what no source can give back (overrides and their
    /// log, history, gone records, KPI snapshots, the outbox, connector
    /// cursors, digest fire times). `import` of the file into an empty
    /// store restores it all. The file is created readable by its owner
    /// only (0600).
    #[arg(long, conflicts_with_all = ["kind", "source"])]
    pub all: bool,
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
    if args.all {
        return backup(ctx, &args);
    }
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
    let (mut out, temp) = output(args.out.as_deref(), false)?;
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
        finish(&temp, path)?;
        eprintln!("exported {count} records to {}", path.display());
    }
    Ok(0)
}

/// `export --all`: the backup, then a line per kind on standard error when
/// writing a file.
fn backup(ctx: &Context, args: &ExportArgs) -> anyhow::Result<i32> {
    use crate::backup::dump::{self, SecretGuard};
    let daemon = super::admin_client::Daemon::find(ctx).is_some();
    let store = if daemon {
        None
    } else {
        Some(ctx.open_store()?)
    };
    let (mut out, temp) = output(args.out.as_deref(), true)?;
    let written = match &store {
        // The daemon holds the store: it writes the backup (GET /api/v1/export).
        None => from_daemon(ctx, &mut out),
        Some(store) => {
            let guard = match ctx.config.secrets() {
                Ok(s) => SecretGuard::from_secrets(&s),
                Err(e) => {
                    eprintln!(
                        "note: the configured secrets cannot be read here ({e}), so the backup \
                         is not checked for them"
                    );
                    SecretGuard::default()
                }
            };
            dump::write(store, &mut out, &guard, chrono::Utc::now())
        }
    };
    drop(out);
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            if let Some(temp) = &temp {
                let _ = std::fs::remove_file(temp);
            }
            return Err(e);
        }
    };
    if let (Some(temp), Some(path)) = (temp, &args.out) {
        finish(&temp, path)?;
        let lines: u64 = written.values().sum();
        let each = written
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        eprintln!("backed up {lines} lines to {} ({each})", path.display());
    }
    Ok(0)
}

/// The backup the daemon writes, streamed into `out`; its lines by kind,
/// read from its `$end` line (an answer without one was cut short).
fn from_daemon(ctx: &Context, out: &mut dyn Write) -> anyhow::Result<crate::backup::dump::Written> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // No bound on the whole answer (a large store takes a while), only
        // on the wait for each part of it.
        let client = reqwest::Client::builder()
            .unix_socket(ctx.config.admin.socket.as_path())
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(300))
            .build()?;
        let mut resp = client
            .get(super::admin_client::url("/api/v1/export"))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "the daemon refused the backup: HTTP {}",
            resp.status()
        );
        // The last line so far (the `$end` line, once all arrived).
        let mut tail: Vec<u8> = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .context("the daemon's backup stopped before its end")?
        {
            out.write_all(&chunk)?;
            tail.extend_from_slice(&chunk);
            // Keep the last line only (with its newline, once it came).
            if let Some(i) = tail[..tail.len().saturating_sub(1)]
                .iter()
                .rposition(|b| *b == b'\n')
            {
                tail.drain(..=i);
            }
        }
        out.flush()?;
        match serde_json::from_slice::<crate::backup::Line>(&tail) {
            Ok(crate::backup::Line::End(end)) => Ok(end.lines),
            _ => anyhow::bail!("the daemon's backup stopped before its `$end` line"),
        }
    })
}

/// Where the export goes: standard output, or a temporary file beside
/// `path` (mode 0600 when `private`) that [`finish`] moves into place.
fn output(path: Option<&Path>, private: bool) -> anyhow::Result<(Box<dyn Write>, Option<PathBuf>)> {
    use std::os::unix::fs::OpenOptionsExt;
    Ok(match path {
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
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(if private { 0o600 } else { 0o666 })
                .open(&temp)
                .with_context(|| format!("cannot create {}", temp.display()))?;
            if private {
                // An existing file keeps its mode on open: narrow it.
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            (Box::new(std::io::BufWriter::new(file)), Some(temp))
        }
    })
}

/// Make the temporary file durable and move it to `path`.
fn finish(temp: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(temp)?.sync_all()?;
    std::fs::rename(temp, path)
        .with_context(|| format!("cannot move the export to {}", path.display()))
}
