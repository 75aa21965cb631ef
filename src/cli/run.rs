//! `secmetrics run`: the daemon in the foreground (systemd runs it so).

use super::Context;
use anyhow::Context as _;

/// Run the daemon until SIGTERM or SIGINT; exit code 0 after a clean stop.
pub fn run(ctx: Context) -> anyhow::Result<i32> {
    let secrets = ctx.config.secrets().context("invalid configuration")?;
    let store = ctx.open_store()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = crate::daemon::termination()?;
        crate::daemon::run(store, ctx.config, secrets, shutdown).await
    })?;
    Ok(0)
}
