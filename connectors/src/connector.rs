//! The `Connector` trait every source implements, and the page sink through
//! which a connector hands records over (the store implements the sink, so
//! this crate never touches it).

use crate::record::Record;
use std::future::Future;
use std::sync::Arc;

/// A stop signal shared by whoever may end a pass early (Ctrl-C, SIGTERM,
/// a pass's time bound) and the pass itself. Connectors see it two ways:
/// [`PageSink::cancelled`] between pages, and — inside [`with_cancel`] —
/// the shared HTTP client, which cuts a request in flight or a backoff or
/// rate-limit wait at once when it fires.
#[derive(Debug, Clone)]
pub struct Cancel(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Cancel {
    /// A signal that has not fired.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Fire the signal (idempotent).
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// True once the signal has fired.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the signal fires (at once if it has).
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

/// Run blocking work (reading a file, committing a page to a sink that
/// writes to disk) from a connector's async pass without stalling the
/// runtime: on a multi-thread runtime the worker first hands its other
/// tasks to another thread; elsewhere the work simply runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

tokio::task_local! {
    static PASS_CANCEL: Cancel;
}

/// Run `pass` (a connector's sync) under `cancel`: every request the
/// shared HTTP client makes inside it ends with
/// [`crate::http::HttpError::Cancelled`] as soon as `cancel` fires, instead
/// of finishing its wait or its attempts. Pages committed stay committed.
pub async fn with_cancel<F: Future>(cancel: Cancel, pass: F) -> F::Output {
    PASS_CANCEL.scope(cancel, pass).await
}

/// The signal of the pass this task runs, if it runs under [`with_cancel`].
pub(crate) fn current_cancel() -> Option<Cancel> {
    PASS_CANCEL.try_with(Cancel::clone).ok()
}

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

    /// Write a page, its cursor and a change of the connector's own state
    /// (keys it keeps beside its cursor, see [`StateChange`]) in one atomic,
    /// durable write. Sinks that keep no state refuse it.
    fn commit_with_state(
        &mut self,
        page: Page,
        state: StateChange,
    ) -> Result<Committed, SinkError> {
        let _ = (page, state);
        Err(SinkError(NO_STATE.into()))
    }

    /// The connector's state entries whose key starts with `prefix`, in key
    /// order, as committed. Sinks that keep no state refuse it.
    fn state(&self, prefix: &str) -> Result<Vec<(String, String)>, SinkError> {
        let _ = prefix;
        Err(SinkError(NO_STATE.into()))
    }
}

const NO_STATE: &str = "this sink keeps no connector state";

/// A change of a connector's own state: values it keeps under keys of its
/// own beside its cursor (the SARIF connector's last scan of each asset,
/// tool and category), so that a page rewrites only the keys it changes
/// instead of one cursor holding everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateChange {
    /// Delete every key of the connector's state before the writes (the
    /// first commit of a full pass, which rebuilds the state).
    pub reset: bool,
    /// Keys to set (`Some`) or delete (`None`), applied in order.
    pub writes: Vec<(String, Option<String>)>,
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
    /// The first [`MAX_PROBLEMS`] unreadable items, each naming where it is
    /// (file and line or position, or endpoint and item) and why.
    pub problems: Vec<String>,
}

/// How many unreadable items a pass names (the count is always whole).
pub const MAX_PROBLEMS: usize = 20;

impl SyncOutcome {
    /// Count an item the source returned that could not be read, and name
    /// it. The pass then reports `partial`, and connectors keep the
    /// validators (ETags, watermarks, file stamps) that would hide the item
    /// from the next pass.
    pub fn unreadable_item(&mut self, what: impl Into<String>) {
        self.skipped += 1;
        self.unreadable += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(what.into());
        }
    }

    /// Count `count` unreadable items, naming those of `problems` there is
    /// room for.
    pub fn unreadable_items(&mut self, count: u64, problems: impl IntoIterator<Item = String>) {
        self.skipped += count;
        self.unreadable += count;
        let room = MAX_PROBLEMS.saturating_sub(self.problems.len());
        self.problems.extend(problems.into_iter().take(room));
    }

    /// True when the pass skipped items it could not read.
    pub fn is_partial(&self) -> bool {
        self.unreadable > 0
    }
}

/// A source of normalized records.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// The configured instance name (also the `source` of its records).
    fn name(&self) -> &str;

    /// The configured kind, e.g. `github_secret_scanning`.
    fn kind(&self) -> &'static str;

    /// True for sources whose findings' `opened_at` is only the oldest scan
    /// still at hand (SARIF files come and go): the store then keeps the
    /// earliest `opened_at` it holds for a finding, and the `fingerprint`
    /// it holds when the page's record has none.
    fn keeps_first_opened(&self) -> bool {
        false
    }

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
