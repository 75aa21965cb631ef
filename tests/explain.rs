//! `override` and `explain` end to end: an override survives `sync --full`
//! (and the record going away), shows in `explain` and in the pack; explain
//! gives exact values; both work through a running daemon that holds the
//! store.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ASSET: &str = r#"{"kind":"asset","id":"app","tier":1}"#;
const ALERT: &str = r#"{"kind":"finding","id":"acme/api#12","asset":"app","severity":"critical","opened_at":"2026-09-01T00:00:00Z","status":"remediated","resolved_at":"2026-10-11T12:00:00Z","url":"https://scanner.example/acme/api/12"}"#;
const TICKET: &str = r#"{"kind":"finding","id":"SEC-1","asset":"app","severity":"high","opened_at":"2026-09-05T00:00:00Z","status":"open","refs":["https://scanner.example/acme/api/12"]}"#;

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\n{}\n{}",
        o.status.code(),
        stderr(o),
        stdout(o)
    );
    stdout(o)
}

/// Two `ndjson` connectors, `scanner` and `tickets`, each over its folder.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, lines) in [("scanner", vec![ASSET, ALERT]), ("tickets", vec![TICKET])] {
            std::fs::create_dir(d.join(name)).unwrap();
            std::fs::write(d.join(name).join("a.ndjson"), lines.join("\n") + "\n").unwrap();
        }
        let config = d.join("secmetrics.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"{d}/store\"\n\n[admin]\nsocket = \"{d}/admin.sock\"\n\n\
                 [daemon]\nsync_schedule = \"0 0 0 1 1 *\"\n{extra}\n\
                 [[connectors]]\nkind = \"ndjson\"\nname = \"scanner\"\npaths = [\"{d}/scanner\"]\n\n\
                 [[connectors]]\nkind = \"ndjson\"\nname = \"tickets\"\npaths = [\"{d}/tickets\"]\n",
                d = d.display()
            ),
        )
        .unwrap();
        Setup { dir, config }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        bin()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("USER", "tester")
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&ok(&self.cli(args))).expect("json")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }
}

fn kpi<'a>(e: &'a Value, name: &str) -> &'a Value {
    e["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kpi"] == name)
        .unwrap_or_else(|| panic!("no {name} in {e}"))
}

