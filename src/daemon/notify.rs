//! systemd integration through sd_notify: readiness, stopping, and watchdog
//! pings at half the interval systemd asks for — sent only while the
//! scheduler loop beats its [`Heartbeat`], so a dead or stuck scheduler
//! gets the service restarted. Outside systemd (no `NOTIFY_SOCKET`) every
//! call does nothing.

use sd_notify::NotifyState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

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

/// How often to ping the watchdog: half the interval systemd asks for
/// (`WATCHDOG_USEC`), `None` when it asks for none.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

/// The scheduler loop's sign of life: it beats at least every
/// [`Heartbeat::period`]; the watchdog is fed only while the last beat is
/// recent.
#[derive(Debug)]
pub struct Heartbeat {
    base: Instant,
    last_ms: AtomicU64,
    period: Duration,
}

impl Heartbeat {
    /// A heartbeat for watchdog pings every `ping` (or none): the loop
    /// beats every second, or twice per ping interval when that is shorter.
    pub fn new(ping: Option<Duration>) -> Heartbeat {
        let period = ping.map_or(Duration::from_secs(1), |p| {
            (p / 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
        });
        Heartbeat {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            period,
        }
    }

    /// The longest the loop may go between beats.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The loop is alive now.
    pub fn beat(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Ping the watchdog every `every` until shutdown, while `heartbeat` is
/// fresh (beaten within `every`); `ping` sends one. Once the heartbeat is
/// stale the pings stop (logged once) and systemd restarts the service
/// when its interval runs out; they resume if it beats again.
pub async fn watchdog(
    every: Duration,
    heartbeat: &Heartbeat,
    mut ping: impl FnMut(),
    mut stop: watch::Receiver<bool>,
) {
    let mut stalled = false;
    loop {
        if heartbeat.age() <= every {
            if stalled {
                tracing::info!("the scheduler loop beats again; watchdog fed");
                stalled = false;
            }
            ping();
        } else if !stalled {
            stalled = true;
            tracing::error!(
                since_ms = heartbeat.age().as_millis() as u64,
                "the scheduler loop has stopped beating; the watchdog is no longer fed, so systemd will restart the service"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One watchdog ping to systemd.
pub fn ping() {
    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_is_fed_only_while_the_loop_beats() {
        let every = Duration::from_millis(500);
        let hb = Arc::new(Heartbeat::new(Some(every)));
        assert_eq!(hb.period(), Duration::from_millis(250));
        hb.beat();
        let pings = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = watch::channel(false);
        let dog = {
            let (hb, pings) = (hb.clone(), pings.clone());
            tokio::spawn(async move {
                watchdog(
                    every,
                    &hb,
                    || {
                        pings.fetch_add(1, Ordering::Relaxed);
                    },
                    stop_rx,
                )
                .await
            })
        };
        // A loop beating every period: a ping every interval.
        let beating = {
            let hb = hb.clone();
            tokio::spawn(async move {
                loop {
                    hb.beat();
                    tokio::time::sleep(hb.period()).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(2_400)).await;
        assert_eq!(
            pings.load(Ordering::Relaxed),
            5,
            "at 0, 0.5, 1, 1.5 and 2 s"
        );
        // The loop dies: at most one more ping, then none.
        beating.abort();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = pings.load(Ordering::Relaxed);
        assert!(after <= 6, "{after}");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(pings.load(Ordering::Relaxed), after);
        // It beats again: pings resume.
        hb.beat();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(pings.load(Ordering::Relaxed), after + 1);
        stop_tx.send(true).unwrap();
        dog.await.unwrap();
    }
}
