//! Which KPI figures of a period a finding counts in, and why not where it
//! does not, from the predicates the KPI engine itself uses.

use super::{t, target_of, Input, KpiMembership};
use crate::kpi::coverage::NO_PRODUCT_LINE;
use crate::kpi::findings::{has_inconsistent_times, is_fix, open_as_of, resolved_in, UNMAPPED};
use crate::kpi::scope::{Attach, Scope};
use crate::kpi::{age_days, seconds_between, KpiId};
use secmetrics_connectors::{Kind, Severity, Status, Validity};

const MTTR: &str = "mttr";
const SLA: &str = "sla_attainment";
const BREACHED: &str = "sla_attainment.open_breached";
const AGING: &str = "findings_aging";
const INCONSISTENT: &str = "inconsistent_findings";
const DOWNGRADES: &str = "severity_downgrades";

fn entry(kpi: &str, status: &str, detail: String) -> KpiMembership {
    KpiMembership {
        kpi: kpi.into(),
        status: status.into(),
        detail,
    }
}

fn counts(kpi: &str, detail: String) -> KpiMembership {
    entry(kpi, "counts", detail)
}

fn no(kpi: &str, detail: String) -> KpiMembership {
    entry(kpi, "no", detail)
}

fn day(t: &secmetrics_connectors::Time) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The KPI figures of the record's kind, each with whether it counts.
pub fn membership(input: &Input<'_>, position: Option<usize>) -> Vec<KpiMembership> {
    let kind = input.identity.kind;
    if kind != Kind::Finding {
        let kpi = match kind {
            Kind::Asset | Kind::Review => "security_review_coverage, design_review_coverage",
            Kind::ThreatModel => "threat_model_coverage",
            Kind::Repo | Kind::SecretAlert => "secret_exposure",
            Kind::Exception => "exception_debt",
            Kind::Release => "release_gate",
            Kind::Incident => "detection_triage",
            Kind::Finding => unreachable!("handled below"),
        };
        return vec![entry(
            kpi,
            "not_evaluated",
            format!(
                "explain follows findings through reconciliation and the finding KPIs; a {kind} counts in {kpi} by its own fields"
            ),
        )];
    }
    let all = [MTTR, SLA, BREACHED, AGING, INCONSISTENT, DOWNGRADES];
    if let Some(gone) = input.stored.gone_at_us {
        let why = format!(
            "gone since {}: the source no longer returns it, so it counts nowhere",
            crate::store::time_text(gone)
        );
        return all.iter().map(|k| no(k, why.clone())).collect();
    }
    let Some(position) = position else {
        return Vec::new();
    };
    let estate = &input.reconciled.estate;
    let f = &estate.findings[position];
    let scope = Scope::new(estate);
    let product_line = match scope.asset(&f.asset) {
        Attach::Out => {
            let why = format!(
                "asset `{}` is out of scope (in_scope: false): its records are left out of every KPI",
                f.asset
            );
            return all.iter().map(|k| no(k, why.clone())).collect();
        }
        Attach::Known(a) => a
            .and_then(|a| a.product_line.clone())
            .unwrap_or_else(|| NO_PRODUCT_LINE.into()),
        Attach::Unmapped => format!("{UNMAPPED} (no asset record defines `{}`)", f.asset),
    };
    let group = input.reconciled.decisions.group_of(position);
    let excluded = f.validity.is_excluded().then(|| match (f.validity, group) {
        (Validity::Duplicate, Some(g)) if g.canonical() as usize != position => format!(
            "validity duplicate: duplicate of {}, the canonical member of its group",
            target_of(&estate.findings[g.canonical() as usize])
        ),
        (Validity::Duplicate, _) => format!(
            "validity duplicate (duplicate of `{}`)",
            f.duplicate_of.as_deref().unwrap_or("?")
        ),
        (v, Some(g)) if g.canonical() as usize == position && g.before[0].validity != v => {
            format!("validity {v}, decided on a linked finding of its group")
        }
        (v, _) => format!("validity {v}"),
    });
    let period = input.period;
    let cfg = input.kpi;
    let end = period.end;
    let resolved_here = resolved_in(f, period);
    let not_resolved_here = || match f.resolved_at {
        None => format!("not resolved (status {})", f.status),
        Some(r) => format!("resolved on {}, outside the period", day(&r)),
    };
    let inconsistent_text = || {
        format!(
            "inconsistent times: resolved on {} before it was opened on {}; counted in inconsistent_findings",
            day(&f.resolved_at.unwrap_or(f.opened_at)),
            day(&f.opened_at)
        )
    };
    let not_a_fix = || format!("status {} is not a fix (remediated or mitigated)", f.status);
    let sla_days = cfg.sla_days.of(f.severity);
    let days = f
        .resolved_at
        .map(|r| seconds_between(f.opened_at, r) / 86_400.0);
    let not_shown = |id: KpiId| {
        (!cfg.maturity.shows(id)).then(|| {
            no(
                id.as_str(),
                format!("not shown at maturity {:?}", cfg.maturity).to_lowercase(),
            )
        })
    };
    let mut out = Vec::new();

    out.push(not_shown(KpiId::Mttr).unwrap_or_else(|| {
        if !resolved_here {
            no(MTTR, not_resolved_here())
        } else if let Some(why) = &excluded {
            entry(
                MTTR,
                "excluded",
                format!("counted in mttr.excluded.{}: {why}", f.validity),
            )
        } else if !is_fix(f) {
            no(MTTR, not_a_fix())
        } else if has_inconsistent_times(f) {
            no(MTTR, inconsistent_text())
        } else if !matches!(
            f.severity,
            Severity::Critical | Severity::High | Severity::Medium
        ) {
            no(
                MTTR,
                format!(
                    "severity {}: mttr covers critical, high and medium",
                    f.severity
                ),
            )
        } else {
            counts(
                MTTR,
                format!(
                    "by_severity.{}.{}: {} days from {} to {}",
                    f.severity,
                    f.environment,
                    days.unwrap_or_default(),
                    t(&f.opened_at),
                    f.resolved_at.as_ref().map(t).unwrap_or_default()
                ),
            )
        }
    }));

    out.push(not_shown(KpiId::SlaAttainment).unwrap_or_else(|| {
        if !resolved_here {
            no(SLA, not_resolved_here())
        } else if let Some(why) = &excluded {
            no(SLA, format!("excluded: {why}"))
        } else if !is_fix(f) {
            no(SLA, not_a_fix())
        } else if has_inconsistent_times(f) {
            no(SLA, inconsistent_text())
        } else if let Some(limit) = sla_days {
            let within = f
                .resolved_at
                .is_some_and(|r| r - f.opened_at <= chrono::TimeDelta::days(i64::from(limit)));
            counts(
                SLA,
                format!(
                    "closed ({}): {} its {limit}-day SLA ({} days)",
                    f.severity,
                    if within { "within" } else { "outside" },
                    days.unwrap_or_default()
                ),
            )
        } else {
            no(SLA, format!("severity {} has no SLA", f.severity))
        }
    }));

    let open = open_as_of(f, end);
    let not_open = || {
        if f.opened_at >= end {
            format!(
                "opened on {}, not before the end of the period",
                day(&f.opened_at)
            )
        } else if f.status == Status::RiskAccepted {
            "status risk_accepted: exception debt, not backlog".to_string()
        } else {
            format!(
                "resolved on {}, before the end of the period",
                day(&f.resolved_at.unwrap_or(f.opened_at))
            )
        }
    };
    let age = age_days(end, f.opened_at);
    out.push(not_shown(KpiId::SlaAttainment).map_or_else(
        || {
            if !open {
                no(BREACHED, not_open())
            } else if let Some(why) = &excluded {
                no(BREACHED, format!("excluded: {why}"))
            } else if let Some(limit) = sla_days {
                if age > i64::from(limit) {
                    counts(
                        BREACHED,
                        format!(
                            "open_breached.{}: age {age} days > {limit}-day SLA",
                            f.severity
                        ),
                    )
                } else {
                    no(
                        BREACHED,
                        format!("open, age {age} days, within its {limit}-day SLA"),
                    )
                }
            } else {
                no(BREACHED, format!("severity {} has no SLA", f.severity))
            }
        },
        |mut e| {
            e.kpi = BREACHED.into();
            e
        },
    ));

    out.push(not_shown(KpiId::FindingsAging).unwrap_or_else(|| {
        if !open {
            no(AGING, not_open())
        } else if let Some(why) = &excluded {
            entry(
                AGING,
                "excluded",
                format!("counted in findings_aging.excluded.{}: {why}", f.validity),
            )
        } else {
            let bucket = match age {
                a if a <= 30 => "0_30",
                a if a <= 90 => "31_90",
                _ => "over_90",
            };
            counts(
                AGING,
                format!(
                    "bucket {bucket} (age {age} days) of severity {}, domain {}, environment {}, product line {product_line}",
                    f.severity, f.domain, f.environment
                ),
            )
        }
    }));

    let inconsistent =
        resolved_here && excluded.is_none() && is_fix(f) && has_inconsistent_times(f);
    out.push(if inconsistent {
        counts(
            INCONSISTENT,
            format!(
                "resolved on {} before it was opened on {}: left out of mttr and sla_attainment",
                t(&f.resolved_at.unwrap_or(f.opened_at)),
                t(&f.opened_at)
            ),
        )
    } else if !has_inconsistent_times(f) {
        no(
            INCONSISTENT,
            match f.resolved_at {
                None => "not resolved".into(),
                Some(_) => "resolved_at is not before opened_at".into(),
            },
        )
    } else if !resolved_here {
        no(INCONSISTENT, not_resolved_here())
    } else if let Some(why) = &excluded {
        no(INCONSISTENT, format!("excluded: {why}"))
    } else {
        no(INCONSISTENT, not_a_fix())
    });

    let lowered: Vec<String> = {
        let mut changes: Vec<_> = estate
            .severity_changes
            .iter()
            .filter(|c| c.source == f.source && c.id == f.id)
            .filter(|c| period.contains(c.observed_at) && c.to.rank() < c.from.rank())
            .collect();
        changes.sort_by_key(|c| c.observed_at);
        changes
            .iter()
            .map(|c| {
                format!(
                    "lowered from {} to {} at {}",
                    c.from,
                    c.to,
                    t(&c.observed_at)
                )
            })
            .collect()
    };
    out.push(if lowered.is_empty() {
        no(
            DOWNGRADES,
            "no lowering of its severity observed in the period".into(),
        )
    } else {
        counts(DOWNGRADES, lowered.join("; "))
    });
    out
}
