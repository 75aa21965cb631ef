//! Renderings of one [`KpiPack`]: JSON (the contract), an aligned terminal
//! table, a Markdown wiki page and a self-contained HTML page with charts.
//! Renderings only read the pack; they compute nothing the engine did not.
//! [`request`] answers a report as asked for (period, format, as sent).

pub mod charts;
pub mod html;
pub mod json;
pub mod markdown;
pub mod request;
pub mod text;

use crate::kpi::{Direction, Figure, KpiId, KpiPack, TargetStatus, Trend};
use std::fmt::Write as _;

/// An output format of `secmetrics report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned terminal table.
    Text,
    /// Markdown wiki page.
    Markdown,
    /// The JSON contract.
    Json,
    /// Self-contained HTML page with charts.
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Format::Text),
            "markdown" | "md" => Ok(Format::Markdown),
            "json" => Ok(Format::Json),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "unknown format `{other}` (expected text, markdown, json or html)"
            )),
        }
    }
}

/// Render `pack` in `format`. `color` only matters for text, and only when
/// the caller knows it writes to a terminal.
pub fn render(pack: &KpiPack, format: Format, color: bool) -> String {
    match format {
        Format::Text => text::render(pack, color),
        Format::Markdown => markdown::render(pack),
        Format::Json => json::render(pack),
        Format::Html => html::render(pack),
    }
}

/// One KPI as every text rendering shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Which KPI.
    pub id: KpiId,
    /// Human title.
    pub title: &'static str,
    /// The headline, formatted.
    pub figure: String,
    /// Denominator and the segments that matter, formatted.
    pub detail: String,
    /// Previous headline, formatted.
    pub previous: String,
    /// ↑ ↓ → for the movement of the figure, blank when unknown.
    pub arrow: &'static str,
    /// Trend judged by the healthy direction.
    pub trend: Option<Trend>,
    /// Target, formatted, and the status.
    pub target: String,
    /// Target status.
    pub status: TargetStatus,
    /// Owner, or "no owner".
    pub owner: String,
    /// Business translation sentence.
    pub business: String,
}

/// The word for a trend.
pub fn trend_word(t: Option<Trend>) -> &'static str {
    match t {
        Some(Trend::Improving) => "improving",
        Some(Trend::Worsening) => "worsening",
        Some(Trend::Flat) => "flat",
        None => "no trend",
    }
}

/// The word for a target status.
pub fn status_word(s: TargetStatus) -> &'static str {
    match s {
        TargetStatus::OnTarget => "on target",
        TargetStatus::OffTarget => "off target",
        TargetStatus::NoTarget => "no target",
    }
}

/// A ratio as a percentage with one decimal.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn days(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1} d"))
}

fn hours(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1} h"))
}

/// A headline figure of `id` in its unit.
pub fn figure_text(id: KpiId, f: Option<Figure>) -> String {
    let v = f.map(Figure::as_f64);
    match id {
        KpiId::SecurityReviewCoverage
        | KpiId::DesignReviewCoverage
        | KpiId::ThreatModelCoverage
        | KpiId::ReleaseGate
        | KpiId::SlaAttainment => pct(v),
        KpiId::Mttr => days(v),
        KpiId::DetectionTriage => hours(v),
        KpiId::SecretExposure => v.map_or_else(
            || "n/a".to_string(),
            |r| format!("{:.1} per 100 repos", r * 100.0),
        ),
        KpiId::FindingsAging | KpiId::ExceptionDebt => {
            f.map_or_else(|| "n/a".to_string(), |f| format!("{}", f.as_f64() as u64))
        }
    }
}

fn target_text(id: KpiId, target: Option<f64>, direction: Direction) -> String {
    match target {
        None => "-".to_string(),
        Some(t) => {
            let sign = if direction == Direction::Up {
                ">="
            } else {
                "<="
            };
            let shown = match id {
                KpiId::FindingsAging | KpiId::ExceptionDebt => format!("{t}"),
                _ => figure_text(id, Some(Figure::Value(t))),
            };
            format!("{sign} {shown}")
        }
    }
}

fn arrow(current: Option<Figure>, previous: Option<Figure>) -> &'static str {
    match (current, previous) {
        (Some(c), Some(p)) => {
            let (c, p) = (c.as_f64(), p.as_f64());
            if (c - p).abs() <= 1e-12 * c.abs().max(p.abs()) {
                "→"
            } else if c > p {
                "↑"
            } else {
                "↓"
            }
        }
        _ => " ",
    }
}

