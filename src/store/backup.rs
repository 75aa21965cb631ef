//! What a backup reads and a restore writes, tree by tree: the store's
//! values with their keys decoded (`secmetrics export --all`), and a writer
//! that puts them back (`import` of a backup). History and override-log
//! entries are keyed by ids the store hands out, so a restore numbers them
//! after every id it handed out before, in their old order; entries a
//! source stamped itself keep their keys (derived from the change).

use super::{codec, keys, CursorState, HistoryEntry, OverrideChange, Result, Store, StoreError};
use super::{Override, StoredRecord};
use secmetrics_connectors::Identity;
use std::collections::{BTreeMap, HashMap};

/// The trees whose values a backup writes as typed lines; any other tree
/// is written raw (a tree added by a later change is never left out).
pub const TYPED_TREES: &[&str] = &[
    "records",
    "history",
    "cursors",
    "snapshots",
    "outbox",
    "outbox_index",
    "overrides",
    "override_log",
];

/// The trees of the store's own bookkeeping and of sled.
pub const META_TREE: &str = "meta";

/// Keys of `meta` that describe the store itself, never backed up: the
/// format marker and the restore marker (`store/...`), and the outbox's
/// "summaries built" fact (a restore writes the summaries itself).
pub fn is_store_fact(key: &[u8]) -> bool {
    key.starts_with(b"store/") || key == b"outbox/index_built"
}

/// The meta key of the last import's time (8 bytes, big-endian µs).
pub const LAST_IMPORT_KEY: &[u8] = super::META_LAST_IMPORT;

/// One history entry with the record it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    /// The record.
    pub identity: Identity,
    /// The change.
    pub entry: HistoryEntry,
    /// For a change the source stamped with its own time: its number
    /// (field and place among changes at that time), part of its key.
    pub source_change: Option<u32>,
}

/// The meta marker of a restore under way (see [`Store::begin_restore`]).
pub(super) const RESTORE_MARKER: &[u8] = b"store/restore_incomplete";

fn identity_of(tree: &'static str, record_key: &[u8]) -> Result<Identity> {
    let (kind, source, id) =
        keys::parse_record_key(record_key).ok_or_else(|| StoreError::Corrupt {
            tree,
            message: "unreadable key".into(),
        })?;
    Ok(Identity { kind, source, id })
}

