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
