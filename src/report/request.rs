//! A report as asked for — a period (or a range), a format, a trend, the
//! pack as sent or a fresh one — answered from a store. `secmetrics report`
//! answers it here, or sends it to the daemon holding the store, which
//! answers it with this same code (`GET /api/v1/report`).

use super::Format;
use crate::estate::Estate;
use crate::kpi::{self, KpiConfig, Period};
use crate::store::Store;
use anyhow::Context as _;
use secmetrics_connectors::Time;
use serde::{Deserialize, Serialize};

/// What a report asks for (also the query of `GET /api/v1/report`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportRequest {
    /// A month `YYYY-MM`, an ISO week `YYYY-Www` or a day `YYYY-MM-DD`
    /// (default: the last complete month).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Start of a range (RFC 3339, or `YYYY-MM-DD` for midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// End of a range, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `text`, `markdown`, `json` or `html` (default text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Headline history over this many periods (default 6 for html, else 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<usize>,
    /// The pack kept as sent for the period, unchanged (JSON only).
    #[serde(default)]
    pub as_sent: bool,
    /// Keep the pack's JSON as the one sent for the period.
    #[serde(default)]
    pub snapshot: bool,
    /// Colour the text format (a terminal asked).
    #[serde(default)]
    pub color: bool,
    /// The process exits right after answering (the CLI): the loaded
    /// records are left to the exit instead of being freed one by one (a
    /// third of a second at a million findings). Never sent to the daemon.
    #[serde(skip)]
    pub exiting: bool,
}

/// The reconciled estate a report is computed from.
pub enum EstateRef {
    /// Loaded for this report.
    Owned(Box<Estate>),
    /// Shared (the daemon's, held in memory).
    Shared(std::sync::Arc<Estate>),
    /// Loaded by a process that exits right after: never freed.
    Leaked(&'static Estate),
}

impl std::ops::Deref for EstateRef {
    type Target = Estate;
    fn deref(&self) -> &Estate {
        match self {
            EstateRef::Owned(e) => e,
            EstateRef::Shared(e) => e,
            EstateRef::Leaked(e) => e,
        }
    }
}

/// A report answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The rendered report.
    pub text: String,
    /// A line for the operator (e.g. the snapshot kept).
    pub note: Option<String>,
}

/// A question the store cannot answer (no snapshot kept for the period).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// Parse `YYYY-MM-DD` (midnight in `zone`) or RFC 3339 with an explicit
/// offset.
fn parse_time(s: &str, zone: chrono_tz::Tz) -> anyhow::Result<Time> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(kpi::period::midnight(zone, d));
    }
    Ok(chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("`{s}` is neither YYYY-MM-DD nor RFC 3339 with an offset"))?
        .to_utc())
}

impl ReportRequest {
    /// The format asked for.
    pub fn format(&self) -> anyhow::Result<Format> {
        match &self.format {
            None => Ok(Format::Text),
            Some(f) => f.parse().map_err(anyhow::Error::msg),
        }
    }

    /// The period asked for, in the reporting time zone `zone`; the last
    /// complete month there by default.
    pub fn period(&self, now: Time, zone: chrono_tz::Tz) -> anyhow::Result<Period> {
        Ok(match (&self.period, &self.from, &self.to) {
            (Some(p), _, _) => Period::parse(p, zone)?,
            (None, Some(from), Some(to)) => {
                Period::range_in(parse_time(from, zone)?, parse_time(to, zone)?, zone)?
            }
            (None, None, None) => Period::last_complete(kpi::Unit::Month, now, zone),
            _ => anyhow::bail!("a range needs both `from` and `to`"),
        })
    }

    /// Answer from `store` at `now` (loads every record: run it off the
    /// async runtime's workers).
    pub fn answer(
        &self,
        store: &Store,
        config: &KpiConfig,
        reconcile: &crate::reconcile::ReconcileConfig,
        now: Time,
    ) -> anyhow::Result<Answer> {
        let exiting = self.exiting;
        self.answer_with(store, config, now, || {
            // Reconciled, as every pack is (one weakness counts once).
            let estate = crate::reconcile::load(store, reconcile)
                .context("cannot load the records")?
                .estate;
            Ok(if exiting {
                // Left to the exit (see `exiting`).
                EstateRef::Leaked(Box::leak(Box::new(estate)))
            } else {
                EstateRef::Owned(Box::new(estate))
            })
        })
    }

    /// [`ReportRequest::answer`] with the reconciled estate from `estate`
    /// (asked only when a pack is computed): the daemon passes the one it
    /// holds in memory.
    pub fn answer_with(
        &self,
        store: &Store,
        config: &KpiConfig,
        now: Time,
        estate: impl FnOnce() -> anyhow::Result<EstateRef>,
    ) -> anyhow::Result<Answer> {
        let format = self.format()?;
        let period = self.period(now, config.timezone.0)?;
        let key = super::snapshot_key(&period);
        if self.as_sent {
            if format != Format::Json {
                anyhow::bail!("--as-sent prints the JSON kept for the period; use --format json");
            }
            let Some(bytes) = store.snapshot(&key)? else {
                return Err(NotFound(format!(
                    "no snapshot kept for {key}; `secmetrics report --period {key} --snapshot` keeps one"
                ))
                .into());
            };
            let text = String::from_utf8(bytes).context("stored snapshot is not UTF-8")?;
            return Ok(Answer { text, note: None });
        }
        let started = std::time::Instant::now();
        let estate = estate()?;
        let estate: &Estate = &estate;
        let loaded = started.elapsed();
        let trend = self
            .trend
            .unwrap_or(if format == Format::Html { 6 } else { 0 });
        let pack = kpi::with_history(estate, &period, config, now, trend);
        tracing::debug!(
            findings = estate.findings.len(),
            load_ms = loaded.as_millis() as u64,
            compute_ms = (started.elapsed() - loaded).as_millis() as u64,
            "KPI pack computed"
        );
        let mut note = None;
        if self.snapshot {
            let json = super::render(&pack, Format::Json, false);
            store.put_snapshot(&key, json.as_bytes())?;
            store.flush()?;
            note = Some(format!("kept the pack for {key} as sent"));
        }
        let color = self.color && format == Format::Text;
        Ok(Answer {
            text: super::render(&pack, format, color),
            note,
        })
    }
}
