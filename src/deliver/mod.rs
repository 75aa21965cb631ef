//! Delivery of digests: render the pack for a digest's period into the
//! durable outbox (once per digest, period and channel), then send what is
//! due to Slack and email, retrying with backoff while they are down.

pub mod email;
pub mod outbox;
pub mod slack;
pub mod smtp;

use crate::config::{ChannelKind, Config, DigestConfig, DigestPeriod, Secrets};
use crate::kpi::{self, KpiId, KpiPack, Period, Unit};
use crate::report;
use crate::store::Store;
use anyhow::Context as _;
use chrono::Utc;
use chrono_tz::Tz;
use outbox::{Entry, Outbox, Payload, State};
use secmetrics_connectors::Time;
use std::sync::Arc;

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

/// The calendar unit of a digest's periods.
pub fn unit_of(kind: DigestPeriod) -> Unit {
    match kind {
        DigestPeriod::Month => Unit::Month,
        DigestPeriod::Week => Unit::Week,
        DigestPeriod::Day => Unit::Day,
    }
}

/// The period a digest fired at `now` reports: the last complete month,
/// week or day in the reporting time zone `zone` (`kpi.timezone`) — never
/// one that had not ended at `now`.
pub fn digest_period(kind: DigestPeriod, now: Time, zone: Tz) -> Period {
    Period::last_complete(unit_of(kind), now, zone)
}

/// The period a digest is asked for (`--period`, `?period=`): a label in
/// the digest's own form (`2026-11`, `2026-W48`, `2026-11-30`) in `zone`,
/// or, when none is given, the last complete one at `now`.
pub fn asked_digest_period(
    d: &DigestConfig,
    asked: Option<&str>,
    now: Time,
    zone: Tz,
) -> anyhow::Result<Period> {
    let Some(text) = asked else {
        return Ok(digest_period(d.period, now, zone));
    };
    let period = Period::parse(text, zone)?;
    if period.unit() != Some(unit_of(d.period)) {
        let form = match d.period {
            DigestPeriod::Month => "a month, YYYY-MM (e.g. 2026-11)",
            DigestPeriod::Week => "an ISO week, YYYY-Www (e.g. 2026-W48)",
            DigestPeriod::Day => "a day, YYYY-MM-DD (e.g. 2026-11-30)",
        };
        anyhow::bail!("digest `{}` covers {form}; `{text}` is not one", d.name);
    }
    Ok(period)
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

/// Why a digest is held rather than queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hold {
    /// The store holds no current record of any kind: every KPI would be
    /// n/a or 0, which is no report at all.
    #[error(
        "the store holds no records at all, so every KPI would be n/a or 0; \
         held until records arrive (sync, import or push)"
    )]
    NoData,
}

/// The store key of a digest's last handled fire time.
pub fn fire_key(digest: &str) -> String {
    format!("daemon/digest_fired/{digest}")
}

/// Every digest's last handled fire time, by digest name.
pub fn last_fires(store: &Store) -> Result<Vec<(String, Time)>, crate::store::StoreError> {
    let prefix = fire_key("");
    Ok(store
        .meta_with_prefix(&prefix)?
        .into_iter()
        .filter_map(|(k, v)| {
            let us = i64::from_be_bytes(v.as_slice().try_into().ok()?);
            Some((
                k[prefix.len()..].to_string(),
                chrono::DateTime::from_timestamp_micros(us)?,
            ))
        })
        .collect())
}

/// The last fire time of `digest` whose queueing was recorded.
pub fn last_fire(store: &Store, digest: &str) -> Option<Time> {
    let bytes = store.meta(&fire_key(digest)).ok()??;
    let us = i64::from_be_bytes(bytes.as_slice().try_into().ok()?);
    chrono::DateTime::from_timestamp_micros(us)
}

fn holds_no_records(e: &crate::estate::Estate) -> bool {
    e.assets.is_empty()
        && e.repos.is_empty()
        && e.findings.is_empty()
        && e.reviews.is_empty()
        && e.threat_models.is_empty()
        && e.exceptions.is_empty()
        && e.releases.is_empty()
        && e.secret_alerts.is_empty()
        && e.incidents.is_empty()
}

/// What a digest is queued with besides its period.
#[derive(Debug, Default, Clone)]
pub struct QueueOptions {
    /// The schedule fire this queueing handles: recorded in the same atomic
    /// write as the outbox entries, so a crash before it leaves the fire due.
    pub fired: Option<Time>,
    /// Sentences added to the pack's warnings (e.g. a connector whose last
    /// sync failed).
    pub notes: Vec<String>,
    /// The reconciled estate to compute from (the daemon's, held in memory
    /// and current); loaded from the store when `None`.
    pub estate: Option<std::sync::Arc<crate::estate::Estate>>,
}