impl Store {
    /// Hold back every write of records (pages, imports, gone-marking)
    /// while the guard lives, so a backup reads cursors, records and
    /// history as one consistent state.
    pub fn pause_record_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every history entry in key order: by record, then in the order
    /// written (source-stamped entries after the observed ones).
    pub fn history_items(&self) -> impl Iterator<Item = Result<HistoryItem>> + '_ {
        self.history.iter().map(|item| {
            let (key, value) = item?;
            let (record_key, batch, seq) =
                keys::split_history_key(&key).ok_or_else(|| StoreError::Corrupt {
                    tree: "history",
                    message: "unreadable key".into(),
                })?;
            Ok(HistoryItem {
                identity: identity_of("history", record_key)?,
                entry: codec::decode("history", &value)?,
                source_change: keys::is_source_stamped(batch).then_some(seq),
            })
        })
    }

    /// Every override-log entry, by record, oldest first.
    pub fn override_log_items(&self) -> Result<Vec<(Identity, OverrideChange)>> {
        let log = self.db.open_tree("override_log")?;
        log.iter()
            .map(|item| {
                let (key, value) = item?;
                let (record_key, _, _) =
                    keys::split_history_key(&key).ok_or_else(|| StoreError::Corrupt {
                        tree: "override_log",
                        message: "unreadable key".into(),
                    })?;
                Ok((
                    identity_of("override_log", record_key)?,
                    codec::decode("override_log", &value)?,
                ))
            })
            .collect()
    }

    /// Every snapshot: (key, the JSON as kept).
    pub fn snapshots_all(&self) -> impl Iterator<Item = Result<(String, Vec<u8>)>> + '_ {
        self.snapshots.iter().map(|item| {
            let (key, value) = item?;
            Ok((
                String::from_utf8_lossy(&key).into_owned(),
                codec::decode_bytes("snapshots", &value)?,
            ))
        })
    }

    /// Names of the store's trees other than [`TYPED_TREES`] and `meta`
    /// that hold anything (sled's default tree included).
    pub fn other_trees(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.db.tree_names() {
            let name = String::from_utf8_lossy(&name).into_owned();
            if TYPED_TREES.contains(&name.as_str()) || name == META_TREE {
                continue;
            }
            if !self.db.open_tree(&name)?.is_empty() {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Every (key, value) of one tree, raw, in key order.
    pub fn raw_entries(&self, tree: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db
            .open_tree(tree)?
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// A tree by name, created when missing (tests of trees a later build
    /// adds).
    #[cfg(test)]
    pub(crate) fn open_raw_tree(&self, name: &str) -> Result<sled::Tree> {
        Ok(self.db.open_tree(name)?)
    }

    /// What the store holds that a restore would lay a backup over: the
    /// names of trees with values (meta: facts other than the store's own).
    pub fn held_data(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.db.tree_names() {
            let name = String::from_utf8_lossy(&name).into_owned();
            let tree = self.db.open_tree(&name)?;
            let held = if name == META_TREE {
                tree.iter()
                    .keys()
                    .map(|k| k.map(|k| !is_store_fact(&k)))
                    .collect::<std::result::Result<Vec<bool>, _>>()?
                    .into_iter()
                    .any(|b| b)
            } else {
                !tree.is_empty()
            };
            if held {
                out.push(if name == "__sled__default" {
                    "(default)".to_string()
                } else {
                    name
                });
            }
        }
        Ok(out)
    }

    /// Start a restore: a durable marker says one is under way until
    /// [`Restorer::finish`] removes it, so a store left half-restored by a
    /// crash is refused at its next open rather than used.
    pub fn begin_restore(&self) -> Result<Restorer<'_>> {
        self.meta.insert(RESTORE_MARKER, &b"1"[..])?;
        self.db.flush()?;
        Ok(Restorer {
            store: self,
            base: self.db.generate_id()?,
            history_seq: HashMap::new(),
            log_seq: HashMap::new(),
            batches: BTreeMap::new(),
        })
    }
}

/// Values are applied to their trees in batches of this many.
const RESTORE_BATCH: usize = 10_000;

/// Writes a backup's values back into a store (see [`Store::begin_restore`]).
pub struct Restorer<'a> {
    store: &'a Store,
    /// One id handed out by this store for the whole restore: restored
    /// history and override-log entries are numbered under it, so they
    /// come after anything the store held and before anything it writes
    /// later.
    base: u64,
    history_seq: HashMap<Vec<u8>, u32>,
    log_seq: HashMap<Vec<u8>, u32>,
    batches: BTreeMap<String, (sled::Batch, usize)>,
}

impl Restorer<'_> {
    fn put(&mut self, tree: &str, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let slot = self.batches.entry(tree.to_string()).or_default();
        slot.0.insert(key, value);
        slot.1 += 1;
        if slot.1 >= RESTORE_BATCH {
            let batch = std::mem::take(&mut slot.0);
            slot.1 = 0;
            self.store.db.open_tree(tree)?.apply_batch(batch)?;
        }
        Ok(())
    }

    /// A record with its bookkeeping times.
    pub fn record(&mut self, stored: &StoredRecord) -> Result<()> {
        let r = &stored.record;
        let key = keys::record_key(r.kind(), r.source(), r.id());
        self.put("records", key, codec::encode_record(stored))
    }

    /// A history entry; entries of one record must come in their order.
    pub fn history(&mut self, item: &HistoryItem) -> Result<()> {
        let i = &item.identity;
        let record_key = keys::record_key(i.kind, &i.source, &i.id);
        let key = match item.source_change {
            Some(seq) => keys::source_history_key(&record_key, item.entry.observed_at_us, seq),
            None => {
                let n = self.history_seq.entry(record_key.clone()).or_default();
                *n += 1;
                keys::history_key(&record_key, self.base, *n)
            }
        };
        self.put("history", key, codec::encode(&item.entry))
    }

    /// An active override.
    pub fn override_of(&mut self, identity: &Identity, o: &Override) -> Result<()> {
        let key = keys::record_key(identity.kind, &identity.source, &identity.id);
        self.put("overrides", key, codec::encode(o))
    }

    /// An override-log entry; entries of one record must come in order.
    pub fn override_log(&mut self, identity: &Identity, change: &OverrideChange) -> Result<()> {
        let record_key = keys::record_key(identity.kind, &identity.source, &identity.id);
        let n = self.log_seq.entry(record_key.clone()).or_default();
        *n += 1;
        let key = keys::history_key(&record_key, self.base, *n);
        self.put("override_log", key, codec::encode(change))
    }

    /// A KPI snapshot, its JSON byte for byte.
    pub fn snapshot(&mut self, key: &str, json: &[u8]) -> Result<()> {
        self.put(
            "snapshots",
            key.as_bytes().to_vec(),
            codec::encode_bytes(json),
        )
    }

    /// An outbox entry: (key, encoded body, encoded summary), as
    /// `deliver::outbox::Entry::encoded` gives them.
    pub fn outbox(&mut self, key: Vec<u8>, body: Vec<u8>, summary: Vec<u8>) -> Result<()> {
        self.put("outbox", key.clone(), body)?;
        self.put("outbox_index", key, summary)
    }

    /// A connector's cursor state.
    pub fn cursor(&mut self, connector: &str, state: &CursorState) -> Result<()> {
        self.put(
            "cursors",
            connector.as_bytes().to_vec(),
            codec::encode(state),
        )
    }

    /// A fact of `meta` (never one of the store's own, see [`is_store_fact`]).
    pub fn meta(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(META_TREE, key.to_vec(), value.to_vec())
    }

    /// A value of a tree the backup carried raw.
    pub fn raw(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(tree, key.to_vec(), value.to_vec())
    }

    /// Apply what is left, flush, and remove the restore marker (flushed
    /// again): only now is the store usable.
    pub fn finish(mut self) -> Result<()> {
        for (tree, (batch, _)) in std::mem::take(&mut self.batches) {
            self.store.db.open_tree(&tree)?.apply_batch(batch)?;
        }
        self.store.db.flush()?;
        self.store.meta.remove(RESTORE_MARKER)?;
        self.store.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmetrics_connectors::{Kind, Severity, SourceChange, SourceHistory, Tracked, Validity};

    fn finding(id: &str, status: &str, severity: &str) -> secmetrics_connectors::Record {
        secmetrics_connectors::ndjson::parse_line(
            &format!(
                r#"{{"kind":"finding","id":"{id}","source":"jira","asset":"a","severity":"{severity}","opened_at":"2026-01-01T00:00:00Z","status":"{status}"}}"#
            ),
            "import",
        )
        .unwrap()
    }

    fn t(s: &str) -> secmetrics_connectors::Time {
        s.parse().unwrap()
    }

    #[test]
    fn history_and_override_log_come_back_in_order_after_the_new_stores_ids() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(&dir.path().join("a")).unwrap();
        a.upsert_batch(&[finding("F-1", "open", "high")], t("2026-02-01T00:00:00Z"))
            .unwrap();
        a.upsert_batch(
            &[finding("F-1", "remediated", "low")],
            t("2026-02-02T00:00:00Z"),
        )
        .unwrap();
        // A change the source stamped itself (Jira's changelog).
        let id = finding("F-1", "remediated", "low").identity();
        a.commit_page_with_history(
            "jira",
            &[finding("F-1", "remediated", "low")],
            &[SourceHistory {
                identity: id.clone(),
                fields: vec![Tracked::Validity],
                changes: vec![SourceChange {
                    field: Tracked::Validity,
                    old: "unverified".into(),
                    new: "valid".into(),
                    at: t("2026-01-15T00:00:00Z"),
                }],
            }],
            Some("c1"),
            t("2026-02-03T00:00:00Z"),
            Default::default(),
        )
        .unwrap();
        let o = |v: Validity, at_us| Override {
            validity: v,
            severity: Some(Severity::Low),
            reason: "r".into(),
            by: "me".into(),
            at_us,
            severity_before: Some(Severity::High),
        };
        a.set_override(&id, &o(Validity::Valid, 1)).unwrap();
        a.set_override(&id, &o(Validity::FalsePositive, 2)).unwrap();
        a.remove_override(&id, "you", 3).unwrap();
        a.set_override(&id, &o(Validity::Invalid, 4)).unwrap();

        let history: Vec<HistoryItem> = a.history_items().collect::<Result<_>>().unwrap();
        assert_eq!(history.len(), 3, "{history:?}");
        assert_eq!(history[2].source_change, Some((3 << 16) | 1));
        let log = a.override_log_items().unwrap();
        assert_eq!(log.len(), 4);

        // Restored into a store whose id generator is far behind.
        let b = Store::open(&dir.path().join("b")).unwrap();
        assert_eq!(b.held_data().unwrap(), Vec::<String>::new());
        let mut r = b.begin_restore().unwrap();
        for s in a.records_of(Kind::Finding, "jira") {
            r.record(&s.unwrap()).unwrap();
        }
        for h in &history {
            r.history(h).unwrap();
        }
        for (i, c) in &log {
            r.override_log(i, c).unwrap();
        }
        r.override_of(&id, &a.override_of(&id).unwrap().unwrap())
            .unwrap();
        r.finish().unwrap();
        assert_eq!(b.history(&id).unwrap(), a.history(&id).unwrap());
        assert_eq!(b.override_log(&id).unwrap(), a.override_log(&id).unwrap());
        let back: Vec<HistoryItem> = b.history_items().collect::<Result<_>>().unwrap();
        assert_eq!(back, history);
        // What the restored store writes later comes after what it got.
        b.remove_override(&id, "them", 5).unwrap();
        let log_b = b.override_log(&id).unwrap();
        assert_eq!(log_b.len(), 5);
        assert_eq!(
            log_b[4],
            OverrideChange::Removed {
                by: "them".into(),
                at_us: 5
            }
        );
        b.upsert_batch(&[finding("F-1", "open", "low")], t("2026-03-01T00:00:00Z"))
            .unwrap();
        let h = b.history(&id).unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(h[3].new, "open");
        // The same source change sent again is not written twice.
        let again = b
            .commit_page_with_history(
                "jira",
                &[finding("F-1", "open", "low")],
                &[SourceHistory {
                    identity: id.clone(),
                    fields: vec![Tracked::Validity],
                    changes: vec![SourceChange {
                        field: Tracked::Validity,
                        old: "unverified".into(),
                        new: "valid".into(),
                        at: t("2026-01-15T00:00:00Z"),
                    }],
                }],
                None,
                t("2026-03-02T00:00:00Z"),
                Default::default(),
            )
            .unwrap();
        assert_eq!(again.history_entries, 0);
        let mut held = b.held_data().unwrap();
        held.sort();
        assert_eq!(
            held,
            // The override was removed above; the page wrote a cursor.
            ["cursors", "history", "meta", "override_log", "records"]
        );
    }
}
