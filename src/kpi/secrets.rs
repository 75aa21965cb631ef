//! `secret_exposure`: secret-scanning coverage of in-scope repos and the
//! confirmed secrets per repo.

use super::scope::{Attach, Scope};
use super::stats::ratio;
use super::Period;
use crate::estate::Estate;
use secmetrics_connectors::{SecretAlert, SecretResolution, SecretValidity};
use serde::Serialize;

/// `secret_exposure`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SecretExposure {
    /// In-scope repos.
    pub repos_in_scope: u64,
    /// In-scope repos with secret scanning on.
    pub repos_covered: u64,
    /// repos_covered / repos_in_scope (healthy: up).
    pub coverage: Option<f64>,
    /// Alerts opened in the period that are confirmed.
    pub confirmed: u64,
    /// confirmed / repos_in_scope (healthy: down).
    pub rate: Option<f64>,
    /// rate * 100.
    pub per_100_repos: Option<f64>,
    /// Alerts open as of end that are not confirmed.
    pub untriaged: u64,
    /// Alerts opened in the period pushed past push protection.
    pub push_protection_bypasses: u64,
}

/// Confirmed: revoked or won't fix, or never resolved with a working secret.
fn confirmed(a: &SecretAlert) -> bool {
    matches!(
        a.resolution,
        Some(SecretResolution::Revoked | SecretResolution::WontFix)
    ) || (a.resolved_at.is_none() && a.validity == SecretValidity::Active)
}

/// `secret_exposure` for `period`.
pub fn compute(estate: &Estate, scope: &Scope<'_>, period: &Period) -> SecretExposure {
    let mut out = SecretExposure::default();
    for (r, in_scope) in scope.repos() {
        if in_scope {
            out.repos_in_scope += 1;
            if r.secret_scanning == Some(true) {
                out.repos_covered += 1;
            }
        }
    }
    let end = period.end;
    for a in &estate.secret_alerts {
        let opened_in_p = period.contains(a.opened_at);
        let open_at_end = a.opened_at < end && a.resolved_at.map_or(true, |r| r >= end);
        if !opened_in_p && !open_at_end {
            continue;
        }
        if matches!(scope.repo(&a.repo), Attach::Out) {
            continue;
        }
        let is_confirmed = confirmed(a);
        if opened_in_p {
            if is_confirmed {
                out.confirmed += 1;
            }
            if a.push_protection_bypassed {
                out.push_protection_bypasses += 1;
            }
        }
        if open_at_end && !is_confirmed {
            out.untriaged += 1;
        }
    }
    out.coverage = ratio(out.repos_covered, out.repos_in_scope);
    out.rate = ratio(out.confirmed, out.repos_in_scope);
    out.per_100_repos = out.rate.map(|r| r * 100.0);
    out
}
