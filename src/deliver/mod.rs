//! Delivery of digests: render the pack for a digest's period into the
//! durable outbox (once per digest, period and channel), then send what is
//! due to Slack and email, retrying with backoff while they are down.

pub mod email;
pub mod outbox;
pub mod slack;

use crate::config::{ChannelKind, Config, DigestConfig, DigestPeriod, Secrets};
use crate::kpi::{self, KpiId, KpiPack, Period};
use crate::report;
use crate::store::Store;
use anyhow::Context as _;
use chrono::{Datelike, Duration, TimeZone, Utc};
use outbox::{Entry, Outbox, Payload, State};
use secmetrics_connectors::Time;

/// The KPIs of the spec's monthly pack, in its order: the first seven of
/// [`KpiId::MONTHLY_PACK`], which full reports follow with the other three.
pub const MONTHLY_PACK: &[KpiId] = KpiId::MONTHLY_PACK.split_at(7).0;

/// Periods of history drawn in digest charts.
const TREND_PERIODS: usize = 6;

/// The KPI ids a digest shows (default: the monthly pack).
pub fn digest_kpis(d: &DigestConfig) -> Result<Vec<KpiId>, String> {
    match &d.kpis {
        None => Ok(MONTHLY_PACK.to_vec()),
        Some(names) => names
            .iter()
            .map(|n| {
                KpiId::MONTHLY_PACK
                    .iter()
                    .copied()
                    .find(|id| id.as_str() == n)
                    .ok_or_else(|| format!("digest `{}`: unknown KPI id `{n}`", d.name))
            })
            .collect(),
    }
}

/// The last complete period of the digest's kind before `now`.
pub fn digest_period(kind: DigestPeriod, now: Time) -> Period {
    let midnight = |t: Time| {
        Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
            .single()
            .unwrap_or(t)
    };
    match kind {
        DigestPeriod::Month => Period::last_complete_month(now),
        DigestPeriod::Day => {
            let end = midnight(now);
            Period::range(end - Duration::days(1), end).expect("one day is a valid range")
        }
        DigestPeriod::Week => {
            let today = midnight(now);
            let end = today - Duration::days(today.weekday().num_days_from_monday() as i64);
            Period::range(end - Duration::days(7), end).expect("one week is a valid range")
        }
    }
}

/// The pack behind a digest: computed once, snapshotted as sent.
pub fn compute_pack(
    store: &Store,
    config: &Config,
    period: &Period,
    now: Time,
) -> anyhow::Result<KpiPack> {
    let estate = crate::reconcile::load(store, &config.reconcile)
        .context("loading the estate")?
        .estate;
    Ok(kpi::with_history(
        &estate,
        period,
        &config.kpi,
        now,
        TREND_PERIODS,
    ))
}

