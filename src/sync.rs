//! The sync runtime: runs connectors' passes against the store. Each page
//! a connector hands over is written together with its cursor in one
//! atomic store write ([`Store::commit_page`]), so a failed or interrupted
//! pass resumes after the last committed page. A full pass starts from no
//! cursor, reads everything, and marks the records of this connector that it
//! no longer returned as gone, with the time, instead of deleting them;
//! a full pass that skipped items it could not read marks nothing gone.
//!
//! This is the one sync loop: `secmetrics sync`, the daemon's schedules and
//! its resync requests all run [`run_passes`]. A pass ends in one of four
//! states ([`PassState`]), kept in the store so `status` and `/metrics`
//! show it after a restart: `ok`, `partial` (items it could not read were
//! skipped and named), `interrupted` (Ctrl-C or SIGTERM: the request in
//! flight is cut at once, committed pages stay) or `failed` (including a
//! pass that ran past its time bound, `[sync] max_pass_secs`).

use crate::store::{CursorState, Store, StoreError};
pub use secmetrics_connectors::connector::blocking;
use secmetrics_connectors::{
    with_cancel, Cancel, Committed, Connector, Identity, Page, PageSink, SinkError, SourceHistory,
    StateChange, SyncMode, SyncOutcome,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

/// Called after each committed page with (pages, records) committed so far.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

/// A [`PageSink`] over the store for one connector.
pub struct StoreSink<'a> {
    store: &'a Store,
    connector: String,
    /// Identities committed in this pass (full passes only).
    seen: Option<HashSet<Identity>>,
    cancel: Cancel,
    progress: Option<Progress<'a>>,
    pages: u64,
    records: u64,
    committed: Committed,
    /// The one page committed after the pass was stopped.
    stopped_page_written: bool,
    /// Findings already stored keep the earlier `opened_at`.
    keep_first_opened: bool,
}

/// What [`StoreSink`] answers a page offered once the pass was stopped
/// (Ctrl-C, SIGTERM, the time bound) and the page in flight was written:
/// the first page after the signal is finished, the next one is refused,
/// whether or not the connector checks [`PageSink::cancelled`] between
/// pages.
pub const STOPPED: &str = "the pass was stopped; the page was not written";

impl<'a> StoreSink<'a> {
    /// A sink writing `connector`'s pages into `store`; `track_seen` keeps
    /// the identities committed (for marking the rest gone after a full pass).
    pub fn new(store: &'a Store, connector: &str, track_seen: bool, cancel: Cancel) -> Self {
        StoreSink {
            store,
            connector: connector.to_string(),
            seen: track_seen.then(HashSet::new),
            cancel,
            progress: None,
            pages: 0,
            records: 0,
            committed: Committed::default(),
            stopped_page_written: false,
            keep_first_opened: false,
        }
    }

    /// Keep the stored `opened_at` of findings when it is earlier than the
    /// page's: for sources (SARIF files) whose opening time is only the
    /// first scan they happen to still have.
    pub fn keep_first_opened(mut self, keep: bool) -> Self {
        self.keep_first_opened = keep;
        self
    }

    /// Report progress to `progress` after each committed page.
    pub fn with_progress(mut self, progress: Option<Progress<'a>>) -> Self {
        self.progress = progress;
        self
    }

    fn write(
        &self,
        page: &Page,
        history: &[SourceHistory],
        state: Option<&StateChange>,
    ) -> Result<crate::store::BatchOutcome, StoreError> {
        let opts = crate::store::WriteOptions {
            keep_first_opened: self.keep_first_opened,
        };
        match state {
            Some(state) => self.store.commit_page_with_state(
                &self.connector,
                &page.records,
                page.cursor.as_deref(),
                state,
                chrono::Utc::now(),
                opts,
            ),
            None => self.store.commit_page_with_history(
                &self.connector,
                &page.records,
                history,
                page.cursor.as_deref(),
                chrono::Utc::now(),
                opts,
            ),
        }
    }

    fn commit_page(
        &mut self,
        page: Page,
        history: &[SourceHistory],
        state: Option<&StateChange>,
    ) -> Result<Committed, SinkError> {
        if self.cancel.is_cancelled() {
            // The page in flight when the stop came is written (a connector
            // that stops commits what it fetched); any page after it is not.
            if self.stopped_page_written {
                return Err(SinkError(STOPPED.into()));
            }
            self.stopped_page_written = true;
        }
        let outcome =
            blocking(|| self.write(&page, history, state)).map_err(|e| SinkError(e.to_string()))?;
        if let Some(seen) = &mut self.seen {
            seen.extend(page.records.iter().map(|r| r.identity()));
        }
        self.pages += 1;
        self.records += page.records.len() as u64;
        if let Some(p) = self.progress.as_mut() {
            p(self.pages, self.records);
        }
        let t = outcome.total();
        let committed = Committed {
            inserted: t.new,
            replaced: t.replaced,
            unchanged: t.unchanged,
        };
        self.committed += committed;
        Ok(committed)
    }
}

