//! The pack's honesty checks: KPIs without an owner, exceptions without an
//! expiry, records naming unknown assets or repos, findings whose
//! severity was lowered during the period (and those lowered while their
//! SLA was running), findings with inconsistent times, and reconciled
//! groups fixed in one source but still open in another.

use super::scope::{Attach, Scope};
use super::{KpiConfig, KpiId, Period, SeverityDowngrades};
use crate::estate::Estate;
use std::collections::{BTreeMap, BTreeSet};

/// At most this many items are named one by one; the rest are counted, so
/// a large estate does not drown the pack in warnings.
const NAMED_MAX: usize = 20;

/// Findings whose severity was lowered with the change observed in `period`.
pub fn severity_downgrades(estate: &Estate, period: &Period) -> SeverityDowngrades {
    let ids: BTreeSet<&str> = estate
        .severity_changes
        .iter()
        .filter(|c| period.contains(c.observed_at) && c.to.rank() < c.from.rank())
        .map(|c| c.id.as_str())
        .collect();
    SeverityDowngrades {
        count: ids.len() as u64,
        ids: ids.into_iter().map(str::to_string).collect(),
    }
}

fn push_capped(out: &mut Vec<String>, items: Vec<String>, rest: impl Fn(usize) -> String) {
    let n = items.len();
    out.extend(items.into_iter().take(NAMED_MAX));
    if n > NAMED_MAX {
        out.push(rest(n - NAMED_MAX));
    }
}

