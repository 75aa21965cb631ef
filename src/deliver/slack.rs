//! Slack delivery: the KPI pack as Block Kit messages (header, one section
//! per KPI, a context line), split to stay within Slack's limits, posted by
//! incoming webhook or by `chat.postMessage` with a bot token (later parts
//! as thread replies).

use crate::kpi::KpiPack;
use crate::report::{self, Line};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::time::Duration;

/// Blocks per message (Slack allows 50).
const MAX_BLOCKS: usize = 50;
/// Characters in one section's text (Slack allows 3,000).
const MAX_SECTION_CHARS: usize = 3000;
/// Header text (Slack allows 150).
const MAX_HEADER_CHARS: usize = 150;
/// Total block text per message: well under the undocumented
/// `msg_blocks_too_long` threshold (about 12–13k characters).
const MAX_MESSAGE_CHARS: usize = 8000;

/// What a digest shows besides the pack.
pub struct DigestView<'a> {
    /// Digest title, e.g. "Monthly product-security pack".
    pub title: &'a str,
    /// Which KPI lines to show, in order.
    pub lines: Vec<Line>,
    /// Link to the HTML report, if configured.
    pub report_url: Option<&'a str>,
}

/// Render the messages of a digest: each a JSON object with `text` (the
/// notification fallback) and `blocks`.
pub fn render(pack: &KpiPack, view: &DigestView<'_>) -> Vec<Value> {
    let header = truncate(
        &format!("{} — {}", view.title, pack.period.label()),
        MAX_HEADER_CHARS,
    );
    let mut sections: Vec<Value> = view.lines.iter().map(section).collect();
    // Warnings fill as many sections as they need; none is dropped.
    let mut text = String::new();
    for w in &pack.warnings {
        let item = truncate(&format!("\n• {}", escape(w)), MAX_SECTION_CHARS - 20);
        if text.chars().count() + item.chars().count() > MAX_SECTION_CHARS {
            sections.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
            text = String::from("*Warnings (continued)*");
        }
        if text.is_empty() {
            text.push_str("*Warnings*");
        }
        text.push_str(&item);
    }
    if !text.is_empty() {
        sections.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    let (first, last) = pack.period.local_days();
    let days = if first == last {
        first.format("%Y-%m-%d").to_string()
    } else {
        format!(
            "{} to {}",
            first.format("%Y-%m-%d"),
            last.format("%Y-%m-%d")
        )
    };
    let mut context = format!(
        "Period {days} (whole days, {}) · generated {}",
        pack.period.zone.name(),
        crate::kpi::period::rfc3339(&pack.generated_at)
    );
    if let Some(url) = view.report_url {
        context.push_str(&format!(" · <{url}|HTML report>"));
    }
    let context_block = json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(&context, MAX_SECTION_CHARS)}]});

    // Fill messages greedily; every message keeps header and context.
    let mut messages = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut chars = 0usize;
    let fixed = header.chars().count() + context.chars().count();
    for s in sections {
        let n = block_chars(&s);
        if !current.is_empty()
            && (current.len() + 3 > MAX_BLOCKS || chars + n + fixed > MAX_MESSAGE_CHARS)
        {
            messages.push(std::mem::take(&mut current));
            chars = 0;
        }
        chars += n;
        current.push(s);
    }
    messages.push(current);
    let parts = messages.len();
    messages
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let head = if parts > 1 {
                format!("{header} ({}/{parts})", i + 1)
            } else {
                header.clone()
            };
            let head = truncate(&head, MAX_HEADER_CHARS);
            let mut blocks =
                vec![json!({"type": "header", "text": {"type": "plain_text", "text": head}})];
            blocks.extend(body);
            blocks.push(context_block.clone());
            json!({"text": fallback(pack, &view.lines, &head), "blocks": blocks})
        })
        .collect()
}

fn section(l: &Line) -> Value {
    let text = format!(
        "*{}*  {} {}  (previous {})\n{}\nTarget: {} · {} · owner: {}\n_{}_",
        escape(l.title),
        escape(&l.figure),
        l.arrow,
        escape(&l.previous),
        escape(&l.detail),
        escape(&l.target),
        report::status_word(l.status),
        escape(&l.owner),
        escape(&l.business),
    );
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, MAX_SECTION_CHARS)}})
}

