//! `secmetrics explain KIND/SOURCE/ID [--period P] [--format text|json]`:
//! why one record counts where it counts. Through the daemon's admin API
//! when it holds the store, directly otherwise.

use super::{admin_client, Context};
use crate::explain::{self, Explanation};
use crate::kpi::Period;
use crate::reconcile::overrides::parse_target;

/// Options of `explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The record: KIND/SOURCE/ID (e.g. finding/codeql/acme/api#12).
    #[arg(value_name = "KIND/SOURCE/ID")]
    pub target: String,
    /// Period whose KPIs to explain: a month `2026-10`, an ISO week
    /// `2026-W48` or a day `2026-11-30`, in `kpi.timezone`. Default: the
    /// last complete month.
    #[arg(long, value_name = "P")]
    pub period: Option<String>,
    /// Output format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// Run `explain`.
pub fn run(ctx: &Context, args: ExplainArgs) -> anyhow::Result<i32> {
    let identity = parse_target(&args.target)?;
    let period = match &args.period {
        Some(p) => Period::parse(p, ctx.config.kpi.timezone.0)?,
        None => Period::last_complete(
            crate::kpi::Unit::Month,
            chrono::Utc::now(),
            ctx.config.kpi.timezone.0,
        ),
    };
    let e = match through_daemon(ctx, &identity, &period)? {
        Some(e) => e,
        None => {
            let store = ctx.open_store()?;
            explain::from_store(
                &store,
                &args.target,
                &period,
                &ctx.config.kpi,
                &ctx.config.reconcile,
            )?
        }
    };
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", explain::text::render(&e));
    }
    Ok(0)
}

fn through_daemon(
    ctx: &Context,
    identity: &secmetrics_connectors::Identity,
    period: &Period,
) -> anyhow::Result<Option<Explanation>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let Some(client) = admin_client::connect(&ctx.config.admin.socket).await else {
            return Ok(None);
        };
        let path = admin_client::record_path("/api/v1/explain", identity);
        let resp = client
            .get(admin_client::url(&path))
            .query(&[("period", period.label())])
            .timeout(std::time::Duration::from_secs(120))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            anyhow::bail!(
                "{}",
                body["error"]
                    .as_str()
                    .unwrap_or("the daemon could not explain")
            );
        }
        Ok(Some(serde_json::from_value(body)?))
    })
}
