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
    let result = runtime.block_on(async {
        let shutdown = crate::daemon::termination()?;
        crate::daemon::run(store, ctx.config, secrets, shutdown).await
    });
    // Work still running past the grace period (a blocking read or write
    // that does not look at the stop signal) does not hold the exit: each
    // store write is atomic, so what it had not committed is simply not
    // there.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(0)
}