/// Render and queue a digest for `period` on every channel that does not
/// have it yet. Returns the channels queued now (empty: all were queued
/// before, so nothing is ever sent twice).
pub fn queue_digest(
    store: &Store,
    config: &Config,
    digest: &DigestConfig,
    period: &Period,
    now: Time,
) -> anyhow::Result<Vec<ChannelKind>> {
    let outbox = Outbox::new(store.outbox());
    let label = period.label();
    let missing: Vec<ChannelKind> = digest
        .channels
        .iter()
        .copied()
        .filter(|c| {
            !outbox
                .contains(&digest.name, &label, c.as_str())
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    let pack = compute_pack(store, config, period, now)?;
    let json = pack.to_json_pretty();
    // The pack as sent, so `report --period P --as-sent` shows it unchanged;
    // a pack sent (or snapshotted) before is never replaced.
    for key in [
        crate::cli::report::snapshot_key(period),
        format!("digest/{}/{label}", digest.name),
    ] {
        if store.snapshot(&key)?.is_none() {
            store.put_snapshot(&key, json.as_bytes())?;
        }
    }
    let ids = digest_kpis(digest).map_err(anyhow::Error::msg)?;
    let lines: Vec<report::Line> = report::lines(&pack)
        .into_iter()
        .filter(|l| ids.contains(&l.id))
        .collect();
    let title = digest_title(digest);
    let report_url = config.daemon.report_url.as_deref();
    let mut queued = Vec::new();
    for channel in missing {
        let payload = match channel {
            ChannelKind::Slack => {
                let view = slack::DigestView {
                    title: &title,
                    lines: lines.clone(),
                    report_url,
                };
                Payload::Slack {
                    messages: slack::render(&pack, &view)
                        .iter()
                        .map(|m| m.to_string())
                        .collect(),
                    delivered: 0,
                    thread_ts: None,
                    channel: digest.slack_channel.clone(),
                }
            }
            ChannelKind::Email => {
                let email_cfg = config
                    .email
                    .as_ref()
                    .context("digest sends email but there is no [email] section")?;
                let images = report::charts::email_pngs(&pack);
                let refs: Vec<(String, String)> = images
                    .iter()
                    .map(|(cid, alt, _)| (cid.clone(), alt.clone()))
                    .collect();
                Payload::Email {
                    subject: email::subject(&title, &pack, &lines),
                    text: email::text_body(&title, &pack, &lines, report_url),
                    html: email::html_body(&title, &pack, &lines, &refs, report_url),
                    images: images.into_iter().map(|(cid, _, png)| (cid, png)).collect(),
                    to: digest
                        .email_to
                        .clone()
                        .unwrap_or_else(|| email_cfg.to.clone()),
                }
            }
        };
        let entry = Entry {
            digest: digest.name.clone(),
            period: label.clone(),
            channel: channel.as_str().to_string(),
            payload,
            state: State::Pending,
            attempts: 0,
            next_attempt_us: now.timestamp_micros(),
            last_error: None,
            created_us: now.timestamp_micros(),
            sent_us: None,
        };
        if outbox.enqueue(&entry)? {
            queued.push(channel);
        }
    }
    Ok(queued)
}

/// The title of a digest (header, subject).
pub fn digest_title(d: &DigestConfig) -> String {
    match d.period {
        DigestPeriod::Month => "Product security KPIs".to_string(),
        DigestPeriod::Week => "Product security KPIs (weekly)".to_string(),
        DigestPeriod::Day => "Product security KPIs (daily)".to_string(),
    }
}

/// Everything needed to send: one HTTP client, the Slack target, SMTP.
pub struct Channels<'a> {
    /// Shared HTTP client (rustls).
    pub http: reqwest::Client,
    /// The configuration (Slack and email sections).
    pub config: &'a Config,
    /// Resolved secrets.
    pub secrets: &'a Secrets,
}

impl Channels<'_> {
    fn slack_target(&self, channel_override: Option<&str>) -> anyhow::Result<slack::SlackTarget> {
        let cfg = self
            .config
            .slack
            .as_ref()
            .context("a digest sends to Slack but there is no [slack] section")?;
        if let Some(token) = &self.secrets.slack_bot_token {
            let channel = channel_override
                .map(str::to_string)
                .or_else(|| cfg.channel.clone())
                .context(
                    "`slack.bot_token` needs `slack.channel` (or the digest's `slack_channel`)",
                )?;
            return Ok(slack::SlackTarget::Bot {
                api_base: cfg.api_base.clone(),
                token: token.clone(),
                channel,
            });
        }
        if let Some(url) = &self.secrets.slack_webhook {
            return Ok(slack::SlackTarget::Webhook(url.clone()));
        }
        anyhow::bail!("[slack] has neither a webhook_url nor a bot_token")
    }
}

/// Outcome of one attempt at an entry.
pub enum Attempt {
    /// Delivered completely.
    Sent,
    /// Failed; try again after this many seconds.
    Retry(f64, String),
    /// Refused for good (credentials, channel, address): not retried.
    Failed(String),
}

/// Try to deliver one entry, persisting progress (Slack parts) as it goes.
pub async fn attempt(store: &Store, channels: &Channels<'_>, entry: &mut Entry) -> Attempt {
    let result = match entry.payload {
        Payload::Slack { .. } => attempt_slack(store, channels, entry).await,
        Payload::Email { .. } => attempt_email(channels, entry).await,
    };
    match result {
        Ok(()) => Attempt::Sent,
        Err(e) if is_permanent(&e) => Attempt::Failed(format!("{e:#}")),
        Err(e) => {
            let base = channels.config.daemon.retry_base_secs;
            let max = channels.config.daemon.retry_max_secs;
            let wait = e
                .downcast_ref::<RetryAfter>()
                .map(|r| r.0)
                .unwrap_or_else(|| outbox::backoff_secs(entry.attempts, base, max));
            Attempt::Retry(wait, format!("{e:#}"))
        }
    }
}

