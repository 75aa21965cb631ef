//! The grouping rules of kpi-spec "Reconciliation", one behaviour per test.

use super::*;
use crate::store::Override;
use secmetrics_connectors::{Domain, Environment, Extra, Identity, Kind, Severity};

fn t(s: &str) -> Time {
    format!("{s}T00:00:00Z").parse().expect("time")
}

fn f(source: &str, id: &str, asset: &str, opened: &str) -> Finding {
    Finding {
        id: id.into(),
        source: source.into(),
        asset: asset.into(),
        title: None,
        severity: Severity::High,
        environment: Environment::Production,
        domain: Domain::Application,
        opened_at: t(opened),
        status: Status::Open,
        resolved_at: None,
        validity: Validity::Unverified,
        duplicate_of: None,
        fingerprint: None,
        url: None,
        refs: Vec::new(),
        extra: Extra::default(),
    }
}

fn fp(mut x: Finding, v: &str) -> Finding {
    x.fingerprint = Some(v.into());
    x
}

fn url(mut x: Finding, v: &str) -> Finding {
    x.url = Some(v.into());
    x
}

fn refs(mut x: Finding, v: &[&str]) -> Finding {
    x.refs = v.iter().map(|s| s.to_string()).collect();
    x
}

fn fixed(mut x: Finding, status: Status, at: &str) -> Finding {
    x.status = status;
    x.resolved_at = Some(t(at));
    x
}

fn valid(mut x: Finding, v: Validity) -> Finding {
    x.validity = v;
    x
}

fn run(findings: Vec<Finding>, cfg: &ReconcileConfig) -> (Estate, Reconciliation) {
    let mut e = Estate {
        findings,
        ..Estate::default()
    };
    let r = reconcile(&mut e, cfg);
    (e, r)
}

/// Each group as "source/id" names, canonical first.
fn names(e: &Estate, r: &Reconciliation) -> Vec<Vec<String>> {
    r.groups
        .iter()
        .map(|g| {
            g.members
                .iter()
                .map(|&m| {
                    let x = &e.findings[m as usize];
                    format!("{}/{}", x.source, x.id)
                })
                .collect()
        })
        .collect()
}

fn get<'a>(e: &'a Estate, source: &str, id: &str) -> &'a Finding {
    e.findings
        .iter()
        .find(|x| x.source == source && x.id == id)
        .expect("finding")
}

#[test]
fn links_are_transitive_through_fingerprint_and_refs() {
    // A and B share a fingerprint on one asset; a ticket refs B's url; C
    // refs nothing but shares A's fingerprint: one group of four.
    let (e, r) = run(
        vec![
            fp(f("sast", "A", "app", "2026-01-05"), "x"),
            url(
                fp(f("codeql", "B", "app", "2026-01-03"), "x"),
                "https://c/B",
            ),
            refs(f("jira", "T", "app", "2026-02-01"), &["https://c/B"]),
            fp(f("dast", "C", "app", "2026-01-04"), "x"),
            f("jira", "alone", "app", "2026-01-01"),
        ],
        &ReconcileConfig::default(),
    );
    assert_eq!(
        names(&e, &r),
        vec![vec!["jira/T", "codeql/B", "dast/C", "sast/A"]]
    );
    assert_eq!(r.groups[0].rule, Rule::Refs);
    assert!(r.group_of(4).is_none(), "a finding without links is alone");
    assert_eq!(get(&e, "jira", "alone").validity, Validity::Unverified);
}

#[test]
fn equal_fingerprints_on_other_assets_do_not_link() {
    let (e, r) = run(
        vec![
            fp(f("sast", "A", "app-1", "2026-01-01"), "same"),
            fp(f("codeql", "B", "app-2", "2026-01-01"), "same"),
        ],
        &ReconcileConfig::default(),
    );
    assert!(r.groups.is_empty());
    assert!(e
        .findings
        .iter()
        .all(|x| x.validity == Validity::Unverified));
}

#[test]
fn empty_fingerprints_do_not_link() {
    let (_, r) = run(
        vec![
            fp(f("sast", "A", "app", "2026-01-01"), ""),
            fp(f("codeql", "B", "app", "2026-01-01"), ""),
        ],
        &ReconcileConfig::default(),
    );
    assert!(r.groups.is_empty());
}

