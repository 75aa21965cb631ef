//! `secmetrics check`: validate the configuration and its secrets, and say
//! in plain words what is wrong.

use crate::config::Config;
use std::path::Path;

/// Check the configuration; prints the verdict and returns the exit code.
pub fn run(path: Option<&Path>) -> i32 {
    let name = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "defaults (no configuration file)".into());
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return 1;
        }
    };
    let secrets = match config.secrets() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return 1;
        }
    };
    // Build every connector (no request is sent): bad URLs, quotas or
    // patterns show here rather than at the first sync.
    for c in &config.connectors {
        let token = secrets.connector_tokens.get(c.name()).cloned();
        if let Err(e) = c.clone().build(token) {
            // The error names the connector.
            eprintln!("configuration error: {e}");
            return 1;
        }
    }
    let mut problems = crate::daemon::validate(&config);
    problems.extend(crate::daemon::validate_secrets(&config, &secrets));
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("configuration error: {p}");
        }
        return 1;
    }
    println!("configuration OK: {name}");
    for note in crate::daemon::notes(&config) {
        println!("note: {note}");
    }
    if !config.connectors.is_empty() {
        let list: Vec<String> = config
            .connectors
            .iter()
            .map(|c| format!("{} ({})", c.name(), c.kind()))
            .collect();
        println!("connectors: {}", list.join(", "));
    }
    println!("store: {}", config.store_path(None).display());
    0
}
