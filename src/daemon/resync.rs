//! Syncs run by the daemon (on schedule or on request): one connector pass
//! at a time, interrupted between pages on shutdown, with statistics and
//! resync-job progress kept for the admin API; the KPI pack is refreshed
//! after records changed.

use super::{JobStatus, Shared, SyncStats};
use crate::sync::sync_one_observed;
use chrono::Utc;
use secmetrics_connectors::SyncMode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The configured connector names, in configuration order.
pub fn connector_names(config: &crate::config::Config) -> Vec<String> {
    config
        .connectors
        .iter()
        .map(|c| c.name().to_string())
        .collect()
}

/// Run one pass of `connector` (or all). Progress goes to job `job` when
/// given. Returns the number of failed connectors.
pub async fn run(
    shared: &Arc<Shared>,
    connector: Option<&str>,
    full: bool,
    job: Option<u64>,
) -> u64 {
    let selected: Vec<_> = shared
        .config
        .connectors
        .iter()
        .filter(|c| connector.map_or(true, |n| c.name() == n))
        .cloned()
        .collect();
    let update = |f: &dyn Fn(&mut JobStatus)| {
        if let Some(id) = job {
            if let Some(j) = shared
                .jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&id)
            {
                f(j);
            }
        }
    };
    if selected.is_empty() {
        update(&|j| {
            j.state = "failed".into();
            j.messages.push(match connector {
                Some(n) => format!("no connector named {n:?}"),
                None => "no [[connectors]] configured".into(),
            });
        });
        return 1;
    }
    update(&|j| j.connectors_total = selected.len() as u64);
    let _one_at_a_time = shared.sync_lock.lock().await;
    // Stop between pages when shutdown begins.
    let cancel = Arc::new(AtomicBool::new(false));
    let watcher = {
        let cancel = cancel.clone();
        let mut stop = shared.stopping.clone();
        tokio::spawn(async move {
            if !*stop.borrow() {
                let _ = stop.changed().await;
            }
            cancel.store(true, Ordering::Relaxed);
        })
    };
    let mode = if full {
        SyncMode::Full
    } else {
        SyncMode::Incremental
    };
    let mut failed = 0;
    let mut changed = false;
    for settings in selected {
        let name = settings.name().to_string();
        let token = shared.secrets.connector_tokens.get(&name).cloned();
        let result = match settings.build(token) {
            Ok(c) => {
                // Progress of the connector in flight, for `secmetrics resync`.
                let mut progress = |pages: u64, records: u64| {
                    update(&|j| {
                        j.current = Some(format!(
                            "{name}: {pages} pages, {records} records committed"
                        ))
                    });
                };
                sync_one_observed(
                    &shared.store,
                    c.as_ref(),
                    mode,
                    cancel.clone(),
                    Some(&mut progress),
                )
                .await
                .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let mut syncs = shared.syncs.lock().unwrap_or_else(|p| p.into_inner());
        let stats: &mut SyncStats = syncs.entry(name.clone()).or_default();
        match result {
            Ok(report) => {
                let c = report.outcome.committed;
                stats.records += c.inserted + c.replaced;
                stats.rate_limit_waits += report.http.map_or(0, |h| h.rate_limit_waits);
                if report.outcome.interrupted {
                    stats.last_error = Some("interrupted by shutdown".into());
                } else {
                    stats.last_success = Some(Utc::now().to_rfc3339());
                    stats.last_error = None;
                    stats.synced_since_start = true;
                }
                changed |= c.inserted + c.replaced > 0 || report.gone > 0;
                let msg = format!(
                    "{name}: {} pages, {} new, {} replaced, {} unchanged, {} gone{}",
                    report.outcome.pages,
                    c.inserted,
                    c.replaced,
                    c.unchanged,
                    report.gone,
                    if report.outcome.interrupted {
                        " (interrupted)"
                    } else {
                        ""
                    }
                );
                update(&|j| {
                    j.connectors_done += 1;
                    j.records += c.inserted + c.replaced;
                    j.messages.push(msg.clone());
                });
            }
            Err(e) => {
                failed += 1;
                stats.errors += 1;
                stats.last_error = Some(e.clone());
                update(&|j| {
                    j.connectors_done += 1;
                    j.messages.push(format!("{name}: failed: {e}"));
                });
            }
        }
    }
    watcher.abort();
    if changed {
        shared.pack_stale.notify_one();
    }
    // A digest held for a sync pass may go now.
    shared.wake_digests.notify_one();
    update(&|j| {
        j.state = if failed == 0 {
            "done".into()
        } else {
            "failed".into()
        }
    });
    failed
}