impl PageSink for StoreSink<'_> {
    fn commit(&mut self, page: Page) -> Result<Committed, SinkError> {
        self.commit_page(page, &[], None)
    }

    fn commit_with_history(
        &mut self,
        page: Page,
        history: Vec<SourceHistory>,
    ) -> Result<Committed, SinkError> {
        self.commit_page(page, &history, None)
    }

    fn commit_with_state(
        &mut self,
        page: Page,
        state: StateChange,
    ) -> Result<Committed, SinkError> {
        self.commit_page(page, &[], Some(&state))
    }

    fn state(&self, prefix: &str) -> Result<Vec<(String, String)>, SinkError> {
        blocking(|| self.store.connector_state(&self.connector, prefix))
            .map_err(|e| SinkError(e.to_string()))
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassState {
    /// Everything the source returned was read and committed.
    Ok,
    /// Items the source returned could not be read; they were skipped,
    /// counted and named, and the validators that would hide them from the
    /// next pass were not saved.
    Partial,
    /// Stopped by Ctrl-C or SIGTERM; committed pages stay, the next pass
    /// resumes.
    Interrupted,
    /// The source, the store or the pass's time bound failed it.
    Failed,
}

impl PassState {
    /// Every state, for metrics.
    pub const ALL: [PassState; 4] = [
        PassState::Ok,
        PassState::Partial,
        PassState::Interrupted,
        PassState::Failed,
    ];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PassState::Ok => "ok",
            PassState::Partial => "partial",
            PassState::Interrupted => "interrupted",
            PassState::Failed => "failed",
        }
    }
}

/// A connector's last pass, kept in the store (JSON, so it reads across
/// versions) and shown by `status` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastPass {
    /// How it ended.
    pub state: PassState,
    /// When it ended (RFC 3339).
    pub at: String,
    /// Items it could not read.
    #[serde(default)]
    pub unreadable: u64,
    /// The first of them, named.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Pages committed.
    #[serde(default)]
    pub pages: u64,
    /// Records new to the store.
    #[serde(default)]
    pub new: u64,
    /// Records that replaced an earlier version.
    #[serde(default)]
    pub replaced: u64,
    /// Records equal to the stored version.
    #[serde(default)]
    pub unchanged: u64,
    /// Records marked gone (full passes).
    #[serde(default)]
    pub gone: u64,
}

/// The meta key prefix of each connector's last pass (`sync/last_pass/NAME`).
pub const LAST_PASS_PREFIX: &str = "sync/last_pass/";

impl LastPass {
    /// How a pass ended, now: its state and counts, or its error.
    pub fn of(result: &Result<SyncReport, SyncError>) -> LastPass {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match result {
            Ok(r) => LastPass {
                state: r.state,
                at,
                unreadable: r.outcome.unreadable,
                problems: r.outcome.problems.clone(),
                error: None,
                pages: r.outcome.pages,
                new: r.outcome.committed.inserted,
                replaced: r.outcome.committed.replaced,
                unchanged: r.outcome.committed.unchanged,
                gone: r.gone,
            },
            Err(e) => LastPass {
                state: PassState::Failed,
                at,
                unreadable: 0,
                problems: Vec::new(),
                error: Some(e.to_string()),
                pages: 0,
                new: 0,
                replaced: 0,
                unchanged: 0,
                gone: 0,
            },
        }
    }

    /// Keep `pass` as `connector`'s last pass.
    pub fn save(store: &Store, connector: &str, pass: &LastPass) -> Result<(), StoreError> {
        let json = serde_json::to_vec(pass).unwrap_or_default();
        store.put_meta(&format!("{LAST_PASS_PREFIX}{connector}"), &json)
    }

    /// Every connector's last pass, by name (unreadable entries are left
    /// out: they are bookkeeping, not records).
    pub fn load_all(store: &Store) -> Result<Vec<(String, LastPass)>, StoreError> {
        Ok(store
            .meta_with_prefix(LAST_PASS_PREFIX)?
            .into_iter()
            .filter_map(|(k, v)| {
                let pass = serde_json::from_slice(&v).ok()?;
                Some((k[LAST_PASS_PREFIX.len()..].to_string(), pass))
            })
            .collect())
    }
}