/// Render and queue a digest for `period` on every channel that does not
/// have it yet. Returns the channels queued now (empty: all were queued
/// before, so nothing is ever sent twice). The snapshots, the outbox
/// entries and the fire time are one atomic write; an error (or a
/// [`Hold`]) writes nothing.
pub fn queue_digest(
    store: &Store,
    config: &Config,
    digest: &DigestConfig,
    period: &Period,
    now: Time,
    options: &QueueOptions,
) -> anyhow::Result<Vec<ChannelKind>> {
    let outbox = Outbox::open(store)?;
    let label = period.label();
    let fire_key = fire_key(&digest.name);
    let fire = options.fired.map(|at| (fire_key.as_str(), at));
    let mut missing = Vec::new();
    for c in digest.channels.iter().copied() {
        if !outbox.contains(&digest.name, &label, c.as_str())? {
            missing.push(c);
        }
    }
    if missing.is_empty() {
        store.commit_digest(&[], &[], fire)?;
        return Ok(missing);
    }
    let estate = match &options.estate {
        Some(e) => e.clone(),
        None => std::sync::Arc::new(
            crate::reconcile::load(store, &config.reconcile)
                .context("loading the estate")?
                .estate,
        ),
    };
    if holds_no_records(&estate) {
        return Err(Hold::NoData.into());
    }
    let mut pack = kpi::with_history(&estate, period, &config.kpi, now, TREND_PERIODS);
    drop(estate);
    pack.warnings.extend(options.notes.iter().cloned());
    let json = pack.to_json_pretty();
    // The pack as sent, so `report --period P --as-sent` shows it unchanged;
    // a pack sent (or snapshotted) before is never replaced.
    let snapshots: Vec<(String, Vec<u8>)> = [
        report::snapshot_key(period),
        format!("digest/{}/{label}", digest.name),
    ]
    .into_iter()
    .map(|k| (k, json.clone().into_bytes()))
    .collect();
    let ids = digest_kpis(digest).map_err(anyhow::Error::msg)?;
    let lines: Vec<report::Line> = report::lines(&pack)
        .into_iter()
        .filter(|l| ids.contains(&l.id))
        .collect();
    let title = digest_title(digest);
    let report_url = config.daemon.report_url.as_deref();
    let mut entries = Vec::new();
    for &channel in &missing {
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
        entries.push(entry.encoded());
    }
    let written = store.commit_digest(&snapshots, &entries, fire)?;
    Ok(missing
        .into_iter()
        .zip(written)
        .filter_map(|(c, w)| w.then_some(c))
        .collect())
}

/// What a resend request did with one channel's entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resent {
    /// Channel name.
    pub channel: String,
    /// The entry's state before (`none` when the period was never queued
    /// on this channel).
    pub was: String,
    /// `requeued`, `queued` (rendered now), `waiting` (already pending),
    /// or `refused` (sent without `--force`, being sent now, or its body
    /// pruned).
    pub outcome: String,
    /// Why, for a refusal.
    pub reason: Option<String>,
}

impl Resent {
    /// True when the request was refused for this channel.
    pub fn refused(&self) -> bool {
        self.outcome == "refused"
    }
}

