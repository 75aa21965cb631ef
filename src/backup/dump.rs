//! Writing a backup (`secmetrics export --all`): every tree of the store as
//! lines of the format in [`super`], in an order that is safe while the
//! daemon keeps writing (see [`write`]), and never a configured secret.

use super::*;
use crate::deliver::outbox::Entry;
use crate::store::backup::{is_store_fact, LAST_IMPORT_KEY, META_TREE};
use crate::store::{codec, Store};
use anyhow::Context as _;
use secmetrics_connectors::{ndjson, Identity, Record};
use std::io::Write;

/// Configured secrets a backup must never contain: (config key, value, the
/// value as a JSON string escapes it).
#[derive(Default)]
pub struct SecretGuard(Vec<(String, String, String)>);

/// Secrets shorter than this are not looked for (a short value would match
/// ordinary text); tokens, webhook URLs and passwords are longer.
const MIN_SECRET_LEN: usize = 8;

impl SecretGuard {
    /// The secrets the configuration resolves to (those it can resolve).
    pub fn from_config(config: &crate::config::Config) -> SecretGuard {
        match config.secrets() {
            Ok(s) => SecretGuard::from_secrets(&s),
            Err(_) => SecretGuard::default(),
        }
    }

    /// The secrets resolved (the daemon holds them).
    pub fn from_secrets(s: &crate::config::Secrets) -> SecretGuard {
        use secrecy::ExposeSecret;
        let mut out = Vec::new();
        let mut add = |key: &str, v: &Option<secrecy::SecretString>| {
            if let Some(v) = v {
                out.push((key.to_string(), v.expose_secret().to_string()));
            }
        };
        add("admin.push_token", &s.push_token);
        add("slack.webhook_url", &s.slack_webhook);
        add("slack.bot_token", &s.slack_bot_token);
        add("email.password", &s.smtp_password);
        for (name, token) in &s.connector_tokens {
            out.push((
                format!("token of connector {name}"),
                token.expose_secret().to_string(),
            ));
        }
        SecretGuard::new(out)
    }

    /// A guard for these (key, value) secrets.
    pub fn new(secrets: Vec<(String, String)>) -> SecretGuard {
        SecretGuard(
            secrets
                .into_iter()
                .filter(|(_, v)| v.len() >= MIN_SECRET_LEN)
                .map(|(k, v)| {
                    let escaped = serde_json::to_string(&v).unwrap_or_default();
                    let escaped = escaped.trim_matches('"').to_string();
                    (k, v, escaped)
                })
                .collect(),
        )
    }

    /// Refuse `line` when it holds a secret (as is, or as JSON escapes it).
    fn check(&self, line: &str, kind: &str) -> anyhow::Result<()> {
        for (key, value, escaped) in &self.0 {
            if line.contains(value.as_str()) || line.contains(escaped.as_str()) {
                anyhow::bail!(
                    "a `{kind}` line would hold the configured secret `{key}`, so the backup \
                     stops here (the file is not kept). Secrets are never stored: this is a \
                     bug, please report it (without the secret)"
                );
            }
        }
        Ok(())
    }
}

/// Lines written, by kind.
pub type Written = BTreeMap<String, u64>;

struct Out<'a> {
    out: &'a mut dyn Write,
    guard: &'a SecretGuard,
    written: Written,
}

impl Out<'_> {
    fn line(&mut self, line: &Line) -> anyhow::Result<()> {
        let text = serde_json::to_string(line)?;
        self.guard.check(&text, line.kind())?;
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")?;
        if !matches!(line, Line::Header(_) | Line::End(_)) {
            *self.written.entry(line.kind().to_string()).or_default() += 1;
        }
        Ok(())
    }
}

fn of(i: &Identity) -> (String, String, String) {
    (i.kind.as_str().to_string(), i.source.clone(), i.id.clone())
}

