//! Edge cases of the spec's conventions, pinned on tiny hand-made estates:
//! period boundaries, empty denominators, risk acceptance, exclusions.

use super::*;
use secmetrics_connectors::ndjson::parse_line;

fn estate(lines: &[&str]) -> Estate {
    Estate::from_records(
        lines
            .iter()
            .map(|l| parse_line(l, "import").expect("test record")),
    )
}

fn october() -> Period {
    Period::month(2026, 10).expect("month")
}

fn pack(lines: &[&str]) -> KpiPack {
    let at = "2026-11-02T00:00:00Z".parse().expect("time");
    compute(&estate(lines), &october(), &KpiConfig::default(), at)
}

fn json(lines: &[&str]) -> serde_json::Value {
    serde_json::to_value(pack(lines)).expect("json")
}

const ASSET: &str = r#"{"kind":"asset","id":"a","tier":1}"#;

fn finding(
    id: &str,
    sev: &str,
    opened: &str,
    status: &str,
    resolved: Option<&str>,
    validity: &str,
) -> String {
    let resolved = resolved.map_or("null".to_string(), |r| format!("\"{r}\""));
    format!(
        r#"{{"kind":"finding","id":"{id}","asset":"a","severity":"{sev}","opened_at":"{opened}","status":"{status}","resolved_at":{resolved},"validity":"{validity}"}}"#
    )
}

#[test]
fn empty_estate_gives_nulls_not_zeros_for_ratios() {
    let v = json(&[]);
    let k = &v["kpis"];
    assert!(k["security_review_coverage"]["value"].is_null());
    assert_eq!(k["security_review_coverage"]["denominator"], 0);
    assert!(k["secret_exposure"]["rate"].is_null());
    assert!(k["release_gate"]["pass_rate"].is_null());
    assert!(k["sla_attainment"]["value"].is_null());
    assert!(k["mttr"]["headline"].is_null());
    assert!(k["detection_triage"]["triage_hours"]["p90"].is_null());
    assert!(k["mttr"]["trend"].is_null());
    assert_eq!(k["mttr"]["status"], "no_target");
    // Counts are real zeros, and they trend flat.
    assert_eq!(k["findings_aging"]["headline"], 0);
    assert_eq!(k["findings_aging"]["trend"], "flat");
}

#[test]
fn period_boundaries_are_half_open() {
    let f1 = finding(
        "on-start",
        "critical",
        "2026-09-01T00:00:00Z",
        "remediated",
        Some("2026-10-01T00:00:00Z"),
        "valid",
    );
    let f2 = finding(
        "on-end",
        "critical",
        "2026-09-01T00:00:00Z",
        "remediated",
        Some("2026-11-01T00:00:00Z"),
        "valid",
    );
    let f3 = finding(
        "opened-on-end",
        "high",
        "2026-11-01T00:00:00Z",
        "open",
        None,
        "valid",
    );
    let p = pack(&[ASSET, &f1, &f2, &f3]);
    let mttr = &p.kpis.mttr.as_ref().expect("shown").figures;
    let cell = mttr
        .by_severity
        .get("critical")
        .and_then(|s| s.get("production"))
        .expect("cell");
    // Resolved exactly at start is in P; exactly at end is not.
    assert_eq!(cell.count, 1);
    assert_eq!(cell.mean_days, Some(30.0));
    // Resolved exactly at end: still open as of end (resolved_at >= end),
    // age 61 days; opened exactly at end: not yet open.
    let aging = &p.kpis.findings_aging.as_ref().expect("shown").figures;
    assert_eq!(aging.total.total(), 1);
    assert_eq!(
        aging.by_severity.get("critical").map(|b| b.days_31_90),
        Some(1)
    );
    assert_eq!(aging.by_severity.get("high").map(|b| b.total()), Some(0));
}

