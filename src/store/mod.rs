//! The local store on sled: records by identity with upsert, their change
//! history, connector cursors, KPI snapshots, the delivery outbox and a few
//! facts about the store itself. Writes that belong together are one sled
//! transaction, flushed before the call returns.

pub mod backup;
pub mod codec;
mod format;
mod keys;
mod legacy;
mod overrides;

pub use codec::{HistoryEntry, StoredRecord};
pub use format::STORE_FORMAT;
pub use overrides::{Override, OverrideChange};

use crate::estate::{Estate, SeverityChange};
use secmetrics_connectors::{
    Identity, Kind, Record, Severity, SourceHistory, StateChange, Time, Tracked,
};
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
    /// The store was written by a newer format than this build reads.
    #[error(
        "the store at {path} was written by a newer secmetrics (store format {found}; this \
         build reads up to {reads}): run that version or a later one. To go back to this \
         version, make a backup with the newer one (`secmetrics export --all --out FILE`) \
         and restore it here into an empty store (`secmetrics --data-dir NEW_DIR import FILE`)"
    )]
    NewerFormat {
        /// Store directory.
        path: PathBuf,
        /// The format the store's marker names.
        found: u32,
        /// The newest format this build reads.
        reads: u32,
    },
    /// A store from before the format marker holds a value of a version
    /// this build does not read.
    #[error(
        "the store at {path} cannot be read by this build: its tree `{tree}` holds a value of \
         format version {version}, which this build does not read. It was written by a newer \
         secmetrics (run that version or a later one) or it is damaged (restore a backup into \
         an empty store: `secmetrics --data-dir NEW_DIR import FILE`)"
    )]
    UnknownValueVersion {
        /// Store directory.
        path: PathBuf,
        /// The tree holding the value.
        tree: &'static str,
        /// The value's version byte.
        version: u8,
    },
    /// A restore into the store was interrupted: it holds part of a backup.
    #[error(
        "a restore into this store did not finish, so it holds only part of the backup: \
         delete {0} and restore the backup again (`secmetrics --data-dir {0} import FILE`)"
    )]
    RestoreIncomplete(PathBuf),
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

/// How a write treats what is already stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Findings keep the stored `opened_at` when it is earlier, and the
    /// stored fingerprint when the new version has none: for sources whose
    /// opening time is only the oldest scan still at hand (SARIF files).
    pub keep_first_opened: bool,
}

/// Where the version planned for an identity is: a record of the batch, or
/// a copy that took fields from the stored version.
#[derive(Debug, Clone, Copy)]
enum Planned {
    Input(usize),
    Merged(usize),
}

/// Hashes of the keys written under a fresh prefix (see `Store::fresh`).
#[derive(Debug, Default)]
struct FreshKeys(std::collections::HashSet<u64>);

/// A fresh prefix stops being tracked past this many keys (about 40 MB).
const FRESH_KEYS_MAX: usize = 2_000_000;

/// A 64-bit hash of a record key: a collision only costs a read.
fn key_hash(key: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = FRESH_HASHER.build_hasher();
    h.write(key);
    h.finish()
}

/// One fixed hasher for the process (hashes never leave it).
static FRESH_HASHER: std::sync::LazyLock<std::collections::hash_map::RandomState> =
    std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);

/// sled's page cache for commands that write or run long (sled's default).
const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// sled's page cache for one pass over the records.
const SCAN_CACHE_BYTES: u64 = 32 << 20;

/// What a batch will write, planned before its transaction.
struct Plan {
    records: Vec<(Vec<u8>, Vec<u8>)>,
    history: Vec<(Vec<u8>, Vec<u8>)>,
    outcome: BatchOutcome,
}

