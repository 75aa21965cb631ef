//! `release_gate`: outcomes of the security gate of releases in the period
//! and the reasons of every release that was not a clean pass.

use super::scope::{Attach, Scope};
use super::stats::ratio;
use super::{Period, Segments};
use crate::estate::Estate;
use secmetrics_connectors::Gate;
use serde::Serialize;
use std::collections::HashMap;

/// Reason key of a non-clean release that gave none.
pub const NO_REASON: &str = "unspecified";

/// `release_gate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReleaseGate {
    /// Releases in the period.
    pub total: u64,
    /// Clean passes.
    pub passed: u64,
    /// Passes through an exception.
    pub passed_with_exception: u64,
    /// Failures.
    pub failed: u64,
    /// passed / total (a pass with an exception is not a pass).
    pub pass_rate: Option<f64>,
    /// passed_with_exception / total.
    pub exception_rate: Option<f64>,
    /// Count of each reason among releases that were not a clean pass, most
    /// frequent first.
    pub reasons: Segments<u64>,
}

/// `release_gate` for `period`.
pub fn compute(estate: &Estate, scope: &Scope<'_>, period: &Period) -> ReleaseGate {
    let mut out = ReleaseGate::default();
    let mut reasons: HashMap<&str, u64> = HashMap::new();
    for r in &estate.releases {
        if !period.contains(r.at) || matches!(scope.asset(&r.asset), Attach::Out) {
            continue;
        }
        out.total += 1;
        match r.gate {
            Gate::Passed => {
                out.passed += 1;
                continue;
            }
            Gate::PassedWithException => out.passed_with_exception += 1,
            Gate::Failed => out.failed += 1,
        }
        *reasons
            .entry(r.reason.as_deref().unwrap_or(NO_REASON))
            .or_default() += 1;
    }
    let mut reasons: Vec<(String, u64)> = reasons
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.reasons = Segments(reasons);
    out.pass_rate = ratio(out.passed, out.total);
    out.exception_rate = ratio(out.passed_with_exception, out.total);
    out
}