/// An explicit, logged resend of `digest` for `period`: its failed and
/// unconfirmed entries (with `force`, its sent ones too) go back in line,
/// addressed with the current configuration (recipients, Slack channel) and
/// with the content rendered for that period; a channel that never had the
/// period is rendered and queued as usual. Pending entries are already
/// waiting; an entry being sent is never touched.
pub fn resend(
    store: &Store,
    config: &Config,
    digest: &DigestConfig,
    period: &Period,
    force: bool,
    now: Time,
) -> anyhow::Result<Vec<Resent>> {
    let outbox = Outbox::open(store)?;
    let label = period.label();
    let mut out = Vec::new();
    let mut missing = false;
    for channel in digest.channels.iter().copied() {
        let key = Entry::key(&digest.name, &label, channel.as_str());
        let Some(mut entry) = outbox.get(&key)? else {
            missing = true;
            continue;
        };
        let was = entry.state.as_str().to_string();
        let refuse = |reason: &str| Resent {
            channel: channel.as_str().into(),
            was: was.clone(),
            outcome: "refused".into(),
            reason: Some(reason.into()),
        };
        let pruned = match &entry.payload {
            Payload::Slack { messages, .. } => messages.is_empty(),
            Payload::Email { html, .. } => html.is_empty(),
        };
        let result = match entry.state {
            State::Pending => Resent {
                channel: channel.as_str().into(),
                was: was.clone(),
                outcome: "waiting".into(),
                reason: None,
            },
            State::Sending => refuse("it is being sent right now"),
            State::Sent if !force => refuse("it was delivered; add --force to send it again"),
            _ if pruned => refuse(&format!(
                "its rendered body was removed ({} days after delivery)",
                OUTBOX_KEEP_DAYS
            )),
            State::Sent | State::Failed | State::Unconfirmed => {
                let resend_sent = entry.state == State::Sent;
                match &mut entry.payload {
                    Payload::Slack {
                        delivered,
                        thread_ts,
                        channel: target,
                        ..
                    } => {
                        if resend_sent {
                            *delivered = 0;
                            *thread_ts = None;
                        }
                        *target = digest.slack_channel.clone();
                    }
                    Payload::Email { to, .. } => {
                        if let Some(email) = &config.email {
                            *to = digest.email_to.clone().unwrap_or_else(|| email.to.clone());
                        }
                    }
                }
                entry.state = State::Pending;
                entry.attempts = 0;
                entry.next_attempt_us = now.timestamp_micros();
                entry.last_error = None;
                entry.sent_us = None;
                outbox.update(&entry)?;
                tracing::info!(digest = %digest.name, period = %label, channel = channel.as_str(), was = %was, force,
                    "digest re-queued by request");
                Resent {
                    channel: channel.as_str().into(),
                    was: was.clone(),
                    outcome: "requeued".into(),
                    reason: None,
                }
            }
        };
        if result.refused() {
            tracing::warn!(digest = %digest.name, period = %label, channel = channel.as_str(), was = %was,
                reason = result.reason.as_deref().unwrap_or(""), "digest resend refused");
        }
        out.push(result);
    }
    if missing {
        for channel in queue_digest(store, config, digest, period, now, &QueueOptions::default())? {
            tracing::info!(digest = %digest.name, period = %label, channel = channel.as_str(),
                "digest queued by a resend request (never queued before)");
            out.push(Resent {
                channel: channel.as_str().into(),
                was: "none".into(),
                outcome: "queued".into(),
                reason: None,
            });
        }
    }
    Ok(out)
}

/// Delivered outbox entries keep their rendered body this long.
pub const OUTBOX_KEEP_DAYS: i64 = 400;

/// A digest rendered without being queued (`digest --dry-run`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Preview {
    /// Period label.
    pub period: String,
    /// The Slack messages (Block Kit bodies).
    pub slack: Vec<serde_json::Value>,
    /// The email subject.
    pub subject: String,
    /// The email's plain-text body.
    pub text: String,
}

/// Render a digest for `period` as it would be sent, queueing nothing.
pub fn preview(
    store: &Store,
    config: &Config,
    digest: &DigestConfig,
    period: &Period,
    now: Time,
) -> anyhow::Result<Preview> {
    let pack = compute_pack(store, config, period, now)?;
    let ids = digest_kpis(digest).map_err(anyhow::Error::msg)?;
    let lines: Vec<report::Line> = report::lines(&pack)
        .into_iter()
        .filter(|l| ids.contains(&l.id))
        .collect();
    let title = digest_title(digest);
    let report_url = config.daemon.report_url.as_deref();
    let view = slack::DigestView {
        title: &title,
        lines: lines.clone(),
        report_url,
    };
    Ok(Preview {
        period: period.label(),
        slack: slack::render(&pack, &view),
        subject: email::subject(&title, &pack, &lines),
        text: email::text_body(&title, &pack, &lines, report_url),
    })
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
    /// Sent without an answer (timed out or cut off after the request went
    /// out): it may have arrived, so it is not sent again.
    Unconfirmed(String),
}