/// The warning sentences for the pack of `period`.
pub fn collect<'a>(
    estate: &'a Estate,
    scope: &Scope<'_>,
    period: &Period,
    cfg: &KpiConfig,
    downgrades: &SeverityDowngrades,
    inconsistent: &[usize],
) -> Vec<String> {
    let mut out = Vec::new();
    for id in KpiId::ALL {
        if cfg.maturity.shows(id) && cfg.kpis.get(id).owner.is_none() {
            out.push(format!("KPI `{}` has no owner.", id.as_str()));
        }
    }

    let end = period.end;
    // Named in id order, whatever order the records came in.
    let mut open_no_expiry: Vec<_> = estate
        .exceptions
        .iter()
        .filter(|e| {
            e.expires_at.is_none() && e.opened_at < end && e.closed_at.map_or(true, |c| c >= end)
        })
        .collect();
    open_no_expiry.sort_by(|a, b| (&a.id, &a.source).cmp(&(&b.id, &b.source)));
    let no_expiry: Vec<String> = open_no_expiry
        .into_iter()
        .map(|e| {
            format!(
                "Exception `{}` on asset `{}` has no expiry date.",
                e.id, e.asset
            )
        })
        .collect();
    push_capped(&mut out, no_expiry, |n| {
        format!("{n} more open exceptions have no expiry date.")
    });

    let mut unknown_assets: BTreeMap<&'a str, u64> = BTreeMap::new();
    {
        let mut see = |asset: &'a str| {
            if !scope.has_asset(asset) {
                *unknown_assets.entry(asset).or_default() += 1;
            }
        };
        estate.findings.iter().for_each(|r| see(&r.asset));
        estate.reviews.iter().for_each(|r| see(&r.asset));
        estate.threat_models.iter().for_each(|r| see(&r.asset));
        estate.exceptions.iter().for_each(|r| see(&r.asset));
        estate.releases.iter().for_each(|r| see(&r.asset));
        estate
            .incidents
            .iter()
            .filter_map(|r| r.asset.as_deref())
            .for_each(&mut see);
        estate
            .repos
            .iter()
            .filter_map(|r| r.asset.as_deref())
            .for_each(&mut see);
    }
    let named: Vec<String> = unknown_assets
        .iter()
        .map(|(id, n)| {
            format!(
                "{n} record{} name asset `{id}`, which no asset record defines; counted under `unmapped`.",
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect();
    push_capped(&mut out, named, |n| {
        format!("{n} more unknown assets are named by records; counted under `unmapped`.")
    });

    let mut unknown_repos: BTreeMap<&str, u64> = BTreeMap::new();
    for a in &estate.secret_alerts {
        if !scope.has_repo(&a.repo) {
            *unknown_repos.entry(a.repo.as_str()).or_default() += 1;
        }
    }
    let named: Vec<String> = unknown_repos
        .iter()
        .map(|(id, n)| {
            format!(
                "{n} secret alert{} name repo `{id}`, which no repo record defines; counted under `unmapped`.",
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect();
    push_capped(&mut out, named, |n| {
        format!("{n} more unknown repos are named by secret alerts; counted under `unmapped`.")
    });

    let mut lowered: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut changes: Vec<_> = estate
        .severity_changes
        .iter()
        .filter(|c| period.contains(c.observed_at) && c.to.rank() < c.from.rank())
        .collect();
    changes.sort_by(|a, b| a.id.cmp(&b.id).then(a.observed_at.cmp(&b.observed_at)));
    for c in changes {
        if seen.insert((c.id.as_str(), c.source.as_str())) {
            lowered.push(format!(
                "Finding `{}` ({}) had its severity lowered from {} to {} on {}.",
                c.id,
                c.source,
                c.from,
                c.to,
                c.observed_at.format("%Y-%m-%d")
            ));
        }
    }
    push_capped(&mut out, lowered, |n| {
        format!(
            "{n} more findings had their severity lowered during the period ({} in all).",
            downgrades.count
        )
    });
    push_capped(&mut out, lowered_within_sla(estate, period, cfg), |n| {
        format!("{n} more findings had their severity lowered while their SLA was running.")
    });

    let mut named: Vec<&secmetrics_connectors::Finding> =
        inconsistent.iter().map(|&i| &estate.findings[i]).collect();
    named.sort_by(|a, b| (&a.id, &a.source).cmp(&(&b.id, &b.source)));
    let named = named
        .into_iter()
        .map(|f| {
            format!(
                "Finding `{}` ({}) was resolved on {} before it was opened on {}; left out of mttr and sla_attainment.",
                f.id,
                f.source,
                day(f.resolved_at.unwrap_or(f.opened_at)),
                day(f.opened_at)
            )
        })
        .collect();
    push_capped(&mut out, named, |n| {
        format!(
            "{n} more findings were resolved before they were opened; left out of mttr and sla_attainment."
        )
    });

    let split: Vec<String> = estate
        .fixed_and_open
        .iter()
        .filter(|g| !matches!(scope.asset(&g.asset), Attach::Out))
        .map(|g| {
            let list = |members: &[(String, String)]| {
                members
                    .iter()
                    .map(|(s, i)| format!("`{i}` ({s})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "Finding `{}` ({}) and its linked findings disagree: fixed in {}, still open in {}.",
                g.id,
                g.source,
                list(&g.fixed),
                list(&g.open)
            )
        })
        .collect();
    push_capped(&mut out, split, |n| {
        format!("{n} more linked groups are fixed in one source and still open in another.")
    });
    out
}

fn day(t: secmetrics_connectors::Time) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Severity lowerings observed in `period` before the finding's SLA (of the
/// severity before the change) ran out, counted from its (reconciled)
/// `opened_at`: a downgrade that keeps a finding from breaching its SLA.
fn lowered_within_sla(estate: &Estate, period: &Period, cfg: &KpiConfig) -> Vec<String> {
    let mut changes: Vec<_> = estate
        .severity_changes
        .iter()
        .filter(|c| period.contains(c.observed_at) && c.to.rank() < c.from.rank())
        .filter(|c| cfg.sla_days.of(c.from).is_some())
        .collect();
    if changes.is_empty() {
        return Vec::new();
    }
    changes
        .sort_by(|a, b| (&a.id, &a.source, a.observed_at).cmp(&(&b.id, &b.source, b.observed_at)));
    let wanted: BTreeSet<(&str, &str)> = changes
        .iter()
        .map(|c| (c.source.as_str(), c.id.as_str()))
        .collect();
    let opened: BTreeMap<(&str, &str), secmetrics_connectors::Time> = estate
        .findings
        .iter()
        .filter(|f| wanted.contains(&(f.source.as_str(), f.id.as_str())))
        .map(|f| ((f.source.as_str(), f.id.as_str()), f.opened_at))
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in changes {
        let (Some(opened_at), Some(sla)) = (
            opened.get(&(c.source.as_str(), c.id.as_str())),
            cfg.sla_days.of(c.from),
        ) else {
            continue;
        };
        let after = c.observed_at - *opened_at;
        if after > chrono::TimeDelta::days(i64::from(sla)) || after < chrono::TimeDelta::zero() {
            continue;
        }
        if seen.insert((c.id.as_str(), c.source.as_str())) {
            out.push(format!(
                "Finding `{}` ({}) had its severity lowered from {} to {} on {}, {} days after it was opened, within the {sla}-day SLA of {} findings.",
                c.id,
                c.source,
                c.from,
                c.to,
                day(c.observed_at),
                after.num_seconds().div_euclid(86_400),
                c.from
            ));
        }
    }
    out
}
