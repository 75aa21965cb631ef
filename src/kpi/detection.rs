//! `detection_triage`: incidents alerted in the period and, over validated
//! incidents only, hours to triage and to contain.

use super::scope::{Attach, Scope};
use super::stats::{summarize, Summary};
use super::{seconds_between, Period};
use crate::estate::Estate;
use serde::Serialize;

/// `detection_triage`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DetectionTriage {
    /// Incidents alerted in the period.
    pub incidents: u64,
    /// Validated as real.
    pub validated: u64,
    /// Decided to be false positives.
    pub excluded_false_positive: u64,
    /// Not decided.
    pub undecided: u64,
    /// Hours from alert to triage, validated incidents with a triage time.
    pub triage_hours: Summary,
    /// Hours from alert to containment, validated incidents with one.
    pub contain_hours: Summary,
    /// Validated incidents without a triage time.
    pub missing_triage: u64,
    /// Validated incidents without a containment time.
    pub missing_contain: u64,
}

/// `detection_triage` for `period`.
pub fn compute(estate: &Estate, scope: &Scope<'_>, period: &Period) -> DetectionTriage {
    let mut out = DetectionTriage::default();
    let mut triage = Vec::new();
    let mut contain = Vec::new();
    for i in &estate.incidents {
        if !period.contains(i.alerted_at) {
            continue;
        }
        if let Some(asset) = &i.asset {
            if matches!(scope.asset(asset), Attach::Out) {
                continue;
            }
        }
        out.incidents += 1;
        match i.validated {
            Some(true) => out.validated += 1,
            Some(false) => {
                out.excluded_false_positive += 1;
                continue;
            }
            None => {
                out.undecided += 1;
                continue;
            }
        }
        match i.triaged_at {
            Some(t) => triage.push(seconds_between(i.alerted_at, t) / 3600.0),
            None => out.missing_triage += 1,
        }
        match i.contained_at {
            Some(t) => contain.push(seconds_between(i.alerted_at, t) / 3600.0),
            None => out.missing_contain += 1,
        }
    }
    out.triage_hours = summarize(&mut triage);
    out.contain_hours = summarize(&mut contain);
    out
}