/// What one connector's pass did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// Connector name.
    pub name: String,
    /// Connector kind.
    pub kind: &'static str,
    /// How the pass ended.
    pub state: PassState,
    /// The connector's outcome (pages, requests, records).
    pub outcome: SyncOutcome,
    /// Records marked gone (full passes).
    pub gone: u64,
    /// Retries and rate-limit waits of its HTTP client, when it has one.
    pub http: Option<secmetrics_connectors::http::HttpStatsSnapshot>,
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The connector failed (the error names connector, method, path, status).
    #[error(transparent)]
    Connector(#[from] secmetrics_connectors::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pass ran past its time bound and was stopped.
    #[error(
        "{connector}: the pass ran past its time bound of {secs} s (`sync.max_pass_secs`) and \
         was stopped; committed pages stay and the next pass resumes from them"
    )]
    TimedOut {
        /// Connector instance.
        connector: String,
        /// The bound, in seconds.
        secs: u64,
    },
    /// The connector could not be built from its settings.
    #[error("connector {connector}: {message}")]
    Build {
        /// Connector instance.
        connector: String,
        /// What is wrong.
        message: String,
    },
}

/// Limits of a pass.
#[derive(Debug, Clone, Copy)]
pub struct PassLimits {
    /// Longest a pass may run before it is stopped and reported failed.
    pub max_pass: Duration,
}

impl Default for PassLimits {
    fn default() -> Self {
        PassLimits {
            max_pass: Duration::from_secs(crate::config::DEFAULT_MAX_PASS_SECS),
        }
    }
}

impl PassLimits {
    /// The limits of the `[sync]` configuration.
    pub fn of(config: &crate::config::Config) -> PassLimits {
        PassLimits {
            max_pass: Duration::from_secs(config.sync.max_pass_secs.max(1)),
        }
    }
}

/// Run one pass of `connector` against `store` (no time bound). The
/// outcome is recorded with the connector's cursor and as its last pass.
pub async fn sync_one(
    store: &Store,
    connector: &dyn Connector,
    mode: SyncMode,
    cancel: Cancel,
) -> Result<SyncReport, SyncError> {
    let limits = PassLimits {
        max_pass: Duration::from_secs(u64::MAX / 4),
    };
    sync_one_observed(store, connector, mode, cancel, limits, None).await
}

/// [`sync_one`] within `limits`, reporting (pages, records) committed after
/// each page.
pub async fn sync_one_observed<'a>(
    store: &'a Store,
    connector: &dyn Connector,
    mode: SyncMode,
    cancel: Cancel,
    limits: PassLimits,
    progress: Option<Progress<'a>>,
) -> Result<SyncReport, SyncError> {
    let name = connector.name().to_string();
    let result = pass(store, connector, mode, cancel, limits, progress).await;
    let last = LastPass::of(&result);
    blocking(|| LastPass::save(store, &name, &last))?;
    result
}

