//! Restoring a backup (`import` of an `export --all` file): the file is
//! read twice, checked whole first (every line, the header's format, the
//! `$end` counts), so a bad or cut-short file writes nothing; then written
//! under a restore marker that is removed only once everything is durable.

use super::*;
use crate::deliver::outbox::Entry;
use crate::store::backup::{is_store_fact, HistoryItem, Restorer, LAST_IMPORT_KEY, TYPED_TREES};
use crate::store::{CursorState, HistoryEntry, Override, OverrideChange, Store, StoredRecord};
use anyhow::Context as _;
use secmetrics_connectors::{ndjson, Identity, Kind, Record, Severity, Validity};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Bad lines named before a restore gives up.
const MAX_NAMED: usize = 20;

/// True when `path` starts with a backup's header line.
pub fn is_backup(path: &Path) -> std::io::Result<bool> {
    let file = std::fs::File::open(path)?;
    let mut first = Vec::new();
    // A header is short; a long first line is something else.
    BufReader::new(std::io::Read::take(file, 64 * 1024)).read_until(b'\n', &mut first)?;
    Ok(starts_as_backup(&first))
}

/// True when `bytes` (a first line) is a backup's header.
pub fn starts_as_backup(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    serde_json::from_str::<serde_json::Value>(text.trim())
        .ok()
        .and_then(|v| {
            v.get("kind")
                .and_then(|k| k.as_str())
                .map(|k| k == "$backup")
        })
        .unwrap_or(false)
}

/// How a restore treats a store that already holds data.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Lay the backup over what the store holds instead of refusing.
    pub merge: bool,
}

/// Lines restored, by kind.
pub type Restored = BTreeMap<String, u64>;

/// Restore the backup at `path` into `store`.
pub fn restore(store: &Store, path: &Path, opts: Options) -> anyhow::Result<Restored> {
    let origin = path.display().to_string();
    if !opts.merge {
        let held = store.held_data()?;
        if !held.is_empty() {
            anyhow::bail!(
                "{origin} is a backup (export --all) and the store at {} is not empty (it holds \
                 {}). A backup restores cursors, outbox states, history and overrides exactly; \
                 laid over other data it would move connectors back to older cursors, could \
                 mark a delivered digest pending again (sent twice) and would add history \
                 twice. Restore into an empty directory (`--data-dir NEW_DIR`), or give \
                 `--merge-backup` to lay it over this store anyway (each backed-up value \
                 replaces the store's under the same key; nothing else is removed)",
                store.path().display(),
                held.join(", ")
            );
        }
    }
    let counted = check(path, &origin)?;
    let mut restorer = store.begin_restore()?;
    let mut restored = Restored::new();
    for_each_line(path, |_, line| {
        let line = line.map_err(|e| anyhow::anyhow!("{e}"))?;
        let kind = line.kind();
        apply(line, Some(&mut restorer)).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !matches!(kind, "$backup" | "$end") {
            *restored.entry(kind.to_string()).or_default() += 1;
        }
        Ok(())
    })
    .with_context(|| format!("{origin}: the file changed while it was restored"))?;
    anyhow::ensure!(
        restored == counted,
        "{origin}: the file changed while it was restored"
    );
    restorer.finish()?;
    Ok(restored)
}

/// Read every line of `path` (blank lines skipped) as a [`Line`], with its
/// number; `visit` stops the read with an error.
fn for_each_line(
    path: &Path,
    mut visit: impl FnMut(usize, Result<Line, String>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        number += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(text) => serde_json::from_str::<Line>(text).map_err(|e| e.to_string()),
            Err(e) => Err(format!("not UTF-8: {e}")),
        };
        visit(number, line)?;
    }
}