#[test]
fn ages_are_whole_days_floored_and_bucketed_at_30_and_90() {
    // Ages at 2026-11-01: 30 d 23 h -> 30 (0_30); 31 d -> 31_90;
    // 90 d 23 h -> 90 (31_90); 91 d -> over_90.
    let lines = [
        finding("a30", "low", "2026-10-01T01:00:00Z", "open", None, "valid"),
        finding("a31", "low", "2026-10-01T00:00:00Z", "open", None, "valid"),
        finding("a90", "low", "2026-08-03T01:00:00Z", "open", None, "valid"),
        finding("a91", "low", "2026-08-02T00:00:00Z", "open", None, "valid"),
    ];
    let mut all = vec![ASSET.to_string()];
    all.extend(lines);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let p = pack(&refs);
    let total = p.kpis.findings_aging.as_ref().expect("shown").figures.total;
    assert_eq!(
        (total.days_0_30, total.days_31_90, total.over_90),
        (1, 2, 1)
    );
}

#[test]
fn risk_accepted_findings_are_not_backlog() {
    let f = finding(
        "ra",
        "critical",
        "2025-01-01T00:00:00Z",
        "risk_accepted",
        Some("2025-02-01T00:00:00Z"),
        "valid",
    );
    let g = finding(
        "ra-open",
        "critical",
        "2025-01-01T00:00:00Z",
        "risk_accepted",
        None,
        "valid",
    );
    let p = pack(&[ASSET, &f, &g]);
    let aging = &p.kpis.findings_aging.as_ref().expect("shown").figures;
    assert_eq!(aging.total.total(), 0);
    let sla = &p.kpis.sla_attainment.as_ref().expect("shown").figures;
    assert_eq!(sla.open_breached.get("critical"), Some(&0));
}

#[test]
fn excluded_validities_are_left_out_and_counted() {
    let lines = [
        finding(
            "fp",
            "critical",
            "2026-09-01T00:00:00Z",
            "closed",
            Some("2026-10-05T00:00:00Z"),
            "false_positive",
        ),
        finding(
            "dup",
            "critical",
            "2026-09-01T00:00:00Z",
            "remediated",
            Some("2026-10-05T00:00:00Z"),
            "duplicate",
        ),
        finding(
            "inv",
            "high",
            "2026-09-01T00:00:00Z",
            "open",
            None,
            "invalid",
        ),
        finding(
            "unv",
            "critical",
            "2026-09-01T00:00:00Z",
            "remediated",
            Some("2026-10-05T00:00:00Z"),
            "unverified",
        ),
    ];
    let mut all = vec![ASSET.to_string()];
    all.extend(lines);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let v = json(&refs);
    let mttr = &v["kpis"]["mttr"];
    assert_eq!(mttr["excluded"]["false_positive"], 1);
    assert_eq!(mttr["excluded"]["duplicate"], 1);
    assert_eq!(mttr["excluded"]["invalid"], 0);
    // Unverified counts (conservative).
    assert_eq!(mttr["by_severity"]["critical"]["production"]["count"], 1);
    assert_eq!(mttr["headline"], 34.0);
    assert_eq!(v["kpis"]["findings_aging"]["total"]["31_90"], 0);
    assert_eq!(v["kpis"]["findings_aging"]["excluded"]["invalid"], 1);
    assert_eq!(v["kpis"]["sla_attainment"]["closed"], 1);
    assert_eq!(v["kpis"]["sla_attainment"]["within_sla"], 0);
}

#[test]
fn sla_boundary_is_inclusive_of_exactly_sla_days() {
    let exact = finding(
        "exact",
        "critical",
        "2026-09-20T00:00:00Z",
        "remediated",
        Some("2026-10-05T00:00:00Z"),
        "valid",
    );
    let late = finding(
        "late",
        "critical",
        "2026-09-20T00:00:00Z",
        "mitigated",
        Some("2026-10-05T00:00:01Z"),
        "valid",
    );
    let v = json(&[ASSET, &exact, &late]);
    let sla = &v["kpis"]["sla_attainment"];
    assert_eq!(sla["by_severity"]["critical"]["closed"], 2);
    assert_eq!(sla["by_severity"]["critical"]["within_sla"], 1);
    assert_eq!(sla["value"], 0.5);
    assert!(sla["by_severity"]["low"]["value"].is_null());
}