/// Write the whole store to `out` as a backup made at `now`.
///
/// Order, so that a backup taken while the daemon writes restores to a
/// state it could have been in (at worst a little behind, never ahead):
/// cursors, connectors' state, records and history under one pause of
/// record writes (a page and its cursor are never split); overrides and their log; facts (a
/// digest's fire time before the outbox, so an entry queued meanwhile is
/// in the backup or its fire is not); the outbox before snapshots (an
/// entry's snapshot is always there); other trees last.
pub fn write(
    store: &Store,
    out: &mut dyn Write,
    guard: &SecretGuard,
    now: secmetrics_connectors::Time,
) -> anyhow::Result<Written> {
    let mut o = Out {
        out,
        guard,
        written: Written::new(),
    };
    o.line(&Line::Header(Header {
        format: BACKUP_FORMAT,
        store_format: crate::store::STORE_FORMAT,
        secmetrics: env!("CARGO_PKG_VERSION").to_string(),
        created_at: At(now.timestamp_micros()),
        note: "secmetrics backup (export --all): restore with `secmetrics --data-dir EMPTY_DIR import FILE`".into(),
    }))?;
    {
        let _paused = store.pause_record_writes();
        // A value of the tree that is not a cursor state read back to the
        // same bytes (a key a later change keeps there) goes raw.
        for (key, value) in store.raw_entries("cursors")? {
            let state = codec::decode::<crate::store::CursorState>("cursors", &value)
                .ok()
                .filter(|c| codec::encode(c) == value);
            match (String::from_utf8(key), state) {
                (Ok(name), Some(c)) => o.line(&Line::Cursor(CursorLine {
                    connector: name,
                    cursor: c.cursor,
                    last_commit_at: c.last_commit_us.map(At),
                    last_success_at: c.last_success_us.map(At),
                    last_error: c.last_error,
                }))?,
                (key, _) => o.line(&Line::Raw(RawLine {
                    tree: "cursors".into(),
                    key_base64: base64(
                        &key.map(String::into_bytes)
                            .unwrap_or_else(|e| e.into_bytes()),
                    ),
                    value_base64: base64(&value),
                }))?,
            }
        }
        // Connectors' own state belongs with their cursors (a file marked
        // read and the scan it left): the same pause, raw lines.
        for (key, value) in store.raw_entries(crate::store::CONNECTOR_STATE_TREE)? {
            o.line(&Line::Raw(RawLine {
                tree: crate::store::CONNECTOR_STATE_TREE.into(),
                key_base64: base64(&key),
                value_base64: base64(&value),
            }))?;
        }
        records(store, &mut o)?;
        for item in store.history_items() {
            let item = item?;
            let (record_kind, source, id) = of(&item.identity);
            o.line(&Line::History(HistoryLine {
                record_kind,
                source,
                id,
                field: item.entry.field,
                old: item.entry.old,
                new: item.entry.new,
                observed_at: At(item.entry.observed_at_us),
                source_change: item.source_change,
            }))?;
        }
    }
    for (identity, ov) in store.overrides()? {
        o.line(&Line::Override(override_line(&identity, &ov)))?;
    }
    for (identity, change) in store.override_log_items()? {
        let (record_kind, source, id) = of(&identity);
        let line = match change {
            crate::store::OverrideChange::Set(ov) => {
                let l = override_line(&identity, &ov);
                OverrideLogLine {
                    record_kind,
                    source,
                    id,
                    change: "set".into(),
                    validity: Some(l.validity),
                    severity: l.severity,
                    reason: Some(l.reason),
                    by: l.by,
                    at: l.at,
                    severity_before: l.severity_before,
                }
            }
            crate::store::OverrideChange::Removed { by, at_us } => OverrideLogLine {
                record_kind,
                source,
                id,
                change: "removed".into(),
                validity: None,
                severity: None,
                reason: None,
                by,
                at: At(at_us),
                severity_before: None,
            },
        };
        o.line(&Line::OverrideLog(line))?;
    }
    facts(store, &mut o)?;
    let (bodies, _) = store.outbox_trees();
    for value in bodies.iter().values() {
        let e: Entry = codec::decode("outbox", &value?)?;
        o.line(&Line::Outbox(OutboxLine {
            payload: PayloadLine::from(&e.payload),
            digest: e.digest,
            period: e.period,
            channel: e.channel,
            state: e.state.as_str().into(),
            attempts: e.attempts,
            next_attempt_at: At(e.next_attempt_us),
            last_error: e.last_error,
            created_at: At(e.created_us),
            sent_at: e.sent_us.map(At),
        }))?;
    }
    for item in store.snapshots_all() {
        let (key, bytes) = item?;
        let line = match String::from_utf8(bytes) {
            Ok(json) => SnapshotLine {
                key,
                json: Some(json),
                bytes_base64: None,
            },
            Err(e) => SnapshotLine {
                key,
                json: None,
                bytes_base64: Some(base64(e.as_bytes())),
            },
        };
        o.line(&Line::Snapshot(line))?;
    }
    for tree in store.other_trees()? {
        if tree == crate::store::CONNECTOR_STATE_TREE {
            continue;
        }
        for (key, value) in store.raw_entries(&tree)? {
            o.line(&Line::Raw(RawLine {
                tree: tree.clone(),
                key_base64: base64(&key),
                value_base64: base64(&value),
            }))?;
        }
    }
    let lines = o.written.clone();
    o.line(&Line::End(EndLine { lines }))?;
    o.out.flush()?;
    Ok(o.written)
}

