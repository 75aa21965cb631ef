//! The HTTP client every connector shares: one `governor` quota per
//! connector, rate-limit headers honoured, retries with jittered backoff,
//! `Link` pagination and conditional requests with ETags.
//!
//! What is waited out, and for how long:
//! - `Retry-After` (seconds or an HTTP date) on any 403/429/5xx;
//! - GitHub's `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (epoch
//!   seconds) on 403 or 429: until the reset;
//! - a 403/429 that says it is a secondary rate limit but gives neither: at
//!   least `secondary_min_wait_secs`, growing exponentially;
//! - 429 without headers, 5xx, timeouts and connection failures: exponential
//!   backoff with jitter.
//!
//! Every wait counts as an attempt, attempts are bounded, and a single wait
//! longer than `max_wait_secs` fails the request instead of stalling a sync.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, ETAG, IF_NONE_MATCH, LINK};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Retry, timeout and wait limits of one connector's HTTP client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts per request, the first included (waits for rate limits count).
    pub max_attempts: u32,
    /// Timeout of one request, connect to last body byte, in seconds.
    pub timeout_secs: f64,
    /// First backoff step in milliseconds; doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Ceiling of one backoff step in milliseconds.
    pub backoff_max_ms: u64,
    /// Smallest wait after a secondary rate limit that names no wait (GitHub
    /// asks for at least 60 s).
    pub secondary_min_wait_secs: f64,
    /// A rate-limit wait longer than this fails the request instead.
    pub max_wait_secs: f64,
    /// Largest answer body accepted, in bytes; a longer one fails the
    /// request (it is not retried) instead of filling memory.
    pub max_body_bytes: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 6,
            timeout_secs: 30.0,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            secondary_min_wait_secs: 60.0,
            max_wait_secs: 3_700.0,
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// How requests are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// No `Authorization` header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
    /// `Authorization: Basic base64(user:password)` (Jira Cloud: the
    /// account's email and an API token).
    Basic {
        /// User name (not secret; e.g. an email address).
        user: String,
        /// Password or API token.
        password: SecretString,
    },
    /// `Authorization: Token token=<key>` (PagerDuty REST API keys).
    TokenKey(SecretString),
}

impl Auth {
    /// Add this authentication to a request (the header is marked
    /// sensitive, so it never shows in debug output).
    fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let value = match self {
            Auth::None => return req,
            Auth::Basic { user, password } => {
                return req.basic_auth(user, Some(password.expose_secret()))
            }
            Auth::Bearer(token) => format!("Bearer {}", token.expose_secret()),
            Auth::TokenKey(token) => format!("Token token={}", token.expose_secret()),
        };
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                req.header(AUTHORIZATION, v)
            }
            Err(_) => req,
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer([redacted])"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}:[redacted])"),
            Auth::TokenKey(_) => f.write_str("TokenKey([redacted])"),
        }
    }
}

/// Counters of one client, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Requests sent (every attempt).
    pub requests: AtomicU64,
    /// Attempts after the first one of a request.
    pub retries: AtomicU64,
    /// Waits caused by rate-limit answers (403/429 with limit headers).
    pub rate_limit_waits: AtomicU64,
    /// Total milliseconds spent in rate-limit waits.
    pub rate_limit_wait_ms: AtomicU64,
    /// Answers `304 Not Modified`.
    pub not_modified: AtomicU64,
}

/// A plain copy of [`HttpStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStatsSnapshot {
    /// Requests sent (every attempt).
    pub requests: u64,
    /// Attempts after the first one of a request.
    pub retries: u64,
    /// Waits caused by rate-limit answers.
    pub rate_limit_waits: u64,
    /// Total milliseconds spent in rate-limit waits.
    pub rate_limit_wait_ms: u64,
    /// Answers `304 Not Modified`.
    pub not_modified: u64,
}

impl HttpStats {
    /// Read all counters.
    pub fn snapshot(&self) -> HttpStatsSnapshot {
        HttpStatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limit_waits: self.rate_limit_waits.load(Ordering::Relaxed),
            rate_limit_wait_ms: self.rate_limit_wait_ms.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
        }
    }
}

