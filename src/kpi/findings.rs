//! Finding KPIs in one pass over the findings: `mttr`, `findings_aging` and
//! `sla_attainment`, segmented by severity, environment and domain.

use super::coverage::NO_PRODUCT_LINE;
use super::scope::{Attach, Scope};
use super::stats::{ratio, summarize};
use super::{age_days, seconds_between, AgeBuckets, KpiConfig, Period, Segments};
use crate::estate::Estate;
use chrono::TimeDelta;
use secmetrics_connectors::{Domain, Environment, Finding, Severity, Status, Time, Validity};
use serde::Serialize;
use std::collections::BTreeMap;

/// Segment key of findings naming an asset no record defines.
pub const UNMAPPED: &str = "unmapped";

/// Remediation time statistics of one severity and environment.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct MttrCell {
    /// Findings resolved in the period.
    pub count: u64,
    /// Mean days from opened to resolved.
    pub mean_days: Option<f64>,
    /// Median days.
    pub median_days: Option<f64>,
    /// Nearest-rank p90 days.
    pub p90_days: Option<f64>,
}

/// `mttr`: remediated or mitigated findings resolved in the period.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Mttr {
    /// `by_severity.<critical|high|medium>.<production|non_production>`.
    pub by_severity: Segments<Segments<MttrCell>>,
    /// Findings resolved in the period (any status) left out, by validity.
    pub excluded: Segments<u64>,
}

impl Mttr {
    fn cell(&self, severity: Severity, env: Environment) -> Option<&MttrCell> {
        self.by_severity.get(severity.as_str())?.get(env.as_str())
    }

    /// The headline: mean days of critical production findings.
    pub fn critical_production_mean(&self) -> Option<f64> {
        self.cell(Severity::Critical, Environment::Production)?
            .mean_days
    }

    /// Mean days of high production findings (charted beside the headline).
    pub fn high_production_mean(&self) -> Option<f64> {
        self.cell(Severity::High, Environment::Production)?
            .mean_days
    }
}

/// `findings_aging`: findings open as of the end of the period by age.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct FindingsAging {
    /// All open findings.
    pub total: AgeBuckets,
    /// Per severity (all five).
    pub by_severity: Segments<AgeBuckets>,
    /// Per domain.
    pub by_domain: Segments<AgeBuckets>,
    /// Per environment.
    pub by_environment: Segments<AgeBuckets>,
    /// Per product line of the asset (`unmapped` for unknown assets).
    pub by_product_line: Segments<AgeBuckets>,
    /// Open findings left out, by validity.
    pub excluded: Segments<u64>,
}

impl FindingsAging {
    /// The headline: critical plus high findings older than 90 days.
    pub fn critical_high_over_90(&self) -> u64 {
        [Severity::Critical, Severity::High]
            .iter()
            .filter_map(|s| self.by_severity.get(s.as_str()))
            .map(|b| b.over_90)
            .sum()
    }
}

/// Closed-within-SLA counts of one severity.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct SlaCell {
    /// Findings remediated or mitigated in the period.
    pub closed: u64,
    /// Those resolved within the SLA days.
    pub within_sla: u64,
    /// within_sla / closed.
    pub value: Option<f64>,
}

/// `sla_attainment`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SlaAttainment {
    /// Findings with an SLA remediated or mitigated in the period.
    pub closed: u64,
    /// Those resolved within their SLA.
    pub within_sla: u64,
    /// within_sla / closed.
    pub value: Option<f64>,
    /// Per severity with an SLA (critical, high, medium, low).
    pub by_severity: Segments<SlaCell>,
    /// Findings open as of end older than their SLA, per severity.
    pub open_breached: Segments<u64>,
    /// SLA days applied, per severity.
    pub sla_days: Segments<Option<u32>>,
}