#[test]
fn refs_to_a_url_no_finding_has_link_nothing() {
    let (e, r) = run(
        vec![
            valid(
                refs(f("jira", "T", "app", "2026-01-01"), &["https://gone/1"]),
                Validity::Valid,
            ),
            url(f("sast", "A", "app", "2026-01-01"), "https://sast/A"),
        ],
        &ReconcileConfig::default(),
    );
    assert!(r.groups.is_empty());
    assert_eq!(get(&e, "jira", "T").validity, Validity::Valid);
    assert_eq!(get(&e, "sast", "A").duplicate_of, None);
}

#[test]
fn a_ticket_naming_two_alerts_groups_all_three() {
    let (e, r) = run(
        vec![
            url(f("codeql", "1", "app", "2026-01-01"), "https://c/1"),
            url(f("sast", "2", "other-app", "2026-01-02"), "https://s/2"),
            refs(
                f("jira", "T", "app", "2026-03-01"),
                &["https://c/1", "https://s/2"],
            ),
        ],
        &ReconcileConfig::default(),
    );
    assert_eq!(names(&e, &r), vec![vec!["jira/T", "codeql/1", "sast/2"]]);
}

#[test]
fn two_findings_with_the_url_a_ticket_names_both_join_it() {
    let (e, r) = run(
        vec![
            url(f("codeql", "1", "app", "2026-01-01"), "https://same"),
            url(f("sarif", "1", "app", "2026-01-02"), "https://same"),
            refs(f("jira", "T", "app", "2026-03-01"), &["https://same"]),
        ],
        &ReconcileConfig::default(),
    );
    assert_eq!(names(&e, &r), vec![vec!["jira/T", "codeql/1", "sarif/1"]]);
    // The same url alone (no ticket naming it) is no link.
    let (_, r) = run(
        vec![
            url(f("codeql", "1", "app", "2026-01-01"), "https://same"),
            url(f("sarif", "1", "app", "2026-01-02"), "https://same"),
        ],
        &ReconcileConfig::default(),
    );
    assert!(r.groups.is_empty());
}

#[test]
fn tickets_naming_the_same_alert_join_and_a_shared_missing_ref_links_nothing() {
    let (e, r) = run(
        vec![
            url(f("codeql", "1", "app", "2026-01-01"), "https://c/1"),
            refs(
                f("jira", "A", "app", "2026-02-01"),
                &["https://c/1", "https://gone"],
            ),
            refs(f("jira", "B", "app", "2026-02-02"), &["https://c/1"]),
            // Names only the missing url that A also names: no link.
            refs(f("jira", "C", "app", "2026-02-03"), &["https://gone"]),
        ],
        &ReconcileConfig::default(),
    );
    assert_eq!(names(&e, &r), vec![vec!["jira/A", "jira/B", "codeql/1"]]);
    assert!(r.group_of(3).is_none());
}

#[test]
fn canonical_member_by_precedence_then_refs_then_opened_then_source_then_id() {
    let group = || {
        vec![
            fp(f("sast", "S", "app", "2026-01-01"), "x"),
            refs(fp(f("jira", "J", "app", "2026-03-01"), "x"), &["u"]),
            fp(f("codeql", "C", "app", "2026-02-01"), "x"),
        ]
    };
    // No precedence: the ticket (refs) first, then by opened_at.
    let (e, r) = run(group(), &ReconcileConfig::default());
    assert_eq!(names(&e, &r), vec![vec!["jira/J", "sast/S", "codeql/C"]]);
    assert_eq!(r.groups[0].rule, Rule::Refs);
    // A listed source beats refs and age; unlisted ones keep the rest.
    let cfg = ReconcileConfig {
        precedence: vec!["codeql".into()],
    };
    let (e, r) = run(group(), &cfg);
    assert_eq!(names(&e, &r), vec![vec!["codeql/C", "jira/J", "sast/S"]]);
    assert_eq!(r.groups[0].rule, Rule::Precedence);
    // Two listed sources: the first listed wins.
    let cfg = ReconcileConfig {
        precedence: vec!["sast".into(), "codeql".into()],
    };
    let (e, r) = run(group(), &cfg);
    assert_eq!(names(&e, &r), vec![vec!["sast/S", "codeql/C", "jira/J"]]);
}

