//! Chaos mode for the local test servers: a TCP proxy on loopback in front
//! of a fake (GitHub, Jira, PagerDuty) that, request by request, either
//! passes the exchange through or injects a fault the way networks and
//! providers fail:
//!
//! - `5xx`: 500, 502 or 503 with a JSON error body;
//! - `429` with `Retry-After: 0`, and `429` with no header at all;
//! - a timeout: the request is read and never answered (the client's own
//!   timeout fires after it was sent);
//! - a reset: the connection is dropped with an RST right after the
//!   request was read;
//! - a cut transfer: the answer's head and half its body, then the
//!   connection closes (`Content-Length` promised more);
//! - a truncated page: `200` whose JSON body is cut in half, with a
//!   `Content-Length` that matches (a whole HTTP message, broken JSON);
//! - a malformed page: `200` with a body that is not JSON (an HTML error
//!   page, a stray byte, broken JSON) or is JSON but no page (a gateway's
//!   `{"message": ...}`);
//! - an expired Jira `nextPageToken`: a search asked with a token answers
//!   `400` with Jira's error shape.
//!
//! Every exchange is forwarded on a connection of its own with
//! `Connection: close`, and the backend's address in answers (GitHub's
//! `Link` headers) is rewritten to the proxy's, so pagination stays on the
//! proxy. Faults are drawn from a seeded generator; every injected fault
//! is counted by kind.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fault the proxy can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// 500, 502 or 503 with a JSON body.
    ServerError,
    /// 429 with `Retry-After: 0`.
    RateLimitedRetryAfter,
    /// 429 without any rate-limit header.
    RateLimitedBare,
    /// The request is read and never answered.
    Timeout,
    /// The connection is reset right after the request.
    Reset,
    /// Head and half the body, then the connection closes.
    CutTransfer,
    /// `200` with the JSON body cut in half (a consistent message).
    TruncatedJson,
    /// `200` with a body that is not JSON.
    MalformedJson,
    /// Jira: the search's `nextPageToken` has expired (`400`).
    ExpiredPageToken,
}

impl Fault {
    /// Every fault, in a fixed order.
    pub const ALL: [Fault; 9] = [
        Fault::ServerError,
        Fault::RateLimitedRetryAfter,
        Fault::RateLimitedBare,
        Fault::Timeout,
        Fault::Reset,
        Fault::CutTransfer,
        Fault::TruncatedJson,
        Fault::MalformedJson,
        Fault::ExpiredPageToken,
    ];
}

/// What the proxy has done.
#[derive(Debug, Clone, Default)]
pub struct ChaosStats {
    /// Requests seen.
    pub requests: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<Fault, u64>,
}

struct Shared {
    backend: String,
    public: String,
    rng: Mutex<StdRng>,
    /// Probability (0 to 1) that a request gets a fault.
    rate: Mutex<f64>,
    enabled: AtomicBool,
    requests: AtomicU64,
    faults: Mutex<BTreeMap<Fault, u64>>,
}

/// A chaos proxy in front of one fake server.
#[derive(Clone)]
pub struct ChaosProxy {
    shared: Arc<Shared>,
    /// The proxy's base URL: point the connector here.
    pub base: String,
}

impl ChaosProxy {
    /// A proxy in front of `backend` (an `http://127.0.0.1:PORT` base)
    /// injecting a fault into a `rate` share of requests, drawn from `seed`.
    pub async fn start(backend: &str, rate: f64, seed: u64) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            backend: backend.trim_start_matches("http://").to_string(),
            public: base.trim_start_matches("http://").to_string(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            rate: Mutex::new(rate),
            enabled: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            faults: Mutex::new(BTreeMap::new()),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(s.clone(), sock));
            }
        });
        ChaosProxy { shared, base }
    }

    /// Turn faults on or off (off: every exchange passes through).
    pub fn set_enabled(&self, on: bool) {
        self.shared.enabled.store(on, Ordering::SeqCst);
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> ChaosStats {
        ChaosStats {
            requests: self.shared.requests.load(Ordering::SeqCst),
            faults: self.shared.faults.lock().unwrap().clone(),
        }
    }
}

