//! The local store on sled: records by identity with upsert, their change
//! history, connector cursors, KPI snapshots, the delivery outbox and a few
//! facts about the store itself. Writes that belong together are one sled
//! transaction, flushed before the call returns.

pub mod codec;
mod keys;

pub use codec::{HistoryEntry, StoredRecord};

use crate::estate::{Estate, SeverityChange};
use secmetrics_connectors::{Identity, Kind, Record, Severity, Time};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (usually the running daemon) holds the store.
    #[error(
        "the store at {0} is in use by another secmetrics process (the daemon?); \
         stop it, or ask the daemon: `secmetrics status`, `secmetrics resync`, \
         `secmetrics digest NAME`, or its admin API (GET /api/v1/kpis, GET /report)"
    )]
    Locked(PathBuf),
    /// The store directory is on a read-only file system.
    #[error(
        "the store at {0} is on a read-only file system; under systemd \
         (ProtectSystem=strict) a store outside /var/lib/secmetrics needs \
         `ReadWritePaths={0}` in a drop-in (`systemctl edit secmetrics`)"
    )]
    ReadOnly(PathBuf),
    /// The store directory cannot be created or opened.
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// Store directory.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// sled failed.
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("corrupt value in tree `{tree}`: {message}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// What failed.
        message: String,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

/// What an upsert did with each record of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Per kind: (new, replaced, unchanged).
    pub by_kind: BTreeMap<Kind, Counts>,
    /// History entries written.
    pub history_entries: u64,
}

/// Counts of one kind in a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Identity not seen before.
    pub new: u64,
    /// Replaced a different earlier version.
    pub replaced: u64,
    /// Equal to the stored version; nothing written.
    pub unchanged: u64,
}

impl BatchOutcome {
    /// Totals over all kinds.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.by_kind.values() {
            t.new += c.new;
            t.replaced += c.replaced;
            t.unchanged += c.unchanged;
        }
        t
    }
}

/// A connector's saved position and the outcome of its last sync.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CursorState {
    /// Opaque cursor from the connector.
    pub cursor: Option<String>,
    /// Last time a page was committed (microseconds since the epoch).
    pub last_commit_us: Option<i64>,
    /// Last time a whole sync pass succeeded.
    pub last_success_us: Option<i64>,
    /// Last error of a sync pass, if the last pass failed.
    pub last_error: Option<String>,
}

/// Records per (kind, source) and a few facts, for `secmetrics status`.
#[derive(Debug, Clone, Default)]
pub struct StoreStatus {
    /// Current records per (kind, source).
    pub records: BTreeMap<(Kind, String), u64>,
    /// Records marked gone per (kind, source).
    pub gone: BTreeMap<(Kind, String), u64>,
    /// Repos whose secret-scanning state the source could not tell.
    pub repos_unknown_scanning: u64,
    /// Last import time.
    pub last_import: Option<Time>,
    /// History entries.
    pub history_entries: u64,
    /// Connector cursors.
    pub cursors: BTreeMap<String, CursorState>,
    /// Bytes on disk.
    pub size_on_disk: u64,
}

/// The store. One process at a time may hold it.
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    records: sled::Tree,
    history: sled::Tree,
    cursors: sled::Tree,
    snapshots: sled::Tree,
    outbox: sled::Tree,
    outbox_index: sled::Tree,
    meta: sled::Tree,
}

const META_LAST_IMPORT: &[u8] = b"last_import";