/// The store. One process at a time may hold it.
pub struct Store {
    /// Held by every write of records: the write path reads previous
    /// versions before its transaction (see `commit_with`).
    writer: std::sync::Mutex<()>,
    /// Record-key prefixes (kind, source) that held no record when this
    /// process first wrote under them, with the hashes of the keys it wrote
    /// since: a key under such a prefix whose hash is absent was never
    /// stored, so the write path need not read its previous version (an
    /// import into a new source costs no reads). `None`: the prefix held
    /// records, or its set grew past [`FRESH_KEYS_MAX`].
    fresh: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Option<FreshKeys>>>,
    db: sled::Db,
    path: PathBuf,
    records: sled::Tree,
    history: sled::Tree,
    cursors: sled::Tree,
    /// Connectors' own state: `connector \0 key` → a string (see
    /// [`StateChange`]), written with the connector's cursor.
    connector_state: sled::Tree,
    snapshots: sled::Tree,
    outbox: sled::Tree,
    outbox_index: sled::Tree,
    meta: sled::Tree,
}

const META_LAST_IMPORT: &[u8] = b"last_import";

/// The tree of connectors' own state (see [`StateChange`]).
pub const CONNECTOR_STATE_TREE: &str = "connector_state";

impl Store {
    /// Open (or create) the store in `path`, a directory private to the user.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] for one pass over the records (a report, an export):
    /// a small page cache (pages read once need not stay), which keeps a
    /// report over a million findings some 180 MB smaller at no cost in time.
    pub fn open_for_scan(path: &Path) -> Result<Store> {
        Store::open_with_cache(path, SCAN_CACHE_BYTES)
    }

    fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Store> {
        create_private_dir(path).map_err(|source| open_error(path, source))?;
        let db = sled::Config::new()
            .path(path.join("db"))
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if is_lock_error(&io) => StoreError::Locked(path.to_path_buf()),
                sled::Error::Io(io) => open_error(path, io),
                other => StoreError::Sled(other),
            })?;
        let store = Store {
            writer: std::sync::Mutex::new(()),
            fresh: Default::default(),
            records: db.open_tree("records")?,
            history: db.open_tree("history")?,
            cursors: db.open_tree("cursors")?,
            connector_state: db.open_tree(CONNECTOR_STATE_TREE)?,
            snapshots: db.open_tree("snapshots")?,
            outbox: db.open_tree("outbox")?,
            outbox_index: db.open_tree("outbox_index")?,
            meta: db.open_tree("meta")?,
            path: path.to_path_buf(),
            db,
        };
        store.check_format()?;
        Ok(store)
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

    /// [`Store::upsert_batch`] with [`WriteOptions`].
    pub fn upsert_batch_with(
        &self,
        records: &[Record],
        observed_at: Time,
        opts: WriteOptions,
    ) -> Result<BatchOutcome> {
        self.commit_with(records, &[], observed_at, None, None, opts)
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

    /// [`Store::commit_page`] with history the source recorded itself,
    /// stamped with the source's times (see [`SourceHistory`]): its changes
    /// are written once each (a change sent again is not written twice),
    /// also for records that are otherwise unchanged, and the observed
    /// diff writes nothing for the fields it covers.
    pub fn commit_page_with_history(
        &self,
        connector: &str,
        records: &[Record],
        history: &[SourceHistory],
        cursor: Option<&str>,
        observed_at: Time,
        opts: WriteOptions,
    ) -> Result<BatchOutcome> {
        self.commit_with(
            records,
            history,
            observed_at,
            Some((connector, cursor)),
            None,
            opts,
        )
    }

    /// [`Store::commit_page`] with a change of the connector's own state
    /// (see [`StateChange`]), all in one atomic, durable write.
    pub fn commit_page_with_state(
        &self,
        connector: &str,
        records: &[Record],
        cursor: Option<&str>,
        state: &StateChange,
        observed_at: Time,
        opts: WriteOptions,
    ) -> Result<BatchOutcome> {
        self.commit_with(
            records,
            &[],
            observed_at,
            Some((connector, cursor)),
            Some(state),
            opts,
        )
    }

    /// A connector's state entries whose key starts with `prefix`, in key
    /// order.
    pub fn connector_state(&self, connector: &str, prefix: &str) -> Result<Vec<(String, String)>> {
        let start = keys::state_key(connector, prefix);
        let skip = connector.len() + 1;
        self.connector_state
            .scan_prefix(&start)
            .map(|item| {
                let (k, v) = item?;
                let key = String::from_utf8_lossy(&k[skip..]).into_owned();
                Ok((key, codec::decode::<String>(CONNECTOR_STATE_TREE, &v)?))
            })
            .collect()
    }

    fn commit(
        &self,
        records: &[Record],
        observed_at: Time,
        cursor: Option<(&str, Option<&str>)>,
    ) -> Result<BatchOutcome> {
        self.commit_with(
            records,
            &[],
            observed_at,
            cursor,
            None,
            WriteOptions::default(),
        )
    }

    fn commit_with(
        &self,
        records: &[Record],
        history: &[SourceHistory],
        observed_at: Time,
        cursor: Option<(&str, Option<&str>)>,
        state: Option<&StateChange>,
        opts: WriteOptions,
    ) -> Result<BatchOutcome> {
        // One writer at a time: previous versions are read outside the
        // transaction, which is sound only while nobody else writes records.
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let plan = self.plan(records, history, observed_at, opts)?;
        // The connector's state as written: the keys a reset deletes (read
        // under the writer lock, so none appears meanwhile), then the writes.
        let mut state_writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        if let (Some(change), Some((connector, _))) = (state, cursor) {
            if change.reset {
                for item in self
                    .connector_state
                    .scan_prefix(keys::state_key(connector, ""))
                    .keys()
                {
                    state_writes.push((item?.to_vec(), None));
                }
            }
            for (key, value) in &change.writes {
                state_writes.push((
                    keys::state_key(connector, key),
                    value.as_ref().map(codec::encode),
                ));
            }
        }
        if cursor.is_none() && plan.history.is_empty() {
            // Records only (an import of new or unchanged records): one
            // atomic batch of one tree, without a transaction's overhead.
            let mut batch = sled::Batch::default();
            for (k, v) in plan.records {
                batch.insert(k, v);
            }
            self.records.apply_batch(batch)?;
            self.meta.insert(
                META_LAST_IMPORT,
                &observed_at.timestamp_micros().to_be_bytes()[..],
            )?;
            self.db.flush()?;
            return Ok(plan.outcome);
        }
        (
            &self.records,
            &self.history,
            &self.cursors,
            &self.meta,
            &self.connector_state,
        )
            .transaction(|(rec_t, hist_t, cur_t, meta_t, state_t)| {
                for (k, v) in &plan.records {
                    rec_t.insert(k.as_slice(), v.as_slice())?;
                }
                for (k, v) in &state_writes {
                    match v {
                        Some(v) => state_t.insert(k.as_slice(), v.as_slice())?,
                        None => state_t.remove(k.as_slice())?,
                    };
                }
                for (k, v) in &plan.history {
                    hist_t.insert(k.as_slice(), v.as_slice())?;
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
                Ok(())
            })
            .map_err(tx_error)?;
        self.db.flush()?;
        Ok(plan.outcome)
    }

    /// Everything a batch writes, decided before the transaction: each
    /// record read once, compared, and encoded once (by reference, never
    /// cloned). A record repeated within the batch is compared with its
    /// earlier line, as if the lines had been committed one by one.
    fn plan(
        &self,
        records: &[Record],
        history: &[SourceHistory],
        observed_at: Time,
        opts: WriteOptions,
    ) -> Result<Plan> {
        let now_us = observed_at.timestamp_micros();
        let stamped: std::collections::HashMap<Vec<u8>, &SourceHistory> = history
            .iter()
            .map(|h| {
                let i = &h.identity;
                (keys::record_key(i.kind, &i.source, &i.id), h)
            })
            .collect();
        // Taken before the batch: its id orders this batch's history entries
        // after every earlier one, across restarts.
        let batch_id = self.db.generate_id()?;
        let mut plan = Plan {
            records: Vec::with_capacity(records.len()),
            history: Vec::new(),
            outcome: BatchOutcome::default(),
        };
        // Identities planned in this batch: (where the version planned is,
        // first seen).
        let mut in_batch: std::collections::HashMap<Vec<u8>, (Planned, i64)> =
            std::collections::HashMap::new();
        // Versions that took a field from the stored one (keep_first_opened).
        let mut merged: Vec<Record> = Vec::new();
        let mut planned_history: std::collections::HashSet<Vec<u8>> = Default::default();
        let mut seq = 0u32;
        for (i, record) in records.iter().enumerate() {
            let key = keys::record_key(record.kind(), record.source(), record.id());
            let source_history = stamped.get(&key).copied();
            if let Some(h) = source_history {
                plan.outcome.history_entries +=
                    self.plan_source_history(&key, h, &mut planned_history, &mut plan.history)?;
            }
            // A repeat within the batch compares with its planned version; a
            // merged one is copied (rare: the same identity twice in a batch).
            let previous: Option<(std::borrow::Cow<'_, Record>, i64, bool)> =
                match in_batch.get(&key) {
                    Some(&(Planned::Input(j), first_seen)) => {
                        Some((std::borrow::Cow::Borrowed(&records[j]), first_seen, false))
                    }
                    Some(&(Planned::Merged(j), first_seen)) => Some((
                        std::borrow::Cow::Owned(merged[j].clone()),
                        first_seen,
                        false,
                    )),
                    None if self.never_stored(&key, record)? => None,
                    None => match self.records.get(&key)? {
                        Some(bytes) => {
                            let stored = codec::decode_record(&bytes)?;
                            Some((
                                std::borrow::Cow::Owned(stored.record),
                                stored.first_seen_us,
                                stored.gone_at_us.is_some(),
                            ))
                        }
                        None => None,
                    },
                };
            // The stored opening (and fingerprint) win over the page's.
            let mut source = Planned::Input(i);
            if opts.keep_first_opened {
                if let (Record::Finding(f), Some((prev, _, _))) = (record, &previous) {
                    let Record::Finding(old) = prev.as_ref() else {
                        unreachable!("an identity's kind is part of its key")
                    };
                    let earlier = old.opened_at < f.opened_at;
                    let fingerprint = f.fingerprint.is_none() && old.fingerprint.is_some();
                    if earlier || fingerprint {
                        let mut f = f.clone();
                        f.opened_at = f.opened_at.min(old.opened_at);
                        if fingerprint {
                            f.fingerprint = old.fingerprint.clone();
                        }
                        merged.push(Record::Finding(f));
                        source = Planned::Merged(merged.len() - 1);
                    }
                }
            }
            let record: &Record = match source {
                Planned::Input(j) => &records[j],
                Planned::Merged(j) => &merged[j],
            };
            let counts = plan.outcome.by_kind.entry(record.kind()).or_default();
            let first_seen_us = match previous {
                Some((prev, _, false)) if prev.as_ref() == record => {
                    counts.unchanged += 1;
                    continue;
                }
                Some((prev, first_seen, _)) => {
                    counts.replaced += 1;
                    for (field, old, new) in tracked_changes(&prev, record) {
                        if source_history
                            .is_some_and(|h| h.fields.iter().any(|f| f.as_str() == field))
                        {
                            // The source's own history covers it.
                            continue;
                        }
                        seq += 1;
                        let entry = HistoryEntry {
                            field: field.to_string(),
                            old: old.to_string(),
                            new: new.to_string(),
                            observed_at_us: now_us,
                        };
                        plan.history.push((
                            keys::history_key(&key, batch_id, seq),
                            codec::encode(&entry),
                        ));
                        plan.outcome.history_entries += 1;
                    }
                    first_seen
                }
                None => {
                    counts.new += 1;
                    now_us
                }
            };
            let value = codec::encode_record_ref(&codec::StoredRecordRef {
                record,
                first_seen_us,
                last_changed_us: now_us,
                gone_at_us: None,
            });
            self.note_written(&key, record);
            in_batch.insert(key.clone(), (source, first_seen_us));
            plan.records.push((key, value));
        }
        Ok(plan)
    }

    /// True when `key` is known never to have been stored (see
    /// [`Store::fresh`]); false when it may have been.
    fn never_stored(&self, key: &[u8], record: &Record) -> Result<bool> {
        let prefix = keys::record_key(record.kind(), record.source(), "");
        let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
        let entry = match fresh.get(&prefix) {
            Some(e) => e,
            None => {
                let empty = self.records.scan_prefix(&prefix).keys().next().is_none();
                fresh
                    .entry(prefix.clone())
                    .or_insert(empty.then(FreshKeys::default))
            }
        };
        Ok(entry
            .as_ref()
            .is_some_and(|keys| !keys.0.contains(&key_hash(key))))
    }

    /// Remember a key written under a fresh prefix.
    fn note_written(&self, key: &[u8], record: &Record) {
        let prefix = keys::record_key(record.kind(), record.source(), "");
        let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = fresh.get_mut(&prefix) {
            if let Some(keys) = slot {
                keys.0.insert(key_hash(key));
                if keys.0.len() > FRESH_KEYS_MAX {
                    *slot = None;
                }
            }
        }
    }

    /// The history entries a source stamped itself that are not stored yet
    /// (keyed by the change, so a change sent again is written once).
    fn plan_source_history(
        &self,
        record_key: &[u8],
        h: &SourceHistory,
        planned: &mut std::collections::HashSet<Vec<u8>>,
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<u64> {
        let mut written = 0;
        let mut seen: std::collections::HashMap<(i64, &'static str), u32> = Default::default();
        for c in &h.changes {
            let at = c.at.timestamp_micros();
            let n = seen.entry((at, c.field.as_str())).or_default();
            *n += 1;
            let ordinal = match c.field {
                Tracked::Status => 1u32,
                Tracked::Severity => 2,
                Tracked::Validity => 3,
                Tracked::Tier => 4,
            };
            let hkey = keys::source_history_key(record_key, at, (ordinal << 16) | *n);
            if planned.contains(&hkey) || self.history.get(&hkey)?.is_some() {
                continue;
            }
            let entry = HistoryEntry {
                field: c.field.as_str().to_string(),
                old: c.old.clone(),
                new: c.new.clone(),
                observed_at_us: at,
            };
            planned.insert(hkey.clone());
            out.push((hkey, codec::encode(&entry)));
            written += 1;
        }
        Ok(written)
    }

    /// The stored version of one record (gone or not).
    pub fn get(&self, identity: &Identity) -> Result<Option<StoredRecord>> {
        let key = keys::record_key(identity.kind, &identity.source, &identity.id);
        self.records
            .get(key)?
            .map(|b| codec::decode_record(&b))
            .transpose()
    }

    /// The change history of one record, oldest first.
    pub fn history(&self, identity: &Identity) -> Result<Vec<HistoryEntry>> {
        let key = keys::record_key(identity.kind, &identity.source, &identity.id);
        let mut entries = self
            .history
            .scan_prefix(keys::history_prefix(&key))
            .values()
            .map(|v| codec::decode("history", &v?))
            .collect::<Result<Vec<HistoryEntry>>>()?;
        // Source-stamped entries are keyed by their own time, after the
        // observed ones: order all by time (stable for equal times).
        entries.sort_by_key(|e| e.observed_at_us);
        Ok(entries)
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
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        let mut marked = 0;
        // Only this source's keys: one prefix per kind.
        for &kind in Kind::ALL {
            for item in self.records.scan_prefix(keys::record_key(kind, source, "")) {
                let (key, value) = item?;
                let mut stored = codec::decode_record(&value)?;
                if stored.gone_at_us.is_some() || seen.contains(&stored.record.identity()) {
                    continue;
                }
                stored.gone_at_us = Some(at.timestamp_micros());
                batch.insert(key, codec::encode_record(&stored));
                marked += 1;
            }
        }
        self.records.apply_batch(batch)?;
        self.db.flush()?;
        Ok(marked)
    }

    /// The (kind, source) pairs that have records (gone ones included),
    /// sorted; reads keys only.
    pub fn record_groups(&self) -> Result<std::collections::BTreeSet<(Kind, String)>> {
        let mut out = std::collections::BTreeSet::new();
        for key in self.records.iter().keys() {
            if let Some((kind, source, _)) = keys::parse_record_key(&key?) {
                out.insert((kind, source));
            }
        }
        Ok(out)
    }

    /// The records of one kind and source, by id in byte order, one at a
    /// time (gone ones included: see [`StoredRecord::gone_at_us`]).
    pub fn records_of(
        &self,
        kind: Kind,
        source: &str,
    ) -> impl Iterator<Item = Result<StoredRecord>> + '_ {
        self.records
            .scan_prefix(keys::record_key(kind, source, ""))
            .values()
            .map(|v| codec::decode_record(&v?))
    }

    /// Every current (not gone) record and the severity history, as the KPI
    /// engine reads them: `extra` is skipped (no KPI reads it), and the
    /// store is read on one thread while the records are decoded on another.
    pub fn load_estate(&self) -> Result<Estate> {
        self.load(false)
    }

    /// [`Store::load_estate`] with every record's `extra` (for showing
    /// records, not for KPIs).
    pub fn load_estate_full(&self) -> Result<Estate> {
        self.load(true)
    }

    fn load(&self, extra: bool) -> Result<Estate> {
        const CHUNK: usize = 4096;
        let mut estate = Estate::default();
        let decode = |estate: &mut Estate, chunk: Vec<sled::IVec>| -> Result<()> {
            for value in chunk {
                let stored = codec::decode_record(&value)?;
                if stored.gone_at_us.is_none() {
                    estate.push(stored.record);
                }
            }
            Ok(())
        };
        std::thread::scope(|scope| -> Result<()> {
            // A few chunks in flight: the reader stays ahead, memory does not.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<sled::IVec>>(4);
            let reader = scope.spawn(move || -> Result<()> {
                let mut chunk = Vec::with_capacity(CHUNK);
                for value in self.records.iter().values() {
                    chunk.push(value?);
                    if chunk.len() == CHUNK
                        && tx
                            .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                            .is_err()
                    {
                        return Ok(());
                    }
                }
                let _ = tx.send(chunk);
                Ok(())
            });
            let decoded = if extra {
                rx.iter().try_for_each(|c| decode(&mut estate, c))
            } else {
                secmetrics_connectors::record::without_extra(|| {
                    rx.iter().try_for_each(|c| decode(&mut estate, c))
                })
            };
            // Dropping the receiver stops a reader still sending (after a
            // decoding error) before it is waited for.
            drop(rx);
            let read = reader.join().map_err(|_| StoreError::Corrupt {
                tree: "records",
                message: "the reading thread panicked".into(),
            })?;
            decoded.and(read)
        })?;
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
            let stored = codec::decode_record(&value)?;
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

/// Write a source's own history of one record; returns the entries new to
/// the store. Keys are derived from the change (its time, field and place
/// among equal ones), so a change sent again lands on its own key.
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

#[cfg(test)]
mod write_and_load_tests {
    use super::*;

    #[test]
    fn connector_state_is_written_with_the_cursor_and_a_reset_clears_only_its_connector() {
        let dir = tempfile::tempdir().unwrap();
        let at: Time = "2026-03-01T00:00:00Z".parse().unwrap();
        let set = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        {
            let store = Store::open(dir.path()).unwrap();
            let change = StateChange {
                reset: false,
                writes: vec![
                    set("w\u{1f}a", "1"),
                    set("w\u{1f}b", "2"),
                    set("x\u{1f}a", "3"),
                ],
            };
            let f = finding("F-1", "2026-02-01T00:00:00Z", "");
            store
                .commit_page_with_state("sast", &[f], Some("c1"), &change, at, Default::default())
                .unwrap();
            let other = StateChange {
                reset: false,
                writes: vec![set("w\u{1f}a", "other")],
            };
            store
                .commit_page_with_state("sast2", &[], Some("o"), &other, at, Default::default())
                .unwrap();
        }
        // Reopened: the page, the cursor and the state are there together.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.cursor("sast").unwrap().unwrap().cursor.as_deref(),
            Some("c1")
        );
        assert_eq!(store.status().unwrap().records.values().sum::<u64>(), 1);
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            store.connector_state("sast", "w\u{1f}").unwrap(),
            pairs(&[("w\u{1f}a", "1"), ("w\u{1f}b", "2")])
        );
        assert_eq!(store.connector_state("sast", "").unwrap().len(), 3);
        // A delete, then a reset: only this connector's keys go.
        let change = StateChange {
            reset: false,
            writes: vec![("w\u{1f}b".into(), None)],
        };
        store
            .commit_page_with_state("sast", &[], Some("c2"), &change, at, Default::default())
            .unwrap();
        assert_eq!(
            store.connector_state("sast", "w").unwrap(),
            pairs(&[("w\u{1f}a", "1")])
        );
        let change = StateChange {
            reset: true,
            writes: vec![set("y", "4")],
        };
        store
            .commit_page_with_state("sast", &[], Some("c3"), &change, at, Default::default())
            .unwrap();
        assert_eq!(
            store.connector_state("sast", "").unwrap(),
            pairs(&[("y", "4")])
        );
        assert_eq!(
            store.connector_state("sast2", "").unwrap(),
            pairs(&[("w\u{1f}a", "other")])
        );
        assert_eq!(
            store.cursor("sast").unwrap().unwrap().cursor.as_deref(),
            Some("c3")
        );
    }

    fn finding(id: &str, opened: &str, extra: &str) -> Record {
        secmetrics_connectors::ndjson::parse_line(
            &format!(
                r#"{{"kind":"finding","id":"{id}","asset":"a","severity":"high","opened_at":"{opened}","status":"open"{extra}}}"#
            ),
            "sarif",
        )
        .unwrap()
    }

    #[test]
    fn the_kpi_load_skips_extra_and_the_full_load_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let records: Vec<Record> = (0..10_000)
            .map(|i| {
                finding(
                    &format!("f{i:05}"),
                    "2026-01-01T00:00:00Z",
                    r#","tool":"x""#,
                )
            })
            .collect();
        store.upsert_batch(&records, chrono::Utc::now()).unwrap();
        let lean = store.load_estate().unwrap();
        let full = store.load_estate_full().unwrap();
        assert_eq!((lean.findings.len(), full.findings.len()), (10_000, 10_000));
        assert!(lean.findings.iter().all(|f| f.extra.is_empty()));
        assert!(full.findings.iter().all(|f| f.extra.0["tool"] == "x"));
        // In key order, whole.
        assert_eq!(lean.findings[9_999].id, "f09999");
    }

    #[test]
    fn keep_first_opened_keeps_the_stored_opening_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = finding("f", "2026-01-01T00:00:00Z", r#","fingerprint":"fp""#);
        store.upsert_batch(&[first], chrono::Utc::now()).unwrap();
        let later = finding("f", "2026-03-01T00:00:00Z", "");
        let opts = WriteOptions {
            keep_first_opened: true,
        };
        // Twice in one batch: the repeat compares with the merged version.
        let o = store
            .upsert_batch_with(&[later.clone(), later], chrono::Utc::now(), opts)
            .unwrap();
        assert_eq!(o.total().unchanged, 2);
        let Some(Record::Finding(f)) = store
            .get(&Identity {
                kind: Kind::Finding,
                source: "sarif".into(),
                id: "f".into(),
            })
            .unwrap()
            .map(|s| s.record)
        else {
            panic!()
        };
        assert_eq!(f.opened_at.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(f.fingerprint.as_deref(), Some("fp"));
    }
}