/// Every record, current and gone, by kind name, source and id (as
/// `export` orders them).
fn records(store: &Store, o: &mut Out<'_>) -> anyhow::Result<()> {
    let mut groups: Vec<_> = store.record_groups()?.into_iter().collect();
    groups.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    for (kind, source) in &groups {
        for stored in store.records_of(*kind, source) {
            let stored = stored?;
            let serde_json::Value::Object(record) = stored.record.to_json() else {
                unreachable!("a record's JSON is an object")
            };
            // Kept exactly also when the records.md reader would refuse or
            // change a value a connector produced.
            let reads_back = ndjson::parse_object(record.clone(), "import")
                .is_ok_and(|r: Record| r == stored.record);
            let exact =
                if reads_back {
                    None
                } else {
                    Some(serde_json::to_value(&stored.record).with_context(|| {
                        format!("cannot write record {}", stored.record.identity())
                    })?)
                };
            o.line(&Line::Record(RecordLine {
                first_seen_at: At(stored.first_seen_us),
                last_changed_at: At(stored.last_changed_us),
                gone_at: stored.gone_at_us.map(At),
                record,
                exact,
            }))?;
        }
    }
    Ok(())
}

/// The facts of `meta`: the last import, digest fires, connectors' last
/// passes, then any other (the store's own facts are not backed up).
fn facts(store: &Store, o: &mut Out<'_>) -> anyhow::Result<()> {
    let fired = crate::deliver::fire_key("");
    for (key, value) in store.raw_entries(META_TREE)? {
        if is_store_fact(&key) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&key) else {
            o.line(&Line::Raw(RawLine {
                tree: META_TREE.into(),
                key_base64: base64(&key),
                value_base64: base64(&value),
            }))?;
            continue;
        };
        let micros = <[u8; 8]>::try_from(&value[..]).ok().map(i64::from_be_bytes);
        let line = if let (true, Some(us)) = (key == LAST_IMPORT_KEY, micros) {
            Line::LastImport(LastImportLine { at: At(us) })
        } else if let (Some(digest), Some(us)) = (text.strip_prefix(&fired), micros) {
            Line::DigestFired(DigestFiredLine {
                digest: digest.into(),
                at: At(us),
            })
        } else if let (Some(connector), Ok(pass)) = (
            text.strip_prefix(crate::sync::LAST_PASS_PREFIX),
            serde_json::from_slice::<serde_json::Value>(&value),
        ) {
            Line::LastPass(LastPassLine {
                connector: connector.into(),
                pass,
            })
        } else {
            Line::Meta(MetaLine {
                key: text.into(),
                value_base64: base64(&value),
            })
        };
        o.line(&line)?;
    }
    Ok(())
}

fn override_line(identity: &Identity, o: &crate::store::Override) -> OverrideLine {
    let (record_kind, source, id) = of(identity);
    OverrideLine {
        record_kind,
        source,
        id,
        validity: o.validity.as_str().into(),
        severity: o.severity.map(|s| s.as_str().into()),
        reason: o.reason.clone(),
        by: o.by.clone(),
        at: At(o.at_us),
        severity_before: o.severity_before.map(|s| s.as_str().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_is_found_as_written_and_as_json_escapes_it_and_short_ones_are_not_looked_for() {
        let guard = SecretGuard::new(vec![
            (
                "slack.webhook_url".into(),
                "https://hooks/T0/\"B0\"\\x".into(),
            ),
            ("email.password".into(), "short".into()),
        ]);
        let line =
            serde_json::to_string(&json!({"kind": "$meta", "note": "https://hooks/T0/\"B0\"\\x"}))
                .unwrap();
        assert!(line.contains("\\\"B0\\\""), "{line}");
        let e = guard.check(&line, "$meta").unwrap_err().to_string();
        assert!(e.contains("`slack.webhook_url`"), "{e}");
        assert!(!e.contains("hooks/T0"), "{e}");
        assert!(guard.check("{\"x\":\"short\"}", "$meta").is_ok());
        assert!(guard
            .check("{\"x\":\"https://hooks/T0/\"}", "$meta")
            .is_ok());
    }
}