fn fallback(pack: &KpiPack, lines: &[Line], head: &str) -> String {
    let mut t = head.to_string();
    for l in lines.iter().take(3) {
        t.push_str(&format!(" · {} {}", l.title, l.figure));
    }
    if pack.warnings.is_empty() {
        t
    } else {
        format!("{t} · {} warnings", pack.warnings.len())
    }
}

fn block_chars(b: &Value) -> usize {
    b.pointer("/text/text")
        .and_then(Value::as_str)
        .map_or(0, |s| s.chars().count())
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// How to reach Slack.
pub enum SlackTarget {
    /// An incoming webhook (the URL is a secret).
    Webhook(SecretString),
    /// `chat.postMessage` with a bot token.
    Bot {
        /// Web API base, e.g. `https://slack.com/api`.
        api_base: String,
        /// `xoxb-…` token.
        token: SecretString,
        /// Channel id or name.
        channel: String,
    },
}

/// A failed post. Never contains the webhook URL or the token.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// Slack asked us to slow down.
    #[error("slack: rate limited (429), retry after {0:?}")]
    RateLimited(Duration),
    /// An HTTP status other than success.
    #[error("slack {endpoint}: HTTP {status}: {body}")]
    Status {
        /// `webhook` or `chat.postMessage`.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// Response body (Slack's error code), truncated.
        body: String,
    },
    /// The Web API answered 200 with `ok: false`.
    #[error("slack chat.postMessage: {0}")]
    Api(String),
    /// No connection could be made (DNS, TCP connect, TLS handshake): the
    /// request was never sent, so it can be retried.
    #[error("slack {endpoint}: {message}")]
    Transport {
        /// `webhook` or `chat.postMessage`.
        endpoint: &'static str,
        /// What failed (without the URL).
        message: String,
    },
    /// The request was sent but no answer came (timed out, connection
    /// lost): Slack may have posted it, so it is not sent again.
    #[error("slack {endpoint}: {message}")]
    Unconfirmed {
        /// `webhook` or `chat.postMessage`.
        endpoint: &'static str,
        /// What happened (without the URL).
        message: String,
    },
}

impl SlackError {
    /// Errors that a retry cannot fix: credentials, channel, payload.
    pub fn is_permanent(&self) -> bool {
        match self {
            SlackError::Api(code) => {
                let code = code.split_whitespace().next().unwrap_or("");
                !matches!(
                    code,
                    "ratelimited"
                        | "internal_error"
                        | "fatal_error"
                        | "service_unavailable"
                        | "request_timeout"
                        | "team_added_to_org"
                )
            }
            SlackError::Status { status, .. } => (400..500).contains(status) && *status != 408,
            SlackError::RateLimited(_)
            | SlackError::Transport { .. }
            | SlackError::Unconfirmed { .. } => false,
        }
    }

    /// The request may have reached Slack without an answer: retrying could
    /// post it twice.
    pub fn is_unconfirmed(&self) -> bool {
        matches!(self, SlackError::Unconfirmed { .. })
    }

    /// How long Slack asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SlackError::RateLimited(d) => Some(*d),
            _ => None,
        }
    }
}