/// Denominator and key segments of one KPI, in words.
fn detail(pack: &KpiPack, id: KpiId) -> String {
    let k = &pack.kpis;
    let mut s = String::new();
    match id {
        KpiId::SecurityReviewCoverage => {
            if let Some(c) = &k.security_review_coverage {
                let c = &c.figures;
                let _ = write!(s, "{} of {} in-scope assets", c.numerator, c.denominator);
                for (tier, r) in &c.by_tier.0 {
                    let _ = write!(s, "; tier {tier} {}", pct(r.value));
                }
            }
        }
        KpiId::DesignReviewCoverage => {
            if let Some(c) = &k.design_review_coverage {
                let c = &c.figures;
                let _ = write!(s, "{} of {} tier 1-2 assets", c.numerator, c.denominator);
                for (tier, r) in &c.by_tier.0 {
                    let _ = write!(
                        s,
                        "; tier {tier} {} ({}/{})",
                        pct(r.value),
                        r.numerator,
                        r.denominator
                    );
                }
            }
        }
        KpiId::ThreatModelCoverage => {
            if let Some(c) = &k.threat_model_coverage {
                let c = &c.figures;
                let _ = write!(
                    s,
                    "{} of {} critical assets; {} stale, {} missing",
                    c.numerator,
                    c.denominator,
                    c.stale.len(),
                    c.missing.len()
                );
            }
        }
        KpiId::FindingsAging => {
            if let Some(a) = &k.findings_aging {
                let a = &a.figures;
                let _ = write!(s, "of {} open findings", a.total.total());
                for sev in ["critical", "high"] {
                    if let Some(b) = a.by_severity.get(sev) {
                        let _ = write!(
                            s,
                            "; {sev} {}/{}/{} (0-30/31-90/>90 d)",
                            b.days_0_30, b.days_31_90, b.over_90
                        );
                    }
                }
            }
        }
        KpiId::Mttr => {
            if let Some(m) = &k.mttr {
                let m = &m.figures;
                let mut first = true;
                for sev in ["critical", "high"] {
                    if let Some(cell) = m.by_severity.get(sev).and_then(|e| e.get("production")) {
                        let _ = write!(
                            s,
                            "{}{sev} prod {} (n={}, p90 {})",
                            if first { "" } else { "; " },
                            days(cell.mean_days),
                            cell.count,
                            days(cell.p90_days)
                        );
                        first = false;
                    }
                }
            }
        }
        KpiId::SecretExposure => {
            if let Some(x) = &k.secret_exposure {
                let x = &x.figures;
                let _ = write!(
                    s,
                    "{} confirmed / {} in-scope repos; scanning coverage {} ({}/{}); {} untriaged",
                    x.confirmed,
                    x.repos_in_scope,
                    pct(x.coverage),
                    x.repos_covered,
                    x.repos_in_scope,
                    x.untriaged
                );
            }
        }
        KpiId::ExceptionDebt => {
            if let Some(e) = &k.exception_debt {
                let e = &e.figures;
                let _ = write!(
                    s,
                    "{} on critical, {} expired, {} expiring in 30 d, {} without expiry; aged {}/{}/{} (0-30/31-90/>90 d)",
                    e.on_critical,
                    e.expired,
                    e.expiring_30d,
                    e.no_expiry,
                    e.aging.days_0_30,
                    e.aging.days_31_90,
                    e.aging.over_90
                );
            }
        }
        KpiId::ReleaseGate => {
            if let Some(r) = &k.release_gate {
                let r = &r.figures;
                let _ = write!(
                    s,
                    "{} clean of {} releases; {} with exception, {} failed",
                    r.passed, r.total, r.passed_with_exception, r.failed
                );
                if !r.reasons.0.is_empty() {
                    let reasons: Vec<String> = r
                        .reasons
                        .0
                        .iter()
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect();
                    let _ = write!(s, "; reasons: {}", reasons.join(", "));
                }
            }
        }
        KpiId::SlaAttainment => {
            if let Some(x) = &k.sla_attainment {
                let x = &x.figures;
                let breached: u64 = x.open_breached.0.iter().map(|(_, n)| n).sum();
                let _ = write!(
                    s,
                    "{} of {} closed within SLA; {} open past SLA",
                    x.within_sla, x.closed, breached
                );
            }
        }
        KpiId::DetectionTriage => {
            if let Some(d) = &k.detection_triage {
                let d = &d.figures;
                let _ = write!(
                    s,
                    "{} validated of {} incidents; median {}, p90 {}",
                    d.validated,
                    d.incidents,
                    hours(d.triage_hours.median),
                    hours(d.triage_hours.p90)
                );
            }
        }
    }
    s
}

/// Headline history as rows of (KPI title, formatted value per period),
/// oldest period first; empty when the pack has no history.
pub fn history_rows(pack: &KpiPack) -> (Vec<String>, Vec<(&'static str, Vec<String>)>) {
    let labels = pack.history.iter().map(|h| h.period.label()).collect();
    let rows = KpiId::MONTHLY_PACK
        .iter()
        .filter(|id| pack.kpis.line(**id).is_some())
        .map(|id| {
            let values = pack
                .history
                .iter()
                .map(|h| figure_text(*id, h.headlines.get(id.as_str()).copied().flatten()))
                .collect();
            (id.title(), values)
        })
        .collect();
    (labels, rows)
}

/// The shown KPIs in the monthly pack's order, formatted.
pub fn lines(pack: &KpiPack) -> Vec<Line> {
    KpiId::MONTHLY_PACK
        .iter()
        .filter_map(|id| pack.kpis.line(*id))
        .map(|l| Line {
            id: l.id,
            title: l.id.title(),
            figure: figure_text(l.id, l.headline),
            detail: detail(pack, l.id),
            previous: figure_text(l.id, l.previous),
            arrow: arrow(l.headline, l.previous),
            trend: l.trend,
            target: target_text(l.id, l.target, l.id.direction()),
            status: l.status,
            owner: l.owner.unwrap_or("no owner").to_string(),
            business: l.business.to_string(),
        })
        .collect()
}

/// The store key of a period's snapshot: its label (`2026-10`,
/// `2026-W48`, `2026-11-30`), the two RFC 3339 bounds for a range.
pub fn snapshot_key(period: &crate::kpi::Period) -> String {
    match period.kind {
        crate::kpi::PeriodKind::Month { .. }
        | crate::kpi::PeriodKind::Week { .. }
        | crate::kpi::PeriodKind::Day { .. } => period.label(),
        crate::kpi::PeriodKind::Range => format!(
            "{}..{}",
            crate::kpi::period::rfc3339(&period.start),
            crate::kpi::period::rfc3339(&period.end)
        ),
    }
}
