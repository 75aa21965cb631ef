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

/// One path segment with everything but unreserved characters
/// percent-encoded (record ids may hold `/`, `#`, `?` or spaces).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The admin API path of a record under `prefix`:
/// `prefix/KIND/SOURCE/ID`, each part encoded.
pub fn record_path(prefix: &str, identity: &secmetrics_connectors::Identity) -> String {
    format!(
        "{prefix}/{}/{}/{}",
        segment(identity.kind.as_str()),
        segment(&identity.source),
        segment(&identity.id)
    )
}
