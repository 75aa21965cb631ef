//! The store's format, checked at every open: a marker in `meta` says
//! which layout of trees, keys and values wrote the store. A store from a
//! newer format is refused with what to do, never misread; a store from
//! before the marker is checked value by value once (every value carries
//! its own version byte) and then marked; a store a restore left
//! unfinished is refused.

use super::backup::RESTORE_MARKER;
use super::{codec, Result, Store, StoreError};

/// The store format this build writes and reads. Raise it when a change
/// makes a store unreadable (or misread) by earlier builds, and add the
/// step from the format before to [`Store::migrate`].
pub const STORE_FORMAT: u32 = 1;

/// The meta key of the format marker (a big-endian u32).
const FORMAT_KEY: &[u8] = b"store/format";

/// Value versions this build reads, per tree (first byte of each value).
/// `meta` holds plain facts (no version byte): the marker covers it.
const VALUE_VERSIONS: &[(&str, &[u8])] = &[
    ("records", &[1, codec::RECORD_FORMAT_VERSION]),
    ("history", &[codec::FORMAT_VERSION]),
    ("cursors", &[codec::FORMAT_VERSION]),
    ("connector_state", &[codec::FORMAT_VERSION]),
    ("snapshots", &[codec::FORMAT_VERSION]),
    ("outbox", &[codec::FORMAT_VERSION]),
    ("outbox_index", &[codec::FORMAT_VERSION]),
    ("overrides", &[codec::FORMAT_VERSION]),
    ("override_log", &[codec::FORMAT_VERSION]),
];

impl Store {
    /// Check the format marker (see the module documentation); write it on
    /// a new store or one from before the marker that this build reads.
    pub(super) fn check_format(&self) -> Result<()> {
        if self.meta.get(RESTORE_MARKER)?.is_some() {
            return Err(StoreError::RestoreIncomplete(self.path.clone()));
        }
        let found = match self.meta.get(FORMAT_KEY)? {
            Some(v) => {
                let bytes: [u8; 4] = v[..].try_into().map_err(|_| StoreError::Corrupt {
                    tree: "meta",
                    message: "the store format marker is not 4 bytes".into(),
                })?;
                u32::from_be_bytes(bytes)
            }
            // Before the marker: format 0, unless the store is new.
            None if self.db.tree_names().iter().all(|name| {
                self.db
                    .open_tree(name)
                    .map(|t| t.is_empty())
                    .unwrap_or(false)
            }) =>
            {
                STORE_FORMAT
            }
            None => 0,
        };
        if found > STORE_FORMAT {
            return Err(StoreError::NewerFormat {
                path: self.path.clone(),
                found,
                reads: STORE_FORMAT,
            });
        }
        if found < STORE_FORMAT {
            self.migrate(found)?;
        }
        if self.meta.get(FORMAT_KEY)?.is_none() || found < STORE_FORMAT {
            self.meta
                .insert(FORMAT_KEY, &STORE_FORMAT.to_be_bytes()[..])?;
            self.db.flush()?;
        }
        Ok(())
    }

    /// Bring a store of format `from` to [`STORE_FORMAT`].
    ///
    /// Format 0 (stores written before the marker) has the layout of
    /// format 1: every value is checked to carry a version this build
    /// reads (records of version 1, without `refs`, are read as they are
    /// and rewritten in version 2 when they next change), so a value of a
    /// newer build is refused here rather than misread later.
    fn migrate(&self, from: u32) -> Result<()> {
        if from == 0 {
            for (tree, versions) in VALUE_VERSIONS {
                let t = self.db.open_tree(tree)?;
                for value in t.iter().values() {
                    let value = value?;
                    match value.first() {
                        Some(v) if versions.contains(v) => {}
                        Some(&v) => {
                            return Err(StoreError::UnknownValueVersion {
                                path: self.path.clone(),
                                tree,
                                version: v,
                            })
                        }
                        None => {
                            return Err(StoreError::Corrupt {
                                tree,
                                message: "empty value".into(),
                            })
                        }
                    }
                }
            }
            tracing::info!(
                store = %self.path.display(),
                format = STORE_FORMAT,
                "store written before the format marker: every value checked, marker written"
            );
        }
        Ok(())
    }

