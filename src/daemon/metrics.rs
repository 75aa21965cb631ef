//! Prometheus metrics: each KPI headline of the cached pack as a gauge with
//! its labels, per-connector sync statistics (running totals as counters,
//! `_total`), the outbox by state, the held digests and the jobs that
//! panicked. Built per scrape from state the daemon already holds and the
//! outbox's summaries, so a scrape never loads the store's records nor a
//! rendered digest.

use super::Shared;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// How each connector's last pass ended (1 for its state, 0 for the
/// others) and how many items it could not read.
fn register_last_passes(
    registry: &mut Registry,
    syncs: &std::collections::BTreeMap<String, super::SyncStats>,
) {
    let state = Family::<Labels, FloatGauge>::default();
    let unreadable = Family::<Labels, FloatGauge>::default();
    for (name, s) in syncs {
        let Some(pass) = &s.last_pass else { continue };
        for st in crate::sync::PassState::ALL {
            let l = vec![
                ("connector".to_string(), name.clone()),
                ("state".to_string(), st.as_str().to_string()),
            ];
            state
                .get_or_create(&l)
                .set(if pass.state == st { 1.0 } else { 0.0 });
        }
        unreadable
            .get_or_create(&vec![("connector".to_string(), name.clone())])
            .set(pass.unreadable as f64);
    }
    registry.register(
        "connector_last_pass",
        "How the connector's last pass ended: ok, partial (unreadable items skipped), interrupted or failed",
        state,
    );
    registry.register(
        "connector_unreadable_items",
        "Items the connector's last pass could not read and skipped",
        unreadable,
    );
}

/// The OpenMetrics text of the current state.
pub fn render(shared: &Shared) -> String {
    let mut registry = Registry::with_prefix("secmetrics");

    let headline = Family::<Labels, FloatGauge>::default();
    let pack = shared
        .current
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(pack) = &pack {
        for id in crate::kpi::KpiId::MONTHLY_PACK {
            if let Some(line) = pack.kpis.line(id) {
                if let Some(v) = line.headline {
                    let labels = vec![
                        ("kpi".to_string(), id.as_str().to_string()),
                        ("period".to_string(), pack.period.label()),
                        ("owner".to_string(), line.owner.unwrap_or("").to_string()),
                    ];
                    headline.get_or_create(&labels).set(v.as_f64());
                }
            }
        }
    }
    registry.register(
        "kpi_headline",
        "Headline figure of each KPI for the last complete month",
        headline,
    );

    let last_success = Family::<Labels, FloatGauge>::default();
    let records = Family::<Labels, Counter>::default();
    let errors = Family::<Labels, Counter>::default();
    let waits = Family::<Labels, Counter>::default();
    let syncs = shared
        .syncs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for (name, s) in &syncs {
        let l = vec![("connector".to_string(), name.clone())];
        if let Some(t) = s
            .last_success
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            last_success
                .get_or_create(&l)
                .set(t.timestamp_millis() as f64 / 1000.0);
        }
        // Totals since the daemon started: counters, reset by a restart.
        records.get_or_create(&l).inc_by(s.records);
        errors.get_or_create(&l).inc_by(s.errors);
        waits.get_or_create(&l).inc_by(s.rate_limit_waits);
    }
    registry.register(
        "connector_last_success_timestamp_seconds",
        "Time of the connector's last successful sync",
        last_success,
    );
    registry.register(
        "connector_records",
        "Records committed by the connector since the daemon started",
        records,
    );
    registry.register(
        "connector_errors",
        "Failed sync passes since the daemon started",
        errors,
    );
    registry.register(
        "connector_rate_limit_waits",
        "Rate-limit waits since the daemon started",
        waits,
    );
    register_last_passes(&mut registry, &syncs);

    // The outbox's summaries only: a scrape never decodes a rendered body.
    let summaries = crate::deliver::outbox::Outbox::open(&shared.store)
        .and_then(|o| o.summaries())
        .ok();
    let depth = Gauge::<i64>::default();
    if let Some(s) = &summaries {
        depth.set(crate::deliver::outbox::depth_of(s) as i64);
    }
    registry.register("outbox_depth", "Digests waiting to be delivered", depth);
    let states = Family::<Labels, Gauge>::default();
    if let Some(s) = &summaries {
        let c = crate::deliver::outbox::counts_of(s);
        for state in ["pending", "sending", "sent", "failed", "unconfirmed"] {
            states
                .get_or_create(&vec![("state".to_string(), state.to_string())])
                .set(*c.get(state).unwrap_or(&0) as i64);
        }
    }
    registry.register(
        "outbox_entries",
        "Outbox entries by state (sending: an attempt is under way; failed: refused for good; unconfirmed: sent without an answer, or the process stopped while sending)",
        states,
    );
    let panics = Family::<Labels, Counter>::default();
    for ((kind, name), n) in shared
        .job_panics
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        panics
            .get_or_create(&vec![
                ("job".to_string(), kind.clone()),
                ("name".to_string(), name.clone()),
            ])
            .inc_by(*n);
    }
    registry.register(
        "job_panics",
        "Jobs (syncs, digest renderings, deliveries) that panicked since the daemon started; each was caught and runs again at its next fire",
        panics,
    );
    let held = Gauge::<i64>::default();
    held.set(
        shared
            .due_digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len() as i64,
    );
    registry.register(
        "digests_held",
        "Scheduled digests not in the outbox yet (no sync pass since start, no data, or rendering failed)",
        held,
    );

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}
