//! `exception_debt`: risk acceptances open as of the end of the period, how
//! many sit on critical assets, expired, expire soon or never expire.

use super::scope::{Attach, Scope};
use super::{age_days, AgeBuckets, Period};
use crate::estate::Estate;
use chrono::TimeDelta;
use serde::Serialize;

/// `exception_debt`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ExceptionDebt {
    /// Exceptions open as of end.
    pub open: u64,
    /// Of those, on critical assets.
    pub on_critical: u64,
    /// Of those, past their expiry.
    pub expired: u64,
    /// Of those, expiring within 30 days after end.
    pub expiring_30d: u64,
    /// Of those, without an expiry.
    pub no_expiry: u64,
    /// Of those, by age since approval.
    pub aging: AgeBuckets,
}

/// `exception_debt` as of the end of `period`.
pub fn compute(estate: &Estate, scope: &Scope<'_>, period: &Period) -> ExceptionDebt {
    let end = period.end;
    let soon = end + TimeDelta::days(30);
    let mut out = ExceptionDebt::default();
    for e in &estate.exceptions {
        if e.opened_at >= end || e.closed_at.is_some_and(|c| c < end) {
            continue;
        }
        let critical = match scope.asset(&e.asset) {
            Attach::Out => continue,
            Attach::Known(a) => a.is_some_and(|a| a.critical),
            Attach::Unmapped => false,
        };
        out.open += 1;
        if critical {
            out.on_critical += 1;
        }
        match e.expires_at {
            None => out.no_expiry += 1,
            Some(x) if x < end => out.expired += 1,
            Some(x) if x < soon => out.expiring_30d += 1,
            Some(_) => {}
        }
        out.aging.add(age_days(end, e.opened_at));
    }
    out
}