/// A failed request. Names the connector, method, URL path (never the query
/// or a token) and the status.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with a status that is not retried, or still failed
    /// after the last attempt.
    #[error("{connector}: {method} {path}: HTTP {status}{}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(), attempts_note(*attempts))]
    Status {
        /// Connector instance.
        connector: String,
        /// HTTP method.
        method: &'static str,
        /// URL path, without query.
        path: String,
        /// HTTP status code.
        status: u16,
        /// The provider's error message, if it gave one (shortened).
        message: Option<String>,
        /// Attempts made.
        attempts: u32,
    },
    /// The request never got an answer (timeout, refused, reset), after the
    /// last attempt.
    #[error("{connector}: {method} {path}: {reason}{}", attempts_note(*attempts))]
    Transport {
        /// Connector instance.
        connector: String,
        /// HTTP method.
        method: &'static str,
        /// URL path, without query.
        path: String,
        /// What failed (the URL is left out).
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The provider asked for a wait longer than `max_wait_secs`.
    #[error("{connector}: {method} {path}: HTTP {status}: rate limited for {wait_secs} s, longer than the allowed wait")]
    RateLimited {
        /// Connector instance.
        connector: String,
        /// HTTP method.
        method: &'static str,
        /// URL path, without query.
        path: String,
        /// HTTP status code.
        status: u16,
        /// The wait asked for, in seconds.
        wait_secs: u64,
    },
    /// The pass was cancelled (Ctrl-C, SIGTERM or its time bound) while the
    /// request was in flight or waiting: nothing of it is kept.
    #[error("{connector}: {method} {path}: cancelled")]
    Cancelled {
        /// Connector instance.
        connector: String,
        /// HTTP method.
        method: &'static str,
        /// URL path, without query.
        path: String,
    },
    /// The URL could not be parsed (a misconfigured base URL or a bad `Link`).
    #[error("{connector}: invalid URL: {reason}")]
    Url {
        /// Connector instance.
        connector: String,
        /// Why.
        reason: String,
    },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Fetched {
    /// HTTP status code (2xx).
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The `Link` header's `rel="next"` URL.
    pub next: Option<String>,
}

/// The answer to a conditional GET.
#[derive(Debug)]
pub enum Conditional {
    /// `304 Not Modified`: what the ETag named is still current.
    NotModified,
    /// A new body.
    Modified(Fetched),
}

/// One connector's HTTP client. Cheap to share by reference; the quota is
/// per client, so a connector builds one and uses it for all its requests.
pub struct HttpClient {
    connector: String,
    client: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    auth: Auth,
    headers: HeaderMap,
    retry: RetrySettings,
    stats: Arc<HttpStats>,
    /// Set when an answer said the quota is spent (`x-ratelimit-remaining:
    /// 0`): no request leaves before this time.
    blocked_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("connector", &self.connector)
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A governor quota of `rate` requests per second with `burst` at once.
pub fn quota(rate: f64, burst: u32) -> Result<Quota, String> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!(
            "rate must be a positive number of requests per second, found {rate}"
        ));
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    let burst = NonZeroU32::new(burst).ok_or("burst must be at least 1")?;
    Quota::with_period(period)
        .map(|q| q.allow_burst(burst))
        .ok_or_else(|| format!("rate {rate} is too high"))
}