/// The three finding KPIs of one period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FindingKpis {
    /// `mttr`.
    pub mttr: Mttr,
    /// `findings_aging`.
    pub aging: FindingsAging,
    /// `sla_attainment`.
    pub sla: SlaAttainment,
    /// Positions in `Estate::findings` of the findings left out of `mttr`
    /// and `sla_attainment` for inconsistent times (resolved before opened).
    pub inconsistent: Vec<usize>,
}

/// True when the finding was resolved within `period`.
#[inline]
pub fn resolved_in(f: &Finding, period: &Period) -> bool {
    f.resolved_at.is_some_and(|r| period.contains(r))
}

/// True when the finding is open as of `t` (spec, Conventions): opened
/// before, not resolved before, and not a risk acceptance.
#[inline]
pub fn open_as_of(f: &Finding, t: Time) -> bool {
    f.opened_at < t && f.resolved_at.map_or(true, |r| r >= t) && f.status != Status::RiskAccepted
}

/// True when the finding counts as fixed for remediation time.
#[inline]
pub fn is_fix(f: &Finding) -> bool {
    matches!(f.status, Status::Remediated | Status::Mitigated)
}

/// Inconsistent times (spec, Conventions): resolved before it was opened,
/// so it has no remediation time.
#[inline]
pub fn has_inconsistent_times(f: &Finding) -> bool {
    f.resolved_at.is_some_and(|r| r < f.opened_at)
}

const MTTR_SEVERITIES: [Severity; 3] = [Severity::Critical, Severity::High, Severity::Medium];
const SLA_SEVERITIES: [Severity; 4] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
];

fn validity_slot(v: Validity) -> usize {
    match v {
        Validity::FalsePositive => 0,
        Validity::Duplicate => 1,
        Validity::Invalid => 2,
        // Not excluded; never asked for.
        Validity::Valid | Validity::Unverified => 3,
    }
}

fn excluded_segments(counts: &[u64; 4]) -> Segments<u64> {
    Segments(
        Validity::EXCLUDED
            .iter()
            .map(|v| (v.as_str().to_string(), counts[validity_slot(*v)]))
            .collect(),
    )
}