impl Store {
    /// Open (or create) the store in `path`, a directory private to the user.
    pub fn open(path: &Path) -> Result<Store> {
        create_private_dir(path).map_err(|source| open_error(path, source))?;
        let db = sled::Config::new()
            .path(path.join("db"))
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if is_lock_error(&io) => StoreError::Locked(path.to_path_buf()),
                sled::Error::Io(io) => open_error(path, io),
                other => StoreError::Sled(other),
            })?;
        Ok(Store {
            records: db.open_tree("records")?,
            history: db.open_tree("history")?,
            cursors: db.open_tree("cursors")?,
            snapshots: db.open_tree("snapshots")?,
            outbox: db.open_tree("outbox")?,
            outbox_index: db.open_tree("outbox_index")?,
            meta: db.open_tree("meta")?,
            path: path.to_path_buf(),
            db,
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Upsert a batch of records, observed at `observed_at`, in one atomic,
    /// durable write. A record equal to the stored one writes nothing; a
    /// change of status, severity or validity adds a history entry.
    pub fn upsert_batch(&self, records: &[Record], observed_at: Time) -> Result<BatchOutcome> {
        self.commit(records, observed_at, None)
    }

    /// Upsert a connector's page and advance its cursor in the same atomic,
    /// durable write.
    pub fn commit_page(
        &self,
        connector: &str,
        records: &[Record],
        cursor: Option<&str>,
        observed_at: Time,
    ) -> Result<BatchOutcome> {
        self.commit(records, observed_at, Some((connector, cursor)))
    }

    fn commit(
        &self,
        records: &[Record],
        observed_at: Time,
        cursor: Option<(&str, Option<&str>)>,
    ) -> Result<BatchOutcome> {
        // Taken outside the transaction: generate_id inside it would wait
        // on the lock the transaction holds.
        let batch_id = self.db.generate_id()?;
        let outcome = (&self.records, &self.history, &self.cursors, &self.meta)
            .transaction(|(rec_t, hist_t, cur_t, meta_t)| {
                let mut outcome = BatchOutcome::default();
                let mut seq = 0u32;
                for record in records {
                    let key = keys::record_key(record.kind(), record.source(), record.id());
                    let previous = match rec_t.get(&key)? {
                        Some(bytes) => Some(decode_in_tx::<StoredRecord>("records", &bytes)?),
                        None => None,
                    };
                    let stored = match previous {
                        Some(prev) if prev.record == *record && prev.gone_at_us.is_none() => {
                            outcome.by_kind.entry(record.kind()).or_default().unchanged += 1;
                            continue;
                        }
                        Some(prev) => {
                            outcome.by_kind.entry(record.kind()).or_default().replaced += 1;
                            for (field, old, new) in tracked_changes(&prev.record, record) {
                                seq += 1;
                                let entry = HistoryEntry {
                                    field: field.to_string(),
                                    old: old.to_string(),
                                    new: new.to_string(),
                                    observed_at_us: observed_at.timestamp_micros(),
                                };
                                hist_t.insert(
                                    keys::history_key(&key, batch_id, seq),
                                    codec::encode(&entry),
                                )?;
                                outcome.history_entries += 1;
                            }
                            StoredRecord {
                                record: record.clone(),
                                first_seen_us: prev.first_seen_us,
                                last_changed_us: observed_at.timestamp_micros(),
                                gone_at_us: None,
                            }
                        }
                        None => {
                            outcome.by_kind.entry(record.kind()).or_default().new += 1;
                            StoredRecord {
                                record: record.clone(),
                                first_seen_us: observed_at.timestamp_micros(),
                                last_changed_us: observed_at.timestamp_micros(),
                                gone_at_us: None,
                            }
                        }
                    };
                    rec_t.insert(key, codec::encode(&stored))?;
                }
                match cursor {
                    Some((connector, cursor)) => {
                        let mut state = match cur_t.get(connector.as_bytes())? {
                            Some(b) => decode_in_tx::<CursorState>("cursors", &b)?,
                            None => CursorState::default(),
                        };
                        if let Some(c) = cursor {
                            state.cursor = Some(c.to_string());
                        }
                        state.last_commit_us = Some(observed_at.timestamp_micros());
                        cur_t.insert(connector.as_bytes(), codec::encode(&state))?;
                    }
                    None => {
                        meta_t.insert(
                            META_LAST_IMPORT,
                            &observed_at.timestamp_micros().to_be_bytes()[..],
                        )?;
                    }
                }
                Ok(outcome)
            })
            .map_err(tx_error)?;
        self.db.flush()?;
        Ok(outcome)
    }

    /// The stored version of one record (gone or not).
    pub fn get(&self, identity: &Identity) -> Result<Option<StoredRecord>> {
        let key = keys::record_key(identity.kind, &identity.source, &identity.id);
        self.records
            .get(key)?
            .map(|b| codec::decode("records", &b))
            .transpose()
    }

    /// The change history of one record, oldest first.
    pub fn history(&self, identity: &Identity) -> Result<Vec<HistoryEntry>> {
        let key = keys::record_key(identity.kind, &identity.source, &identity.id);
        self.history
            .scan_prefix(keys::history_prefix(&key))
            .values()
            .map(|v| codec::decode("history", &v?))
            .collect()
    }

    /// Mark every current record of `source` whose identity is not in `seen`
    /// as gone at `at` (a full resync found the source no longer returns
    /// them). Returns how many were marked.
    pub fn mark_gone_except(
        &self,
        source: &str,
        seen: &std::collections::HashSet<Identity>,
        at: Time,
    ) -> Result<u64> {
        let mut batch = sled::Batch::default();
        let mut marked = 0;
        for item in self.records.iter() {
            let (key, value) = item?;
            let mut stored: StoredRecord = codec::decode("records", &value)?;
            if stored.record.source() != source || stored.gone_at_us.is_some() {
                continue;
            }
            if seen.contains(&stored.record.identity()) {
                continue;
            }
            stored.gone_at_us = Some(at.timestamp_micros());
            batch.insert(key, codec::encode(&stored));
            marked += 1;
        }
        self.records.apply_batch(batch)?;
        self.db.flush()?;
        Ok(marked)
    }

    /// Every current (not gone) record and the severity history, for KPIs.
    pub fn load_estate(&self) -> Result<Estate> {
        let mut estate = Estate::default();
        for value in self.records.iter().values() {
            let stored: StoredRecord = codec::decode("records", &value?)?;
            if stored.gone_at_us.is_none() {
                estate.push(stored.record);
            }
        }
        for item in self.history.iter() {
            let (key, value) = item?;
            let entry: HistoryEntry = codec::decode("history", &value)?;
            if entry.field != "severity" {
                continue;
            }
            let Some((kind, source, id)) = keys::parse_history_key(&key) else {
                continue;
            };
            let (Some(from), Some(to)) = (Severity::parse(&entry.old), Severity::parse(&entry.new))
            else {
                continue;
            };
            if kind == Kind::Finding {
                estate.severity_changes.push(SeverityChange {
                    id,
                    source,
                    from,
                    to,
                    observed_at: codec::time(entry.observed_at_us),
                });
            }
        }
        Ok(estate)
    }

    /// Counts and facts for `secmetrics status`.
    pub fn status(&self) -> Result<StoreStatus> {
        let mut status = StoreStatus::default();
        for item in self.records.iter() {
            let (key, value) = item?;
            let Some((kind, source, _)) = keys::parse_record_key(&key) else {
                continue;
            };
            let stored: StoredRecord = codec::decode("records", &value)?;
            if stored.gone_at_us.is_some() {
                *status.gone.entry((kind, source)).or_default() += 1;
                continue;
            }
            if let Record::Repo(r) = &stored.record {
                if r.secret_scanning.is_none() && r.in_scope {
                    status.repos_unknown_scanning += 1;
                }
            }
            *status.records.entry((kind, source)).or_default() += 1;
        }
        status.history_entries = self.history.len() as u64;
        status.last_import = self
            .meta
            .get(META_LAST_IMPORT)?
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map(|b| codec::time(i64::from_be_bytes(b)));
        status.cursors = self.cursors()?;
        status.size_on_disk = self.db.size_on_disk()?;
        Ok(status)
    }

    /// A connector's cursor state.
    pub fn cursor(&self, connector: &str) -> Result<Option<CursorState>> {
        self.cursors
            .get(connector.as_bytes())?
            .map(|b| codec::decode("cursors", &b))
            .transpose()
    }

    /// Every connector's cursor state, by connector name.
    pub fn cursors(&self) -> Result<BTreeMap<String, CursorState>> {
        let mut out = BTreeMap::new();
        for item in self.cursors.iter() {
            let (k, v) = item?;
            out.insert(
                String::from_utf8_lossy(&k).into_owned(),
                codec::decode("cursors", &v)?,
            );
        }
        Ok(out)
    }

    /// Replace a connector's cursor state (sync outcome bookkeeping).
    pub fn put_cursor(&self, connector: &str, state: &CursorState) -> Result<()> {
        self.cursors
            .insert(connector.as_bytes(), codec::encode(state))?;
        self.db.flush()?;
        Ok(())
    }

    /// Store a KPI snapshot (the pack as sent) under `key`, e.g. a period.
    pub fn put_snapshot(&self, key: &str, json: &[u8]) -> Result<()> {
        self.snapshots
            .insert(key.as_bytes(), codec::encode_bytes(json))?;
        self.db.flush()?;
        Ok(())
    }

    /// A stored KPI snapshot.
    pub fn snapshot(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.snapshots
            .get(key.as_bytes())?
            .map(|b| codec::decode_bytes("snapshots", &b))
            .transpose()
    }

    /// Queue a rendered digest in one atomic, durable write: each snapshot
    /// (key, JSON) not kept yet, each outbox entry (key, encoded body,
    /// encoded summary) not there yet, and the digest's fire time under
    /// `fire.0` (kept only if later than the one there). A crash leaves all
    /// of it or none of it. Returns, per entry, whether it was written.
    /// The outbox's values are opaque here: `deliver::outbox` owns them.
    pub fn commit_digest(
        &self,
        snapshots: &[(String, Vec<u8>)],
        entries: &[(Vec<u8>, Vec<u8>, Vec<u8>)],
        fire: Option<(&str, Time)>,
    ) -> Result<Vec<bool>> {
        let written = (
            &self.snapshots,
            &self.outbox,
            &self.outbox_index,
            &self.meta,
        )
            .transaction(|(snap_t, out_t, index_t, meta_t)| {
                for (key, json) in snapshots {
                    if snap_t.get(key.as_bytes())?.is_none() {
                        snap_t.insert(key.as_bytes(), codec::encode_bytes(json))?;
                    }
                }
                let mut written = Vec::with_capacity(entries.len());
                for (key, body, summary) in entries {
                    let fresh = out_t.get(key)?.is_none();
                    if fresh {
                        out_t.insert(key.as_slice(), body.as_slice())?;
                        index_t.insert(key.as_slice(), summary.as_slice())?;
                    }
                    written.push(fresh);
                }
                if let Some((key, at)) = fire {
                    let us = at.timestamp_micros();
                    let kept = meta_t
                        .get(key.as_bytes())?
                        .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
                        .map(i64::from_be_bytes);
                    if kept.map_or(true, |k| k < us) {
                        meta_t.insert(key.as_bytes(), &us.to_be_bytes()[..])?;
                    }
                }
                Ok(written)
            })
            .map_err(tx_error)?;
        self.db.flush()?;
        Ok(written)
    }

    /// The outbox's two trees: entry bodies and their small summaries, by
    /// the same key. Only `deliver::outbox` reads and writes them.
    pub(crate) fn outbox_trees(&self) -> (&sled::Tree, &sled::Tree) {
        (&self.outbox, &self.outbox_index)
    }

    /// An id never handed out before by this store, across restarts (sled
    /// persists its id generator).
    pub fn generate_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    /// A small fact kept by the daemon (e.g. a digest's last fire time),
    /// under a key of its own namespace (`daemon/...`).
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Every small fact whose key starts with `prefix`, in key order.
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.meta
            .scan_prefix(prefix.as_bytes())
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    /// Keep a small fact durably (see [`Store::meta`]).
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.meta.insert(key.as_bytes(), value)?;
        self.db.flush()?;
        Ok(())
    }

    /// Write everything buffered to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

fn tracked_changes(old: &Record, new: &Record) -> Vec<(&'static str, &'static str, &'static str)> {
    old.tracked()
        .into_iter()
        .zip(new.tracked())
        .filter(|((f1, v1), (f2, v2))| f1 == f2 && v1 != v2)
        .map(|((f, v1), (_, v2))| (f.as_str(), v1, v2))
        .collect()
}

fn decode_in_tx<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    codec::decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// EROFS: the file system is mounted read-only.
const EROFS: i32 = 30;

fn open_error(path: &Path, source: std::io::Error) -> StoreError {
    if source.raw_os_error() == Some(EROFS) {
        StoreError::ReadOnly(path.to_path_buf())
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)?;
    }
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Microseconds since the epoch as RFC 3339 text.
pub fn time_text(us: i64) -> String {
    codec::time(us).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_file_system_is_named_with_the_systemd_fix() {
        let e = open_error(
            Path::new("/srv/secmetrics"),
            std::io::Error::from_raw_os_error(EROFS),
        );
        assert_eq!(
            e.to_string(),
            "the store at /srv/secmetrics is on a read-only file system; under systemd \
             (ProtectSystem=strict) a store outside /var/lib/secmetrics needs \
             `ReadWritePaths=/srv/secmetrics` in a drop-in (`systemctl edit secmetrics`)"
        );
        let e = open_error(Path::new("/x"), std::io::Error::from_raw_os_error(13));
        assert!(matches!(e, StoreError::Open { .. }), "{e}");
    }
}