/// Check the whole file: returns the lines of each kind; an error names
/// up to [`MAX_NAMED`] bad lines (and how many there were).
fn check(path: &Path, origin: &str) -> anyhow::Result<Restored> {
    let mut problems: Vec<String> = Vec::new();
    let mut bad = 0u64;
    let mut counted = Restored::new();
    let mut first = true;
    let mut end: Option<(usize, EndLine)> = None;
    for_each_line(path, |n, line| {
        let mut problem = |m: String| {
            bad += 1;
            if problems.len() < MAX_NAMED {
                problems.push(format!("{origin}:{n}: {m}"));
            }
        };
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                problem(e);
                first = false;
                return Ok(());
            }
        };
        if let Some((at, _)) = &end {
            problem(format!("a line after the `$end` line (line {at})"));
            return Ok(());
        }
        match (&line, first) {
            (Line::Header(h), true) if h.format > BACKUP_FORMAT => anyhow::bail!(
                "{origin}: this backup was written by a newer secmetrics ({} with backup \
                 format {}; this build reads format {BACKUP_FORMAT}): restore it with that \
                 version or a later one",
                h.secmetrics,
                h.format
            ),
            (Line::Header(_), true) => {}
            (_, true) => {
                anyhow::bail!("{origin}:{n}: not a backup: its first line is not `$backup`")
            }
            (Line::Header(_), false) => problem("a second `$backup` line".into()),
            (Line::End(e), false) => end = Some((n, e.clone())),
            (other, false) => {
                let kind = other.kind();
                match apply(line, None) {
                    Ok(()) => *counted.entry(kind.to_string()).or_default() += 1,
                    Err(e) => problem(format!("`{kind}`: {e}")),
                }
            }
        }
        first = false;
        Ok(())
    })?;
    if bad > 0 {
        let more = bad.saturating_sub(problems.len() as u64);
        anyhow::bail!(
            "{origin}: {bad} bad line(s); nothing was restored:\n{}{}",
            problems.join("\n"),
            if more > 0 {
                format!("\n... and {more} more")
            } else {
                String::new()
            }
        );
    }
    match end {
        None => anyhow::bail!(
            "{origin}: the backup has no `$end` line: it was cut short (an interrupted copy, \
             a full disk?); nothing was restored"
        ),
        Some((n, e)) if e.lines != counted => anyhow::bail!(
            "{origin}:{n}: the `$end` line counts {} but the file holds {}: lines are \
             missing or were added; nothing was restored",
            describe(&e.lines),
            describe(&counted)
        ),
        Some(_) => Ok(counted),
    }
}

fn describe(counts: &Restored) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn identity(record_kind: &str, source: &str, id: &str) -> Result<Identity, String> {
    let kind = Kind::parse(record_kind).ok_or_else(|| {
        format!(
            "field `record_kind`: unknown value {record_kind:?} (expected one of {})",
            Kind::expected()
        )
    })?;
    Ok(Identity {
        kind,
        source: source.into(),
        id: id.into(),
    })
}

fn validity(field: &str, v: &str) -> Result<Validity, String> {
    Validity::parse(v).ok_or_else(|| {
        format!(
            "field `{field}`: unknown value {v:?} (expected one of {})",
            Validity::expected()
        )
    })
}

fn severity(field: &str, v: &Option<String>) -> Result<Option<Severity>, String> {
    v.as_deref()
        .map(|s| {
            Severity::parse(s).ok_or_else(|| {
                format!(
                    "field `{field}`: unknown value {s:?} (expected one of {})",
                    Severity::expected()
                )
            })
        })
        .transpose()
}