#[test]
fn ties_are_broken_by_source_then_id_in_byte_order() {
    let (e, r) = run(
        vec![
            fp(f("sast", "B", "app", "2026-01-01"), "x"),
            fp(f("sast", "A", "app", "2026-01-01"), "x"),
            fp(f("Zap", "Z", "app", "2026-01-01"), "x"),
        ],
        &ReconcileConfig::default(),
    );
    // "Zap" < "sast" in byte order (uppercase first).
    assert_eq!(names(&e, &r), vec![vec!["Zap/Z", "sast/A", "sast/B"]]);
    assert_eq!(r.groups[0].rule, Rule::Source);
    let (e, r) = run(
        vec![
            fp(f("sast", "B", "app", "2026-01-01"), "x"),
            fp(f("sast", "A", "app", "2026-01-01"), "x"),
        ],
        &ReconcileConfig::default(),
    );
    assert_eq!(names(&e, &r), vec![vec!["sast/A", "sast/B"]]);
    assert_eq!(r.groups[0].rule, Rule::Id);
}

#[test]
fn the_group_takes_earliest_opened_first_decided_validity_and_first_fix() {
    let (e, r) = run(
        vec![
            // Canonical (refs), unverified, opened last, still open.
            refs(fp(f("jira", "T", "app", "2026-03-01"), "x"), &["none"]),
            // Decided "valid", fixed late.
            valid(
                fixed(
                    fp(f("codeql", "C", "app", "2026-01-10"), "x"),
                    Status::Remediated,
                    "2026-05-01",
                ),
                Validity::Valid,
            ),
            // Decided "false_positive" but later in rule-2 order; fixed first.
            valid(
                fixed(
                    fp(f("sast", "S", "app", "2026-01-20"), "x"),
                    Status::Mitigated,
                    "2026-04-01",
                ),
                Validity::FalsePositive,
            ),
            // Risk accepted earlier: not a fix.
            fixed(
                fp(f("dast", "D", "app", "2026-01-15"), "x"),
                Status::RiskAccepted,
                "2026-02-01",
            ),
        ],
        &ReconcileConfig::default(),
    );
    assert_eq!(
        names(&e, &r),
        vec![vec!["jira/T", "codeql/C", "dast/D", "sast/S"]]
    );
    let c = get(&e, "jira", "T");
    assert_eq!(c.opened_at, t("2026-01-10"));
    assert_eq!(c.validity, Validity::Valid, "first decided in rule-2 order");
    assert_eq!(c.status, Status::Mitigated, "the earliest fix");
    assert_eq!(c.resolved_at, Some(t("2026-04-01")));
    let g = &r.groups[0];
    assert_eq!(
        (g.opened_from, g.validity_from, g.fixed_by),
        (1, Some(1), Some(3))
    );
    // The others are duplicates of the canonical id and keep their times.
    for (source, id, opened) in [("codeql", "C", "2026-01-10"), ("sast", "S", "2026-01-20")] {
        let x = get(&e, source, id);
        assert_eq!(x.validity, Validity::Duplicate);
        assert_eq!(x.duplicate_of.as_deref(), Some("T"));
        assert_eq!(x.opened_at, t(opened));
    }
    assert_eq!(get(&e, "sast", "S").resolved_at, Some(t("2026-04-01")));
    // Rule 6: fixed in one source, still open in another.
    assert_eq!(e.fixed_and_open.len(), 1);
    let w = &e.fixed_and_open[0];
    assert_eq!((w.source.as_str(), w.id.as_str()), ("jira", "T"));
    assert_eq!(
        w.fixed,
        vec![("codeql".into(), "C".into()), ("sast".into(), "S".into())]
    );
    assert_eq!(w.open, vec![("jira".into(), "T".into())]);
}

