//! The one client of the running daemon's admin API, over its Unix socket,
//! so the CLI never opens a store the daemon holds. The integration tests
//! use it too.

use super::Context;
use crate::report::request::{Answer, ReportRequest};
use std::path::Path;
use std::time::Duration;

/// Answers read from the daemon are capped at this many bytes (an HTML
/// report of a large estate is a few MiB).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

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

/// The body of `response`, at most [`MAX_ANSWER_BYTES`].
pub async fn read_capped(mut response: reqwest::Response) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            anyhow::bail!("the daemon's answer is larger than {MAX_ANSWER_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One request to the daemon on `socket`, from synchronous code: (status,
/// body). Status 0 and an empty body when nothing answers there.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return (0, String::new());
    };
    runtime.block_on(async {
        let Ok(client) = reqwest::Client::builder()
            .unix_socket(socket)
            .timeout(Duration::from_secs(30))
            .build()
        else {
            return (0, String::new());
        };
        let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
            return (0, String::new());
        };
        let mut req = client.request(method, url(path)).body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let Ok(resp) = req.send().await else {
            return (0, String::new());
        };
        let status = resp.status().as_u16();
        let body = read_capped(resp).await.unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

/// The daemon holding the store a command is about.
pub struct Daemon {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Daemon {
    /// The daemon answering on the configured socket, if one does and it
    /// holds the store `ctx` names (any store, when none was named: then
    /// the daemon's is the one meant).
    pub fn find(ctx: &Context) -> Option<Daemon> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let client = runtime.block_on(connect(&ctx.config.admin.socket))?;
        let daemon = Daemon { runtime, client };
        if ctx.store_given {
            let ready = daemon.get_json("/readyz").ok()?.1;
            let same = |p: &Path| std::fs::canonicalize(p).ok();
            let theirs = std::path::PathBuf::from(ready["store"].as_str()?);
            if same(&theirs).is_none() || same(&theirs) != same(&ctx.store_path) {
                return None;
            }
        }
        Some(daemon)
    }

    /// `GET path` as JSON: (status, document).
    pub fn get_json(&self, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        self.runtime.block_on(async {
            let resp = self.client.get(url(path)).send().await?;
            let status = resp.status().as_u16();
            let body = read_capped(resp).await?;
            Ok((status, serde_json::from_slice(&body)?))
        })
    }

    /// A report rendered by the daemon; its refusal as an error naming why.
    pub fn report(&self, request: &ReportRequest) -> anyhow::Result<Answer> {
        self.runtime.block_on(async {
            let builder = if request.snapshot {
                self.client.post(url("/api/v1/report"))
            } else {
                self.client.get(url("/api/v1/report"))
            };
            let resp = builder.query(request).send().await?;
            let ok = resp.status().is_success();
            let body = read_capped(resp).await?;
            if !ok {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                anyhow::bail!(
                    "{}",
                    v["error"]
                        .as_str()
                        .unwrap_or("the daemon refused the report")
                );
            }
            Ok(serde_json::from_slice(&body)?)
        })
    }
}
