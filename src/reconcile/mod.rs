//! Reconciliation (kpi-spec, "Reconciliation"): between the store and the
//! KPI engine, findings that describe the same weakness are grouped, one
//! canonical member counts for the group with fields merged from all of
//! it, and the others count as its duplicates. Manual overrides apply to
//! records before this stage. Pure and deterministic: the result depends
//! on the set of records, never on their order or on the period.
//!
//! Every decision is kept ([`Reconciliation`]) so `secmetrics explain` can
//! say which rule chose the canonical member and where each merged field
//! came from.

mod links;
pub mod overrides;

#[cfg(test)]
mod tests;

use crate::estate::{Estate, FixedAndOpen};
use crate::store::Store;
use secmetrics_connectors::{Finding, Status, Time, Validity};
use serde::Deserialize;
use std::cmp::Ordering;

/// `[reconcile]`: how linked findings are reconciled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Source names (connector instances, `import`, `push`) in the order in
    /// which they are trusted to be a group's canonical member: the first
    /// listed wins; sources not listed come after all listed ones. Default
    /// empty: a ticket that points at the evidence (non-empty `refs`) wins,
    /// then the earliest `opened_at`.
    pub precedence: Vec<String>,
}

impl ReconcileConfig {
    /// Position of `source` in the precedence list (unlisted: after all).
    fn rank(&self, source: &str) -> usize {
        self.precedence
            .iter()
            .position(|s| s == source)
            .unwrap_or(self.precedence.len())
    }
}

/// The criterion of rule 2 that puts one member of a group before another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// (i) Its source comes earlier in `reconcile.precedence`.
    Precedence,
    /// (ii) It has non-empty `refs` (a ticket pointing at the evidence).
    Refs,
    /// (iii) It was opened earlier.
    OpenedAt,
    /// (iv) Its source name is smaller (byte order).
    Source,
    /// (iv) Its id is smaller (byte order).
    Id,
}

impl Rule {
    /// The rule in words, for explanations.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::Precedence => "its source comes first in reconcile.precedence",
            Rule::Refs => "it has refs (a ticket that points at the evidence comes first)",
            Rule::OpenedAt => "it has the earliest opened_at",
            Rule::Source => "its source name is the smallest (byte order)",
            Rule::Id => "its id is the smallest (byte order)",
        }
    }
}

/// A member's fields as they were before reconciliation changed them (the
/// record after overrides), for explanations.
#[derive(Debug, Clone, PartialEq)]
pub struct Before {
    /// Its own first detection.
    pub opened_at: Time,
    /// Its own status.
    pub status: Status,
    /// Its own resolution time.
    pub resolved_at: Option<Time>,
    /// Its own validity.
    pub validity: Validity,
}

/// One group of two or more linked findings and what was decided for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Positions in `Estate::findings`, in the order of rule 2: the first is
    /// the canonical member.
    pub members: Vec<u32>,
    /// Each member's fields before reconciliation (same order).
    pub before: Vec<Before>,
    /// The criterion that put the canonical member before the second.
    pub rule: Rule,
    /// Member (index into `members`) whose `opened_at` the group takes.
    pub opened_from: usize,
    /// Member whose validity the group takes; `None` when every member is
    /// `unverified`.
    pub validity_from: Option<usize>,
    /// Member whose status and `resolved_at` the group takes: the earliest
    /// fix; `None` when no member is fixed (the canonical's own then).
    pub fixed_by: Option<usize>,
}

impl Group {
    /// Position of the canonical member in `Estate::findings`.
    pub fn canonical(&self) -> u32 {
        self.members[0]
    }
}

/// Every decision of one reconciliation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciliation {
    /// The groups, in the order of their first member's position.
    pub groups: Vec<Group>,
    /// For each finding position, its group (`u32::MAX`: no links).
    group_of: Vec<u32>,
}

impl Reconciliation {
    /// The group of the finding at `position`, if it has links.
    pub fn group_of(&self, position: usize) -> Option<&Group> {
        let g = *self.group_of.get(position)?;
        self.groups.get(g as usize)
    }
}

/// An estate whose findings are reconciled, with the decisions.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    /// The estate the KPI engine reads.
    pub estate: Estate,
    /// What was decided, for explanations.
    pub decisions: Reconciliation,
}

fn is_fixed(status: Status, resolved_at: Option<Time>) -> bool {
    matches!(status, Status::Remediated | Status::Mitigated) && resolved_at.is_some()
}

/// Rule 2 between two findings: `Less` when `a` comes first, with the
/// criterion that decided.
fn order(cfg: &ReconcileConfig, a: &Finding, b: &Finding) -> (Ordering, Rule) {
    let steps = [
        (
            cfg.rank(&a.source).cmp(&cfg.rank(&b.source)),
            Rule::Precedence,
        ),
        // Non-empty refs first.
        (a.refs.is_empty().cmp(&b.refs.is_empty()), Rule::Refs),
        (a.opened_at.cmp(&b.opened_at), Rule::OpenedAt),
        (a.source.as_bytes().cmp(b.source.as_bytes()), Rule::Source),
        (a.id.as_bytes().cmp(b.id.as_bytes()), Rule::Id),
    ];
    steps
        .into_iter()
        .find(|(o, _)| o.is_ne())
        .unwrap_or((Ordering::Equal, Rule::Id))
}

