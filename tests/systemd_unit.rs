//! The shipped systemd unit against the README's install steps: what it
//! names exists after the install, credentials are optional per file, the
//! configuration decides the log level, and the sandbox rates 1.5 or less.

use crate::common::*;

fn unit() -> String {
    std::fs::read_to_string(data("../../systemd/secmetrics.service")).unwrap()
}

/// `Key=value` lines of the unit (comments left out).
fn settings(key: &str) -> Vec<String> {
    unit()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

fn readme() -> String {
    std::fs::read_to_string(data("../../README.md")).unwrap()
}

#[test]
fn the_unit_names_only_what_the_install_creates() {
    let docs = settings("Documentation");
    assert_eq!(docs.len(), 1, "{docs:?}");
    let path = docs[0].strip_prefix("file://").expect("a file: URL");
    assert!(
        readme().contains(&format!("install -D -m 0644 README.md {path}")),
        "the README's install steps do not create {path}"
    );
    // One credential directory (every file in it, only those there), which
    // the install creates.
    let creds = settings("LoadCredential");
    assert_eq!(creds, ["secmetrics:/etc/secmetrics/credentials"]);
    assert!(readme().contains("install -d -m 0700 /etc/secmetrics/credentials"));
    // The configuration's `[log] level` is not overridden.
    assert!(
        settings("Environment")
            .iter()
            .all(|e| !e.contains("RUST_LOG")),
        "{:?}",
        settings("Environment")
    );
}

#[test]
fn the_systemd_example_configuration_reads_its_secrets_from_the_credentials() {
    let text = std::fs::read_to_string(data("../../systemd/secmetrics.example.toml")).unwrap();
    let files: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("_file = "))
        .collect();
    assert!(!files.is_empty());
    for l in files {
        assert!(
            l.contains("\"/run/credentials/secmetrics.service/secmetrics_"),
            "{l}"
        );
    }
}

#[test]
fn the_sandbox_exposure_is_at_most_1_5() {
    let Ok(o) = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=15"])
        .arg(data("../../systemd/secmetrics.service"))
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed here (CI runs it)");
        return;
    };
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("Overall exposure level for secmetrics.service: 1."),
        "{out}"
    );
}
