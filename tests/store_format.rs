//! The store's format marker seen from the command line: a store of a newer
//! format is refused by every command with what to do, and a store written
//! before the marker is read and marked.

use crate::common::*;

#[test]
fn a_store_of_a_newer_format_is_refused_with_what_to_do_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let o = run(
        &store,
        &[
            "import",
            data("golden/estate-small.ndjson").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    {
        let s = secmetrics::store::Store::open(&store).unwrap();
        assert_eq!(s.format().unwrap(), Some(secmetrics::store::STORE_FORMAT));
        let newer = secmetrics::store::STORE_FORMAT + 1;
        s.put_meta("store/format", &newer.to_be_bytes()).unwrap();
    }
    for args in [
        &["status"][..],
        &["export"],
        &["report", "--period", "2026-10"],
    ] {
        let o = run(&store, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!(
                "was written by a newer secmetrics (store format {}; this build reads up to {})",
                secmetrics::store::STORE_FORMAT + 1,
                secmetrics::store::STORE_FORMAT
            )),
            "{args:?}: {e}"
        );
        assert!(e.contains("`secmetrics export --all --out FILE`"), "{e}");
    }
    // Never rewritten: still the newer marker.
    let o = run(&store, &["status"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_store_from_before_the_marker_is_read_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let o = run(
        &store,
        &[
            "import",
            data("golden/estate-small.ndjson").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = stdout(&run(&store, &["export"]));
    {
        // As a build before the marker left it (same layout, no marker),
        // through sled itself.
        let db = sled::open(store.join("db")).unwrap();
        let meta = db.open_tree("meta").unwrap();
        assert!(meta.remove("store/format").unwrap().is_some());
        db.flush().unwrap();
    }
    let after = stdout(&run(&store, &["export"]));
    assert_eq!(before, after);
    let s = secmetrics::store::Store::open(&store).unwrap();
    assert_eq!(s.format().unwrap(), Some(secmetrics::store::STORE_FORMAT));
}
