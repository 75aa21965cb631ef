//! Coverage KPIs over in-scope assets: security review coverage, design
//! review coverage (tier 1 and 2) and threat-model coverage of critical
//! assets, segmented by tier and product line.

use super::scope::{Attach, Scope};
use super::stats::ratio;
use super::{KpiConfig, Period, Segments};
use crate::estate::Estate;
use chrono::TimeDelta;
use secmetrics_connectors::{Asset, ReviewType, Time};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Segment key of assets without a product line.
pub const NO_PRODUCT_LINE: &str = "unassigned";

/// numerator / denominator of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Ratio {
    /// Assets covered.
    pub numerator: u64,
    /// Assets counted.
    pub denominator: u64,
    /// numerator / denominator; null when the denominator is 0.
    pub value: Option<f64>,
}

impl Ratio {
    fn count(&mut self, covered: bool) {
        self.denominator += 1;
        if covered {
            self.numerator += 1;
        }
    }

    fn finish(mut self) -> Ratio {
        self.value = ratio(self.numerator, self.denominator);
        self
    }
}

/// A review coverage KPI (security or design).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Coverage {
    /// Assets with a review in the window.
    pub numerator: u64,
    /// In-scope assets counted.
    pub denominator: u64,
    /// numerator / denominator.
    pub value: Option<f64>,
    /// Per tier ("1", "2", "3"; design coverage "1" and "2").
    pub by_tier: Segments<Ratio>,
    /// Per product line (`unassigned` for assets without one).
    pub by_product_line: Segments<Ratio>,
}

/// Threat-model coverage of in-scope critical assets.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ThreatModelCoverage {
    /// Critical assets whose latest model is recent enough.
    pub numerator: u64,
    /// In-scope critical assets.
    pub denominator: u64,
    /// numerator / denominator.
    pub value: Option<f64>,
    /// Critical assets whose latest model (before end) is too old, sorted.
    pub stale: Vec<String>,
    /// Critical assets with no model before end, sorted.
    pub missing: Vec<String>,
    /// Per tier of the critical assets ("1", "2", "3").
    pub by_tier: Segments<Ratio>,
    /// Per product line.
    pub by_product_line: Segments<Ratio>,
}

fn window_start(end: Time, days: u32) -> Time {
    end - TimeDelta::days(i64::from(days))
}

/// Accumulates one coverage KPI over assets.
struct CoverageTally {
    total: Ratio,
    tiers: Vec<(u8, Ratio)>,
    product_lines: BTreeMap<String, Ratio>,
}

impl CoverageTally {
    fn new(tiers: &[u8]) -> Self {
        CoverageTally {
            total: Ratio::default(),
            tiers: tiers.iter().map(|t| (*t, Ratio::default())).collect(),
            product_lines: BTreeMap::new(),
        }
    }

    fn count(&mut self, asset: &Asset, covered: bool) {
        self.total.count(covered);
        if let Some((_, r)) = self.tiers.iter_mut().find(|(t, _)| *t == asset.tier) {
            r.count(covered);
        }
        let pl = asset.product_line.as_deref().unwrap_or(NO_PRODUCT_LINE);
        self.product_lines
            .entry(pl.to_string())
            .or_default()
            .count(covered);
    }

    fn finish(self) -> Coverage {
        let total = self.total.finish();
        Coverage {
            numerator: total.numerator,
            denominator: total.denominator,
            value: total.value,
            by_tier: Segments(
                self.tiers
                    .into_iter()
                    .map(|(t, r)| (t.to_string(), r.finish()))
                    .collect(),
            ),
            by_product_line: Segments(
                self.product_lines
                    .into_iter()
                    .map(|(k, r)| (k, r.finish()))
                    .collect(),
            ),
        }
    }
}

/// `security_review_coverage` and `design_review_coverage` as of the end of
/// `period`.
pub fn review_coverage(
    estate: &Estate,
    scope: &Scope<'_>,
    period: &Period,
    cfg: &KpiConfig,
) -> (Coverage, Coverage) {
    let end = period.end;
    let any_from = window_start(end, cfg.windows.review_days);
    let design_from = window_start(end, cfg.windows.design_days);
    let mut reviewed: HashSet<&str> = HashSet::new();
    let mut design_reviewed: HashSet<&str> = HashSet::new();
    for r in &estate.reviews {
        if r.completed_at >= end {
            continue;
        }
        // Only defined, in-scope assets are in the denominators, so reviews
        // of anything else cannot change these figures.
        if !matches!(scope.asset(&r.asset), Attach::Known(_)) {
            continue;
        }
        if r.completed_at >= any_from {
            reviewed.insert(&r.asset);
        }
        if r.review_type == ReviewType::Design && r.completed_at >= design_from {
            design_reviewed.insert(&r.asset);
        }
    }
    let mut security = CoverageTally::new(&[1, 2, 3]);
    let mut design = CoverageTally::new(&[1, 2]);
    for a in scope.assets().filter(|a| a.in_scope) {
        security.count(a, reviewed.contains(a.id.as_str()));
        if a.tier == 1 || a.tier == 2 {
            design.count(a, design_reviewed.contains(a.id.as_str()));
        }
    }
    (security.finish(), design.finish())
}

/// `threat_model_coverage` as of the end of `period`.
pub fn threat_model_coverage(
    estate: &Estate,
    scope: &Scope<'_>,
    period: &Period,
    cfg: &KpiConfig,
) -> ThreatModelCoverage {
    let end = period.end;
    let fresh_from = window_start(end, cfg.windows.threat_model_max_age_days);
    let mut latest: HashMap<&str, Time> = HashMap::new();
    for m in &estate.threat_models {
        if m.reviewed_at >= end || !matches!(scope.asset(&m.asset), Attach::Known(_)) {
            continue;
        }
        let t = latest.entry(m.asset.as_str()).or_insert(m.reviewed_at);
        if m.reviewed_at > *t {
            *t = m.reviewed_at;
        }
    }
    let mut out = ThreatModelCoverage::default();
    let mut tally = CoverageTally::new(&[1, 2, 3]);
    for a in scope.assets().filter(|a| a.in_scope && a.critical) {
        let covered = match latest.get(a.id.as_str()) {
            Some(t) if *t >= fresh_from => true,
            Some(_) => {
                out.stale.push(a.id.clone());
                false
            }
            None => {
                out.missing.push(a.id.clone());
                false
            }
        };
        tally.count(a, covered);
    }
    let coverage = tally.finish();
    out.numerator = coverage.numerator;
    out.denominator = coverage.denominator;
    out.value = coverage.value;
    out.by_tier = coverage.by_tier;
    out.by_product_line = coverage.by_product_line;
    out.stale.sort();
    out.stale.dedup();
    out.missing.sort();
    out.missing.dedup();
    out
}
