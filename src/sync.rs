//! The sync runtime: runs one connector's pass against the store. Each page
//! the connector hands over is written together with its cursor in one
//! atomic store write ([`Store::commit_page`]), so a failed or interrupted
//! pass resumes after the last committed page. A full pass starts from no
//! cursor, reads everything, and marks the records of this connector that it
//! no longer returned as gone, with the time, instead of deleting them;
//! a full pass that skipped items it could not read marks nothing gone.

use crate::store::{CursorState, Store, StoreError};
use secmetrics_connectors::{
    Committed, Connector, Identity, Kind, Page, PageSink, Record, SinkError, SourceHistory,
    SyncMode, SyncOutcome,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Called after each committed page with (pages, records) committed so far.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

/// A [`PageSink`] over the store for one connector.
pub struct StoreSink<'a> {
    store: &'a Store,
    connector: String,
    /// Identities committed in this pass (full passes only).
    seen: Option<HashSet<Identity>>,
    cancel: Arc<AtomicBool>,
    progress: Option<Progress<'a>>,
    pages: u64,
    records: u64,
    /// Findings already stored keep the earlier `opened_at`.
    keep_first_opened: bool,
}

impl<'a> StoreSink<'a> {
    /// A sink writing `connector`'s pages into `store`; `track_seen` keeps
    /// the identities committed (for marking the rest gone after a full pass).
    pub fn new(
        store: &'a Store,
        connector: &str,
        track_seen: bool,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        StoreSink {
            store,
            connector: connector.to_string(),
            seen: track_seen.then(HashSet::new),
            cancel,
            progress: None,
            pages: 0,
            records: 0,
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
}

impl PageSink for StoreSink<'_> {
    fn commit(&mut self, page: Page) -> Result<Committed, SinkError> {
        self.write(page, &[])
    }

    fn commit_with_history(
        &mut self,
        page: Page,
        history: Vec<SourceHistory>,
    ) -> Result<Committed, SinkError> {
        self.write(page, &history)
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

impl StoreSink<'_> {
    fn write(&mut self, mut page: Page, history: &[SourceHistory]) -> Result<Committed, SinkError> {
        if self.keep_first_opened {
            for r in &mut page.records {
                if let Record::Finding(f) = r {
                    let identity = Identity {
                        kind: Kind::Finding,
                        source: f.source.clone(),
                        id: f.id.clone(),
                    };
                    let stored = self
                        .store
                        .get(&identity)
                        .map_err(|e| SinkError(e.to_string()))?;
                    if let Some(Record::Finding(old)) = stored.map(|s| s.record) {
                        f.opened_at = f.opened_at.min(old.opened_at);
                    }
                }
            }
        }
        let outcome = self
            .store
            .commit_page_with_history(
                &self.connector,
                &page.records,
                history,
                page.cursor.as_deref(),
                chrono::Utc::now(),
            )
            .map_err(|e| SinkError(e.to_string()))?;
        if let Some(seen) = &mut self.seen {
            seen.extend(page.records.iter().map(|r| r.identity()));
        }
        self.pages += 1;
        self.records += page.records.len() as u64;
        if let Some(p) = self.progress.as_mut() {
            p(self.pages, self.records);
        }
        let t = outcome.total();
        Ok(Committed {
            inserted: t.new,
            replaced: t.replaced,
            unchanged: t.unchanged,
        })
    }
}

/// What one connector's pass did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Connector name.
    pub name: String,
    /// Connector kind.
    pub kind: &'static str,
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
}

/// Run one pass of `connector` against `store`. The outcome (success time or
/// error text) is recorded with the connector's cursor.
pub async fn sync_one(
    store: &Store,
    connector: &dyn Connector,
    mode: SyncMode,
    cancel: Arc<AtomicBool>,
) -> Result<SyncReport, SyncError> {
    sync_one_observed(store, connector, mode, cancel, None).await
}

/// [`sync_one`], reporting (pages, records) committed after each page.
pub async fn sync_one_observed<'a>(
    store: &'a Store,
    connector: &dyn Connector,
    mode: SyncMode,
    cancel: Arc<AtomicBool>,
    progress: Option<Progress<'a>>,
) -> Result<SyncReport, SyncError> {
    let name = connector.name().to_string();
    let started = chrono::Utc::now();
    // A full pass re-reads everything from the start: only then are the
    // identities it commits the whole of what the source returns.
    let cursor = match mode {
        SyncMode::Full => None,
        SyncMode::Incremental => store.cursor(&name)?.and_then(|c| c.cursor),
    };
    // SARIF files come and go: a finding's first detection is the earliest
    // `opened_at` stored, not the oldest file still on disk.
    let mut sink = StoreSink::new(store, &name, mode == SyncMode::Full, cancel)
        .with_progress(progress)
        .keep_first_opened(connector.kind() == "sarif");
    let result = connector.sync(cursor, mode, &mut sink).await;
    let mut state: CursorState = store.cursor(&name)?.unwrap_or_default();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            state.last_error = Some(e.to_string());
            store.put_cursor(&name, &state)?;
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
            gone = store.mark_gone_except(&name, &seen, started)?;
        }
    }
    if !outcome.interrupted {
        state.last_success_us = Some(chrono::Utc::now().timestamp_micros());
        state.last_error = None;
        store.put_cursor(&name, &state)?;
    }
    tracing::info!(
        connector = %name, kind = connector.kind(), pages = outcome.pages,
        requests = outcome.requests, new = outcome.committed.inserted,
        replaced = outcome.committed.replaced, unchanged = outcome.committed.unchanged,
        skipped = outcome.skipped, gone, interrupted = outcome.interrupted, "sync pass done"
    );
    Ok(SyncReport {
        name,
        kind: connector.kind(),
        http: connector.http_stats(),
        outcome,
        gone,
    })
}