/// Try to deliver one entry, persisting progress (Slack parts) as it goes.
pub async fn attempt(store: &Arc<Store>, channels: &Channels<'_>, entry: &mut Entry) -> Attempt {
    let result = match entry.payload {
        Payload::Slack { .. } => attempt_slack(store, channels, entry).await,
        Payload::Email { .. } => attempt_email(channels, entry).await,
    };
    match result {
        Ok(()) => Attempt::Sent,
        Err(e) if is_unconfirmed(&e) => Attempt::Unconfirmed(format!("{e:#}")),
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

/// Write an entry durably, off the async runtime's workers.
async fn persist(store: &Arc<Store>, entry: &Entry) -> anyhow::Result<()> {
    let store = store.clone();
    let entry = entry.clone();
    tokio::task::spawn_blocking(move || Outbox::open(&store)?.update(&entry))
        .await
        .context("outbox write task")??;
    Ok(())
}

async fn attempt_slack(
    store: &Arc<Store>,
    channels: &Channels<'_>,
    entry: &mut Entry,
) -> anyhow::Result<()> {
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
        let max_answer = channels
            .config
            .slack
            .as_ref()
            .map_or(DEFAULT_SLACK_MAX_ANSWER, |s| s.max_answer_bytes);
        // A pause Slack asks for is kept within `daemon.retry_max_secs`.
        let max_wait = channels.config.daemon.retry_max_secs as f64;
        let ts = slack::post(
            &channels.http,
            &target,
            &body,
            thread_ts.as_deref(),
            max_answer,
        )
        .await
        .map_err(|e| match e.retry_after() {
            Some(d) => {
                anyhow::Error::new(RetryAfter(d.as_secs_f64().min(max_wait))).context(e.to_string())
            }
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
            persist(store, entry).await?;
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
    let id = email::message_id(
        &cfg.from,
        &entry.digest,
        &entry.period,
        &entry.channel,
        entry.created_us,
    );
    let msg = email::build_message(&cfg.from, to, &id, subject, text, html, images)?;
    smtp::submit(cfg, channels.secrets.smtp_password.as_ref(), &msg).await?;
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

/// Errors after the request or message went out without an answer.
fn is_unconfirmed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<slack::SlackError>()
            .is_some_and(slack::SlackError::is_unconfirmed)
            || c.downcast_ref::<email::EmailError>()
                .is_some_and(email::EmailError::is_unconfirmed)
    })
}

/// Default of `slack.max_answer_bytes`.
const DEFAULT_SLACK_MAX_ANSWER: usize = crate::config::DEFAULT_SLACK_MAX_ANSWER_BYTES;

/// Slack asked for a pause of this many seconds.
#[derive(Debug, thiserror::Error)]
#[error("retry after {0} s")]
pub struct RetryAfter(pub f64);

/// Deliver one due entry: durably `sending` first (a crash from then on
/// leaves it unconfirmed, never sent twice), then one attempt, then its
/// outcome, durably. Returns the attempt's outcome.
pub async fn deliver_one(
    store: &Arc<Store>,
    channels: &Channels<'_>,
    mut entry: Entry,
) -> anyhow::Result<Attempt> {
    entry.attempts += 1;
    entry.state = State::Sending;
    persist(store, &entry).await?;
    let outcome = attempt(store, channels, &mut entry).await;
    match &outcome {
        Attempt::Sent => {
            entry.state = State::Sent;
            entry.sent_us = Some(Utc::now().timestamp_micros());
            entry.last_error = None;
            tracing::info!(digest = %entry.digest, period = %entry.period, channel = %entry.channel, attempts = entry.attempts, "digest delivered");
        }
        Attempt::Failed(error) => {
            entry.state = State::Failed;
            tracing::error!(digest = %entry.digest, period = %entry.period, channel = %entry.channel, %error, "digest refused by the channel; not retried");
            entry.last_error = Some(error.clone());
        }
        Attempt::Unconfirmed(error) => {
            entry.state = State::Unconfirmed;
            tracing::warn!(digest = %entry.digest, period = %entry.period, channel = %entry.channel, attempts = entry.attempts, %error,
                "digest delivery unconfirmed: sent without an answer, so not sent again (at most once); check the channel, then resend with `secmetrics digest NAME --period PERIOD --resend` if it did not arrive");
            entry.last_error = Some(error.clone());
        }
        Attempt::Retry(wait, error) => {
            entry.state = State::Pending;
            entry.next_attempt_us = Utc::now().timestamp_micros() + (wait * 1e6) as i64;
            tracing::warn!(digest = %entry.digest, period = %entry.period, channel = %entry.channel, attempts = entry.attempts, retry_in_secs = wait, %error, "digest delivery failed");
            entry.last_error = Some(error.clone());
        }
    }
    persist(store, &entry).await?;
    Ok(outcome)
}

/// Send every due entry once, one after the other (the command line; the
/// daemon delivers each entry in its own task); returns (sent, failed).
pub async fn deliver_due(
    store: &Arc<Store>,
    channels: &Channels<'_>,
    now: Time,
) -> anyhow::Result<(u64, u64)> {
    let due = Outbox::open(store)?.due(now.timestamp_micros())?;
    let mut sent = 0;
    let mut failed = 0;
    for entry in due {
        match deliver_one(store, channels, entry).await? {
            Attempt::Sent => sent += 1,
            _ => failed += 1,
        }
    }
    Ok((sent, failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DigestConfig, DigestPeriod};

    fn t(s: &str) -> Time {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_huge_retry_after_from_slack_waits_at_most_retry_max_secs() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "18446744073709551615")],
                "slow down",
            )
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut config = Config::default();
        config.daemon.retry_max_secs = 120;
        config.slack = Some(
            serde_json::from_value(
                serde_json::json!({ "webhook_url": format!("http://{addr}/x") }),
            )
            .unwrap(),
        );
        let secrets = config.secrets().unwrap();
        let channels = Channels {
            http: slack::client(std::time::Duration::from_secs(5)).unwrap(),
            config: &config,
            secrets: &secrets,
        };
        let mut entry = Entry {
            digest: "monthly".into(),
            period: "2026-10".into(),
            channel: "slack".into(),
            payload: Payload::Slack {
                messages: vec![r#"{"text":"t"}"#.into()],
                delivered: 0,
                thread_ts: None,
                channel: None,
            },
            state: State::Pending,
            attempts: 1,
            next_attempt_us: 0,
            last_error: None,
            created_us: 0,
            sent_us: None,
        };
        match attempt(&store, &channels, &mut entry).await {
            Attempt::Retry(wait, error) => {
                assert_eq!(wait, 120.0, "{error}");
                assert!(error.contains("rate limited (429)"), "{error}");
            }
            _ => panic!("not a retry"),
        }
    }

    #[test]
    fn the_fire_is_recorded_with_its_outbox_entries_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = Config {
            slack: Some(
                serde_json::from_str(r#"{"webhook_url": "http://127.0.0.1:1/x"}"#).unwrap(),
            ),
            ..Config::default()
        };
        let digest = DigestConfig {
            name: "monthly".into(),
            schedule: "0 0 8 1 * *".into(),
            period: DigestPeriod::Month,
            kpis: None,
            channels: vec![ChannelKind::Slack],
            slack_channel: None,
            email_to: None,
        };
        let period = Period::parse_month("2026-10").unwrap();
        let at = t("2026-11-01T08:00:00Z");
        let fired = |at| QueueOptions {
            fired: Some(at),
            notes: vec!["connector `gh`: its last sync failed (HTTP 502)".into()],
            estate: None,
        };
        // Nothing to report: held, and nothing written, the fire included.
        let e = queue_digest(&store, &config, &digest, &period, at, &fired(at)).unwrap_err();
        assert_eq!(e.downcast_ref::<Hold>(), Some(&Hold::NoData));
        assert_eq!(last_fire(&store, "monthly"), None);
        assert!(Outbox::open(&store).unwrap().all().unwrap().is_empty());
        assert!(store.snapshot("2026-10").unwrap().is_none());

        let text = include_str!("../../tests/data/golden/estate-small.ndjson");
        let records: Vec<_> = text
            .lines()
            .map(|l| secmetrics_connectors::ndjson::parse_line(l, "import").unwrap())
            .collect();
        store.upsert_batch(&records, at).unwrap();
        let queued = queue_digest(&store, &config, &digest, &period, at, &fired(at)).unwrap();
        assert_eq!(queued, vec![ChannelKind::Slack]);
        assert_eq!(last_fire(&store, "monthly"), Some(at));
        let snapshot = String::from_utf8(store.snapshot("2026-10").unwrap().unwrap()).unwrap();
        assert!(
            snapshot.contains("its last sync failed (HTTP 502)"),
            "{snapshot}"
        );
        assert!(store.snapshot("digest/monthly/2026-10").unwrap().is_some());
        assert_eq!(Outbox::open(&store).unwrap().all().unwrap().len(), 1);

        // A later fire for the same period queues nothing and moves the
        // fire forward; an earlier one never moves it back.
        let later = at + chrono::Duration::seconds(2);
        let q = queue_digest(&store, &config, &digest, &period, later, &fired(later)).unwrap();
        assert!(q.is_empty());
        assert_eq!(last_fire(&store, "monthly"), Some(later));
        queue_digest(&store, &config, &digest, &period, at, &fired(at)).unwrap();
        assert_eq!(last_fire(&store, "monthly"), Some(later));
        assert_eq!(Outbox::open(&store).unwrap().all().unwrap().len(), 1);
    }
}