#[test]
fn out_of_scope_assets_leave_every_kpi_and_unknown_ones_count_as_unmapped() {
    let out = r#"{"kind":"asset","id":"gone","tier":1,"in_scope":false}"#;
    let f_out = finding("x", "high", "2026-10-02T00:00:00Z", "open", None, "valid")
        .replace("\"a\"", "\"gone\"");
    let f_unknown = finding("y", "high", "2026-10-02T00:00:00Z", "open", None, "valid")
        .replace("\"a\"", "\"ghost\"");
    let p = pack(&[ASSET, out, &f_out, &f_unknown]);
    let aging = &p.kpis.findings_aging.as_ref().expect("shown").figures;
    assert_eq!(aging.total.total(), 1);
    assert_eq!(
        aging.by_product_line.get("unmapped").map(|b| b.total()),
        Some(1)
    );
    let cov = &p
        .kpis
        .security_review_coverage
        .as_ref()
        .expect("shown")
        .figures;
    assert_eq!(cov.denominator, 1);
    assert!(
        p.warnings.iter().any(|w| w.contains("`ghost`")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn trend_and_status_follow_the_healthy_direction() {
    let up = Some(Figure::Value(0.8));
    let down = Some(Figure::Value(0.6));
    assert_eq!(trend(Direction::Up, up, down), Some(Trend::Improving));
    assert_eq!(trend(Direction::Down, up, down), Some(Trend::Worsening));
    assert_eq!(trend(Direction::Down, up, up), Some(Trend::Flat));
    assert_eq!(trend(Direction::Up, None, up), None);
    assert_eq!(
        target_status(Direction::Up, up, Some(0.8)),
        TargetStatus::OnTarget
    );
    assert_eq!(
        target_status(Direction::Down, up, Some(0.7)),
        TargetStatus::OffTarget
    );
    assert_eq!(
        target_status(Direction::Down, None, Some(0.7)),
        TargetStatus::OffTarget
    );
    assert_eq!(
        target_status(Direction::Down, up, None),
        TargetStatus::NoTarget
    );
}

#[test]
fn maturity_stage_chooses_the_kpis_shown() {
    let cfg = KpiConfig {
        maturity: Maturity::Early,
        ..KpiConfig::default()
    };
    let at = "2026-11-02T00:00:00Z".parse().expect("time");
    let v = serde_json::to_value(compute(&Estate::default(), &october(), &cfg, at)).expect("json");
    let keys: Vec<&String> = v["kpis"].as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        // serde_json::Value sorts keys.
        [
            "design_review_coverage",
            "exception_debt",
            "findings_aging",
            "security_review_coverage",
        ]
    );
    assert!(v["warnings"][0]
        .as_str()
        .is_some_and(|w| w.contains("no owner")));
}

#[test]
fn severity_lowered_during_the_period_is_reported() {
    let mut e = estate(&[ASSET]);
    let change = |id: &str, from, to, at: &str| crate::estate::SeverityChange {
        id: id.to_string(),
        source: "import".to_string(),
        from,
        to,
        observed_at: at.parse().expect("time"),
    };
    use secmetrics_connectors::Severity::*;
    e.severity_changes = vec![
        change("F-2", Critical, Low, "2026-10-31T23:59:59Z"),
        change("F-1", High, Medium, "2026-10-01T00:00:00Z"),
        change("F-3", Low, High, "2026-10-10T00:00:00Z"),
        change("F-4", High, Low, "2026-11-01T00:00:00Z"),
    ];
    let at = "2026-11-02T00:00:00Z".parse().expect("time");
    let p = compute(&e, &october(), &KpiConfig::default(), at);
    assert_eq!(p.severity_downgrades.count, 2);
    assert_eq!(p.severity_downgrades.ids, ["F-1", "F-2"]);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("`F-2`") && w.contains("critical to low")));
}

