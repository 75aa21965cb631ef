//! Manual overrides in their own trees: a person's validity (and optionally
//! severity) for one record, with who, why and when, plus a log of every
//! override set or removed. No sync, `--full` or import touches these
//! trees: they hold state no source can give back.

use super::{codec, keys, tx_error, Result, Store, StoreError};
use secmetrics_connectors::{Identity, Severity, Validity};
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

const TREE: &str = "overrides";
const LOG_TREE: &str = "override_log";

/// A person's decision on one record, applied before reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// The validity the record takes.
    pub validity: Validity,
    /// The severity it takes, when set.
    pub severity: Option<Severity>,
    /// Why (required).
    pub reason: String,
    /// Who: the OS user, or `--by`.
    pub by: String,
    /// When it was set (microseconds since the epoch).
    pub at_us: i64,
    /// The record's severity when the override was set, so that a severity
    /// lowered by hand counts as a downgrade like one from a source.
    pub severity_before: Option<Severity>,
}

/// One entry of the override log of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverrideChange {
    /// An override was set (or replaced the one before).
    Set(Override),
    /// The override was removed.
    Removed {
        /// Who removed it.
        by: String,
        /// When (microseconds since the epoch).
        at_us: i64,
    },
}

impl Store {
    fn override_trees(&self) -> Result<(sled::Tree, sled::Tree)> {
        Ok((self.db.open_tree(TREE)?, self.db.open_tree(LOG_TREE)?))
    }

    /// Set the override of `identity` (replacing any), logged, in one
    /// durable write. Returns the override it replaced.
    pub fn set_override(&self, identity: &Identity, o: &Override) -> Result<Option<Override>> {
        let change = OverrideChange::Set(o.clone());
        self.write_override(identity, Some(o), &change)
    }

    /// Remove the override of `identity`, logged with who and when. Returns
    /// the override removed (`None`: there was none, nothing is written).
    pub fn remove_override(
        &self,
        identity: &Identity,
        by: &str,
        at_us: i64,
    ) -> Result<Option<Override>> {
        if self.override_of(identity)?.is_none() {
            return Ok(None);
        }
        let change = OverrideChange::Removed {
            by: by.to_string(),
            at_us,
        };
        self.write_override(identity, None, &change)
    }

    fn write_override(
        &self,
        identity: &Identity,
        value: Option<&Override>,
        change: &OverrideChange,
    ) -> Result<Option<Override>> {
        let (tree, log) = self.override_trees()?;
        let key = keys::record_key(identity.kind, &identity.source, &identity.id);
        let log_key = keys::history_key(&key, self.db.generate_id()?, 0);
        let previous = (&tree, &log)
            .transaction(|(t, l)| {
                let previous = match value {
                    Some(o) => t.insert(key.as_slice(), codec::encode(o))?,
                    None => t.remove(key.as_slice())?,
                };
                l.insert(log_key.as_slice(), codec::encode(change))?;
                let previous = previous
                    .map(|b| codec::decode::<Override>(TREE, &b))
                    .transpose()
                    .map_err(ConflictableTransactionError::Abort)?;
                Ok(previous)
            })
            .map_err(tx_error)?;
        self.db.flush()?;
        Ok(previous)
    }

    /// The active override of one record.
    pub fn override_of(&self, identity: &Identity) -> Result<Option<Override>> {
        let (tree, _) = self.override_trees()?;
        let key = keys::record_key(identity.kind, &identity.source, &identity.id);
        tree.get(key)?.map(|b| codec::decode(TREE, &b)).transpose()
    }

    /// Every active override, in key order (kind, then source, then id).
    pub fn overrides(&self) -> Result<Vec<(Identity, Override)>> {
        let (tree, _) = self.override_trees()?;
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            let (kind, source, id) =
                keys::parse_record_key(&k).ok_or_else(|| StoreError::Corrupt {
                    tree: TREE,
                    message: "unreadable key".into(),
                })?;
            out.push((Identity { kind, source, id }, codec::decode(TREE, &v)?));
        }
        Ok(out)
    }

    /// Every override set or removed on one record, oldest first.
    pub fn override_log(&self, identity: &Identity) -> Result<Vec<OverrideChange>> {
        let (_, log) = self.override_trees()?;
        let key = keys::record_key(identity.kind, &identity.source, &identity.id);
        log.scan_prefix(keys::history_prefix(&key))
            .values()
            .map(|v| codec::decode(LOG_TREE, &v?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmetrics_connectors::Kind;

    fn id(s: &str) -> Identity {
        Identity {
            kind: Kind::Finding,
            source: "jira".into(),
            id: s.into(),
        }
    }

    fn o(v: Validity, at_us: i64) -> Override {
        Override {
            validity: v,
            severity: Some(Severity::Low),
            reason: "triaged".into(),
            by: "alice".into(),
            at_us,
            severity_before: Some(Severity::High),
        }
    }

    #[test]
    fn overrides_are_set_replaced_listed_removed_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store
                .set_override(&id("A/1"), &o(Validity::Valid, 1))
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .set_override(&id("A/1"), &o(Validity::FalsePositive, 2))
                .unwrap(),
            Some(o(Validity::Valid, 1))
        );
        store
            .set_override(&id("B"), &o(Validity::Invalid, 3))
            .unwrap();
        let all = store.overrides().unwrap();
        assert_eq!(
            all,
            vec![
                (id("A/1"), o(Validity::FalsePositive, 2)),
                (id("B"), o(Validity::Invalid, 3))
            ]
        );
        assert_eq!(
            store.remove_override(&id("A/1"), "bob", 4).unwrap(),
            Some(o(Validity::FalsePositive, 2))
        );
        assert_eq!(store.remove_override(&id("A/1"), "bob", 5).unwrap(), None);
        assert_eq!(store.override_of(&id("A/1")).unwrap(), None);
        assert_eq!(
            store.override_log(&id("A/1")).unwrap(),
            vec![
                OverrideChange::Set(o(Validity::Valid, 1)),
                OverrideChange::Set(o(Validity::FalsePositive, 2)),
                OverrideChange::Removed {
                    by: "bob".into(),
                    at_us: 4
                },
            ]
        );
        // Another record's log is not mixed in (ids sharing a prefix).
        assert_eq!(store.override_log(&id("B")).unwrap().len(), 1);
    }
}
