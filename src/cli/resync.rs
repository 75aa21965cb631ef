//! `secmetrics resync [--connector NAME] [--full]`: ask the running daemon
//! to sync now and show its progress until done; with no daemon running,
//! run the sync here.

use super::{admin_client, sync, Context};
use crate::daemon::JobStatus;
use std::io::IsTerminal;
use std::time::Duration;

/// Options of `resync`.
#[derive(Debug, clap::Args)]
pub struct ResyncArgs {
    /// Only this connector.
    #[arg(long, value_name = "NAME")]
    pub connector: Option<String>,
    /// Re-read everything; records the source no longer returns are marked gone.
    #[arg(long)]
    pub full: bool,
}

/// Resync through the daemon, or locally when none runs.
pub fn run(ctx: &Context, args: ResyncArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = runtime.block_on(admin_client::connect(&ctx.config.admin.socket));
    let Some(client) = client else {
        eprintln!(
            "no daemon answers on {}; syncing here",
            ctx.config.admin.socket.display()
        );
        drop(runtime);
        return sync::run(
            ctx,
            sync::SyncArgs {
                connector: args.connector,
                full: args.full,
            },
        );
    };
    runtime.block_on(async {
        let resp = client
            .post(admin_client::url("/api/v1/resync"))
            .json(&crate::daemon::admin::ResyncRequest {
                connector: args.connector.clone(),
                full: args.full,
            })
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            anyhow::bail!(
                "the daemon refused the resync: {}",
                body["error"].as_str().unwrap_or("unknown error")
            );
        }
        let id = body["id"].as_u64().unwrap_or(0);
        println!("resync {id} started by the daemon");
        let mut shown = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let job: JobStatus = client
                .get(admin_client::url(&format!("/api/v1/resync/{id}")))
                .send()
                .await?
                .json()
                .await?;
            for m in &job.messages[shown..] {
                println!("  {m}");
            }
            if let Some(c) = &job.current {
                if std::io::stderr().is_terminal() {
                    eprint!("\r  {c}…\x1b[K");
                }
            }
            shown = job.messages.len();
            if job.state != "running" {
                println!(
                    "resync {id} {}: {} of {} connectors, {} records written",
                    job.state, job.connectors_done, job.connectors_total, job.records
                );
                return Ok(if job.state == "done" { 0 } else { 1 });
            }
        }
    })
}