    /// The store's format marker (see [`STORE_FORMAT`]).
    pub fn format(&self) -> Result<Option<u32>> {
        Ok(self
            .meta
            .get(FORMAT_KEY)?
            .and_then(|v| <[u8; 4]>::try_from(&v[..]).ok())
            .map(u32::from_be_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmetrics_connectors::ndjson::parse_line;

    fn t(s: &str) -> secmetrics_connectors::Time {
        s.parse().unwrap()
    }

    /// A store as a build before the marker left it: records of version 1
    /// and 2, history, a cursor, no marker.
    fn old_store(dir: &std::path::Path) {
        let store = Store::open(dir).unwrap();
        let r = parse_line(
            r#"{"kind":"finding","id":"F-2","asset":"a","severity":"high","opened_at":"2026-01-01T00:00:00Z","status":"open","refs":["https://x/1"]}"#,
            "import",
        )
        .unwrap();
        store
            .commit_page("c", &[r], Some("cur"), t("2026-02-01T00:00:00Z"))
            .unwrap();
        // A version 1 record (no refs), as the build before refs wrote it.
        let v1 = crate::store::legacy::tests_support::v1_finding_bytes("F-1");
        store
            .records
            .insert(
                super::super::keys::record_key(
                    secmetrics_connectors::Kind::Finding,
                    "import",
                    "F-1",
                ),
                v1,
            )
            .unwrap();
        store.meta.remove(FORMAT_KEY).unwrap();
        store.flush().unwrap();
    }

    #[test]
    fn a_new_store_is_marked_with_this_format() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.format().unwrap(), Some(STORE_FORMAT));
    }

    #[test]
    fn a_store_from_before_the_marker_is_checked_marked_and_read() {
        let dir = tempfile::tempdir().unwrap();
        old_store(dir.path());
        // The first open by a build with the marker.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.format().unwrap(), Some(STORE_FORMAT));
        let estate = store.load_estate().unwrap();
        let mut ids: Vec<&str> = estate.findings.iter().map(|f| f.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["F-1", "F-2"]);
        assert_eq!(
            store.cursor("c").unwrap().unwrap().cursor.as_deref(),
            Some("cur")
        );
    }

    #[test]
    fn a_store_of_a_newer_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .meta
                .insert(FORMAT_KEY, &(STORE_FORMAT + 1).to_be_bytes()[..])
                .unwrap();
            store.flush().unwrap();
        }
        let e = Store::open(dir.path()).err().expect("refused").to_string();
        assert_eq!(
            e,
            format!(
                "the store at {} was written by a newer secmetrics (store format {}; this \
                 build reads up to {STORE_FORMAT}): run that version or a later one. To go \
                 back to this version, make a backup with the newer one (`secmetrics \
                 export --all --out FILE`) and restore it here into an empty store \
                 (`secmetrics --data-dir NEW_DIR import FILE`)",
                dir.path().display(),
                STORE_FORMAT + 1
            )
        );
        // Refused again, never rewritten.
        assert!(Store::open(dir.path()).is_err());
    }

    #[test]
    fn a_value_of_a_newer_version_in_an_unmarked_store_is_refused_naming_its_tree() {
        let dir = tempfile::tempdir().unwrap();
        old_store(dir.path());
        {
            let store = Store::open(dir.path()).unwrap();
            store.meta.remove(FORMAT_KEY).unwrap();
            store.cursors.insert(b"gh", &[7u8, 0, 0][..]).unwrap();
            store.flush().unwrap();
        }
        let e = Store::open(dir.path()).err().expect("refused").to_string();
        assert!(
            e.contains("tree `cursors` holds a value of format version 7"),
            "{e}"
        );
        assert!(e.contains("newer secmetrics"), "{e}");
        // Nothing was marked: the next open refuses again.
        assert!(Store::open(dir.path()).is_err());
    }

    #[test]
    fn a_store_left_by_an_unfinished_restore_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let r = store.begin_restore().unwrap();
            drop(r); // a crash: never finished
        }
        let e = Store::open(dir.path()).err().expect("refused").to_string();
        assert!(
            e.contains("a restore into this store did not finish"),
            "{e}"
        );
    }
}
