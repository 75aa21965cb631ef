//! A client of the running daemon's admin API over its Unix socket, so the
//! CLI never opens a store the daemon holds.

use std::path::Path;
use std::time::Duration;

/// A client bound to the admin socket, when a daemon answers there.
pub async fn connect(socket: &Path) -> Option<reqwest::Client> {
    if !socket.exists() {
        return None;
    }
    let client = reqwest::Client::builder()
        .unix_socket(socket)
        .timeout(Duration::from_secs(30))
        .build()
        .ok()?;
    let ok = client
        .get("http://secmetrics/healthz")
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    ok.then_some(client)
}

/// The URL of an admin API path (the host part is ignored on a socket).
pub fn url(path: &str) -> String {
    format!("http://secmetrics{path}")
}
