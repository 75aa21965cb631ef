//! Manual overrides applied to findings before reconciliation: the
//! validity (and severity, when set) a person decided replaces the
//! source's. A severity lowered by hand is a downgrade like one observed
//! from a source, stamped with the time the override was set.

use crate::estate::{Estate, SeverityChange};
use crate::store::{codec, Override};
use secmetrics_connectors::{Identity, Kind};
use std::collections::HashMap;

/// Apply the active overrides to the estate's findings. Overrides of
/// records not in the estate (gone, or not synced yet) change nothing.
pub fn apply(estate: &mut Estate, overrides: &[(Identity, Override)]) {
    let by_key: HashMap<(&str, &str), &Override> = overrides
        .iter()
        .filter(|(i, _)| i.kind == Kind::Finding)
        .map(|(i, o)| ((i.source.as_str(), i.id.as_str()), o))
        .collect();
    if by_key.is_empty() {
        return;
    }
    for f in &mut estate.findings {
        let Some(o) = by_key.get(&(f.source.as_str(), f.id.as_str())) else {
            continue;
        };
        f.validity = o.validity;
        if let Some(severity) = o.severity {
            let from = o.severity_before.unwrap_or(f.severity);
            if severity != from {
                estate.severity_changes.push(SeverityChange {
                    id: f.id.clone(),
                    source: f.source.clone(),
                    from,
                    to: severity,
                    observed_at: codec::time(o.at_us),
                });
            }
            f.severity = severity;
        }
    }
}

/// Why an override cannot be set or removed.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// The target is not `KIND/SOURCE/ID`.
    #[error("`{0}` is not KIND/SOURCE/ID (e.g. finding/jira/SEC-12)")]
    Target(String),
    /// Only findings have validity and severity.
    #[error("overrides apply to findings (validity and severity are finding fields), not to {0}")]
    NotAFinding(String),
    /// The store holds no such record.
    #[error("no record {0} in the store (`secmetrics status` lists kinds and sources)")]
    NoRecord(String),
    /// A reason is required.
    #[error("an override needs a reason (--reason TEXT)")]
    NoReason,
    /// An unknown validity or severity.
    #[error("{field}: unknown value {value:?} (expected one of {expected})")]
    Value {
        /// `validity` or `severity`.
        field: &'static str,
        /// What was given.
        value: String,
        /// The accepted values.
        expected: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Parse `KIND/SOURCE/ID` (the id may itself contain `/`).
pub fn parse_target(text: &str) -> Result<Identity, OverrideError> {
    let bad = || OverrideError::Target(text.to_string());
    let mut parts = text.splitn(3, '/');
    let (Some(kind), Some(source), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let kind = Kind::parse(kind).ok_or_else(bad)?;
    if source.is_empty() || id.is_empty() {
        return Err(bad());
    }
    Ok(Identity {
        kind,
        source: source.to_string(),
        id: id.to_string(),
    })
}

/// An override as the CLI and the admin API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OverrideView {
    /// `KIND/SOURCE/ID`.
    pub target: String,
    /// Validity set.
    pub validity: String,
    /// Severity set, if any.
    pub severity: Option<String>,
    /// The record's severity when it was set.
    pub severity_before: Option<String>,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

impl OverrideView {
    /// The view of one stored override.
    pub fn new(identity: &Identity, o: &Override) -> OverrideView {
        OverrideView {
            target: identity.to_string(),
            validity: o.validity.as_str().to_string(),
            severity: o.severity.map(|s| s.as_str().to_string()),
            severity_before: o.severity_before.map(|s| s.as_str().to_string()),
            reason: o.reason.clone(),
            by: o.by.clone(),
            at: crate::store::time_text(o.at_us),
        }
    }
}

/// A request to set an override (the body of `POST /api/v1/overrides`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SetOverride {
    /// `KIND/SOURCE/ID`.
    pub target: String,
    /// Validity to set, as in records.md (`false_positive`, ...).
    pub validity: String,
    /// Severity to set, if any (`critical` ... `info`).
    pub severity: Option<String>,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
}

/// Set an override on a stored finding at `now`. Returns the override it
/// replaced.
pub fn set(
    store: &crate::store::Store,
    req: &SetOverride,
    now: secmetrics_connectors::Time,
) -> Result<Option<OverrideView>, OverrideError> {
    let identity = parse_target(&req.target)?;
    if identity.kind != Kind::Finding {
        return Err(OverrideError::NotAFinding(identity.to_string()));
    }
    if req.reason.trim().is_empty() {
        return Err(OverrideError::NoReason);
    }
    use secmetrics_connectors::{Severity, Validity};
    let validity = Validity::parse(&req.validity).ok_or_else(|| OverrideError::Value {
        field: "validity",
        value: req.validity.clone(),
        expected: Validity::expected(),
    })?;
    let severity = req
        .severity
        .as_deref()
        .map(|s| {
            Severity::parse(s).ok_or_else(|| OverrideError::Value {
                field: "severity",
                value: s.to_string(),
                expected: Severity::expected(),
            })
        })
        .transpose()?;
    let Some(stored) = store.get(&identity)? else {
        return Err(OverrideError::NoRecord(identity.to_string()));
    };
    let severity_before = match &stored.record {
        secmetrics_connectors::Record::Finding(f) => Some(f.severity),
        _ => None,
    };
    let o = Override {
        validity,
        severity,
        reason: req.reason.trim().to_string(),
        by: req.by.clone(),
        at_us: now.timestamp_micros(),
        severity_before,
    };
    let replaced = store.set_override(&identity, &o)?;
    tracing::info!(target = %identity, validity = %o.validity, by = %o.by, "override set");
    Ok(replaced.map(|r| OverrideView::new(&identity, &r)))
}

/// Remove the override of `target`; `None` when there was none.
pub fn remove(
    store: &crate::store::Store,
    target: &str,
    by: &str,
    now: secmetrics_connectors::Time,
) -> Result<Option<OverrideView>, OverrideError> {
    let identity = parse_target(target)?;
    let removed = store.remove_override(&identity, by, now.timestamp_micros())?;
    if removed.is_some() {
        tracing::info!(target = %identity, by, "override removed");
    }
    Ok(removed.map(|r| OverrideView::new(&identity, &r)))
}

/// Every active override.
pub fn list(store: &crate::store::Store) -> Result<Vec<OverrideView>, OverrideError> {
    Ok(store
        .overrides()?
        .iter()
        .map(|(i, o)| OverrideView::new(i, o))
        .collect())
}