/// Read one request head (GET: no body) from `sock`.
async fn read_head(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            buf.truncate(i + 4);
            return Some(buf);
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The head with `Connection: close` instead of any connection header.
fn close_after(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// A whole HTTP/1.1 answer that closes the connection.
fn answer(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

fn pick(s: &Shared, target: &str) -> Option<Fault> {
    if !s.enabled.load(Ordering::SeqCst) {
        return None;
    }
    let rate = *s.rate.lock().unwrap();
    let mut rng = s.rng.lock().unwrap();
    if !rng.gen_bool(rate.clamp(0.0, 1.0)) {
        return None;
    }
    // A request with a page token: a third of its faults are the token's.
    if target.contains("nextPageToken=") && rng.gen_range(0..3) == 0 {
        return Some(Fault::ExpiredPageToken);
    }
    let choices = &Fault::ALL[..Fault::ALL.len() - 1];
    Some(choices[rng.gen_range(0..choices.len())])
}

fn count(s: &Shared, f: Fault) {
    *s.faults.lock().unwrap().entry(f).or_default() += 1;
}

/// The backend's answer to `head`, read whole (it closes after it).
async fn forward(s: &Shared, head: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(&s.backend).await.ok()?;
    up.write_all(&close_after(head)).await.ok()?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).await.ok()?;
    // Links point back at the proxy.
    let split = find(&resp, b"\r\n\r\n")? + 4;
    let head_text = String::from_utf8_lossy(&resp[..split]).replace(&s.backend, &s.public);
    let mut out = head_text.into_bytes();
    out.extend_from_slice(&resp[split..]);
    Some(out)
}

/// An answer split into (head, body, status, `Content-Length`).
type Parts<'a> = (&'a [u8], &'a [u8], u16, Option<usize>);

/// Split an answer into its head, body, status and `Content-Length`.
fn parts(resp: &[u8]) -> Option<Parts<'_>> {
    let split = find(resp, b"\r\n\r\n")? + 4;
    let head = &resp[..split];
    let text = String::from_utf8_lossy(head);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let length = text.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    });
    Some((head, &resp[split..], status, length))
}

async fn serve(s: Arc<Shared>, mut sock: TcpStream) {
    let Some(head) = read_head(&mut sock).await else {
        return;
    };
    s.requests.fetch_add(1, Ordering::SeqCst);
    let target = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let fault = pick(&s, &target);
    let out = match fault {
        None => forward(&s, &head).await,
        Some(f @ Fault::ServerError) => {
            let status = [
                "500 Internal Server Error",
                "502 Bad Gateway",
                "503 Service Unavailable",
            ][s.rng.lock().unwrap().gen_range(0..3)];
            count(&s, f);
            Some(answer(
                status,
                &[],
                r#"{"message":"Server Error","errorMessages":["Internal server error"],"error":{"message":"Internal Server Error","code":2000}}"#,
            ))
        }
        Some(f @ Fault::RateLimitedRetryAfter) => {
            count(&s, f);
            Some(answer(
                "429 Too Many Requests",
                &[("retry-after", "0")],
                r#"{"message":"Too many requests"}"#,
            ))
        }
        Some(f @ Fault::RateLimitedBare) => {
            count(&s, f);
            Some(answer(
                "429 Too Many Requests",
                &[],
                r#"{"message":"Too many requests"}"#,
            ))
        }
        Some(f @ Fault::Timeout) => {
            count(&s, f);
            // Hold the connection until the client gives up on it.
            let mut sink = [0u8; 1024];
            while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        Some(f @ Fault::Reset) => {
            count(&s, f);
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(std::time::Duration::ZERO));
            drop(sock);
            return;
        }
        Some(f @ Fault::ExpiredPageToken) => {
            count(&s, f);
            Some(answer(
                "400 Bad Request",
                &[],
                r#"{"errorMessages":["The provided next page token is invalid or expired."],"errors":{}}"#,
            ))
        }
        Some(f @ Fault::MalformedJson) => {
            count(&s, f);
            let bodies = [
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                "\u{1}",
                "{\"issues\": [}",
                // Valid JSON, but no page: what a gateway may answer.
                "{\"message\":\"upstream temporarily unavailable\"}",
            ];
            let body = bodies[s.rng.lock().unwrap().gen_range(0..bodies.len())];
            Some(answer("200 OK", &[], body))
        }
        Some(f @ (Fault::CutTransfer | Fault::TruncatedJson)) => {
            let Some(resp) = forward(&s, &head).await else {
                return;
            };
            match parts(&resp) {
                // Only a body worth cutting: a 200 with a known length.
                Some((h, body, 200, Some(len))) if len == body.len() && body.len() >= 2 => {
                    count(&s, f);
                    let half = &body[..body.len() / 2];
                    if f == Fault::CutTransfer {
                        let mut out = h.to_vec();
                        out.extend_from_slice(half);
                        Some(out)
                    } else {
                        let text = String::from_utf8_lossy(h);
                        let mut out = String::new();
                        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                            if line.to_ascii_lowercase().starts_with("content-length:") {
                                out.push_str(&format!("content-length: {}\r\n", half.len()));
                            } else {
                                out.push_str(line);
                                out.push_str("\r\n");
                            }
                        }
                        out.push_str("\r\n");
                        let mut out = out.into_bytes();
                        out.extend_from_slice(half);
                        Some(out)
                    }
                }
                _ => Some(resp),
            }
        }
    };
    if let Some(out) = out {
        let _ = sock.write_all(&out).await;
        let _ = sock.shutdown().await;
    }
}