impl HttpClient {
    /// A client for `connector` with its own quota. `headers` are sent with
    /// every request (e.g. `Accept`, an API version).
    pub fn new(
        connector: &str,
        quota: Quota,
        auth: Auth,
        headers: HeaderMap,
        retry: RetrySettings,
    ) -> Result<HttpClient, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(retry.timeout_secs.max(0.001)))
            .connect_timeout(Duration::from_secs_f64(
                retry.timeout_secs.clamp(0.001, 10.0),
            ))
            .user_agent(concat!("secmetrics/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Url {
                connector: connector.to_string(),
                reason: format!("cannot build the HTTP client: {}", e.without_url()),
            })?;
        Ok(HttpClient {
            connector: connector.to_string(),
            client,
            limiter: RateLimiter::direct(quota),
            auth,
            headers,
            retry,
            stats: Arc::new(HttpStats::default()),
            blocked_until: std::sync::Mutex::new(None),
        })
    }

    /// The counters of this client.
    pub fn stats(&self) -> Arc<HttpStats> {
        self.stats.clone()
    }

    /// The connector instance name.
    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// GET `url`; with `etag`, a conditional GET (`If-None-Match`). Inside
    /// [`crate::connector::with_cancel`], the request, its retries and its
    /// waits end at once when the pass is cancelled.
    pub async fn get(&self, url: &str, etag: Option<&str>) -> Result<Conditional, HttpError> {
        let Some(cancel) = crate::connector::current_cancel() else {
            return self.get_attempts(url, etag).await;
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(HttpError::Cancelled {
                connector: self.connector.clone(),
                method: "GET",
                path: reqwest::Url::parse(url).map(|u| u.path().to_string()).unwrap_or_default(),
            }),
            r = self.get_attempts(url, etag) => r,
        }
    }

    async fn get_attempts(&self, url: &str, etag: Option<&str>) -> Result<Conditional, HttpError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| HttpError::Url {
            connector: self.connector.clone(),
            reason: format!("{e}"),
        })?;
        let path = parsed.path().to_string();
        let method = "GET";
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            self.wait_for_reset(method, &path).await?;
            self.limiter.until_ready().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .client
                .get(parsed.clone())
                .headers(self.headers.clone());
            req = self.auth.apply(req);
            if let Some(tag) = etag {
                if let Ok(v) = HeaderValue::from_str(tag) {
                    req = req.header(IF_NONE_MATCH, v);
                }
            }
            let last = attempt >= self.retry.max_attempts.max(1);
            let response = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let reason = transport_reason(&e);
                    if last || !retryable_transport(&e) {
                        return Err(self.transport(method, &path, reason, attempt));
                    }
                    let wait = self.backoff(attempt);
                    tracing::warn!(connector = %self.connector, %method, %path, %reason, wait_ms = wait.as_millis() as u64, "request failed; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            if status == StatusCode::NOT_MODIFIED {
                self.stats.not_modified.fetch_add(1, Ordering::Relaxed);
                return Ok(Conditional::NotModified);
            }
            if status.is_success() {
                self.note_quota(&headers);
                match read_capped(response, self.retry.max_body_bytes).await {
                    Ok(Some(body)) => {
                        return Ok(Conditional::Modified(Fetched {
                            status: status.as_u16(),
                            body,
                            etag: header_str(&headers, ETAG.as_str()).map(str::to_string),
                            next: header_str(&headers, LINK.as_str()).and_then(next_link),
                        }))
                    }
                    Ok(None) => {
                        return Err(self.transport(
                            method,
                            &path,
                            format!(
                                "the answer is larger than `retry.max_body_bytes` ({} bytes)",
                                self.retry.max_body_bytes
                            ),
                            attempt,
                        ))
                    }
                    Err(e) => {
                        let reason = transport_reason(&e);
                        if last {
                            return Err(self.transport(method, &path, reason, attempt));
                        }
                        let wait = self.backoff(attempt);
                        tracing::warn!(connector = %self.connector, %method, %path, %reason, "body read failed; retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
            // An error status: read at most 64 KiB for the provider's message.
            let body = read_capped(response, 64 * 1024)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let message = provider_message(&body);
            let code = status.as_u16();
            let decision = classify(code, &headers, message.as_deref(), attempt, &self.retry);
            let (wait, rate_limited) = match decision {
                Decision::Fail => {
                    return Err(self.status(method, &path, code, message, attempt));
                }
                Decision::Backoff => (self.backoff(attempt), false),
                Decision::Wait(d) => (d, true),
            };
            if rate_limited && wait.as_secs_f64() > self.retry.max_wait_secs {
                return Err(HttpError::RateLimited {
                    connector: self.connector.clone(),
                    method,
                    path,
                    status: code,
                    wait_secs: wait.as_secs(),
                });
            }
            if last {
                return Err(self.status(method, &path, code, message, attempt));
            }
            if rate_limited {
                self.stats.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .rate_limit_wait_ms
                    .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            }
            tracing::warn!(
                connector = %self.connector, %method, %path, status = code,
                wait_ms = wait.as_millis() as u64, rate_limited,
                "request refused; waiting before the next attempt"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Remember a spent quota (remaining 0 with a reset time), also from a
    /// successful answer, so the next request waits for the reset instead
    /// of being refused.
    fn note_quota(&self, headers: &HeaderMap) {
        let remaining =
            header_str(headers, "x-ratelimit-remaining").and_then(|v| v.trim().parse::<u64>().ok());
        let reset =
            header_str(headers, "x-ratelimit-reset").and_then(|v| v.trim().parse::<i64>().ok());
        if let (Some(0), Some(reset)) = (remaining, reset) {
            let ms = reset_wait_ms(reset);
            let until = std::time::Instant::now() + Duration::from_millis(ms);
            if let Ok(mut b) = self.blocked_until.lock() {
                *b = Some(until);
            }
        }
    }

    /// Wait out a quota spent according to an earlier answer.
    async fn wait_for_reset(&self, method: &'static str, path: &str) -> Result<(), HttpError> {
        let until = self.blocked_until.lock().ok().and_then(|mut b| b.take());
        let Some(until) = until else { return Ok(()) };
        let wait = until.saturating_duration_since(std::time::Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        if wait.as_secs_f64() > self.retry.max_wait_secs {
            return Err(HttpError::RateLimited {
                connector: self.connector.clone(),
                method,
                path: path.to_string(),
                status: 200,
                wait_secs: wait.as_secs(),
            });
        }
        self.stats.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .rate_limit_wait_ms
            .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
        tracing::info!(connector = %self.connector, wait_ms = wait.as_millis() as u64, "rate limit spent; waiting for its reset");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff(
            attempt,
            self.retry.backoff_base_ms,
            self.retry.backoff_max_ms,
        )
    }

    fn transport(
        &self,
        method: &'static str,
        path: &str,
        reason: String,
        attempts: u32,
    ) -> HttpError {
        HttpError::Transport {
            connector: self.connector.clone(),
            method,
            path: path.to_string(),
            reason,
            attempts,
        }
    }

    fn status(
        &self,
        method: &'static str,
        path: &str,
        status: u16,
        message: Option<String>,
        attempts: u32,
    ) -> HttpError {
        HttpError::Status {
            connector: self.connector.clone(),
            method,
            path: path.to_string(),
            status,
            message,
            attempts,
        }
    }
}

/// Exponential backoff with jitter: a random wait in `[d/2, d]` where
/// `d = base * 2^(attempt-1)`, capped at `max`.
pub fn backoff(attempt: u32, base_ms: u64, max_ms: u64) -> Duration {
    use rand::Rng;
    let exp = attempt.saturating_sub(1).min(30);
    let d = base_ms.saturating_mul(1u64 << exp).min(max_ms.max(1));
    let low = d / 2;
    let ms = rand::thread_rng().gen_range(low..=d.max(low));
    Duration::from_millis(ms)
}

#[derive(Debug, PartialEq)]
enum Decision {
    Fail,
    Backoff,
    Wait(Duration),
}

/// What to do after an error status.
fn classify(
    status: u16,
    headers: &HeaderMap,
    message: Option<&str>,
    attempt: u32,
    retry: &RetrySettings,
) -> Decision {
    let retry_after = header_str(headers, "retry-after").and_then(parse_retry_after);
    let remaining =
        header_str(headers, "x-ratelimit-remaining").and_then(|v| v.trim().parse::<u64>().ok());
    let reset = header_str(headers, "x-ratelimit-reset").and_then(|v| v.trim().parse::<i64>().ok());
    match status {
        429 | 503 if retry_after.is_none() && reset_wait(headers).is_some() => {
            Decision::Wait(reset_wait(headers).unwrap_or_default())
        }
        403 | 429 => {
            if let Some(d) = retry_after {
                return Decision::Wait(d);
            }
            if remaining == Some(0) {
                if let Some(reset) = reset {
                    return Decision::Wait(Duration::from_millis(reset_wait_ms(reset)));
                }
            }
            let secondary = message
                .map(|m| m.to_ascii_lowercase().contains("secondary rate limit"))
                .unwrap_or(false);
            if secondary || (status == 429 && remaining.is_none() && retry_after.is_none()) {
                if secondary {
                    let min = retry.secondary_min_wait_secs.max(0.0);
                    let grow = min * f64::from(1u32 << attempt.saturating_sub(1).min(6));
                    return Decision::Wait(Duration::from_secs_f64(grow.min(WAIT_CAP_SECS)));
                }
                return Decision::Backoff;
            }
            if remaining == Some(0) {
                // Exhausted but no reset given: GitHub's rule is to wait a minute.
                return Decision::Wait(Duration::from_secs_f64(
                    retry.secondary_min_wait_secs.clamp(0.0, WAIT_CAP_SECS),
                ));
            }
            if status == 429 {
                Decision::Backoff
            } else {
                Decision::Fail
            }
        }
        500..=599 => match retry_after {
            Some(d) => Decision::Wait(d),
            None => Decision::Backoff,
        },
        408 => Decision::Backoff,
        _ => Decision::Fail,
    }
}

/// Longest wait any header can ask for: waits are compared with
/// `max_wait_secs` (which fails the request), so a larger one only needs to
/// stay representable.
const WAIT_CAP_SECS: f64 = 366.0 * 86_400.0;

/// Milliseconds until an epoch-seconds reset time, plus one second (the
/// reset is a whole second and clocks drift); saturating, never negative.
fn reset_wait_ms(reset_epoch_secs: i64) -> u64 {
    let now = chrono::Utc::now().timestamp_millis();
    let ms = reset_epoch_secs
        .saturating_mul(1000)
        .saturating_sub(now)
        .max(0)
        .saturating_add(1000);
    (ms as u64).min((WAIT_CAP_SECS * 1000.0) as u64)
}

/// The body of `response`, at most `cap` bytes (`None`: it is longer). Read
/// chunk by chunk into one buffer: no copy, and a huge answer is cut off
/// as soon as it passes the cap.
async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > cap) {
        return Ok(None);
    }
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .unwrap_or(0)
            .min(cap)
            .min(16 * 1024 * 1024) as usize,
    );
    while let Some(chunk) = response.chunk().await? {
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// `Retry-After` as seconds or an HTTP date (capped, so that no header can
/// overflow a wait).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(WAIT_CAP_SECS)));
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = when
        .timestamp_millis()
        .saturating_sub(chrono::Utc::now().timestamp_millis())
        .max(0);
    Some(Duration::from_millis(
        (ms as u64).min((WAIT_CAP_SECS * 1000.0) as u64),
    ))
}

/// The wait named by a rate-limit reset header other than GitHub's epoch
/// seconds: Jira Cloud's `X-RateLimit-Reset` as an ISO time (e.g.
/// `2026-03-26T16:00Z`) and PagerDuty's `ratelimit-reset` in seconds.
fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(at) = header_str(headers, "x-ratelimit-reset").and_then(parse_iso_reset) {
        let ms = (at.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0);
        return Some(Duration::from_millis(ms as u64));
    }
    header_str(headers, "ratelimit-reset")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// An ISO 8601 reset time, with or without seconds (`2026-03-26T16:00Z`).
fn parse_iso_reset(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let v = v.trim();
    if v.parse::<i64>().is_ok() {
        return None; // GitHub's epoch seconds: handled by `classify`.
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.to_utc());
    }
    let v = v.strip_suffix('Z').or_else(|| v.strip_suffix('z'))?;
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| t.and_utc())
}

/// Build `base` + `path` with the query pairs percent-encoded.
pub fn url_with_query(base: &str, path: &str, query: &[(&str, &str)]) -> String {
    let mut url = format!("{}{}", base.trim_end_matches('/'), path);
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in query {
        url.push(sep);
        url.push_str(&percent_encode(k));
        url.push('=');
        url.push_str(&percent_encode(v));
        sep = '&';
    }
    url
}

/// Percent-encode a query key or value (RFC 3986 unreserved characters stay).
pub fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let url = &after[..close];
        let params_end = after[close..]
            .find('<')
            .map(|i| close + i)
            .unwrap_or(after.len());
        let params = &after[close + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=")
                .map(|r| r.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return Some(url.to_string());
        }
        rest = &after[params_end..];
    }
    None
}