#[test]
fn json_times_are_rfc3339_utc_seconds() {
    let v = json(&[]);
    assert_eq!(v["period"]["start"], "2026-10-01T00:00:00Z");
    assert_eq!(v["period"]["end"], "2026-11-01T00:00:00Z");
    assert_eq!(v["generated_at"], "2026-11-02T00:00:00Z");
}

#[test]
fn an_asset_defined_by_two_sources_counts_once() {
    let a2 = r#"{"kind":"asset","id":"a","source":"cmdb","tier":1}"#;
    let p = pack(&[ASSET, a2]);
    let cov = &p
        .kpis
        .security_review_coverage
        .as_ref()
        .expect("shown")
        .figures;
    assert_eq!(cov.denominator, 1);
}

#[test]
fn secret_exposure_counts_confirmed_alerts_per_in_scope_repo() {
    let lines = [
        r#"{"kind":"repo","id":"o/a","secret_scanning":true}"#,
        r#"{"kind":"repo","id":"o/b","secret_scanning":false}"#,
        r#"{"kind":"repo","id":"o/c","secret_scanning":true,"in_scope":false}"#,
        // Confirmed: revoked; never resolved and active; wont_fix.
        r#"{"kind":"secret_alert","id":"s1","repo":"o/a","opened_at":"2026-10-02T00:00:00Z","resolved_at":"2026-10-03T00:00:00Z","resolution":"revoked"}"#,
        r#"{"kind":"secret_alert","id":"s2","repo":"o/a","opened_at":"2026-10-02T00:00:00Z","validity":"active","push_protection_bypassed":true}"#,
        // Open as of end, not confirmed: untriaged.
        r#"{"kind":"secret_alert","id":"s3","repo":"o/b","opened_at":"2026-10-02T00:00:00Z","validity":"unknown"}"#,
        // Out-of-scope repo: left out.
        r#"{"kind":"secret_alert","id":"s4","repo":"o/c","opened_at":"2026-10-02T00:00:00Z","validity":"active"}"#,
        // Unknown repo: counts.
        r#"{"kind":"secret_alert","id":"s5","repo":"o/ghost","opened_at":"2026-10-02T00:00:00Z","resolved_at":"2026-10-05T00:00:00Z","resolution":"wont_fix"}"#,
        // Opened before P: not in `confirmed`, but untriaged if open.
        r#"{"kind":"secret_alert","id":"s6","repo":"o/a","opened_at":"2026-09-02T00:00:00Z"}"#,
    ];
    let v = json(&lines);
    let s = &v["kpis"]["secret_exposure"];
    assert_eq!(s["repos_in_scope"], 2);
    assert_eq!(s["repos_covered"], 1);
    assert_eq!(s["coverage"], 0.5);
    assert_eq!(s["confirmed"], 3);
    assert_eq!(s["rate"], 1.5);
    assert_eq!(s["per_100_repos"], 150.0);
    assert_eq!(s["untriaged"], 2);
    assert_eq!(s["push_protection_bypasses"], 1);
    assert!(v["warnings"]
        .as_array()
        .expect("list")
        .iter()
        .any(|w| w.as_str().is_some_and(|w| w.contains("`o/ghost`"))));
}

