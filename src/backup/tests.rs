//! Every line kind through a dump and a restore: the restored store dumps
//! to the same lines, and reads back the same values through the store's
//! own accessors.

use super::dump::{self, SecretGuard};
use super::restore::{self, Options};
use crate::deliver::outbox::{Entry, Outbox, Payload, State};
use crate::store::Store;
use secmetrics_connectors::{ndjson, Record, Time};

fn t(s: &str) -> Time {
    s.parse().unwrap()
}

fn dump_text(store: &Store) -> String {
    let mut out = Vec::new();
    dump::write(
        store,
        &mut out,
        &SecretGuard::default(),
        t("2026-12-01T00:00:00Z"),
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

fn email_entry() -> Entry {
    Entry {
        digest: "monthly".into(),
        period: "2026-10".into(),
        channel: "email".into(),
        payload: Payload::Email {
            subject: "KPIs".into(),
            text: "text".into(),
            html: "<p>html</p>".into(),
            images: vec![("chart1".into(), vec![0x89, b'P', b'N', b'G', 0, 255, 10])],
            to: vec!["ciso@example.test".into()],
        },
        state: State::Sending,
        attempts: 2,
        next_attempt_us: 1_790_000_000_123_456,
        last_error: Some("timeout".into()),
        created_us: 1_790_000_000_000_001,
        sent_us: None,
    }
}

/// A store holding one of everything.
fn full_store(dir: &std::path::Path) -> Store {
    let store = Store::open(dir).unwrap();
    let line = r#"{"kind":"finding","id":"F-1","source":"sast","asset":"a","severity":"high","opened_at":"2026-01-01T00:00:00.5Z","status":"open","x":{"y":[1,2.5,null]}}"#;
    let f = ndjson::parse_line(line, "import").unwrap();
    store.upsert_batch(&[f], t("2026-02-01T00:00:00Z")).unwrap();
    let g = ndjson::parse_line(
        &line.replace("\"open\"", "\"remediated\"").replace(
            "\"F-1\"",
            "\"F-1\",\"resolved_at\":\"2026-02-02T00:00:00Z\"",
        ),
        "import",
    )
    .unwrap();
    store.upsert_batch(&[g], t("2026-02-03T00:00:00Z")).unwrap();
    // A record the records.md reader would refuse (tier 7): kept exactly.
    let mut asset = ndjson::parse_line(
        r#"{"kind":"asset","id":"odd","tier":1,"source":"inventory"}"#,
        "import",
    )
    .unwrap();
    if let Record::Asset(a) = &mut asset {
        a.tier = 7;
    }
    store
        .commit_page(
            "inventory",
            &[asset],
            Some("inv-cursor"),
            t("2026-02-04T00:00:00Z"),
        )
        .unwrap();
    // Gone.
    let mut seen = std::collections::HashSet::new();
    seen.insert(secmetrics_connectors::Identity {
        kind: secmetrics_connectors::Kind::Asset,
        source: "inventory".into(),
        id: "none".into(),
    });
    assert_eq!(
        store
            .mark_gone_except("inventory", &seen, t("2026-02-05T00:00:00Z"))
            .unwrap(),
        1
    );
    // A digest: snapshots, an outbox entry and its fire, in one write.
    let entry = email_entry();
    store
        .commit_digest(
            &[
                ("digest/monthly/2026-10".into(), b"{\"a\": 1.50}".to_vec()),
                ("raw".into(), vec![0xff, 0xfe]),
            ],
            &[entry.encoded()],
            Some(("daemon/digest_fired/monthly", t("2026-11-01T08:00:00Z"))),
        )
        .unwrap();
    store.put_snapshot("2026-10", b"{\"kpis\":{}}\n").unwrap();
    store
        .put_meta(
            "sync/last_pass/inventory",
            br#"{"state":"ok","at":"2026-02-04T00:00:00Z","pages":1}"#,
        )
        .unwrap();
    store.put_meta("daemon/other", &[1, 2, 3]).unwrap();
    // A value in `cursors` that is not a cursor state (a later change's
    // key there): carried raw, byte for byte.
    store
        .open_raw_tree("cursors")
        .unwrap()
        .insert(b"sarif/scan/x", &[1u8, 1, 2, 3, 250][..])
        .unwrap();
    // A connector's own state, written with its cursor.
    store
        .commit_page_with_state(
            "sast",
            &[],
            Some("{}"),
            &secmetrics_connectors::StateChange {
                reset: true,
                writes: vec![(
                    "web\u{1f}Semgrep\u{1f}c:ci".into(),
                    Some("{\"t\":1}".into()),
                )],
            },
            t("2026-02-06T00:00:00Z"),
            Default::default(),
        )
        .unwrap();
    // A tree this build has no line kind for.
    let tree = store.open_raw_tree("future_tree").unwrap();
    tree.insert(b"k\x00", &[9u8, 8, 7][..]).unwrap();
    store.flush().unwrap();
    store
}

#[test]
fn every_line_kind_round_trips_and_dumps_again_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let a = full_store(&dir.path().join("a"));
    let text = dump_text(&a);
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for k in [
        "$backup",
        "$record",
        "$history",
        "$snapshot",
        "$outbox",
        "$cursor",
        "$last_import",
        "$digest_fired",
        "$last_pass",
        "$meta",
        "$raw",
        "$end",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in\n{text}");
    }
    let exact: Vec<&str> = text.lines().filter(|l| l.contains("\"exact\"")).collect();
    assert_eq!(exact.len(), 1, "only the asset of tier 7 needs `exact`");
    assert!(
        exact[0].contains("\"gone_at\":\"2026-02-05T00:00:00Z\""),
        "{}",
        exact[0]
    );
    assert!(
        text.contains(r#""json":"{\"a\": 1.50}""#),
        "snapshot text kept as is"
    );

    let file = dir.path().join("backup.ndjson");
    std::fs::write(&file, &text).unwrap();
    let b = Store::open(&dir.path().join("b")).unwrap();
    let restored = restore::restore(&b, &file, Options::default()).unwrap();
    assert_eq!(
        restored.values().sum::<u64>() + 2,
        text.lines().count() as u64
    );
    let again = dump_text(&b);
    assert_eq!(
        text.lines().skip(1).collect::<Vec<_>>(),
        again.lines().skip(1).collect::<Vec<_>>()
    );

    // Values as the store's own accessors read them.
    let id = secmetrics_connectors::Identity {
        kind: secmetrics_connectors::Kind::Finding,
        source: "sast".into(),
        id: "F-1".into(),
    };
    assert!(a.get(&id).unwrap().is_some());
    assert_eq!(b.get(&id).unwrap(), a.get(&id).unwrap());
    assert_eq!(b.history(&id).unwrap(), a.history(&id).unwrap());
    assert_eq!(b.history(&id).unwrap().len(), 1);
    let odd = secmetrics_connectors::Identity {
        kind: secmetrics_connectors::Kind::Asset,
        source: "inventory".into(),
        id: "odd".into(),
    };
    let stored = b.get(&odd).unwrap().unwrap();
    assert_eq!(
        stored.gone_at_us,
        Some(t("2026-02-05T00:00:00Z").timestamp_micros())
    );
    assert!(matches!(&stored.record, Record::Asset(x) if x.tier == 7));
    assert_eq!(b.snapshot("raw").unwrap(), Some(vec![0xff, 0xfe]));
    assert_eq!(
        b.snapshot("2026-10").unwrap(),
        a.snapshot("2026-10").unwrap()
    );
    assert_eq!(
        b.raw_entries("cursors").unwrap(),
        a.raw_entries("cursors").unwrap()
    );
    assert!(text.contains(r#""kind":"$raw","tree":"cursors""#), "{text}");
    assert!(
        text.contains(r#""kind":"$cursor","connector":"inventory""#),
        "{text}"
    );
    assert_eq!(
        crate::deliver::last_fire(&b, "monthly"),
        Some(t("2026-11-01T08:00:00Z"))
    );
    assert_eq!(b.meta("daemon/other").unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(crate::sync::LastPass::load_all(&b).unwrap().len(), 1);
    assert_eq!(
        b.raw_entries("future_tree").unwrap(),
        a.raw_entries("future_tree").unwrap()
    );
    assert_eq!(
        b.connector_state("sast", "web\u{1f}").unwrap(),
        vec![(
            "web\u{1f}Semgrep\u{1f}c:ci".to_string(),
            "{\"t\":1}".to_string()
        )]
    );
    let ob = Outbox::open(&b).unwrap();
    assert_eq!(ob.all().unwrap(), vec![email_entry()]);
    assert_eq!(
        ob.summaries().unwrap(),
        Outbox::open(&a).unwrap().summaries().unwrap()
    );
    // Left `sending` by the process that made the backup: at start it is
    // unconfirmed, never sent again (at most once).
    assert_eq!(ob.recover_interrupted().unwrap().len(), 1);
    assert!(ob.due(i64::MAX).unwrap().is_empty());
    assert_eq!(b.format().unwrap(), Some(crate::store::STORE_FORMAT));
}

#[test]
fn lines_of_the_store_itself_or_of_typed_trees_are_never_restored_raw() {
    let dir = tempfile::tempdir().unwrap();
    let b = Store::open(dir.path()).unwrap();
    for (line, why) in [
        (
            r#"{"kind":"$meta","key":"store/format","value_base64":"AAAAAg=="}"#,
            "the store's own fact",
        ),
        (
            r#"{"kind":"$raw","tree":"records","key_base64":"AA==","value_base64":"AA=="}"#,
            "has lines of its own kind",
        ),
        (
            r#"{"kind":"$record","first_seen_at":"2026-01-01T00:00:00Z","last_changed_at":"2026-01-01T00:00:00Z","record":{"kind":"asset","id":"a"}}"#,
            "field `record`: field `tier`: required field is missing",
        ),
        (
            r#"{"kind":"$outbox","digest":"d","period":"p","channel":"slack","state":"lost","attempts":0,"next_attempt_at":"2026-01-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z","payload":{"slack":{"messages":[],"delivered":0}}}"#,
            "field `state`: unknown value \"lost\"",
        ),
        (
            r#"{"kind":"$history","record_kind":"finding","source":"s","id":"i","field":"status","old":"open","new":"closed","observed_at":"2026-01-01T00:00:00Z","extra":1}"#,
            "unknown field `extra`",
        ),
    ] {
        let file = dir.path().join("f.ndjson");
        std::fs::write(
            &file,
            format!(
                "{{\"kind\":\"$backup\",\"format\":1,\"store_format\":1,\"secmetrics\":\"x\",\"created_at\":\"2026-01-01T00:00:00Z\"}}\n{line}\n{{\"kind\":\"$end\",\"lines\":{{}}}}\n"
            ),
        )
        .unwrap();
        let e = restore::restore(&b, &file, Options::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{}:2: ", file.display())), "{e}");
        assert!(e.contains(why), "{e}");
        assert!(e.contains("nothing was restored"), "{e}");
        assert!(b.held_data().unwrap().is_empty());
    }
}