/// The provider's error message from a JSON body, with its details:
/// GitHub's `message` and `errors[]` (strings, or objects of `resource`,
/// `field`, `code`, `message`), Jira's `errorMessages[]` and `errors{}`,
/// PagerDuty's `error.message` and `error.errors[]`. Shortened to 300
/// characters, control characters dropped; never the raw body.
fn provider_message(body: &[u8]) -> Option<String> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = v.get("message").and_then(text) {
        parts.push(m);
    }
    if let Some(e) = v.get("error") {
        if let Some(m) = e.get("message").and_then(text) {
            parts.push(m);
        }
    }
    for m in v
        .get("errorMessages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        parts.extend(text(m));
    }
    let mut details: Vec<String> = Vec::new();
    let lists = [
        v.get("errors"),
        v.get("error").and_then(|e| e.get("errors")),
    ];
    for list in lists.into_iter().flatten() {
        match list {
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(o) => {
                            let at: Vec<&str> = ["resource", "field"]
                                .iter()
                                .filter_map(|k| o.get(*k).and_then(Value::as_str))
                                .collect();
                            let what: Vec<String> = ["code", "message"]
                                .iter()
                                .filter_map(|k| o.get(*k).and_then(text))
                                .collect();
                            details.push(match (at.is_empty(), what.is_empty()) {
                                (false, false) => format!("{}: {}", at.join("."), what.join(", ")),
                                (false, true) => at.join("."),
                                _ => what.join(", "),
                            });
                        }
                        other => details.extend(text(other)),
                    }
                }
            }
            // Jira: `errors` is an object of field → message.
            Value::Object(o) => {
                for (field, msg) in o {
                    details.push(format!("{field}: {}", text(msg).unwrap_or_default()));
                }
            }
            _ => {}
        }
    }
    if !details.is_empty() {
        parts.push(format!("[{}]", details.join("; ")));
    }
    if parts.is_empty() {
        return None;
    }
    let mut m: String = parts.join(": ").chars().take(300).collect();
    m.retain(|c| !c.is_control());
    Some(m)
}

