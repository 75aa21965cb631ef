//! `explain`: why one record counts where it counts. The record as stored,
//! its change history and overrides, its reconciliation group with the rule
//! that chose the canonical member and where each merged field came from,
//! and for a period which KPIs it counts in and, for each it does not, why.
//! Built from the same reconciled estate and predicates the KPI engine
//! uses, so the answer cannot drift from the pack.

mod kpis;
pub mod text;

use crate::kpi::{KpiConfig, Period};
use crate::reconcile::overrides::{parse_target, OverrideError, OverrideView};
use crate::reconcile::{self, ReconcileConfig, Reconciled};
use crate::store::{self, OverrideChange, Store};
use secmetrics_connectors::{Finding, Identity, Record, Time};
use serde::{Deserialize, Serialize};

/// One change of a tracked field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryView {
    /// Field (status, severity, validity).
    pub field: String,
    /// Value before.
    pub old: String,
    /// Value after.
    pub new: String,
    /// When the change was observed (RFC 3339).
    pub observed_at: String,
}

/// One override set or removed on the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideLogView {
    /// `set` or `removed`.
    pub action: String,
    /// Who.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Validity set (for `set`).
    pub validity: Option<String>,
    /// Severity set (for `set`).
    pub severity: Option<String>,
    /// Why (for `set`).
    pub reason: Option<String>,
}

/// A member of the record's group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    /// `finding/SOURCE/ID`.
    pub target: String,
    /// Asset.
    pub asset: String,
    /// Its own opened_at (RFC 3339).
    pub opened_at: String,
    /// Its own status.
    pub status: String,
    /// Its own resolved_at.
    pub resolved_at: Option<String>,
    /// Its own validity (after overrides, before reconciliation).
    pub validity: String,
    /// Its links to other members, in words.
    pub links: Vec<String>,
    /// For members after the first: the rule-2 criterion by which the
    /// canonical member comes before it.
    pub behind_canonical_by: Option<String>,
}

/// A merged field: its value and the member it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedField {
    /// The value the group counts with.
    pub value: Option<String>,
    /// `finding/SOURCE/ID` of the member it came from, or how it was decided.
    pub from: String,
}

/// The record's reconciliation group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    /// `alone` (no links), `canonical` or `duplicate`.
    pub role: String,
    /// `finding/SOURCE/ID` of the canonical member.
    pub canonical: String,
    /// The rule that chose it (rule-2 criterion against the second member).
    pub rule: Option<String>,
    /// That rule in words.
    pub rule_text: Option<String>,
    /// `reconcile.precedence` as configured.
    pub precedence: Vec<String>,
    /// Members in rule-2 order (canonical first), at most
    /// [`MEMBERS_SHOWN`]; empty when alone.
    pub members: Vec<MemberView>,
    /// How many members the group has.
    pub members_total: usize,
    /// The group's opened_at.
    pub opened_at: Option<MergedField>,
    /// The group's validity.
    pub validity: Option<MergedField>,
    /// The group's status and resolved_at.
    pub status: Option<MergedField>,
    /// The group's resolved_at.
    pub resolved_at: Option<MergedField>,
    /// Active overrides on other members of the group.
    pub member_overrides: Vec<OverrideView>,
}

/// Whether the record counts in one KPI figure for the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiMembership {
    /// KPI id, or KPI field (`sla_attainment.open_breached`,
    /// `inconsistent_findings`, `severity_downgrades`).
    pub kpi: String,
    /// `counts`, `excluded` (in the KPI's `excluded` counters) or `no`.
    pub status: String,
    /// Where it counts, or why not.
    pub detail: String,
}

/// Everything `explain` says about one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// `KIND/SOURCE/ID`.
    pub target: String,
    /// The record as stored (records.md JSON), before overrides.
    pub record: serde_json::Value,
    /// When the identity was first stored (RFC 3339).
    pub first_seen: String,
    /// When the stored version last changed.
    pub last_changed: String,
    /// When a full resync found it gone, if it did.
    pub gone_at: Option<String>,
    /// Every change of status, severity or validity, oldest first.
    pub history: Vec<HistoryView>,
    /// The override in force, if any.
    pub active_override: Option<OverrideView>,
    /// Every override set or removed on it, oldest first.
    pub overrides: Vec<OverrideLogView>,
    /// Its reconciliation (findings only).
    pub group: Option<GroupView>,
    /// The finding as the KPI engine reads it (after overrides and
    /// reconciliation); `None` when gone or not a finding.
    pub counted_as: Option<serde_json::Value>,
    /// The period asked about: `start`, `end`, `label`.
    pub period: serde_json::Value,
    /// Membership per KPI figure for the period (findings; other kinds
    /// say which KPI reads them).
    pub kpis: Vec<KpiMembership>,
}

