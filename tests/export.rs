//! `secmetrics export`: the current records in the NDJSON format of
//! records.md, sorted by kind, source and id, with UTC `Z` times; importing
//! the export into an empty store gives the same records (and the same
//! export, byte for byte).

use crate::common::*;

const LINES: &[&str] = &[
    r#"{"kind":"finding","id":"f-2","source":"sast","asset":"pay","severity":"high","opened_at":"2026-10-01T02:00:00+02:00","status":"remediated","resolved_at":"2026-10-05T00:00:00.123456Z","validity":"valid","fingerprint":"fp1","url":"https://x/f-2","refs":["https://github.com/acme/pay/security/code-scanning/1"],"scanner":{"rule":"js/xss","tags":["a","b"]}}"#,
    r#"{"kind":"finding","id":"f-1","source":"sast","asset":"pay","title":"SQLi","severity":"critical","environment":"non_production","domain":"infrastructure","opened_at":"2026-09-01T00:00:00Z","status":"open"}"#,
    r#"{"kind":"finding","id":"SEC-1","source":"jira","asset":"pay","severity":"low","opened_at":"2026-09-02T00:00:00-05:00","status":"closed","validity":"duplicate","duplicate_of":"SEC-0"}"#,
    r#"{"kind":"asset","id":"pay","tier":1,"product_line":"payments","owner":"team-pay"}"#,
    r#"{"kind":"asset","id":"blog","tier":3,"critical":false,"in_scope":false,"source":"inventory"}"#,
    r#"{"kind":"repo","id":"acme/pay","asset":"pay","secret_scanning":true,"push_protection":false}"#,
    r#"{"kind":"review","id":"R1","asset":"pay","type":"design","completed_at":"2026-08-01T12:00:00Z"}"#,
    r#"{"kind":"threat_model","id":"TM1","asset":"pay","reviewed_at":"2026-07-01T00:00:00Z"}"#,
    r#"{"kind":"exception","id":"EX1","asset":"pay","opened_at":"2026-06-01T00:00:00Z","findings":["f-1","f-2"],"reason":"WAF"}"#,
    r#"{"kind":"release","id":"v1","asset":"pay","at":"2026-10-10T10:00:00Z","gate":"passed_with_exception","reason":"EX1"}"#,
    r#"{"kind":"secret_alert","id":"acme/pay#1","repo":"acme/pay","secret_type":"aws","opened_at":"2026-10-01T00:00:00Z","resolution":"revoked","resolved_at":"2026-10-02T00:00:00Z","validity":"inactive","secret":"AKIAXXXXXXXX"}"#,
    r#"{"kind":"incident","id":"PD1","source":"pagerduty","asset":"pay","severity":"critical","alerted_at":"2026-10-01T00:00:00Z","triaged_at":"2026-10-01T00:07:00Z","validated":true}"#,
];

fn export(dir: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let o = run(dir, &all);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn export_is_sorted_utc_and_imports_back_to_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, LINES.join("\n")).unwrap();
    let a = dir.path().join("a");
    let o = run(&a, &["import", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let out = dir.path().join("export.ndjson");
    let o = run(&a, &["export", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        format!("exported 12 records to {}", out.display())
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, export(&a, &[]), "file and stdout agree");
    let keys: Vec<(String, String, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["kind"].as_str().unwrap().into(),
                v["source"].as_str().unwrap().into(),
                v["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let k = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        keys,
        vec![
            k("asset", "import", "pay"),
            k("asset", "inventory", "blog"),
            k("exception", "import", "EX1"),
            k("finding", "jira", "SEC-1"),
            k("finding", "sast", "f-1"),
            k("finding", "sast", "f-2"),
            k("incident", "pagerduty", "PD1"),
            k("release", "import", "v1"),
            k("repo", "import", "acme/pay"),
            k("review", "import", "R1"),
            k("secret_alert", "import", "acme/pay#1"),
            k("threat_model", "import", "TM1"),
        ]
    );
    // Times in UTC with Z; offsets converted, fractions kept.
    let f2: serde_json::Value =
        serde_json::from_str(text.lines().find(|l| l.contains("\"id\":\"f-2\"")).unwrap()).unwrap();
    assert_eq!(f2["opened_at"], "2026-10-01T00:00:00Z");
    assert_eq!(f2["resolved_at"], "2026-10-05T00:00:00.123456Z");
    assert_eq!(f2["extra"]["scanner"]["tags"][1], "b");
    let sec1 = text.lines().find(|l| l.contains("\"SEC-1\"")).unwrap();
    assert!(
        sec1.contains("\"opened_at\":\"2026-09-02T05:00:00Z\""),
        "{sec1}"
    );
    // The secret value never reaches the store, so never the export.
    assert!(!text.contains("AKIA"));

    // Import into an empty store: the same records, the same export.
    let b = dir.path().join("b");
    let o = run(&b, &["import", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary_row(&stdout(&o), "total"), vec![12, 12, 0, 0, 0]);
    assert_eq!(export(&b, &[]), text);
    // And into the first store again: nothing changes.
    let o = run(&a, &["import", out.to_str().unwrap()]);
    assert_eq!(summary_row(&stdout(&o), "total"), vec![12, 0, 0, 12, 0]);

    // Filters.
    let findings = export(&a, &["--kind", "finding", "--source", "sast"]);
    let ids: Vec<&str> = findings
        .lines()
        .map(|l| if l.contains("\"f-1\"") { "f-1" } else { "f-2" })
        .collect();
    assert_eq!(ids, ["f-1", "f-2"]);
    assert_eq!(export(&a, &["--source", "pagerduty"]).lines().count(), 1);
    let o = run(&a, &["export", "--kind", "findings"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--kind \"findings\": unknown kind"),
        "{}",
        stderr(&o)
    );
}
