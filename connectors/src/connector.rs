//! The `Connector` trait every source implements, and the page sink through
//! which a connector hands records over (the store implements the sink, so
//! this crate never touches it).

use crate::record::Record;

/// How much a sync pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// What changed since the stored cursor.
    Incremental,
    /// Everything; records the source no longer returns are marked gone.
    Full,
}

/// One page of converted records and the cursor that follows it. The sink
/// writes both in one atomic step, so a crash resumes after the last page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Converted records.
    pub records: Vec<Record>,
    /// Opaque cursor to resume after this page (`None` keeps the previous one).
    pub cursor: Option<String>,
}

/// What the sink did with one page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// Records new to the store.
    pub inserted: u64,
    /// Records that replaced a different earlier version.
    pub replaced: u64,
    /// Records equal to what was stored (nothing written).
    pub unchanged: u64,
}

impl std::ops::AddAssign for Committed {
    fn add_assign(&mut self, o: Committed) {
        self.inserted += o.inserted;
        self.replaced += o.replaced;
        self.unchanged += o.unchanged;
    }
}

/// Where a connector sends its pages.
pub trait PageSink: Send {
    /// Write a page and its cursor atomically and durably.
    fn commit(&mut self, page: Page) -> Result<Committed, SinkError>;

    /// True when the pass should stop (e.g. on SIGTERM). Connectors check it
    /// between pages: the page in flight is finished and committed, then the
    /// pass returns with [`SyncOutcome::interrupted`] set, and the next pass
    /// resumes from the committed cursor.
    fn cancelled(&self) -> bool {
        false
    }

    /// Write a page together with history the source recorded itself (e.g.
    /// Jira's changelog), stamped with the source's times. For each
    /// [`SourceHistory`] the sink writes its changes (idempotently: the same
    /// change sent again is stored once) and no observed-diff entries for
    /// its `fields`. Sinks without history keep only the page.
    fn commit_with_history(
        &mut self,
        page: Page,
        history: Vec<SourceHistory>,
    ) -> Result<Committed, SinkError> {
        let _ = history;
        self.commit(page)
    }
}

/// The history of one record's tracked fields as its source recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceHistory {
    /// The record the changes belong to (committed in the same page).
    pub identity: crate::record::Identity,
    /// Fields whose history comes from the source alone: the sink writes
    /// no entries of its own for changes it observes in them.
    pub fields: Vec<crate::record::Tracked>,
    /// The changes, in any order.
    pub changes: Vec<SourceChange>,
}

/// One change of a tracked field, at the time the source recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceChange {
    /// The field.
    pub field: crate::record::Tracked,
    /// Value before, as `records.md` spells it.
    pub old: String,
    /// Value after.
    pub new: String,
    /// When the source says it happened.
    pub at: crate::record::Time,
}

/// The sink could not write a page; the sync stops and resumes later.
#[derive(Debug, thiserror::Error)]
#[error("could not commit a page: {0}")]
pub struct SinkError(pub String);

/// The outcome of one finished sync pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncOutcome {
    /// Pages committed.
    pub pages: u64,
    /// Requests or files read.
    pub requests: u64,
    /// Records by what the store did with them.
    pub committed: Committed,
    /// Items the source returned that could not be converted (each logged),
    /// and files left out on purpose (e.g. SARIF files no asset maps).
    pub skipped: u64,
    /// Of `skipped`, the items that could not be read at all: the source
    /// still returns them but their identities are unknown, so a full pass
    /// with any marks nothing gone.
    pub unreadable: u64,
    /// The pass stopped early because the sink asked it to.
    pub interrupted: bool,
}

/// A source of normalized records.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// The configured instance name (also the `source` of its records).
    fn name(&self) -> &str;

    /// The configured kind, e.g. `github_secret_scanning`.
    fn kind(&self) -> &'static str;

    /// Counters of the connector's HTTP client (requests, retries,
    /// rate-limit waits), for metrics; `None` for connectors without one.
    fn http_stats(&self) -> Option<crate::http::HttpStatsSnapshot> {
        None
    }

    /// One sync pass from `cursor` (none: from the beginning), committing page
    /// by page into `sink`.
    async fn sync(
        &self,
        cursor: Option<String>,
        mode: SyncMode,
        sink: &mut dyn PageSink,
    ) -> Result<SyncOutcome, crate::Error>;
}