async fn pass<'a>(
    store: &'a Store,
    connector: &dyn Connector,
    mode: SyncMode,
    cancel: Cancel,
    limits: PassLimits,
    progress: Option<Progress<'a>>,
) -> Result<SyncReport, SyncError> {
    let name = connector.name().to_string();
    let started = chrono::Utc::now();
    // A full pass re-reads everything from the start: only then are the
    // identities it commits the whole of what the source returns.
    let cursor = match mode {
        SyncMode::Full => None,
        SyncMode::Incremental => blocking(|| store.cursor(&name))?.and_then(|c| c.cursor),
    };
    // The pass stops when the caller cancels or its time bound passes,
    // whichever comes first.
    let pass_cancel = Cancel::new();
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (outer, inner, timed_out) = (cancel.clone(), pass_cancel.clone(), timed_out.clone());
        let bound = limits.max_pass;
        tokio::spawn(async move {
            tokio::select! {
                _ = outer.cancelled() => {}
                _ = tokio::time::sleep(bound) => {
                    timed_out.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            inner.cancel();
        })
    };
    // SARIF files come and go: a finding's first detection is the earliest
    // `opened_at` stored, not the oldest file still on disk.
    let mut sink = StoreSink::new(store, &name, mode == SyncMode::Full, pass_cancel.clone())
        .with_progress(progress)
        .keep_first_opened(connector.keeps_first_opened());
    let result = with_cancel(pass_cancel.clone(), connector.sync(cursor, mode, &mut sink)).await;
    watcher.abort();
    let timed_out = timed_out.load(std::sync::atomic::Ordering::Relaxed);
    let mut state: CursorState = blocking(|| store.cursor(&name))?.unwrap_or_default();
    let outcome = match result {
        // A request cut by the time bound, or one that failed because of it.
        _ if timed_out => {
            let e = SyncError::TimedOut {
                connector: name.clone(),
                secs: limits.max_pass.as_secs(),
            };
            state.last_error = Some(e.to_string());
            blocking(|| store.put_cursor(&name, &state))?;
            tracing::warn!(connector = %name, error = %e, "sync stopped");
            return Err(e);
        }
        // Cancelled in a request of a connector that does not catch it, or
        // a page refused by the sink once stopped: the same as stopping
        // between pages. What was committed stays (and is counted).
        Err(secmetrics_connectors::Error::Http(
            secmetrics_connectors::http::HttpError::Cancelled { .. },
        )) => SyncOutcome {
            interrupted: true,
            pages: sink.pages,
            committed: sink.committed,
            ..SyncOutcome::default()
        },
        Err(secmetrics_connectors::Error::Sink(SinkError(m)))
            if m == STOPPED && pass_cancel.is_cancelled() =>
        {
            SyncOutcome {
                interrupted: true,
                pages: sink.pages,
                committed: sink.committed,
                ..SyncOutcome::default()
            }
        }
        Ok(o) => o,
        Err(e) => {
            state.last_error = Some(e.to_string());
            blocking(|| store.put_cursor(&name, &state))?;
            tracing::warn!(connector = %name, error = %e, "sync failed; the next pass resumes from the last committed page");
            return Err(e.into());
        }
    };
    let mut gone = 0;
    if mode == SyncMode::Full && !outcome.interrupted {
        if outcome.unreadable > 0 {
            // An unreadable item may be a record the source still returns:
            // its identity is unknown, so nothing is marked gone.
            tracing::warn!(
                connector = %name, unreadable = outcome.unreadable,
                "full pass skipped {} unreadable item(s); nothing marked gone",
                outcome.unreadable
            );
        } else if let Some(seen) = sink.seen.take() {
            gone = blocking(|| store.mark_gone_except(&name, &seen, started))?;
        }
    }
    let pass_state = if outcome.interrupted {
        PassState::Interrupted
    } else if outcome.is_partial() {
        PassState::Partial
    } else {
        PassState::Ok
    };
    if !outcome.interrupted {
        state.last_success_us = Some(chrono::Utc::now().timestamp_micros());
        state.last_error = None;
        blocking(|| store.put_cursor(&name, &state))?;
    }
    for p in &outcome.problems {
        tracing::warn!(connector = %name, problem = %p, "unreadable item skipped");
    }
    tracing::info!(
        connector = %name, kind = connector.kind(), state = pass_state.as_str(),
        pages = outcome.pages, requests = outcome.requests, new = outcome.committed.inserted,
        replaced = outcome.committed.replaced, unchanged = outcome.committed.unchanged,
        skipped = outcome.skipped, unreadable = outcome.unreadable, gone,
        "sync pass done"
    );
    Ok(SyncReport {
        name,
        kind: connector.kind(),
        state: pass_state,
        http: connector.http_stats(),
        outcome,
        gone,
    })
}

/// Sees the passes of [`run_passes`] as they go.
pub trait PassObserver: Send {
    /// A pass is about to start.
    fn started(&mut self, _connector: &str) {}
    /// Pages and records committed so far by the pass in flight.
    fn progress(&mut self, _connector: &str, _pages: u64, _records: u64) {}
    /// A pass ended (or its connector could not be built).
    fn finished(&mut self, connector: &str, result: &Result<SyncReport, SyncError>);
}

/// A connector built from its settings, by name, or why it could not be.
pub type Built = (String, Result<Box<dyn Connector>, String>);

/// What a run of several passes came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassesSummary {
    /// Passes that failed.
    pub failed: u64,
    /// Passes that skipped unreadable items.
    pub partial: u64,
    /// Passes stopped by cancellation (and connectors not started).
    pub interrupted: u64,
    /// Some pass changed records (new, replaced or gone).
    pub changed: bool,
}

/// Run one pass of each connector, one after another, until `cancel` fires.
/// `connectors` holds each connector built from its settings, or why it
/// could not be. This is the sync loop of the CLI and the daemon alike.
pub async fn run_passes(
    store: &Store,
    connectors: Vec<Built>,
    mode: SyncMode,
    cancel: Cancel,
    limits: PassLimits,
    observer: &mut dyn PassObserver,
) -> PassesSummary {
    let mut summary = PassesSummary::default();
    for (name, built) in connectors {
        if cancel.is_cancelled() {
            summary.interrupted += 1;
            continue;
        }
        observer.started(&name);
        let result = match built {
            Ok(c) => {
                let mut progress = |pages: u64, records: u64| {
                    observer.progress(&name, pages, records);
                };
                sync_one_observed(
                    store,
                    c.as_ref(),
                    mode,
                    cancel.clone(),
                    limits,
                    Some(&mut progress),
                )
                .await
            }
            Err(message) => Err(SyncError::Build {
                connector: name.clone(),
                message,
            }),
        };
        match &result {
            Ok(r) => {
                let c = r.outcome.committed;
                summary.changed |= c.inserted + c.replaced > 0 || r.gone > 0;
                match r.state {
                    PassState::Partial => summary.partial += 1,
                    PassState::Interrupted => summary.interrupted += 1,
                    PassState::Ok | PassState::Failed => {}
                }
            }
            Err(_) => summary.failed += 1,
        }
        observer.finished(&name, &result);
    }
    summary
}
