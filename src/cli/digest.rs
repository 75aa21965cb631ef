//! `secmetrics digest NAME [--dry-run] [--period P]`: render a digest now
//! and (without `--dry-run`) queue it for delivery — through the running
//! daemon when there is one, else here, sending before returning.

use super::{admin_client, Context};
use crate::deliver::{self, outbox::Outbox};
use crate::kpi::Period;
use anyhow::Context as _;
use chrono::Utc;

/// Options of `digest`.
#[derive(Debug, clap::Args)]
pub struct DigestArgs {
    /// The digest's `name` in `[[digests]]`.
    pub name: String,
    /// Render and print, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Period `YYYY-MM` (default: the digest's last complete period).
    #[arg(long, value_name = "YYYY-MM")]
    pub period: Option<String>,
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
    let period = match &args.period {
        Some(p) => Period::parse_month(p)?,
        None => deliver::digest_period(digest.period, Utc::now()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if !args.dry_run {
        if let Some(client) = runtime.block_on(admin_client::connect(&ctx.config.admin.socket)) {
            let body: serde_json::Value = runtime.block_on(async {
                client
                    .post(admin_client::url(&format!(
                        "/api/v1/digests/{}?period={}",
                        digest.name,
                        period.label()
                    )))
                    .send()
                    .await?
                    .json()
                    .await
            })?;
            if let Some(e) = body["error"].as_str() {
                anyhow::bail!("the daemon could not queue the digest: {e}");
            }
            println!("queued by the daemon: {body}");
            return Ok(0);
        }
    }
    let store = std::sync::Arc::new(ctx.open_store()?);
    if args.dry_run {
        let pack = deliver::compute_pack(&store, &ctx.config, &period, Utc::now())?;
        let ids = deliver::digest_kpis(&digest).map_err(anyhow::Error::msg)?;
        let lines: Vec<_> = crate::report::lines(&pack)
            .into_iter()
            .filter(|l| ids.contains(&l.id))
            .collect();
        let title = deliver::digest_title(&digest);
        let view = deliver::slack::DigestView {
            title: &title,
            lines: lines.clone(),
            report_url: ctx.config.daemon.report_url.as_deref(),
        };
        for m in deliver::slack::render(&pack, &view) {
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
        println!(
            "Subject: {}\n\n{}",
            deliver::email::subject(&title, &pack, &lines),
            deliver::email::text_body(&title, &pack, &lines, None)
        );
        return Ok(0);
    }
    let secrets = ctx.config.secrets()?;
    for e in Outbox::new(store.outbox()).recover_interrupted()? {
        eprintln!(
            "digest {} for {} ({}) was being sent when the last run stopped; not re-sent (at most once): check the channel",
            e.digest, e.period, e.channel
        );
    }
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
            "digest {} for {} was queued before; it is never sent twice",
            digest.name,
            period.label()
        );
    }
    let channels = deliver::Channels {
        http: deliver::slack::client(std::time::Duration::from_secs(
            ctx.config.slack.as_ref().map_or(30, |s| s.timeout_secs),
        ))?,
        config: &ctx.config,
        secrets: &secrets,
    };
    let (sent, failed) = runtime.block_on(deliver::deliver_due(&store, &channels, Utc::now()))?;
    let pending = Outbox::new(store.outbox()).depth()?;
    println!("sent {sent}, failed {failed}, waiting in the outbox {pending}");
    Ok(if failed > 0 { 1 } else { 0 })
}