fn retryable_transport(e: &reqwest::Error) -> bool {
    e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() || e.is_decode()
}

fn transport_reason(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    // The inner chain (without reqwest's own URL-bearing text).
    let mut detail = String::new();
    let mut src = e.source();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_among_other_relations() {
        let h = r#"<https://api.github.com/repositories/1/issues?per_page=3&page=1>; rel="prev", <https://api.github.com/repositories/1/issues?per_page=3&page=3>; rel="next", <https://api.github.com/repositories/1/issues?per_page=3&page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/repositories/1/issues?per_page=3&page=3")
        );
        assert_eq!(
            next_link(r#"<https://x/a?page=1>; rel="first", <https://x/a?page=4>; rel="prev""#),
            None
        );
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        for attempt in 1..8 {
            let d = backoff(attempt, 100, 1000).as_millis() as u64;
            let full = (100u64 << (attempt - 1)).min(1000);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn absurd_waits_and_resets_do_not_overflow() {
        let r = RetrySettings::default();
        match classify(429, &headers(&[("retry-after", "1e300")]), None, 1, &r) {
            Decision::Wait(d) => assert_eq!(d.as_secs_f64(), WAIT_CAP_SECS),
            other => panic!("{other:?}"),
        }
        match classify(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &i64::MAX.to_string()),
            ]),
            None,
            1,
            &r,
        ) {
            Decision::Wait(d) => assert_eq!(d.as_secs_f64(), WAIT_CAP_SECS),
            other => panic!("{other:?}"),
        }
        assert_eq!(reset_wait_ms(i64::MIN), 1000);
    }

    #[test]
    fn provider_messages_keep_their_details() {
        let m = |b: &str| provider_message(b.as_bytes());
        assert_eq!(
            m(r#"{"message":"Validation Failed","errors":[{"resource":"Search","field":"q","code":"invalid"},"per_page is too large"],"documentation_url":"https://docs.github.com"}"#).as_deref(),
            Some("Validation Failed: [Search.q: invalid; per_page is too large]")
        );
        assert_eq!(
            m(r#"{"errorMessages":["The value 'X' does not exist for the field 'project'."],"errors":{}}"#).as_deref(),
            Some("The value 'X' does not exist for the field 'project'.")
        );
        assert_eq!(
            m(r#"{"errorMessages":[],"errors":{"jql":"Field 'foo' does not exist"}}"#).as_deref(),
            Some("[jql: Field 'foo' does not exist]")
        );
        assert_eq!(
            m(r#"{"error":{"code":2001,"message":"Invalid Input Provided","errors":["Offset must be less than 10000."]}}"#).as_deref(),
            Some("Invalid Input Provided: [Offset must be less than 10000.]")
        );
        assert_eq!(m("<html>oops</html>"), None);
    }

    #[test]
    fn rate_limit_answers_are_classified() {
        let r = RetrySettings {
            secondary_min_wait_secs: 2.0,
            ..RetrySettings::default()
        };
        assert_eq!(
            classify(429, &headers(&[("retry-after", "3")]), None, 1, &r),
            Decision::Wait(Duration::from_secs(3))
        );
        let reset = (chrono::Utc::now().timestamp() + 10).to_string();
        match classify(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ]),
            None,
            1,
            &r,
        ) {
            Decision::Wait(d) => assert!(d.as_secs() >= 9 && d.as_secs() <= 11, "{d:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(
                403,
                &headers(&[("x-ratelimit-remaining", "10")]),
                Some("You have exceeded a secondary rate limit."),
                2,
                &r
            ),
            Decision::Wait(Duration::from_secs(4))
        );
        assert_eq!(
            classify(
                403,
                &headers(&[]),
                Some("Resource not accessible by integration"),
                1,
                &r
            ),
            Decision::Fail
        );
        assert_eq!(classify(502, &headers(&[]), None, 1, &r), Decision::Backoff);
        assert_eq!(classify(404, &headers(&[]), None, 1, &r), Decision::Fail);
        assert_eq!(classify(429, &headers(&[]), None, 1, &r), Decision::Backoff);
    }

    #[test]
    fn jira_and_pagerduty_reset_headers_are_waited_out() {
        let r = RetrySettings::default();
        let at = (chrono::Utc::now() + chrono::Duration::seconds(120))
            .format("%Y-%m-%dT%H:%MZ")
            .to_string();
        match classify(429, &headers(&[("x-ratelimit-reset", &at)]), None, 1, &r) {
            Decision::Wait(d) => assert!(d.as_secs() <= 120, "{d:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(429, &headers(&[("ratelimit-reset", "7")]), None, 1, &r),
            Decision::Wait(Duration::from_secs(7))
        );
        assert_eq!(
            classify(503, &headers(&[("ratelimit-reset", "2")]), None, 1, &r),
            Decision::Wait(Duration::from_secs(2))
        );
        // Retry-After still wins.
        assert_eq!(
            classify(
                429,
                &headers(&[("retry-after", "3"), ("ratelimit-reset", "9")]),
                None,
                1,
                &r
            ),
            Decision::Wait(Duration::from_secs(3))
        );
        assert_eq!(
            parse_iso_reset("2026-03-26T16:00Z").unwrap().to_rfc3339(),
            "2026-03-26T16:00:00+00:00"
        );
    }

    #[test]
    fn jira_and_pagerduty_error_bodies_give_their_message() {
        assert_eq!(
            provider_message(
                br#"{"errorMessages":["The requested API has been removed. Please migrate to /rest/api/3/search/jql"],"errors":{}}"#
            )
            .as_deref(),
            Some("The requested API has been removed. Please migrate to /rest/api/3/search/jql")
        );
        assert_eq!(
            provider_message(br#"{"errorMessages":[],"errors":{"jql":"bad"}}"#).as_deref(),
            Some("[jql: bad]")
        );
        assert_eq!(
            provider_message(
                br#"{"error":{"code":2001,"message":"Invalid Input Provided","errors":["Offset must be less than 10000"]}}"#
            )
            .as_deref(),
            Some("Invalid Input Provided: [Offset must be less than 10000]")
        );
        assert_eq!(provider_message(b"not json"), None);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            url_with_query(
                "https://x.example/",
                "/rest/api/3/search/jql",
                &[("jql", "project = SEC ORDER BY updated"), ("fields", "a,b")]
            ),
            "https://x.example/rest/api/3/search/jql?jql=project%20%3D%20SEC%20ORDER%20BY%20updated&fields=a%2Cb"
        );
    }

    #[test]
    fn auth_debug_never_shows_secrets() {
        let a = Auth::Basic {
            user: "svc@example.com".into(),
            password: SecretString::from("ATATT-secret"),
        };
        assert_eq!(format!("{a:?}"), "Basic(svc@example.com:[redacted])");
        let t = Auth::TokenKey(SecretString::from("u+pdkey"));
        assert!(!format!("{t:?}").contains("pdkey"));
    }
}
