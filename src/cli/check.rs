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
    // A daemon answering on the socket holds the store it was started on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let held = runtime.ok().and_then(|rt| {
        rt.block_on(async {
            let client = super::admin_client::connect(&config.admin.socket).await?;
            let resp = client
                .get(super::admin_client::url("/readyz"))
                .send()
                .await
                .ok()?;
            let body = super::admin_client::read_capped(resp).await.ok()?;
            let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
            v["store"].as_str().map(str::to_string)
        })
    });
    match (held, &config.store.path) {
        (Some(store), None) => println!(
            "store: {store} (held by the daemon answering on {})",
            config.admin.socket.display()
        ),
        _ => println!("store: {}", config.store_path(None).display()),
    }
    0
}
