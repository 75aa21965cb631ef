//! `secmetrics check` and configuration errors: one clear line each.

use crate::common::*;

fn check(toml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("secmetrics.toml");
    std::fs::write(&p, toml).unwrap();
    let o = bin().arg("--config").arg(&p).arg("check").output().unwrap();
    let err = stderr(&o);
    (
        o.status.code(),
        err.replace(&p.display().to_string(), "FILE"),
    )
}

#[test]
fn unknown_key_gives_one_line_naming_the_key() {
    let (code, err) = check("[store]\npth = \"/tmp/x\"\n");
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("configuration error: "), "{err}");
    assert!(err.contains("unknown field `pth`"), "{err}");
}

#[test]
fn missing_secret_file_gives_one_line_naming_key_and_path() {
    let (code, err) = check("[admin]\npush_token_file = \"/nonexistent/push\"\n");
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim_end(),
        "configuration error: `admin.push_token_file`: cannot read /nonexistent/push: No such file or directory (os error 2)"
    );
}

#[test]
fn wrong_type_gives_one_line_naming_the_key() {
    let (code, err) = check("[admin]\npush_max_bytes = \"lots\"\n");
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("push_max_bytes"), "{err}");
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[store]\npath = \"/from/file\"\n").unwrap();
    let o = bin()
        .arg("--config")
        .arg(&p)
        .arg("check")
        .env("SECMETRICS__STORE__PATH", "/from/env")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("store: /from/env"), "{}", stdout(&o));
}

#[test]
fn every_command_works_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin().arg("check").env("HOME", dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("configuration OK: defaults"));
}

#[test]
fn a_wrong_type_inside_a_connector_table_names_the_connector_and_the_key() {
    let (code, err) = check(
        "[[connectors]]\nkind = \"github_code_scanning\"\nname = \"code\"\norg = \"acme\"\n\
         [connectors.retry]\nmax_attempts = \"many\"\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim_end(),
        "configuration error: FILE: connector \"code\" (kind github_code_scanning): \
         `retry.max_attempts`: invalid type: string \"many\", expected u32 for key `connectors[0]`"
    );
}

#[test]
fn check_validates_the_example_jira_pagerduty_and_inventory_setup() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/secmetrics.example.toml");
    let o = bin()
        .arg("--config")
        .arg(&example)
        .arg("check")
        .env("SECMETRICS_GITHUB_TOKEN", "ghp_x")
        .env("JIRA_TOKEN", "jira-x")
        .env("PAGERDUTY_TOKEN", "pd-x")
        .env(
            "SECMETRICS_SLACK_WEBHOOK",
            "https://hooks.slack.com/services/T/B/X",
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("jira (jira), pagerduty (pagerduty), inventory (inventory)"),
        "{out}"
    );
}

#[test]
fn a_bad_jira_mapping_gives_one_line_naming_mapping_and_key() {
    let (code, err) = check(
        "[[connectors]]\nkind = \"jira\"\nname = \"jira\"\nbase_url = \"https://x.atlassian.net\"\n\
         [[connectors.mappings]]\nrecord = \"finding\"\njql = \"project = SEC\"\n\
         [[connectors.mappings]]\nrecord = \"review\"\njql = \"project = REV\"\nseverity_from = \"priority\"\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim_end(),
        "configuration error: connector jira: mappings[1] (review): `severity_from` does not apply to record = \"review\""
    );
    let (code, err) = check(
        "[[connectors]]\nkind = \"pagerduty\"\nname = \"pd\"\n[connectors.validated]\nfrom = \"urgncy\"\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("urgncy"), "{err}");
}

#[test]
fn check_catches_what_run_or_delivery_would_trip_on() {
    let dir = tempfile::tempdir().unwrap();
    let webhook = dir.path().join("webhook");
    std::fs::write(
        &webhook,
        "hooks.slack.example/services/T0/B0/sekrit-webhook-path\n",
    )
    .unwrap();
    let (code, err) = check(&format!(
        r#"
[admin]
metrics_listen = "0.0.0.0:9477"

[slack]
webhook_url_file = "{}"

[email]
host = "127.0.0.1"
from = "secmetrics at example.com"
to = ["ciso@example.com", "not an address"]

[[digests]]
name = "monthly"
schedule = "0 0 8 30 2 *"
channels = ["slack", "email"]
email_to = ["lead@@example.com"]
"#,
        webhook.display()
    ));
    assert_eq!(code, Some(1), "{err}");
    let expect = [
        "configuration error: `admin.metrics_listen` 0.0.0.0:9477 is not a loopback address",
        "configuration error: `email.from`: \"secmetrics at example.com\" is not an email address",
        "configuration error: `email.to`: \"not an address\" is not an email address",
        "configuration error: digest `monthly`: schedule: cron expression \"0 0 8 30 2 *\" never fires",
        "configuration error: `digests.monthly.email_to`: \"lead@@example.com\" is not an email address",
        "configuration error: `slack.webhook_url` is not a URL",
    ];
    for e in expect {
        assert!(
            err.lines().any(|l| l.starts_with(e)),
            "missing {e:?} in\n{err}"
        );
    }
    assert_eq!(err.lines().count(), expect.len(), "{err}");
    assert!(
        !err.contains("sekrit"),
        "the webhook URL is a secret: {err}"
    );
    assert!(!err.contains("ciso@example.com"), "{err}");
}

#[test]
fn run_refuses_what_check_refuses_and_leaves_no_socket_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = dir.path().join("c.toml");
    let socket = dir.path().join("admin.sock");
    // A port in use: the start fails after validation.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for listen in ["0.0.0.0:9477".to_string(), format!("127.0.0.1:{port}")] {
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"{d}/store\"\n[admin]\nsocket = \"{d}/admin.sock\"\nmetrics_listen = \"{listen}\"\n"
            ),
        )
        .unwrap();
        let o = bin()
            .arg("--config")
            .arg(&config)
            .arg("run")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{listen}: {}", stderr(&o));
        assert!(stderr(&o).contains("metrics_listen"), "{}", stderr(&o));
        assert!(!socket.exists(), "{listen}: admin.sock left behind");
        let staging: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".secmetrics-bind")
            })
            .collect();
        assert!(staging.is_empty(), "{staging:?}");
    }
}
