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