#[test]
fn release_gate_counts_reasons_of_releases_that_were_not_a_clean_pass() {
    let r = |id: &str, at: &str, gate: &str, reason: &str| {
        format!(
            r#"{{"kind":"release","id":"{id}","asset":"a","at":"{at}","gate":"{gate}","reason":"{reason}"}}"#
        )
    };
    let lines = [
        ASSET.to_string(),
        r("1", "2026-10-01T00:00:00Z", "passed", "sbom missing"),
        r(
            "2",
            "2026-10-10T00:00:00Z",
            "passed_with_exception",
            "sbom missing",
        ),
        r("3", "2026-10-11T00:00:00Z", "failed", "critical vuln open"),
        r("4", "2026-10-12T00:00:00Z", "failed", "sbom missing"),
        r("5", "2026-11-01T00:00:00Z", "failed", "outside"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let v = json(&refs);
    let g = &v["kpis"]["release_gate"];
    assert_eq!(g["total"], 4);
    assert_eq!(g["pass_rate"], 0.25);
    assert_eq!(g["exception_rate"], 0.25);
    assert_eq!(g["reasons"]["sbom missing"], 2);
    assert_eq!(g["reasons"]["critical vuln open"], 1);
    assert!(g["reasons"].get("outside").is_none());
}

#[test]
fn exception_debt_is_open_as_of_end_with_expiry_classes() {
    let e = |id: &str, opened: &str, expires: &str, closed: &str| {
        format!(
            r#"{{"kind":"exception","id":"{id}","asset":"a","opened_at":"{opened}","expires_at":{expires},"closed_at":{closed}}}"#
        )
    };
    let lines = [
        ASSET.to_string(),
        e(
            "expired",
            "2026-01-01T00:00:00Z",
            r#""2026-10-31T23:59:59Z""#,
            "null",
        ),
        e(
            "soon",
            "2026-10-15T00:00:00Z",
            r#""2026-11-01T00:00:00Z""#,
            "null",
        ),
        e(
            "later",
            "2026-10-15T00:00:00Z",
            r#""2026-12-01T00:00:00Z""#,
            "null",
        ),
        e(
            "none",
            "2026-09-15T00:00:00Z",
            "null",
            r#""2026-11-01T00:00:00Z""#,
        ),
        e(
            "closed",
            "2026-09-15T00:00:00Z",
            "null",
            r#""2026-10-31T00:00:00Z""#,
        ),
        e("future", "2026-11-01T00:00:00Z", "null", "null"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let v = json(&refs);
    let x = &v["kpis"]["exception_debt"];
    assert_eq!(x["open"], 4);
    assert_eq!(x["on_critical"], 4);
    assert_eq!(x["expired"], 1);
    assert_eq!(x["expiring_30d"], 1);
    assert_eq!(x["no_expiry"], 1);
    assert_eq!(x["aging"]["0_30"], 2);
    assert_eq!(x["aging"]["31_90"], 1);
    assert_eq!(x["aging"]["over_90"], 1);
}

#[test]
fn detection_triage_summarizes_validated_incidents_only() {
    let i = |id: &str, triaged: &str, validated: &str| {
        format!(
            r#"{{"kind":"incident","id":"{id}","alerted_at":"2026-10-10T00:00:00Z","triaged_at":{triaged},"validated":{validated}}}"#
        )
    };
    let lines = [
        i("a", r#""2026-10-10T01:00:00Z""#, "true"),
        i("b", r#""2026-10-10T03:00:00Z""#, "true"),
        i("c", "null", "true"),
        i("d", r#""2026-10-10T09:00:00Z""#, "false"),
        i("e", r#""2026-10-10T09:00:00Z""#, "null"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let v = json(&refs);
    let d = &v["kpis"]["detection_triage"];
    assert_eq!(d["incidents"], 5);
    assert_eq!(d["validated"], 3);
    assert_eq!(d["excluded_false_positive"], 1);
    assert_eq!(d["undecided"], 1);
    assert_eq!(d["missing_triage"], 1);
    assert_eq!(d["triage_hours"]["mean"], 2.0);
    assert_eq!(d["triage_hours"]["median"], 2.0);
    assert_eq!(d["triage_hours"]["p90"], 3.0);
    assert!(d["contain_hours"]["mean"].is_null());
    assert_eq!(d["headline"], 2.0);
}

#[test]
fn coverage_windows_end_at_period_end_and_reach_back_365_days() {
    let rev = |id: &str, ty: &str, at: &str| {
        format!(
            r#"{{"kind":"review","id":"{id}","asset":"{id}","type":"{ty}","completed_at":"{at}"}}"#
        )
    };
    let asset = |id: &str, tier: u8| format!(r#"{{"kind":"asset","id":"{id}","tier":{tier}}}"#);
    let lines = [
        asset("edge-in", 1),
        asset("edge-out", 2),
        asset("at-end", 2),
        asset("t3", 3),
        // 2026-11-01 minus 365 days is 2025-11-01: inclusive.
        rev("edge-in", "design", "2025-11-01T00:00:00Z"),
        rev("edge-out", "design", "2025-10-31T23:59:59Z"),
        rev("at-end", "design", "2026-11-01T00:00:00Z"),
        rev("t3", "security", "2026-06-01T00:00:00Z"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let v = json(&refs);
    let d = &v["kpis"]["design_review_coverage"];
    assert_eq!(d["denominator"], 3);
    assert_eq!(d["numerator"], 1);
    assert_eq!(d["by_tier"]["1"]["value"], 1.0);
    assert_eq!(d["by_tier"]["2"]["value"], 0.0);
    let s = &v["kpis"]["security_review_coverage"];
    assert_eq!(s["numerator"], 2);
    assert_eq!(s["denominator"], 4);
    assert!(v["kpis"]["threat_model_coverage"]["missing"]
        .as_array()
        .is_some_and(|m| m.len() == 1 && m[0] == "edge-in"));
}

#[test]
fn info_findings_count_towards_sla_only_when_configured() {
    let f = finding(
        "i",
        "info",
        "2026-09-01T00:00:00Z",
        "remediated",
        Some("2026-10-05T00:00:00Z"),
        "valid",
    );
    let p = pack(&[ASSET, &f]);
    let sla = &p.kpis.sla_attainment.as_ref().expect("shown").figures;
    assert_eq!(sla.closed, 0);
    assert!(sla.by_severity.get("info").is_none());
    let mut cfg = KpiConfig::default();
    cfg.sla_days.info = Some(40);
    let at = "2026-11-02T00:00:00Z".parse().expect("time");
    let p = compute(&estate(&[ASSET, &f]), &october(), &cfg, at);
    let sla = &p.kpis.sla_attainment.as_ref().expect("shown").figures;
    assert_eq!(sla.closed, 1);
    assert_eq!(sla.within_sla, 1);
    assert_eq!(sla.by_severity.get("info").map(|c| c.closed), Some(1));
}

#[test]
fn a_finding_resolved_before_it_was_opened_has_no_remediation_time() {
    let bad = finding(
        "F-bad",
        "critical",
        "2026-10-20T00:00:00Z",
        "remediated",
        Some("2026-10-05T00:00:00Z"),
        "valid",
    );
    let good = finding(
        "F-good",
        "critical",
        "2026-10-01T00:00:00Z",
        "remediated",
        Some("2026-10-11T00:00:00Z"),
        "valid",
    );
    // Inconsistent but closed without a fix: in no remediation figure anyway.
    let closed = finding(
        "F-closed",
        "high",
        "2026-10-20T00:00:00Z",
        "closed",
        Some("2026-10-05T00:00:00Z"),
        "valid",
    );
    // Inconsistent and excluded: counted in mttr.excluded, like any invalid.
    let invalid = finding(
        "F-invalid",
        "high",
        "2026-10-20T00:00:00Z",
        "remediated",
        Some("2026-10-05T00:00:00Z"),
        "invalid",
    );
    // Inconsistent, resolved before the period: not this pack's concern.
    let old = finding(
        "F-old",
        "medium",
        "2026-09-20T00:00:00Z",
        "remediated",
        Some("2026-09-05T00:00:00Z"),
        "valid",
    );
    let v = json(&[ASSET, &bad, &good, &closed, &invalid, &old]);
    let k = &v["kpis"];
    assert_eq!(v["inconsistent_findings"], 1);
    let cell = &k["mttr"]["by_severity"]["critical"]["production"];
    assert_eq!(cell["count"], 1);
    assert_eq!(cell["mean_days"], 10.0);
    assert_eq!(k["mttr"]["excluded"]["invalid"], 1);
    assert_eq!(k["sla_attainment"]["closed"], 1);
    assert_eq!(k["sla_attainment"]["within_sla"], 1);
    assert_eq!(k["sla_attainment"]["by_severity"]["critical"]["closed"], 1);
    let named: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| w.contains("before it was opened"))
        .collect();
    assert_eq!(
        named,
        ["Finding `F-bad` (import) was resolved on 2026-10-05 before it was opened on 2026-10-20; left out of mttr and sla_attainment."]
    );
}

#[test]
fn severity_lowered_while_the_sla_ran_is_named_and_after_it_is_not() {
    let mut e = estate(&[
        ASSET,
        &finding("F-1", "low", "2026-10-01T00:00:00Z", "open", None, "valid"),
        &finding("F-2", "low", "2026-06-01T00:00:00Z", "open", None, "valid"),
    ]);
    let change = |id: &str, at: &str| crate::estate::SeverityChange {
        id: id.to_string(),
        source: "import".to_string(),
        from: secmetrics_connectors::Severity::Critical,
        to: secmetrics_connectors::Severity::Low,
        observed_at: at.parse().expect("time"),
    };
    // F-1: 10 days after opening, inside critical's 15 days. F-2: months
    // after its critical SLA ran out (a plain downgrade only).
    e.severity_changes = vec![
        change("F-1", "2026-10-11T00:00:00Z"),
        change("F-2", "2026-10-11T00:00:00Z"),
    ];
    let at = "2026-11-02T00:00:00Z".parse().expect("time");
    let p = compute(&e, &october(), &KpiConfig::default(), at);
    let within: Vec<&String> = p.warnings.iter().filter(|w| w.contains("SLA of")).collect();
    assert_eq!(
        within,
        ["Finding `F-1` (import) had its severity lowered from critical to low on 2026-10-11, 10 days after it was opened, within the 15-day SLA of critical findings."]
    );
    assert_eq!(p.severity_downgrades.count, 2);
}

#[test]
fn a_group_fixed_in_one_source_and_open_in_another_is_named_unless_out_of_scope() {
    let ticket = r#"{"kind":"finding","id":"T-1","source":"jira","asset":"a","severity":"high","opened_at":"2026-09-01T00:00:00Z","status":"open","refs":["https://s/1"]}"#;
    let alert = r#"{"kind":"finding","id":"1","source":"sast","asset":"a","severity":"high","opened_at":"2026-08-01T00:00:00Z","status":"remediated","resolved_at":"2026-09-10T00:00:00Z","url":"https://s/1"}"#;
    let mut e = estate(&[ASSET, ticket, alert]);
    crate::reconcile::reconcile(&mut e, &Default::default());
    let at = "2026-11-02T00:00:00Z".parse().expect("time");
    let p = compute(&e, &october(), &KpiConfig::default(), at);
    assert!(
        p.warnings.iter().any(|w| w
            == "Finding `T-1` (jira) and its linked findings disagree: fixed in `1` (sast), still open in `T-1` (jira)."),
        "{:?}",
        p.warnings
    );
    let out = r#"{"kind":"asset","id":"a","tier":1,"in_scope":false}"#;
    let mut e = estate(&[out, ticket, alert]);
    crate::reconcile::reconcile(&mut e, &Default::default());
    let p = compute(&e, &october(), &KpiConfig::default(), at);
    assert!(!p.warnings.iter().any(|w| w.contains("disagree")));
}