/// Why an explanation cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// Bad target or store failure.
    #[error(transparent)]
    Target(#[from] OverrideError),
    /// No such record.
    #[error("no record {0} in the store (`secmetrics status` lists kinds and sources)")]
    NoRecord(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Explain `target` for `period` from the store (loading and reconciling
/// the whole estate, as a report does).
pub fn from_store(
    store: &Store,
    target: &str,
    period: &Period,
    kpi: &KpiConfig,
    rec: &ReconcileConfig,
) -> Result<Explanation, ExplainError> {
    let identity = parse_target(target)?;
    let Some(stored) = store.get(&identity)? else {
        return Err(ExplainError::NoRecord(identity.to_string()));
    };
    let reconciled = reconcile::load(store, rec)?;
    let input = Input {
        identity: &identity,
        stored: &stored,
        history: store.history(&identity)?,
        active_override: store.override_of(&identity)?,
        override_log: store.override_log(&identity)?,
        all_overrides: store.overrides()?,
        reconciled: &reconciled,
        period,
        kpi,
        rec,
    };
    Ok(build(&input))
}

/// What an explanation is built from.
pub struct Input<'a> {
    /// The record.
    pub identity: &'a Identity,
    /// Its stored version.
    pub stored: &'a store::StoredRecord,
    /// Its history.
    pub history: Vec<store::HistoryEntry>,
    /// Its active override.
    pub active_override: Option<store::Override>,
    /// Its override log.
    pub override_log: Vec<OverrideChange>,
    /// Every active override (for the other members of its group).
    pub all_overrides: Vec<(Identity, store::Override)>,
    /// The reconciled estate and decisions.
    pub reconciled: &'a Reconciled,
    /// The period.
    pub period: &'a Period,
    /// KPI configuration.
    pub kpi: &'a KpiConfig,
    /// Reconciliation configuration.
    pub rec: &'a ReconcileConfig,
}

/// At most this many members of a group are listed (a group can be large
/// when many findings share a fingerprint).
pub const MEMBERS_SHOWN: usize = 100;

fn t(time: &Time) -> String {
    crate::kpi::period::rfc3339(time)
}

fn target_of(f: &Finding) -> String {
    format!("finding/{}/{}", f.source, f.id)
}

/// Build the explanation (pure).
pub fn build(input: &Input<'_>) -> Explanation {
    let identity = input.identity;
    let history = input
        .history
        .iter()
        .map(|h| HistoryView {
            field: h.field.clone(),
            old: h.old.clone(),
            new: h.new.clone(),
            observed_at: t(&h.observed_at()),
        })
        .collect();
    let overrides = input
        .override_log
        .iter()
        .map(|c| match c {
            OverrideChange::Set(o) => OverrideLogView {
                action: "set".into(),
                by: o.by.clone(),
                at: store::time_text(o.at_us),
                validity: Some(o.validity.as_str().into()),
                severity: o.severity.map(|s| s.as_str().into()),
                reason: Some(o.reason.clone()),
            },
            OverrideChange::Removed { by, at_us } => OverrideLogView {
                action: "removed".into(),
                by: by.clone(),
                at: store::time_text(*at_us),
                validity: None,
                severity: None,
                reason: None,
            },
        })
        .collect();
    let gone = input.stored.gone_at_us;
    let estate = &input.reconciled.estate;
    let position = match (&input.stored.record, gone) {
        (Record::Finding(f), None) => estate
            .findings
            .iter()
            .position(|x| x.source == f.source && x.id == f.id),
        _ => None,
    };
    let group = position.map(|p| group_view(input, p));
    let counted_as = position.map(|p| Record::Finding(estate.findings[p].clone()).to_json());
    let kpis = kpis::membership(input, position);
    Explanation {
        target: identity.to_string(),
        record: input.stored.record.to_json(),
        first_seen: store::time_text(input.stored.first_seen_us),
        last_changed: store::time_text(input.stored.last_changed_us),
        gone_at: gone.map(store::time_text),
        history,
        active_override: input
            .active_override
            .as_ref()
            .map(|o| OverrideView::new(identity, o)),
        overrides,
        group,
        counted_as,
        period: serde_json::json!({
            "start": t(&input.period.start),
            "end": t(&input.period.end),
            "label": input.period.label(),
        }),
        kpis,
    }
}

fn group_view(input: &Input<'_>, position: usize) -> GroupView {
    let estate = &input.reconciled.estate;
    let me = &estate.findings[position];
    let precedence = input.rec.precedence.clone();
    let Some(g) = input.reconciled.decisions.group_of(position) else {
        return GroupView {
            role: "alone".into(),
            canonical: target_of(me),
            rule: None,
            rule_text: Some(
                "no other finding shares its asset and fingerprint, names its url in refs, or has a url its refs name"
                    .into(),
            ),
            precedence,
            members: Vec::new(),
            members_total: 1,
            opened_at: None,
            validity: None,
            status: None,
            resolved_at: None,
            member_overrides: Vec::new(),
        };
    };
    let member = |i: usize| &estate.findings[g.members[i] as usize];
    let canonical = member(0);
    // Rule-2 comparisons use each member's own values (before merging).
    let own = |i: usize| {
        let mut f = member(i).clone();
        f.opened_at = g.before[i].opened_at;
        f
    };
    let first = own(0);
    let mine = g
        .members
        .iter()
        .position(|&m| m as usize == position)
        .unwrap_or(0);
    let shown: Vec<usize> = (0..g.members.len().min(MEMBERS_SHOWN))
        .chain((mine >= MEMBERS_SHOWN).then_some(mine))
        .collect();
    let members: Vec<MemberView> = shown
        .into_iter()
        .map(|i| {
            let f = member(i);
            let b = &g.before[i];
            MemberView {
                target: target_of(f),
                asset: f.asset.clone(),
                opened_at: t(&b.opened_at),
                status: b.status.as_str().into(),
                resolved_at: b.resolved_at.as_ref().map(t),
                validity: b.validity.as_str().into(),
                links: links_of(g, estate, i),
                behind_canonical_by: (i > 0).then(|| {
                    let rule = reconcile::deciding_rule(input.rec, &first, &own(i));
                    serde_plain(rule)
                }),
            }
        })
        .collect();
    let from = |i: usize| target_of(member(i));
    let b0 = &g.before[0];
    let validity = match g.validity_from {
        Some(0) => MergedField {
            value: Some(b0.validity.as_str().into()),
            from: from(0),
        },
        Some(i) => MergedField {
            value: Some(g.before[i].validity.as_str().into()),
            from: format!(
                "{} (the canonical member is unverified; the first decided member in rule-2 order)",
                from(i)
            ),
        },
        None => MergedField {
            value: Some("unverified".into()),
            from: "every member is unverified".into(),
        },
    };
    let (status, resolved_at) = match g.fixed_by {
        Some(i) => {
            let b = &g.before[i];
            let why = format!("{} (the earliest fix in the group)", from(i));
            (
                MergedField {
                    value: Some(b.status.as_str().into()),
                    from: why.clone(),
                },
                MergedField {
                    value: b.resolved_at.as_ref().map(t),
                    from: why,
                },
            )
        }
        None => {
            let why = format!("{} (no member is remediated or mitigated)", from(0));
            (
                MergedField {
                    value: Some(b0.status.as_str().into()),
                    from: why.clone(),
                },
                MergedField {
                    value: b0.resolved_at.as_ref().map(t),
                    from: why,
                },
            )
        }
    };
    let in_group: std::collections::HashSet<(&str, &str)> = g
        .members
        .iter()
        .map(|&m| {
            let f = &estate.findings[m as usize];
            (f.source.as_str(), f.id.as_str())
        })
        .collect();
    let member_overrides = input
        .all_overrides
        .iter()
        .filter(|(i, _)| {
            i.kind == secmetrics_connectors::Kind::Finding
                && (i.source != me.source || i.id != me.id)
                && in_group.contains(&(i.source.as_str(), i.id.as_str()))
        })
        .map(|(i, o)| OverrideView::new(i, o))
        .collect();
    GroupView {
        role: if g.canonical() as usize == position {
            "canonical".into()
        } else {
            "duplicate".into()
        },
        canonical: target_of(canonical),
        rule: Some(serde_plain(g.rule)),
        rule_text: Some(format!(
            "{} is canonical: {}",
            target_of(canonical),
            g.rule.describe()
        )),
        precedence,
        members,
        members_total: g.members.len(),
        opened_at: Some(MergedField {
            value: Some(t(&g.before[g.opened_from].opened_at)),
            from: format!("{} (the earliest opened_at)", from(g.opened_from)),
        }),
        validity: Some(validity),
        status: Some(status),
        resolved_at: Some(resolved_at),
        member_overrides,
    }
}

fn serde_plain(rule: reconcile::Rule) -> String {
    serde_json::to_value(rule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The direct links of member `i` to the other members, in words.
fn links_of(g: &reconcile::Group, estate: &crate::estate::Estate, i: usize) -> Vec<String> {
    let f = &estate.findings[g.members[i] as usize];
    let mut out = Vec::new();
    let others = g
        .members
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, &m)| &estate.findings[m as usize]);
    for o in others {
        if let (Some(a), Some(b)) = (f.fingerprint.as_deref(), o.fingerprint.as_deref()) {
            if !a.is_empty() && a == b && f.asset == o.asset {
                out.push(format!(
                    "same asset `{}` and fingerprint `{a}` as {}",
                    f.asset,
                    target_of(o)
                ));
            }
        }
        if let Some(url) = o.url.as_deref() {
            if f.refs.iter().any(|r| r == url) {
                out.push(format!("refs `{url}`, the url of {}", target_of(o)));
            }
        }
        if let Some(url) = f.url.as_deref() {
            if o.refs.iter().any(|r| r == url) {
                out.push(format!(
                    "its url `{url}` is in the refs of {}",
                    target_of(o)
                ));
            }
        }
    }
    out
}