#[test]
fn without_a_fix_the_canonical_keeps_its_status_and_a_decision_travels() {
    let (e, _) = run(
        vec![
            refs(f("jira", "T", "app", "2026-03-01"), &["https://c/1"]),
            valid(
                fixed(
                    url(f("codeql", "1", "app", "2026-01-01"), "https://c/1"),
                    Status::Closed,
                    "2026-02-01",
                ),
                Validity::FalsePositive,
            ),
        ],
        &ReconcileConfig::default(),
    );
    let c = get(&e, "jira", "T");
    assert_eq!(c.status, Status::Open);
    assert_eq!(c.resolved_at, None);
    assert_eq!(c.validity, Validity::FalsePositive);
    assert!(e.fixed_and_open.is_empty());
}

#[test]
fn equal_fix_times_keep_rule_2_order() {
    let (e, _) = run(
        vec![
            fixed(
                fp(f("b", "2", "app", "2026-01-01"), "x"),
                Status::Mitigated,
                "2026-02-01",
            ),
            fixed(
                fp(f("a", "1", "app", "2026-01-01"), "x"),
                Status::Remediated,
                "2026-02-01",
            ),
        ],
        &ReconcileConfig::default(),
    );
    assert_eq!(get(&e, "a", "1").status, Status::Remediated);
}

#[test]
fn the_result_does_not_depend_on_record_order() {
    let base = vec![
        refs(
            fp(f("jira", "T1", "app", "2026-03-01"), "x"),
            &["https://c/9"],
        ),
        fixed(
            fp(f("sast", "S1", "app", "2026-01-01"), "x"),
            Status::Remediated,
            "2026-02-01",
        ),
        url(f("codeql", "9", "app", "2026-02-11"), "https://c/9"),
        fp(f("codeql", "10", "app", "2026-02-11"), "y"),
        fp(f("sast", "S2", "app", "2026-02-12"), "y"),
        refs(f("jira", "T2", "app", "2026-01-01"), &["https://missing"]),
        f("dast", "D", "app", "2026-01-01"),
    ];
    let canonical_form = |mut e: Estate, r: Reconciliation| {
        let mut groups = names(&e, &r);
        groups.sort();
        e.findings
            .sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
        (e.findings, groups, e.fixed_and_open)
    };
    let (e, r) = run(base.clone(), &ReconcileConfig::default());
    let expected = canonical_form(e, r);
    assert_eq!(expected.1.len(), 2);
    // Every rotation and the reverse of each.
    for k in 0..base.len() {
        for reverse in [false, true] {
            let mut v = base.clone();
            v.rotate_left(k);
            if reverse {
                v.reverse();
            }
            let (e, r) = run(v, &ReconcileConfig::default());
            assert_eq!(
                canonical_form(e, r),
                expected,
                "rotation {k}, reversed {reverse}"
            );
        }
    }
}

#[test]
fn overrides_set_validity_and_severity_before_reconciliation() {
    let mut e = Estate {
        findings: vec![
            refs(f("jira", "T", "app", "2026-03-01"), &["https://c/1"]),
            url(f("codeql", "1", "app", "2026-01-01"), "https://c/1"),
        ],
        ..Estate::default()
    };
    let o = Override {
        validity: Validity::FalsePositive,
        severity: Some(Severity::Low),
        reason: "test code".into(),
        by: "alice".into(),
        at_us: t("2026-10-05").timestamp_micros(),
        severity_before: Some(Severity::High),
    };
    let id = Identity {
        kind: Kind::Finding,
        source: "codeql".into(),
        id: "1".into(),
    };
    overrides::apply(&mut e, &[(id, o)]);
    let x = get(&e, "codeql", "1");
    assert_eq!(
        (x.validity, x.severity),
        (Validity::FalsePositive, Severity::Low)
    );
    assert_eq!(e.severity_changes.len(), 1);
    assert_eq!(e.severity_changes[0].observed_at, t("2026-10-05"));
    assert_eq!(
        (e.severity_changes[0].from, e.severity_changes[0].to),
        (Severity::High, Severity::Low)
    );
    // The person's decision travels to the ticket that is canonical.
    reconcile(&mut e, &ReconcileConfig::default());
    assert_eq!(get(&e, "jira", "T").validity, Validity::FalsePositive);
}
