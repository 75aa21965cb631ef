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
    if let Err(e) = config.secrets() {
        eprintln!("configuration error: {e}");
        return 1;
    }
    println!("configuration OK: {name}");
    println!("store: {}", config.store_path(None).display());
    0
}
