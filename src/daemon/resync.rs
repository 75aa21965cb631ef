//! Syncs run by the daemon (on schedule or on request): one connector pass
//! at a time, interrupted between pages on shutdown, with statistics and
//! resync-job progress kept for the admin API; the KPI pack is refreshed
//! after records changed.

use super::{JobStatus, Shared, SyncStats};
use crate::sync::{
    run_passes, LastPass, PassLimits, PassObserver, PassState, SyncError, SyncReport,
};
use chrono::Utc;
use secmetrics_connectors::{Cancel, SyncMode};
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
    // Shutdown cuts the request in flight; committed pages stay.
    let cancel = Cancel::new();
    let watcher = {
        let cancel = cancel.clone();
        let mut stop = shared.stopping.clone();
        tokio::spawn(async move {
            if !*stop.borrow() {
                let _ = stop.changed().await;
            }
            cancel.cancel();
        })
    };
    let mode = if full {
        SyncMode::Full
    } else {
        SyncMode::Incremental
    };
    let connectors = selected
        .into_iter()
        .map(|settings| {
            let name = settings.name().to_string();
            let token = shared.secrets.connector_tokens.get(&name).cloned();
            let built = settings.build(token).map_err(|e| e.to_string());
            (name, built)
        })
        .collect();
    let mut observer = DaemonObserver {
        shared,
        update: &update,
    };
    let summary = run_passes(
        &shared.store,
        connectors,
        mode,
        cancel,
        PassLimits::of(&shared.config),
        &mut observer,
    )
    .await;
    watcher.abort();
    if summary.changed {
        shared.records_changed();
    }
    // A digest held for a sync pass may go now.
    shared.wake_digests.notify_one();
    update(&|j| {
        j.state = if summary.failed == 0 {
            "done".into()
        } else {
            "failed".into()
        }
    });
    summary.failed
}

/// Applies a change to the resync job in flight (if any).
type JobUpdate<'a> = &'a (dyn Fn(&dyn Fn(&mut JobStatus)) + Send + Sync);

/// Keeps the daemon's connector statistics and the resync job's progress.
struct DaemonObserver<'a> {
    shared: &'a Arc<Shared>,
    update: JobUpdate<'a>,
}

impl PassObserver for DaemonObserver<'_> {
    fn progress(&mut self, connector: &str, pages: u64, records: u64) {
        (self.update)(&|j| {
            j.current = Some(format!(
                "{connector}: {pages} pages, {records} records committed"
            ))
        });
    }

    fn finished(&mut self, name: &str, result: &Result<SyncReport, SyncError>) {
        let mut syncs = self.shared.syncs.lock().unwrap_or_else(|p| p.into_inner());
        let stats: &mut SyncStats = syncs.entry(name.to_string()).or_default();
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match result {
            Ok(report) => {
                let c = report.outcome.committed;
                stats.records += c.inserted + c.replaced;
                stats.rate_limit_waits += report.http.map_or(0, |h| h.rate_limit_waits);
                if report.outcome.interrupted {
                    stats.last_error = Some("interrupted by shutdown".into());
                } else {
                    stats.last_success = Some(now.clone());
                    stats.last_error = None;
                    stats.synced_since_start = true;
                }
                stats.last_pass = Some(LastPass::of(result));
                let msg = format!(
                    "{name}: {} pages, {} new, {} replaced, {} unchanged, {} gone, {}{}",
                    report.outcome.pages,
                    c.inserted,
                    c.replaced,
                    c.unchanged,
                    report.gone,
                    report.state.as_str(),
                    if report.state == PassState::Partial {
                        format!(
                            " ({} unreadable: {})",
                            report.outcome.unreadable,
                            report.outcome.problems.join("; ")
                        )
                    } else {
                        String::new()
                    }
                );
                (self.update)(&|j| {
                    j.connectors_done += 1;
                    j.records += c.inserted + c.replaced;
                    j.messages.push(msg.clone());
                });
            }
            Err(e) => {
                let e = e.to_string();
                stats.errors += 1;
                stats.last_error = Some(e.clone());
                stats.last_pass = Some(LastPass::of(result));
                (self.update)(&|j| {
                    j.connectors_done += 1;
                    j.messages.push(format!("{name}: failed: {e}"));
                });
            }
        }
    }
}