/// Turn one line into what the store keeps, and write it when `sink` is
/// given (without one, the line is only checked).
fn apply(line: Line, sink: Option<&mut Restorer<'_>>) -> Result<(), String> {
    let store_err = |e: crate::store::StoreError| e.to_string();
    match line {
        Line::Header(_) | Line::End(_) => Ok(()),
        Line::Record(r) => {
            let record: Record = match r.exact {
                Some(exact) => {
                    serde_json::from_value(exact).map_err(|e| format!("field `exact`: {e}"))?
                }
                None => ndjson::parse_object(r.record, "import")
                    .map_err(|e| format!("field `record`: {e}"))?,
            };
            let stored = StoredRecord {
                record,
                first_seen_us: r.first_seen_at.0,
                last_changed_us: r.last_changed_at.0,
                gone_at_us: r.gone_at.map(|a| a.0),
            };
            sink.map_or(Ok(()), |s| s.record(&stored).map_err(store_err))
        }
        Line::History(h) => {
            let item = HistoryItem {
                identity: identity(&h.record_kind, &h.source, &h.id)?,
                entry: HistoryEntry {
                    field: h.field,
                    old: h.old,
                    new: h.new,
                    observed_at_us: h.observed_at.0,
                },
                source_change: h.source_change,
            };
            sink.map_or(Ok(()), |s| s.history(&item).map_err(store_err))
        }
        Line::Override(o) => {
            let id = identity(&o.record_kind, &o.source, &o.id)?;
            let ov = Override {
                validity: validity("validity", &o.validity)?,
                severity: severity("severity", &o.severity)?,
                reason: o.reason,
                by: o.by,
                at_us: o.at.0,
                severity_before: severity("severity_before", &o.severity_before)?,
            };
            sink.map_or(Ok(()), |s| s.override_of(&id, &ov).map_err(store_err))
        }
        Line::OverrideLog(l) => {
            let id = identity(&l.record_kind, &l.source, &l.id)?;
            let change = match l.change.as_str() {
                "set" => OverrideChange::Set(Override {
                    validity: validity(
                        "validity",
                        l.validity
                            .as_deref()
                            .ok_or("field `validity`: required to set")?,
                    )?,
                    severity: severity("severity", &l.severity)?,
                    reason: l.reason.ok_or("field `reason`: required to set")?,
                    by: l.by,
                    at_us: l.at.0,
                    severity_before: severity("severity_before", &l.severity_before)?,
                }),
                "removed" => OverrideChange::Removed {
                    by: l.by,
                    at_us: l.at.0,
                },
                other => {
                    return Err(format!(
                        "field `change`: unknown value {other:?} (expected set or removed)"
                    ))
                }
            };
            sink.map_or(Ok(()), |s| s.override_log(&id, &change).map_err(store_err))
        }
        Line::Snapshot(s) => {
            let bytes = match (s.json, s.bytes_base64) {
                (Some(json), None) => json.into_bytes(),
                (None, Some(b)) => unbase64("bytes_base64", &b)?,
                _ => return Err("give one of `json` and `bytes_base64`".into()),
            };
            sink.map_or(Ok(()), |w| w.snapshot(&s.key, &bytes).map_err(store_err))
        }
        Line::Outbox(o) => {
            let state = parse_state(&o.state).ok_or_else(|| {
                format!(
                    "field `state`: unknown value {:?} (expected pending, sending, sent, failed or unconfirmed)",
                    o.state
                )
            })?;
            let entry = Entry {
                payload: o.payload.payload()?,
                digest: o.digest,
                period: o.period,
                channel: o.channel,
                state,
                attempts: o.attempts,
                next_attempt_us: o.next_attempt_at.0,
                last_error: o.last_error,
                created_us: o.created_at.0,
                sent_us: o.sent_at.map(|a| a.0),
            };
            let (key, body, summary) = entry.encoded();
            sink.map_or(Ok(()), |s| s.outbox(key, body, summary).map_err(store_err))
        }
        Line::Cursor(c) => {
            let state = CursorState {
                cursor: c.cursor,
                last_commit_us: c.last_commit_at.map(|a| a.0),
                last_success_us: c.last_success_at.map(|a| a.0),
                last_error: c.last_error,
            };
            sink.map_or(Ok(()), |s| {
                s.cursor(&c.connector, &state).map_err(store_err)
            })
        }
        Line::LastImport(l) => sink.map_or(Ok(()), |s| {
            s.meta(LAST_IMPORT_KEY, &l.at.0.to_be_bytes())
                .map_err(store_err)
        }),
        Line::DigestFired(d) => {
            let key = crate::deliver::fire_key(&d.digest);
            sink.map_or(Ok(()), |s| {
                s.meta(key.as_bytes(), &d.at.0.to_be_bytes())
                    .map_err(store_err)
            })
        }
        Line::LastPass(p) => {
            let key = format!("{}{}", crate::sync::LAST_PASS_PREFIX, p.connector);
            let value = serde_json::to_vec(&p.pass).map_err(|e| e.to_string())?;
            sink.map_or(Ok(()), |s| {
                s.meta(key.as_bytes(), &value).map_err(store_err)
            })
        }
        Line::Meta(m) => {
            if is_store_fact(m.key.as_bytes()) {
                return Err(format!(
                    "field `key`: {:?} is the store's own fact, never restored",
                    m.key
                ));
            }
            let value = unbase64("value_base64", &m.value_base64)?;
            sink.map_or(Ok(()), |s| {
                s.meta(m.key.as_bytes(), &value).map_err(store_err)
            })
        }
        Line::Raw(r) => {
            // Cursors may hold values that are not cursor states; the other
            // typed trees are written only from their own lines.
            if TYPED_TREES.contains(&r.tree.as_str()) && r.tree != "cursors" {
                return Err(format!(
                    "field `tree`: `{}` has lines of its own kind; it is never restored raw",
                    r.tree
                ));
            }
            let key = unbase64("key_base64", &r.key_base64)?;
            if r.tree == crate::store::backup::META_TREE && is_store_fact(&key) {
                return Err("field `key_base64`: the store's own fact, never restored".into());
            }
            let value = unbase64("value_base64", &r.value_base64)?;
            sink.map_or(Ok(()), |s| s.raw(&r.tree, &key, &value).map_err(store_err))
        }
    }
}
