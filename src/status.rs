//! What the store holds and how its connectors and outbox stand: the one
//! builder of the status document that `secmetrics status --json` prints
//! and `GET /api/v1/status` answers, so the CLI shows the same whether it
//! read the store itself or asked the daemon holding it. Every figure is
//! kept in the store, so it survives a daemon restart.

use crate::deliver::outbox::{self, Outbox};
use crate::store::{Store, StoreError};
use crate::sync::LastPass;
use secmetrics_connectors::Kind;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A time to the second, RFC 3339 in UTC.
fn seconds(t: secmetrics_connectors::Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The status document of `store` (reads every record: run it off the
/// async runtime's workers).
pub fn collect(store: &Store) -> Result<Value, StoreError> {
    let status = store.status()?;
    let summaries = Outbox::open(store)?.summaries()?;
    let passes: BTreeMap<String, LastPass> = LastPass::load_all(store)?.into_iter().collect();
    // Connectors with a cursor or a last pass (one interrupted before its
    // first page has no cursor yet).
    let names: BTreeSet<&String> = status.cursors.keys().chain(passes.keys()).collect();
    let mut per_kind: BTreeMap<Kind, u64> = BTreeMap::new();
    for ((kind, _), n) in &status.records {
        *per_kind.entry(*kind).or_default() += n;
    }
    Ok(json!({
        "store": store.path(),
        "size_on_disk": status.size_on_disk,
        "last_import": status.last_import.map(seconds),
        "records": per_kind.iter().map(|(k, n)| (k.as_str(), n)).collect::<BTreeMap<_, _>>(),
        "records_by_source": status.records.iter()
            .map(|((k, s), n)| json!({"kind": k.as_str(), "source": s, "count": n}))
            .collect::<Vec<_>>(),
        "gone": status.gone.values().sum::<u64>(),
        "history_entries": status.history_entries,
        "repos_secret_scanning_unknown": status.repos_unknown_scanning,
        "outbox_depth": outbox::depth_of(&summaries),
        "outbox": outbox::counts_of(&summaries),
        "outbox_undelivered": outbox::undelivered_of(&summaries),
        "digests": crate::deliver::last_fires(store)?
            .into_iter()
            .map(|(name, at)| (name, json!({"last_fire": seconds(at)})))
            .collect::<BTreeMap<_, _>>(),
        "connectors": names.iter().map(|name| {
            let c = status.cursors.get(*name).cloned().unwrap_or_default();
            ((*name).clone(), json!({
                "last_commit": c.last_commit_us.map(crate::store::time_text),
                "last_success": c.last_success_us.map(crate::store::time_text),
                "last_error": c.last_error,
                "last_pass": passes.get(*name),
            }))
        }).collect::<BTreeMap<_, _>>(),
    }))
}