/// All three finding KPIs for `period` in one pass.
pub fn compute(
    estate: &Estate,
    scope: &Scope<'_>,
    period: &Period,
    cfg: &KpiConfig,
) -> FindingKpis {
    let end = period.end;
    let sla_limit: [Option<TimeDelta>; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ]
    .map(|s| cfg.sla_days.of(s).map(|d| TimeDelta::days(i64::from(d))));
    let sla_age: [Option<i64>; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ]
    .map(|s| cfg.sla_days.of(s).map(i64::from));

    // Indexed [severity][environment]; durations in days.
    let mut durations: [[Vec<f64>; 2]; 3] = Default::default();
    let mut mttr_excluded = [0u64; 4];
    let mut aging_excluded = [0u64; 4];
    let mut total = AgeBuckets::default();
    let mut by_severity = [AgeBuckets::default(); 5];
    let mut by_domain = [AgeBuckets::default(); 3];
    let mut by_env = [AgeBuckets::default(); 2];
    // Product lines are few; keyed by the asset's string, borrowed.
    let mut by_product_line: BTreeMap<&str, AgeBuckets> = BTreeMap::new();
    let mut sla_closed = [0u64; 5];
    let mut sla_within = [0u64; 5];
    let mut open_breached = [0u64; 5];
    let mut inconsistent = Vec::new();

    for (position, f) in estate.findings.iter().enumerate() {
        let resolved_in_p = resolved_in(f, period);
        let open_at_end = open_as_of(f, end);
        if !resolved_in_p && !open_at_end {
            continue;
        }
        let product_line = match scope.asset(&f.asset) {
            Attach::Out => continue,
            Attach::Known(a) => a
                .and_then(|a| a.product_line.as_deref())
                .unwrap_or(NO_PRODUCT_LINE),
            Attach::Unmapped => UNMAPPED,
        };
        let excluded = f.validity.is_excluded();
        let sev = f.severity as usize;
        if resolved_in_p {
            if excluded {
                mttr_excluded[validity_slot(f.validity)] += 1;
            } else if has_inconsistent_times(f) {
                if is_fix(f) {
                    inconsistent.push(position);
                }
            } else if is_fix(f) {
                // resolved_in_p guarantees the time is there.
                if let Some(resolved) = f.resolved_at {
                    let secs = seconds_between(f.opened_at, resolved);
                    if sev < 3 {
                        durations[sev][f.environment as usize].push(secs / 86_400.0);
                    }
                    if let Some(limit) = sla_limit[sev] {
                        sla_closed[sev] += 1;
                        if resolved - f.opened_at <= limit {
                            sla_within[sev] += 1;
                        }
                    }
                }
            }
        }
        if open_at_end {
            if excluded {
                aging_excluded[validity_slot(f.validity)] += 1;
                continue;
            }
            let age = age_days(end, f.opened_at);
            total.add(age);
            by_severity[sev].add(age);
            by_domain[f.domain as usize].add(age);
            by_env[f.environment as usize].add(age);
            by_product_line.entry(product_line).or_default().add(age);
            if sla_age[sev].is_some_and(|d| age > d) {
                open_breached[sev] += 1;
            }
        }
    }

    let mttr = Mttr {
        by_severity: Segments(
            MTTR_SEVERITIES
                .iter()
                .map(|s| {
                    let cells = Environment::ALL
                        .iter()
                        .map(|e| {
                            let values = &mut durations[*s as usize][*e as usize];
                            let summary = summarize(values);
                            let cell = MttrCell {
                                count: values.len() as u64,
                                mean_days: summary.mean,
                                median_days: summary.median,
                                p90_days: summary.p90,
                            };
                            (e.as_str().to_string(), cell)
                        })
                        .collect();
                    (s.as_str().to_string(), Segments(cells))
                })
                .collect(),
        ),
        excluded: excluded_segments(&mttr_excluded),
    };

    let aging = FindingsAging {
        total,
        by_severity: Segments(
            Severity::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), by_severity[*s as usize]))
                .collect(),
        ),
        by_domain: Segments(
            Domain::ALL
                .iter()
                .map(|d| (d.as_str().to_string(), by_domain[*d as usize]))
                .collect(),
        ),
        by_environment: Segments(
            Environment::ALL
                .iter()
                .map(|e| (e.as_str().to_string(), by_env[*e as usize]))
                .collect(),
        ),
        by_product_line: Segments(
            by_product_line
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
        excluded: excluded_segments(&aging_excluded),
    };

    // The spec's keys (critical to low), plus info when a config gives it
    // an SLA, so that every finding counted in the totals has its segment.
    let mut sla_severities = SLA_SEVERITIES.to_vec();
    if cfg.sla_days.info.is_some() {
        sla_severities.push(Severity::Info);
    }
    let closed: u64 = sla_severities.iter().map(|s| sla_closed[*s as usize]).sum();
    let within: u64 = sla_severities.iter().map(|s| sla_within[*s as usize]).sum();
    let sla = SlaAttainment {
        closed,
        within_sla: within,
        value: ratio(within, closed),
        by_severity: Segments(
            sla_severities
                .iter()
                .map(|s| {
                    let i = *s as usize;
                    let cell = SlaCell {
                        closed: sla_closed[i],
                        within_sla: sla_within[i],
                        value: ratio(sla_within[i], sla_closed[i]),
                    };
                    (s.as_str().to_string(), cell)
                })
                .collect(),
        ),
        open_breached: Segments(
            sla_severities
                .iter()
                .map(|s| (s.as_str().to_string(), open_breached[*s as usize]))
                .collect(),
        ),
        sla_days: Segments(
            sla_severities
                .iter()
                .map(|s| (s.as_str().to_string(), cfg.sla_days.of(*s)))
                .collect(),
        ),
    };
    FindingKpis {
        mttr,
        aging,
        sla,
        inconsistent,
    }
}