/// The criterion of rule 2 by which `first` comes before `other`.
pub fn deciding_rule(cfg: &ReconcileConfig, first: &Finding, other: &Finding) -> Rule {
    order(cfg, first, other).1
}

/// Reconcile the findings of `estate` in place (rules 1 to 4 and 6 of the
/// spec) and return the decisions. The same records in any order give the
/// same findings and decisions (it runs on the records as stored, never on
/// its own output).
pub fn reconcile(estate: &mut Estate, cfg: &ReconcileConfig) -> Reconciliation {
    let findings = &mut estate.findings;
    let groups: Vec<Group> = links::groups(findings)
        .into_iter()
        .map(|mut members| {
            members.sort_unstable_by(|&a, &b| {
                order(cfg, &findings[a as usize], &findings[b as usize]).0
            });
            decide(cfg, findings, members)
        })
        .collect();
    let mut group_of = vec![u32::MAX; findings.len()];
    estate.fixed_and_open.clear();
    for (gi, g) in groups.iter().enumerate() {
        for &m in &g.members {
            group_of[m as usize] = gi as u32;
        }
        apply(findings, g);
        if let Some(w) = fixed_and_open(findings, g) {
            estate.fixed_and_open.push(w);
        }
    }
    // Groups stay in the order of their first member's position (lookups
    // only); what is reported is sorted by identity, whatever the input order.
    estate.fixed_and_open.sort_by(|a, b| {
        (a.source.as_bytes(), a.id.as_bytes()).cmp(&(b.source.as_bytes(), b.id.as_bytes()))
    });
    Reconciliation { groups, group_of }
}

/// Rules 2 and 3 for one group whose members are already in rule-2 order.
fn decide(cfg: &ReconcileConfig, findings: &[Finding], members: Vec<u32>) -> Group {
    let f = |i: usize| &findings[members[i] as usize];
    let rule = order(cfg, f(0), f(1)).1;
    // The first of the earliest: ties keep rule-2 order.
    let opened_from = (0..members.len())
        .min_by_key(|&i| (f(i).opened_at, i))
        .unwrap_or(0);
    let validity_from = (0..members.len()).find(|&i| f(i).validity != Validity::Unverified);
    let fixed_by = (0..members.len())
        .filter(|&i| is_fixed(f(i).status, f(i).resolved_at))
        .min_by_key(|&i| (f(i).resolved_at, i));
    let before = members
        .iter()
        .map(|&m| {
            let x = &findings[m as usize];
            Before {
                opened_at: x.opened_at,
                status: x.status,
                resolved_at: x.resolved_at,
                validity: x.validity,
            }
        })
        .collect();
    Group {
        members,
        before,
        rule,
        opened_from,
        validity_from,
        fixed_by,
    }
}

/// Write the group's decisions into its members (rules 3 and 4).
fn apply(findings: &mut [Finding], g: &Group) {
    let b = |i: usize| &g.before[i];
    let opened_at = b(g.opened_from).opened_at;
    let validity = g
        .validity_from
        .map_or(Validity::Unverified, |i| b(i).validity);
    let (status, resolved_at) = match g.fixed_by {
        Some(i) => (b(i).status, b(i).resolved_at),
        None => (b(0).status, b(0).resolved_at),
    };
    let canonical = &mut findings[g.canonical() as usize];
    canonical.opened_at = opened_at;
    canonical.validity = validity;
    canonical.status = status;
    canonical.resolved_at = resolved_at;
    let canonical_id = canonical.id.clone();
    for &m in &g.members[1..] {
        let f = &mut findings[m as usize];
        f.validity = Validity::Duplicate;
        f.duplicate_of = Some(canonical_id.clone());
    }
}

/// Rule 6: a group with a fixed member and a member still open.
fn fixed_and_open(findings: &[Finding], g: &Group) -> Option<FixedAndOpen> {
    let is_fixed = |b: &Before| matches!(b.status, Status::Remediated | Status::Mitigated);
    if !g.before.iter().any(is_fixed) || !g.before.iter().any(|b| b.status == Status::Open) {
        return None;
    }
    let name = |i: usize| {
        let f = &findings[g.members[i] as usize];
        (f.source.clone(), f.id.clone())
    };
    let fixed: Vec<_> = (0..g.members.len())
        .filter(|&i| is_fixed(&g.before[i]))
        .map(name)
        .collect();
    let open: Vec<_> = (0..g.members.len())
        .filter(|&i| g.before[i].status == Status::Open)
        .map(name)
        .collect();
    let (source, id) = name(0);
    Some(FixedAndOpen {
        source,
        id,
        asset: findings[g.canonical() as usize].asset.clone(),
        fixed,
        open,
    })
}

/// The estate of `store` as the KPI engine reads it: current records,
/// manual overrides applied, findings reconciled. Every path that computes
/// a pack goes through here.
pub fn load(store: &Store, cfg: &ReconcileConfig) -> Result<Reconciled, crate::store::StoreError> {
    let mut estate = store.load_estate()?;
    let active = store.overrides()?;
    overrides::apply(&mut estate, &active);
    let decisions = reconcile(&mut estate, cfg);
    Ok(Reconciled { estate, decisions })
}
