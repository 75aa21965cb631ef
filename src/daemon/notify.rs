//! systemd integration through sd_notify: readiness, stopping, and watchdog
//! pings at half the interval systemd asks for. Outside systemd (no
//! `NOTIFY_SOCKET`) every call does nothing.

use sd_notify::NotifyState;
use std::time::Duration;
use tokio::sync::watch;

/// Tell systemd the daemon is ready (Type=notify).
pub fn ready() {
    if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready]) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
}

/// Tell systemd the daemon is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// Ping the watchdog until shutdown, when systemd enabled it.
pub async fn watchdog(mut stop: watch::Receiver<bool>) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    loop {
        let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