/// Post one message; returns the message `ts` for the bot API (thread parent).
pub async fn post(
    client: &reqwest::Client,
    target: &SlackTarget,
    message: &Value,
    thread_ts: Option<&str>,
    max_answer: usize,
) -> Result<Option<String>, SlackError> {
    match target {
        SlackTarget::Webhook(url) => {
            let endpoint = "webhook";
            let resp = client
                .post(url.expose_secret())
                .json(message)
                .send()
                .await
                .map_err(|e| transport(endpoint, e))?;
            refuse_failure(endpoint, resp, max_answer).await?;
            Ok(None)
        }
        SlackTarget::Bot {
            api_base,
            token,
            channel,
        } => {
            let endpoint = "chat.postMessage";
            let mut body = message.clone();
            body["channel"] = json!(channel);
            if let Some(ts) = thread_ts {
                body["thread_ts"] = json!(ts);
            }
            let resp = client
                .post(format!(
                    "{}/chat.postMessage",
                    api_base.trim_end_matches('/')
                ))
                .bearer_auth(token.expose_secret())
                .json(&body)
                .send()
                .await
                .map_err(|e| transport(endpoint, e))?;
            let resp = refuse_failure(endpoint, resp, max_answer).await?;
            // Posted (2xx): an answer that cannot be read leaves it unknown
            // whether Slack took the message.
            let unreadable = |why: String| SlackError::Unconfirmed {
                endpoint,
                message: format!("the answer could not be read ({why}); it may have been posted"),
            };
            let body = match read_capped(resp, max_answer).await {
                Ok((body, false)) => body,
                Ok((_, true)) => {
                    return Err(unreadable(format!(
                        "larger than `slack.max_answer_bytes` ({max_answer} bytes)"
                    )))
                }
                Err(e) => return Err(unreadable(e.without_url().to_string())),
            };
            let v: Value =
                serde_json::from_slice(&body).map_err(|e| unreadable(format!("not JSON: {e}")))?;
            if v["ok"] == json!(true) {
                Ok(v["ts"].as_str().map(str::to_string))
            } else {
                let code = v["error"].as_str().unwrap_or("unknown error");
                let detail = v
                    .pointer("/response_metadata/messages")
                    .and_then(Value::as_array)
                    .map(|m| {
                        m.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .filter(|d| !d.is_empty());
                Err(SlackError::Api(match detail {
                    Some(d) => format!("{code} ({d})"),
                    None => code.to_string(),
                }))
            }
        }
    }
}

/// A 429 or any other non-success answer as the error it is (webhooks and
/// the Web API alike); a success passes through.
async fn refuse_failure(
    endpoint: &'static str,
    resp: reqwest::Response,
    max_answer: usize,
) -> Result<reqwest::Response, SlackError> {
    let status = resp.status();
    if status.as_u16() == 429 {
        return Err(SlackError::RateLimited(retry_after(&resp)));
    }
    if !status.is_success() {
        // Only the start of a failure's body is kept (for the message).
        let body = read_capped(resp, max_answer.min(64 * 1024))
            .await
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        return Err(SlackError::Status {
            endpoint,
            status: status.as_u16(),
            body: truncate(body.trim(), 200),
        });
    }
    Ok(resp)
}

/// At most `cap` bytes of an answer, read chunk by chunk; `true` when the
/// answer was longer (and cut there).
async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > cap {
            body.extend_from_slice(&chunk[..cap - body.len()]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

fn retry_after(resp: &reqwest::Response) -> Duration {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

/// The HTTP client for Slack: `timeout` bounds a whole request; connecting
/// (DNS, TCP, TLS) may take at most half of it, so a timeout that fires
/// is known to have come after the connection was made. No idle connection
/// is kept: a reused one the server had closed would be an unconfirmed
/// request rather than a failed connect.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout / 2)
        .pool_max_idle_per_host(0)
        .build()
}

/// A failed request as the error it is: a connection that could not be made
/// (nothing sent: retried), or a request sent without an answer
/// (unconfirmed: not sent again).
fn transport(endpoint: &'static str, e: reqwest::Error) -> SlackError {
    // reqwest's Display includes the URL; the webhook URL is a secret.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    if e.is_connect() {
        SlackError::Transport { endpoint, message }
    } else if e.is_timeout() {
        SlackError::Unconfirmed {
            endpoint,
            message: "timed out waiting for the answer after sending; it may have been posted"
                .to_string(),
        }
    } else {
        SlackError::Unconfirmed {
            endpoint,
            message: format!("no answer after sending ({message}); it may have been posted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local Web API answering chat.postMessage with `status` and a body
    /// of `size` bytes (a JSON object padded to that size).
    async fn slack_answering(status: u16, size: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move || async move {
            let pad = "x".repeat(size.saturating_sub(40));
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                format!(r#"{{"ok":true,"ts":"1.2","pad":"{pad}"}}"#),
            )
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/api")
    }

    #[tokio::test]
    async fn answers_are_read_up_to_the_cap_and_a_longer_one_leaves_the_post_unconfirmed() {
        let client = client(Duration::from_secs(10)).unwrap();
        let target = |api_base: String| SlackTarget::Bot {
            api_base,
            token: SecretString::from("xoxb-test"),
            channel: "C1".into(),
        };
        let msg = json!({"text": "t", "blocks": []});
        // Within the cap: read, and the thread ts comes back.
        let base = slack_answering(200, 500).await;
        let ts = post(&client, &target(base), &msg, None, 4096)
            .await
            .unwrap();
        assert_eq!(ts.as_deref(), Some("1.2"));
        // Past it: not read whole; posted, so unconfirmed (never re-sent).
        let base = slack_answering(200, 2 * 1024 * 1024).await;
        let e = post(&client, &target(base), &msg, None, 4096)
            .await
            .unwrap_err();
        assert!(e.is_unconfirmed(), "{e}");
        assert!(
            e.to_string()
                .contains("larger than `slack.max_answer_bytes` (4096 bytes)"),
            "{e}"
        );
        // A failure's body: only its start is kept, for the message.
        let base = slack_answering(500, 2 * 1024 * 1024).await;
        let e = post(&client, &target(base), &msg, None, 4096)
            .await
            .unwrap_err();
        let SlackError::Status { status, body, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*status, 500);
        assert!(
            body.starts_with(r#"{"ok":true,"ts":"1.2","pad":"xxx"#),
            "{body}"
        );
        assert!(body.chars().count() <= 201, "{}", body.len());
    }

    #[test]
    fn long_text_is_truncated_within_limits() {
        let s = "x".repeat(5000);
        assert_eq!(truncate(&s, MAX_SECTION_CHARS).chars().count(), 3000);
        assert_eq!(truncate("short", 10), "short");
    }

    fn golden_pack() -> KpiPack {
        let text = include_str!("../../tests/data/golden/estate-small.ndjson");
        let records = text
            .lines()
            .map(|l| secmetrics_connectors::ndjson::parse_line(l, "import").unwrap());
        let estate = crate::estate::Estate::from_records(records);
        let period = crate::kpi::Period::parse_month("2026-10").unwrap();
        crate::kpi::compute(
            &estate,
            &period,
            &crate::kpi::KpiConfig::default(),
            period.end,
        )
    }

    #[test]
    fn a_pack_that_does_not_fit_is_split_into_messages_within_slack_limits() {
        let mut pack = golden_pack();
        // 300 warnings of ~100 characters: far beyond one message.
        pack.warnings = (0..300)
            .map(|i| format!("warning {i:03}: {}", "x".repeat(90)))
            .collect();
        let lines = report::lines(&pack);
        let n_lines = lines.len();
        let view = DigestView {
            title: "Product security KPIs",
            lines,
            report_url: Some("https://example.test/report"),
        };
        let messages = render(&pack, &view);
        // 300 warnings need several sections and messages; each stays
        // within the limits and every warning is there.
        assert!(messages.len() >= 3, "{}", messages.len());
        let all: String = messages.iter().map(|m| m.to_string()).collect();
        for i in 0..300 {
            assert!(
                all.contains(&format!("warning {i:03}:")),
                "warning {i} dropped"
            );
        }
        let mut sections = 0;
        for (i, m) in messages.iter().enumerate() {
            let blocks = m["blocks"].as_array().unwrap();
            assert!(blocks.len() <= MAX_BLOCKS);
            assert_eq!(blocks[0]["type"], "header");
            assert_eq!(blocks.last().unwrap()["type"], "context");
            let header = blocks[0]["text"]["text"].as_str().unwrap();
            assert!(header.chars().count() <= MAX_HEADER_CHARS);
            if messages.len() > 1 {
                assert!(header.ends_with(&format!("({}/{})", i + 1, messages.len())));
            }
            let total: usize = blocks.iter().map(block_chars).sum();
            assert!(total <= MAX_MESSAGE_CHARS, "{total}");
            for b in blocks.iter().filter(|b| b["type"] == "section") {
                assert!(block_chars(b) <= MAX_SECTION_CHARS);
                sections += 1;
            }
            assert!(!m["text"].as_str().unwrap().is_empty());
        }
        assert!(sections > n_lines + 1, "warnings span several sections");
        for l in report::lines(&pack) {
            let title = escape(l.title);
            let n = all.matches(&format!("*{title}*")).count();
            assert_eq!(n, 1, "{title} shown {n} times");
        }
    }

    #[test]
    fn many_kpi_lines_split_into_several_messages() {
        let pack = golden_pack();
        let line = report::lines(&pack).remove(0);
        let view = DigestView {
            title: "t",
            lines: vec![line; 120],
            report_url: None,
        };
        let messages = render(&pack, &view);
        assert!(messages.len() >= 3, "{}", messages.len());
        let sections: usize = messages
            .iter()
            .map(|m| m["blocks"].as_array().unwrap().len() - 2)
            .sum();
        assert_eq!(sections, 120 + 1);
        for m in &messages {
            assert!(m["blocks"].as_array().unwrap().len() <= MAX_BLOCKS);
        }
    }

    #[test]
    fn mrkdwn_control_characters_are_escaped() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