#[test]
fn an_override_survives_a_full_sync_and_shows_in_explain_and_the_pack() {
    let s = Setup::new("");
    ok(&s.cli(&["sync"]));
    let o = s.cli(&[
        "override",
        "finding/scanner/acme/api#12",
        "--validity",
        "false_positive",
        "--severity",
        "low",
        "--reason",
        "test code, not shipped",
    ]);
    let out = ok(&o);
    assert!(
        out.starts_with("override set on finding/scanner/acme/api#12: validity false_positive, severity low by tester at "),
        "{out}"
    );
    assert!(
        out.trim_end().ends_with("(test code, not shipped)"),
        "{out}"
    );

    // A full resync re-reads both sources: the override stays.
    let o = ok(&s.cli(&["sync", "--full"]));
    assert!(o.contains("scanner"), "{o}");
    let list = s.json(&["override", "--list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["target"], "finding/scanner/acme/api#12");
    assert_eq!(list[0]["validity"], "false_positive");
    assert_eq!(list[0]["severity"], "low");
    assert_eq!(list[0]["severity_before"], "critical");
    assert_eq!(list[0]["by"], "tester");
    assert_eq!(list[0]["reason"], "test code, not shipped");

    // The person's decision travels to the ticket, the canonical member:
    // the pair counts zero times in MTTR and SLA.
    let pack = s.json(&["report", "--period", "2026-10", "--format", "json"]);
    assert_eq!(
        pack["kpis"]["mttr"]["excluded"],
        json!({"false_positive": 1, "duplicate": 1, "invalid": 0})
    );
    assert_eq!(pack["kpis"]["sla_attainment"]["closed"], 0);
    // The severity lowered by hand is a downgrade observed in the period
    // only if set in it; here it was set today, so October shows none.
    assert_eq!(pack["severity_downgrades"]["count"], 0);

    let e = s.json(&[
        "explain",
        "finding/tickets/SEC-1",
        "--period",
        "2026-10",
        "--format",
        "json",
    ]);
    assert_eq!(e["target"], "finding/tickets/SEC-1");
    assert_eq!(e["group"]["role"], "canonical");
    assert_eq!(e["group"]["rule"], "refs");
    assert_eq!(
        e["group"]["validity"],
        json!({"value": "false_positive", "from": "finding/scanner/acme/api#12 (the canonical member is unverified; the first decided member in rule-2 order)"})
    );
    assert_eq!(
        e["group"]["resolved_at"],
        json!({"value": "2026-10-11T12:00:00Z", "from": "finding/scanner/acme/api#12 (the earliest fix in the group)"})
    );
    assert_eq!(e["group"]["opened_at"]["value"], "2026-09-01T00:00:00Z");
    assert_eq!(
        e["group"]["member_overrides"][0]["target"],
        "finding/scanner/acme/api#12"
    );
    assert_eq!(
        kpi(&e, "mttr"),
        &json!({"kpi": "mttr", "status": "excluded", "detail": "counted in mttr.excluded.false_positive: validity false_positive, decided on a linked finding of its group"})
    );
    assert_eq!(
        kpi(&e, "sla_attainment")["detail"],
        "excluded: validity false_positive, decided on a linked finding of its group"
    );

    let e = s.json(&[
        "explain",
        "finding/scanner/acme/api#12",
        "--period",
        "2026-10",
        "--format",
        "json",
    ]);
    assert_eq!(e["record"]["validity"], "unverified", "as stored");
    assert_eq!(e["record"]["severity"], "critical", "as stored");
    assert_eq!(e["counted_as"]["validity"], "duplicate");
    assert_eq!(e["counted_as"]["duplicate_of"], "SEC-1");
    assert_eq!(e["counted_as"]["severity"], "low");
    assert_eq!(e["active_override"]["validity"], "false_positive");
    assert_eq!(e["overrides"].as_array().unwrap().len(), 1);
    assert_eq!(e["overrides"][0]["action"], "set");
    assert_eq!(e["group"]["role"], "duplicate");
    assert_eq!(
        e["group"]["members"][1]["links"],
        json!([
            "its url `https://scanner.example/acme/api/12` is in the refs of finding/tickets/SEC-1"
        ])
    );
    assert_eq!(e["group"]["members"][1]["behind_canonical_by"], "refs");
    assert_eq!(
        kpi(&e, "mttr"),
        &json!({"kpi": "mttr", "status": "excluded", "detail": "counted in mttr.excluded.duplicate: validity duplicate: duplicate of finding/tickets/SEC-1, the canonical member of its group"})
    );

    // The scanner stops returning the alert: --full marks it gone; the
    // override is still there and explain says why it counts nowhere.
    std::fs::write(s.dir.path().join("scanner/a.ndjson"), format!("{ASSET}\n")).unwrap();
    ok(&s.cli(&["sync", "--full", "--connector", "scanner"]));
    let list = s.json(&["override", "--list", "--json"]);
    assert_eq!(list[0]["target"], "finding/scanner/acme/api#12");
    let e = s.json(&["explain", "finding/scanner/acme/api#12", "--format", "json"]);
    assert!(e["gone_at"].is_string());
    assert!(e["counted_as"].is_null());
    assert!(kpi(&e, "findings_aging")["detail"]
        .as_str()
        .unwrap()
        .starts_with("gone since "));

    // Removed: logged with who, the ticket counts alone again.
    let out = ok(&s.cli(&[
        "override",
        "--remove",
        "finding/scanner/acme/api#12",
        "--by",
        "bob",
    ]));
    assert!(
        out.starts_with(
            "override removed from finding/scanner/acme/api#12: was validity false_positive"
        ),
        "{out}"
    );
    let o = s.cli(&["override", "--remove", "finding/scanner/acme/api#12"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no override on finding/scanner/acme/api#12"));
    let e = s.json(&["explain", "finding/scanner/acme/api#12", "--format", "json"]);
    assert!(e["active_override"].is_null());
    let log: Vec<(&str, &str)> = e["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["action"].as_str().unwrap(), x["by"].as_str().unwrap()))
        .collect();
    assert_eq!(log, [("set", "tester"), ("removed", "bob")]);
}

#[test]
fn override_refuses_what_it_cannot_apply_and_names_it() {
    let s = Setup::new("");
    ok(&s.cli(&["sync"]));
    let o = s.cli(&[
        "override",
        "finding/scanner/nope",
        "--validity",
        "valid",
        "--reason",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no record finding/scanner/nope in the store"),
        "{}",
        stderr(&o)
    );
    let o = s.cli(&[
        "override",
        "asset/scanner/app",
        "--validity",
        "valid",
        "--reason",
        "x",
    ]);
    assert!(
        stderr(&o).contains("overrides apply to findings"),
        "{}",
        stderr(&o)
    );
    let o = s.cli(&[
        "override",
        "finding-scanner-x",
        "--validity",
        "valid",
        "--reason",
        "x",
    ]);
    assert!(
        stderr(&o).contains("is not KIND/SOURCE/ID"),
        "{}",
        stderr(&o)
    );
    let o = s.cli(&[
        "override",
        "finding/tickets/SEC-1",
        "--validity",
        "valid",
        "--reason",
        "  ",
    ]);
    assert!(stderr(&o).contains("needs a reason"), "{}", stderr(&o));
    // --reason is required by the command line itself.
    let o = s.cli(&["override", "finding/tickets/SEC-1", "--validity", "valid"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--reason"), "{}", stderr(&o));
    let o = s.cli(&["explain", "finding/tickets/NOPE"]);
    assert!(
        stderr(&o).contains("no record finding/tickets/NOPE"),
        "{}",
        stderr(&o)
    );
    assert_eq!(ok(&s.cli(&["override", "--list"])).trim(), "no overrides");
}

#[test]
fn explain_of_the_linked_golden_estate_gives_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = data("golden/estate-linked.ndjson");
    ok(&run(&store, &["import", file.to_str().unwrap()]));
    let explain = |target: &str| -> Value {
        serde_json::from_str(&ok(&run(
            &store,
            &["explain", target, "--period", "2026-10", "--format", "json"],
        )))
        .unwrap()
    };
    // A ticket naming two alerts: canonical by refs, resolved before it
    // was opened, resolved outside October.
    let e = explain("finding/jira/F-222");
    let g = &e["group"];
    assert_eq!(g["role"], "canonical");
    assert_eq!(g["members_total"], 3);
    let members: Vec<&str> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        members,
        [
            "finding/jira/F-222",
            "finding/codeql/F-770",
            "finding/codeql/F-879"
        ]
    );
    assert_eq!(g["rule_text"], "finding/jira/F-222 is canonical: it has refs (a ticket that points at the evidence comes first)");
    assert_eq!(g["status"]["value"], "mitigated");
    assert_eq!(g["resolved_at"]["value"], "2025-09-29T21:46:35Z");
    let statuses: Vec<(&str, &str)> = e["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kpi"].as_str().unwrap(), k["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("mttr", "no"),
            ("sla_attainment", "no"),
            ("sla_attainment.open_breached", "no"),
            ("findings_aging", "no"),
            ("inconsistent_findings", "no"),
            ("severity_downgrades", "no")
        ]
    );
    assert_eq!(
        kpi(&e, "mttr")["detail"],
        "resolved on 2025-09-29, outside the period"
    );

    // The one inconsistent finding of the October pack.
    let e = explain("finding/codeql/F-570");
    assert_eq!(e["group"]["role"], "alone");
    assert_eq!(
        kpi(&e, "inconsistent_findings")["detail"],
        "resolved on 2026-10-19T10:17:14Z before it was opened on 2026-12-01T00:00:00Z: left out of mttr and sla_attainment"
    );
    assert_eq!(kpi(&e, "mttr")["detail"], "inconsistent times: resolved on 2026-10-19 before it was opened on 2026-12-01; counted in inconsistent_findings");

    // On an out-of-scope asset: nowhere, and it says so for every figure.
    let e = explain("finding/codeql/F-653");
    let why: std::collections::BTreeSet<&str> = e["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        why.into_iter().collect::<Vec<_>>(),
        ["asset `app-009` is out of scope (in_scope: false): its records are left out of every KPI"]
    );

    let text = ok(&run(
        &store,
        &["explain", "finding/jira/F-222", "--period", "2026-10"],
    ));
    assert!(
        text.starts_with("finding/jira/F-222\n\nRecord as stored\n"),
        "{text}"
    );
    assert!(text.contains("\nReconciliation\n  canonical in a group of 3; finding/jira/F-222 is canonical: it has refs"), "{text}");
    assert!(text.contains("  2. finding/codeql/F-770  asset app-021, opened 2026-05-15T08:25:09Z, risk_accepted 2026-08-07T22:56:22Z, validity valid; after the canonical by refs\n"), "{text}");
    assert!(text.contains("\nKPIs for 2026-10\n  no       mttr                           resolved on 2025-09-29, outside the period\n"), "{text}");
}

#[test]
fn explanations_of_every_finding_add_up_to_the_pack() {
    use secmetrics::kpi::{self, KpiConfig, Period};
    use secmetrics::reconcile::{self, ReconcileConfig};
    let dir = tempfile::tempdir().unwrap();
    let store = secmetrics::store::Store::open(dir.path()).unwrap();
    let text = read("golden/estate-linked.ndjson");
    let records: Vec<_> = text
        .lines()
        .map(|l| secmetrics_connectors::ndjson::parse_line(l, "import").unwrap())
        .collect();
    let at = "2026-11-02T06:00:00Z".parse().unwrap();
    store.upsert_batch(&records, at).unwrap();
    let period = Period::parse_month("2026-10").unwrap();
    let (kcfg, rcfg) = (KpiConfig::default(), ReconcileConfig::default());
    let reconciled = reconcile::load(&store, &rcfg).unwrap();
    let pack = serde_json::to_value(kpi::compute(&reconciled.estate, &period, &kcfg, at)).unwrap();
    let mut tally: std::collections::BTreeMap<String, u64> = Default::default();
    for f in &reconciled.estate.findings {
        let identity = secmetrics_connectors::Identity {
            kind: secmetrics_connectors::Kind::Finding,
            source: f.source.clone(),
            id: f.id.clone(),
        };
        let stored = store.get(&identity).unwrap().unwrap();
        let e = secmetrics::explain::build(&secmetrics::explain::Input {
            identity: &identity,
            stored: &stored,
            history: Vec::new(),
            active_override: None,
            override_log: Vec::new(),
            all_overrides: Vec::new(),
            reconciled: &reconciled,
            period: &period,
            kpi: &kcfg,
            rec: &rcfg,
        });
        for k in &e.kpis {
            let detail = &k.detail;
            let key = match (k.kpi.as_str(), k.status.as_str()) {
                ("mttr", "counts") => "mttr".to_string(),
                ("mttr", "excluded") => format!(
                    "mttr.excluded.{}",
                    detail
                        .split_once(':')
                        .unwrap()
                        .0
                        .rsplit('.')
                        .next()
                        .unwrap()
                ),
                ("findings_aging", "counts") => "aging".into(),
                ("findings_aging", "excluded") => "aging.excluded".into(),
                ("sla_attainment", "counts") => {
                    if detail.contains(" within ") {
                        "sla.within".into()
                    } else {
                        "sla.outside".into()
                    }
                }
                (kpi, "counts") => kpi.to_string(),
                _ => continue,
            };
            *tally.entry(key).or_default() += 1;
        }
    }
    let k = &pack["kpis"];
    let mttr_count: u64 = ["critical", "high", "medium"]
        .iter()
        .flat_map(|s| {
            ["production", "non_production"]
                .map(|e| k["mttr"]["by_severity"][s][e]["count"].as_u64().unwrap())
        })
        .sum();
    let n = |key: &str| tally.get(key).copied().unwrap_or(0);
    assert_eq!(n("mttr"), mttr_count);
    for v in ["false_positive", "duplicate", "invalid"] {
        assert_eq!(
            n(&format!("mttr.excluded.{v}")),
            k["mttr"]["excluded"][v].as_u64().unwrap(),
            "{v}"
        );
    }
    let total = &k["findings_aging"]["total"];
    assert_eq!(
        n("aging"),
        ["0_30", "31_90", "over_90"]
            .iter()
            .map(|b| total[b].as_u64().unwrap())
            .sum::<u64>()
    );
    let excl = &k["findings_aging"]["excluded"];
    assert_eq!(
        n("aging.excluded"),
        ["false_positive", "duplicate", "invalid"]
            .iter()
            .map(|v| excl[v].as_u64().unwrap())
            .sum::<u64>()
    );
    assert_eq!(
        n("sla.within"),
        k["sla_attainment"]["within_sla"].as_u64().unwrap()
    );
    assert_eq!(
        n("sla.within") + n("sla.outside"),
        k["sla_attainment"]["closed"].as_u64().unwrap()
    );
    let breached = &k["sla_attainment"]["open_breached"];
    assert_eq!(
        n("sla_attainment.open_breached"),
        ["critical", "high", "medium", "low"]
            .iter()
            .map(|s| breached[s].as_u64().unwrap())
            .sum::<u64>()
    );
    assert_eq!(
        n("inconsistent_findings"),
        pack["inconsistent_findings"].as_u64().unwrap()
    );
    // The figures of the golden file itself, so the tally is not vacuous.
    assert_eq!((n("mttr"), n("sla.within"), n("aging")), (8, 4, 211));
}

// ---- through a running daemon -------------------------------------------

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 GET over the admin socket: (status, body).
fn get(socket: &Path, path: &str) -> (u16, String) {
    request(socket, "GET", path, "")
}

/// One HTTP/1.1 request with a JSON body over the admin socket.
fn request(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: secmetrics\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn override_and_explain_go_through_the_daemon_that_holds_the_store() {
    let s = Setup::new("");
    ok(&s.cli(&["sync"]));
    let log = std::fs::File::create(s.dir.path().join("daemon.log")).unwrap();
    let daemon = Daemon(
        bin()
            .arg("--config")
            .arg(&s.config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&s.socket(), "/healthz").0 != 200 {
        assert!(Instant::now() < deadline, "the daemon did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The store is the daemon's: a local open fails (export does not go
    // through the daemon), so success below means the commands went
    // through the admin API.
    let o = s.cli(&["export"]);
    assert!(
        stderr(&o).contains("in use by another secmetrics process"),
        "{}",
        stderr(&o)
    );

    let out = ok(&s.cli(&[
        "override",
        "finding/scanner/acme/api#12",
        "--validity",
        "invalid",
        "--reason",
        "scanner misfire",
        "--by",
        "carol",
    ]));
    assert!(out.contains("validity invalid by carol"), "{out}");
    let list = s.json(&["override", "--list", "--json"]);
    assert_eq!(list[0]["by"], "carol");

    let e = s.json(&[
        "explain",
        "finding/scanner/acme/api#12",
        "--period",
        "2026-10",
        "--format",
        "json",
    ]);
    assert_eq!(e["active_override"]["validity"], "invalid");
    assert_eq!(e["group"]["canonical"], "finding/tickets/SEC-1");
    // The raw route, with the id's `/` and `#` percent-encoded.
    let (status, body) = get(
        &s.socket(),
        "/api/v1/explain/finding/scanner/acme%2Fapi%2312?period=2026-10",
    );
    assert_eq!(status, 200, "{body}");
    let raw: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(raw, e);
    let (status, body) = get(
        &s.socket(),
        "/api/v1/explain/finding/scanner/none?period=2026-10",
    );
    assert_eq!(status, 404);
    assert!(body.contains("no record finding/scanner/none"), "{body}");
    let (status, _) = get(
        &s.socket(),
        "/api/v1/explain/finding/scanner/x?period=October",
    );
    assert_eq!(status, 400);

    // The pack the daemon serves reflects the override.
    let (status, body) = get(&s.socket(), "/api/v1/kpis?period=2026-10");
    assert_eq!(status, 200);
    let pack: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        pack["kpis"]["mttr"]["excluded"],
        json!({"false_positive": 0, "duplicate": 1, "invalid": 1})
    );

    let out = ok(&s.cli(&["override", "--remove", "finding/scanner/acme/api#12"]));
    assert!(out.starts_with("override removed"), "{out}");
    let o = s.cli(&["override", "--remove", "finding/scanner/acme/api#12"]);
    assert_eq!(o.status.code(), Some(1));

    // The API speaks the records.md spellings and names a wrong value.
    let body = |v: &str| {
        json!({"target": "finding/tickets/SEC-1", "validity": v, "reason": "api", "by": "dave"})
            .to_string()
    };
    let (status, answer) = request(&s.socket(), "POST", "/api/v1/overrides", &body("bogus"));
    assert_eq!(status, 400);
    assert!(
        answer.contains("validity: unknown value \\\"bogus\\\""),
        "{answer}"
    );
    let (status, answer) = request(
        &s.socket(),
        "POST",
        "/api/v1/overrides",
        &body("false_positive"),
    );
    assert_eq!(status, 200, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["override"]["validity"], "false_positive");
    assert_eq!(v["override"]["by"], "dave");
    assert!(v["replaced"].is_null());
    let (status, answer) = request(
        &s.socket(),
        "DELETE",
        "/api/v1/overrides/finding/tickets/SEC-1?by=erin",
        "",
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        s.json(&["explain", "finding/tickets/SEC-1", "--format", "json"])["overrides"][1]["by"],
        "erin"
    );
    drop(daemon);
}
