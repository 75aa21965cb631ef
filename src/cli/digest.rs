//! `secmetrics digest NAME [--period P] [--dry-run | --resend [--force]]`:
//! render a digest now and queue it for delivery, print it without sending
//! (`--dry-run`), or put a failed or unconfirmed one back in line
//! (`--resend`) — through the running daemon when there is one, else here,
//! sending before returning.

use super::{admin_client, Context};
use crate::deliver::{self, outbox::Outbox, Preview, Resent};
use anyhow::Context as _;
use chrono::Utc;
use std::sync::Arc;

/// Options of `digest`.
#[derive(Debug, clap::Args)]
pub struct DigestArgs {
    /// The digest's `name` in `[[digests]]`.
    pub name: String,
    /// Render and print, send nothing (asks the daemon to render when it
    /// holds the store).
    #[arg(long, conflicts_with = "resend")]
    pub dry_run: bool,
    /// Period in the digest's form: `YYYY-MM` (month), `YYYY-Www` (ISO
    /// week) or `YYYY-MM-DD` (day), in `kpi.timezone` (default: the
    /// digest's last complete period).
    #[arg(long, value_name = "PERIOD")]
    pub period: Option<String>,
    /// Send the period's failed or unconfirmed entries again (with the
    /// current recipients and channel). Logged.
    #[arg(long, requires = "period")]
    pub resend: bool,
    /// With `--resend`: also send entries that were delivered.
    #[arg(long, requires = "resend")]
    pub force: bool,
}

/// Render (and send) a digest.
pub fn run(ctx: &Context, args: DigestArgs) -> anyhow::Result<i32> {
    let digest = ctx
        .config
        .digests
        .iter()
        .find(|d| d.name == args.name)
        .cloned()
        .with_context(|| format!("no digest named {:?} in the configuration", args.name))?;
    let zone = ctx.config.kpi.timezone.0;
    let period = deliver::asked_digest_period(&digest, args.period.as_deref(), Utc::now(), zone)?;
    let label = period.label();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some(client) = runtime.block_on(admin_client::connect(&ctx.config.admin.socket)) {
        let path = format!("/api/v1/digests/{}", digest.name);
        let answer: serde_json::Value = runtime.block_on(async {
            let request = if args.dry_run {
                client.get(admin_client::url(&format!("{path}/preview?period={label}")))
            } else {
                let mut q = format!("{path}?period={label}");
                if args.resend {
                    q.push_str(&format!("&resend=true&force={}", args.force));
                }
                client.post(admin_client::url(&q))
            };
            request.send().await?.json().await
        })?;
        if let Some(e) = answer["error"].as_str() {
            anyhow::bail!("the daemon refused: {e}");
        }
        if args.dry_run {
            print_preview(&serde_json::from_value(answer)?)?;
            return Ok(0);
        }
        if args.resend {
            let resent: Vec<Resent> = serde_json::from_value(answer["resend"].clone())?;
            return Ok(print_resent(&digest.name, &label, &resent, "the daemon"));
        }
        println!("queued by the daemon: {answer}");
        return Ok(0);
    }
    let store = Arc::new(ctx.open_store()?);
    if args.dry_run {
        print_preview(&deliver::preview(
            &store,
            &ctx.config,
            &digest,
            &period,
            Utc::now(),
        )?)?;
        return Ok(0);
    }
    let secrets = ctx.config.secrets()?;
    for e in Outbox::open(&store)?.recover_interrupted()? {
        eprintln!(
            "digest {} for {} ({}) was being sent when the last run stopped; not re-sent (at most once): check the channel",
            e.digest, e.period, e.channel
        );
    }
    let mut code = 0;
    if args.resend {
        let resent = deliver::resend(
            &store,
            &ctx.config,
            &digest,
            &period,
            args.force,
            Utc::now(),
        )?;
        code = print_resent(&digest.name, &label, &resent, "here");
    } else {
        let queued = deliver::queue_digest(
            &store,
            &ctx.config,
            &digest,
            &period,
            Utc::now(),
            &deliver::QueueOptions::default(),
        )?;
        if queued.is_empty() {
            println!(
                "digest {} for {label} was queued before; it is never sent twice \
                 (`--resend` sends a failed or unconfirmed one again)",
                digest.name,
            );
        }
    }
    let channels = deliver::Channels {
        http: deliver::slack::client(std::time::Duration::from_secs(
            ctx.config.slack.as_ref().map_or(30, |s| s.timeout_secs),
        ))?,
        config: &ctx.config,
        secrets: &secrets,
    };
    let (sent, failed) = runtime.block_on(deliver::deliver_due(&store, &channels, Utc::now()))?;
    let pending = Outbox::open(&store)?.depth()?;
    println!("sent {sent}, failed {failed}, waiting in the outbox {pending}");
    Ok(if failed > 0 { 1 } else { code })
}

fn print_preview(p: &Preview) -> anyhow::Result<()> {
    for m in &p.slack {
        println!("{}", serde_json::to_string_pretty(m)?);
    }
    println!("Subject: {}\n\n{}", p.subject, p.text);
    Ok(())
}

/// One line per channel; exit code 1 when a channel was refused.
fn print_resent(digest: &str, period: &str, resent: &[Resent], by: &str) -> i32 {
    for r in resent {
        match r.outcome.as_str() {
            "requeued" => println!(
                "{digest} {period} {}: was {}, queued again by {by}",
                r.channel, r.was
            ),
            "queued" => println!(
                "{digest} {period} {}: never queued before, queued now by {by}",
                r.channel
            ),
            "waiting" => println!(
                "{digest} {period} {}: already waiting to be sent",
                r.channel
            ),
            _ => println!(
                "{digest} {period} {}: was {}, not sent again: {}",
                r.channel,
                r.was,
                r.reason.as_deref().unwrap_or("refused")
            ),
        }
    }
    if resent.iter().any(Resent::refused) {
        1
    } else {
        0
    }
}