async fn attempt_slack(
    store: &Store,
    channels: &Channels<'_>,
    entry: &mut Entry,
) -> anyhow::Result<()> {
    let outbox = Outbox::new(store.outbox());
    loop {
        let Payload::Slack {
            messages,
            delivered,
            thread_ts,
            channel,
        } = &entry.payload
        else {
            anyhow::bail!("not a Slack entry");
        };
        let Some(message) = messages.get(*delivered as usize) else {
            return Ok(());
        };
        let body: serde_json::Value =
            serde_json::from_str(message).context("stored Slack message is not JSON")?;
        let target = channels.slack_target(channel.as_deref())?;
        let ts = slack::post(&channels.http, &target, &body, thread_ts.as_deref())
            .await
            .map_err(|e| match e.retry_after() {
                Some(d) => anyhow::Error::new(RetryAfter(d.as_secs_f64())).context(e.to_string()),
                None => anyhow::Error::new(e),
            })?;
        let Payload::Slack {
            messages,
            delivered,
            thread_ts,
            ..
        } = &mut entry.payload
        else {
            unreachable!("checked above");
        };
        *delivered += 1;
        if thread_ts.is_none() {
            *thread_ts = ts;
        }
        if (*delivered as usize) < messages.len() {
            // Persist progress so a retry or restart does not repeat parts.
            outbox.update(entry)?;
        }
    }
}

async fn attempt_email(channels: &Channels<'_>, entry: &Entry) -> anyhow::Result<()> {
    let Payload::Email {
        subject,
        text,
        html,
        images,
        to,
    } = &entry.payload
    else {
        anyhow::bail!("not an email entry");
    };
    let cfg = channels
        .config
        .email
        .as_ref()
        .context("an email is queued but there is no [email] section")?;
    let msg = email::build_message(&cfg.from, to, subject, text, html, images)?;
    email::send(cfg, channels.secrets.smtp_password.as_ref(), msg).await?;
    Ok(())
}

/// Errors that retrying cannot fix.
fn is_permanent(e: &anyhow::Error) -> bool {
    if let Some(s) = e.downcast_ref::<slack::SlackError>() {
        return s.is_permanent();
    }
    if let Some(m) = e.downcast_ref::<email::EmailError>() {
        return m.is_permanent();
    }
    false
}

/// Slack asked for a pause of this many seconds.
#[derive(Debug, thiserror::Error)]
#[error("retry after {0} s")]
pub struct RetryAfter(pub f64);

/// Send every due entry once; returns (sent, failed).
pub async fn deliver_due(
    store: &Store,
    channels: &Channels<'_>,
    now: Time,
) -> anyhow::Result<(u64, u64)> {
    let outbox = Outbox::new(store.outbox());
    let mut sent = 0;
    let mut failed = 0;
    for mut entry in outbox.due(now.timestamp_micros())? {
        entry.attempts += 1;
        // Durably "sending" first: a crash from here on leaves the entry
        // unconfirmed, never sent twice.
        entry.state = State::Sending;
        outbox.update(&entry)?;
        match attempt(store, channels, &mut entry).await {
            Attempt::Sent => {
                entry.state = State::Sent;
                entry.sent_us = Some(Utc::now().timestamp_micros());
                entry.last_error = None;
                sent += 1;
                tracing::info!(digest = %entry.digest, period = %entry.period, channel = %entry.channel, attempts = entry.attempts, "digest delivered");
            }
            Attempt::Failed(error) => {
                entry.state = State::Failed;
                tracing::error!(digest = %entry.digest, period = %entry.period, channel = %entry.channel, %error, "digest refused by the channel; not retried");
                entry.last_error = Some(error);
                failed += 1;
            }
            Attempt::Retry(wait, error) => {
                entry.state = State::Pending;
                entry.next_attempt_us = Utc::now().timestamp_micros() + (wait * 1e6) as i64;
                tracing::warn!(digest = %entry.digest, period = %entry.period, channel = %entry.channel, attempts = entry.attempts, retry_in_secs = wait, %error, "digest delivery failed");
                entry.last_error = Some(error);
                failed += 1;
            }
        }
        outbox.update(&entry)?;
    }
    Ok((sent, failed))
}
