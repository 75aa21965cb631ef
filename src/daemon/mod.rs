//! The daemon: schedules syncs and digests, delivers the outbox, serves the
//! admin API, and shuts down cleanly on SIGTERM. `run` takes its shutdown
//! signal as an argument (as mini-redis does), which keeps it testable.

pub mod admin;
pub mod decisions;
pub mod metrics;
pub mod notify;
pub mod resync;
pub mod schedule;

use crate::config::{Config, Secrets};
use crate::deliver::{self, Channels};
use crate::kpi::{self, KpiPack, Period};
use crate::store::Store;
use anyhow::Context as _;
use chrono::Utc;
use schedule::CronSchedule;
use secmetrics_connectors::Time;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// State shared by the scheduler, the delivery loop and the admin API.
pub struct Shared {
    /// The store (held by this process alone).
    pub store: Store,
    /// The configuration.
    pub config: Config,
    /// Resolved secrets.
    pub secrets: Secrets,
    /// The pack of the last complete month, refreshed after each change
    /// (`None` until the first is computed: `/readyz` answers 503).
    pub current: RwLock<Option<Arc<KpiPack>>>,
    /// Per-connector sync statistics.
    pub syncs: Mutex<BTreeMap<String, SyncStats>>,
    /// Resync jobs requested through the admin API, by id.
    pub jobs: Mutex<BTreeMap<u64, JobStatus>>,
    /// Wakes the delivery loop (a digest was queued).
    pub wake_delivery: Notify,
    /// Records changed: the cached pack is recomputed (debounced, off the
    /// request path).
    pub pack_stale: Notify,
    /// Shutdown has begun.
    pub stopping: watch::Receiver<bool>,
    /// Serializes syncs: one connector pass at a time writes the store.
    pub sync_lock: tokio::sync::Mutex<()>,
    /// Resyncs started through the admin API; shutdown waits for them to
    /// finish their page in flight.
    pub tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Statistics of one connector's syncs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncStats {
    /// Last successful pass (RFC 3339).
    pub last_success: Option<String>,
    /// Last failed pass's error.
    pub last_error: Option<String>,
    /// Records committed, all passes.
    pub records: u64,
    /// Failed passes.
    pub errors: u64,
    /// Rate-limit waits.
    pub rate_limit_waits: u64,
}

/// A resync job's state, as the admin API reports it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct JobStatus {
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Connectors done so far.
    pub connectors_done: u64,
    /// Connectors in the job.
    pub connectors_total: u64,
    /// Records committed so far.
    pub records: u64,
    /// Lines of progress or outcome.
    pub messages: Vec<String>,
    /// Progress of the connector in flight.
    #[serde(default)]
    pub current: Option<String>,
}

/// A scheduled job.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    Digest(String),
    Sync(String),
}

impl Shared {
    /// Recompute the cached pack (last complete month) from the store.
    pub fn refresh_pack(&self, now: Time) -> anyhow::Result<Arc<KpiPack>> {
        let estate = crate::reconcile::load(&self.store, &self.config.reconcile)?.estate;
        let period = Period::last_complete_month(now);
        let pack = Arc::new(kpi::with_history(
            &estate,
            &period,
            &self.config.kpi,
            now,
            6,
        ));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(pack.clone());
        Ok(pack)
    }

    /// The cached pack, computing it when there is none yet.
    pub fn pack(&self) -> anyhow::Result<Arc<KpiPack>> {
        if let Some(p) = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(p);
        }
        self.refresh_pack(Utc::now())
    }

    /// Channels for delivery.
    pub fn channels(&self) -> anyhow::Result<Channels<'_>> {
        Ok(Channels {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(
                    self.config.slack.as_ref().map_or(30, |s| s.timeout_secs),
                ))
                .build()
                .context("building the HTTP client")?,
            config: &self.config,
            secrets: &self.secrets,
        })
    }
}

/// Validate what the daemon needs before it starts: schedules, digests,
/// channels. Returns every problem in plain words.
pub fn validate(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let tz = &config.daemon.timezone;
    if let Err(e) = CronSchedule::parse(&config.daemon.sync_schedule, tz) {
        problems.push(format!("daemon.sync_schedule: {e}"));
    }
    for (name, expr) in &config.daemon.sync_schedules {
        if let Err(e) = CronSchedule::parse(expr, tz) {
            problems.push(format!("daemon.sync_schedules.{name}: {e}"));
        }
    }
    if let Some(e) = &config.email {
        let has_password =
            e.password.is_some() || e.password_file.is_some() || e.password_env.is_some();
        if e.username.is_some() != has_password {
            problems.push(
                "email: give both `username` and a password (`password_file`, `password_env` or `password`), or neither".into(),
            );
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for d in &config.digests {
        if !names.insert(&d.name) {
            problems.push(format!("digests: the name `{}` is used twice", d.name));
        }
        if let Err(e) = CronSchedule::parse(&d.schedule, tz) {
            problems.push(format!("digest `{}`: schedule: {e}", d.name));
        }
        if let Err(e) = deliver::digest_kpis(d) {
            problems.push(e);
        }
        if d.channels.is_empty() {
            problems.push(format!("digest `{}`: `channels` is empty", d.name));
        }
        for c in &d.channels {
            match c {
                crate::config::ChannelKind::Slack if config.slack.is_none() => {
                    problems.push(format!(
                        "digest `{}` sends to Slack but there is no [slack] section",
                        d.name
                    ))
                }
                crate::config::ChannelKind::Email if config.email.is_none() => {
                    problems.push(format!(
                        "digest `{}` sends email but there is no [email] section",
                        d.name
                    ))
                }
                _ => {}
            }
        }
    }
    problems
}

/// Run the daemon until `shutdown` resolves; then finish the work in flight
/// and return.
pub async fn run(
    store: Store,
    config: Config,
    secrets: Secrets,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let problems = validate(&config);
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    // Connector outcomes survive restarts in the store's cursors.
    let mut syncs = BTreeMap::new();
    for (name, c) in store.cursors()? {
        syncs.insert(
            name,
            SyncStats {
                last_success: c.last_success_us.map(crate::store::time_text),
                last_error: c.last_error,
                ..SyncStats::default()
            },
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        store,
        config,
        secrets,
        current: RwLock::new(None),
        syncs: Mutex::new(syncs),
        jobs: Mutex::new(BTreeMap::new()),
        wake_delivery: Notify::new(),
        pack_stale: Notify::new(),
        stopping: stop_rx.clone(),
        sync_lock: tokio::sync::Mutex::new(()),
        tasks: Mutex::new(Vec::new()),
    });
    // Computing the pack loads every record (seconds for a large store):
    // off the start path, so signals and the admin API answer at once, and
    // debounced, so a burst of pushes costs one recomputation.
    let refresher = tokio::spawn(pack_refresher(shared.clone(), stop_rx.clone()));
    shared.pack_stale.notify_one();
    let pruned = crate::deliver::outbox::Outbox::new(shared.store.outbox()).prune_sent_before(
        (Utc::now() - chrono::Duration::days(OUTBOX_KEEP_DAYS)).timestamp_micros(),
    )?;
    if pruned > 0 {
        tracing::info!(
            pruned,
            "removed delivered outbox entries older than {OUTBOX_KEEP_DAYS} days"
        );
    }
    for e in crate::deliver::outbox::Outbox::new(shared.store.outbox()).recover_interrupted()? {
        tracing::warn!(digest = %e.digest, period = %e.period, channel = %e.channel,
            "the last run stopped while sending this digest; not re-sent (at most once): check the channel");
    }
    let admin = admin::serve(shared.clone(), stop_rx.clone())
        .await
        .context("starting the admin API")?;
    let scheduler = tokio::spawn(scheduler(shared.clone(), stop_rx.clone()));
    let delivery = tokio::spawn(delivery_loop(shared.clone(), stop_rx.clone()));
    let watchdog = tokio::spawn(notify::watchdog(stop_rx.clone()));
    notify::ready();
    tracing::info!(socket = %shared.config.admin.socket.display(), "secmetrics daemon ready");

    shutdown.await;
    tracing::info!("shutting down: finishing the work in flight");
    notify::stopping();
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(shared.config.daemon.shutdown_grace_secs);
    let tasks: Vec<_> =
        std::mem::take(&mut *shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
    let all = async {
        let _ = scheduler.await;
        let _ = delivery.await;
        for t in tasks {
            let _ = t.await;
        }
        for a in admin {
            let _ = a.await;
        }
    };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "work still running at the end of the grace period; stopping anyway"
        );
    }
    watchdog.abort();
    refresher.abort();
    shared.store.flush()?;
    let _ = std::fs::remove_file(&shared.config.admin.socket);
    tracing::info!("secmetrics daemon stopped");
    Ok(())
}

/// Fire due jobs; at start, catch up digests missed while the daemon was down.
async fn scheduler(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let tz = shared.config.daemon.timezone.clone();
    let mut jobs: Vec<(Job, CronSchedule)> = Vec::new();
    for d in &shared.config.digests {
        if let Ok(s) = CronSchedule::parse(&d.schedule, &tz) {
            jobs.push((Job::Digest(d.name.clone()), s));
        }
    }
    for name in resync::connector_names(&shared.config) {
        let expr = shared
            .config
            .daemon
            .sync_schedules
            .get(&name)
            .unwrap_or(&shared.config.daemon.sync_schedule);
        if let Ok(s) = CronSchedule::parse(expr, &tz) {
            jobs.push((Job::Sync(name), s));
        }
    }
    // Catch-up: a digest whose fire time passed while the daemon was down
    // is queued now, for the period of that missed fire; the outbox key
    // (digest, period, channel) keeps it at most once. On the very first
    // start nothing was missed.
    let now = Utc::now();
    for (job, s) in &jobs {
        if let Job::Digest(name) = job {
            let Some(missed) = s.last_at_or_before(now) else {
                continue;
            };
            match last_fire(&shared, name) {
                Some(done) if done >= missed => {}
                Some(_) => {
                    tracing::info!(digest = %name, fire_time = %missed, "catching up a digest missed while the daemon was down");
                    run_job(&shared, job, missed).await;
                }
                None => record_fire(&shared, name, missed),
            }
        }
    }
    let mut last = now;
    loop {
        let next = jobs
            .iter()
            .filter_map(|(j, s)| s.next_after(last).map(|t| (t, j.clone())))
            .min_by_key(|(t, _)| *t);
        let Some((at, _)) = next else {
            // Nothing scheduled: wait for shutdown.
            let _ = stop.changed().await;
            return;
        };
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let due: Vec<Job> = jobs
            .iter()
            .filter(|(_, s)| s.next_after(last).is_some_and(|t| t <= at))
            .map(|(j, _)| j.clone())
            .collect();
        last = at;
        for job in due {
            if *stop.borrow() {
                return;
            }
            run_job(&shared, &job, at).await;
        }
    }
}

fn fire_key(digest: &str) -> String {
    format!("daemon/digest_fired/{digest}")
}

/// The last fire time of a digest that was handled.
fn last_fire(shared: &Shared, digest: &str) -> Option<Time> {
    let bytes = shared.store.meta(&fire_key(digest)).ok()??;
    let us = i64::from_be_bytes(bytes.as_slice().try_into().ok()?);
    chrono::DateTime::from_timestamp_micros(us)
}

fn record_fire(shared: &Shared, digest: &str, at: Time) {
    if let Err(e) = shared
        .store
        .put_meta(&fire_key(digest), &at.timestamp_micros().to_be_bytes())
    {
        tracing::error!(digest, error = %e, "could not record the digest's fire time");
    }
}

async fn run_job(shared: &Arc<Shared>, job: &Job, at: Time) {
    match job {
        Job::Digest(name) => {
            record_fire(shared, name, at);
            let Some(d) = shared.config.digests.iter().find(|d| &d.name == name) else {
                return;
            };
            let period = deliver::digest_period(d.period, at);
            let shared2 = shared.clone();
            let d2 = d.clone();
            // Loading the estate and rendering are blocking work.
            let result = tokio::task::spawn_blocking(move || {
                deliver::queue_digest(&shared2.store, &shared2.config, &d2, &period, Utc::now())
            })
            .await;
            match result {
                Ok(Ok(queued)) if !queued.is_empty() => {
                    tracing::info!(digest = %name, channels = ?queued, "digest rendered into the outbox");
                    shared.wake_delivery.notify_one();
                }
                Ok(Ok(_)) => {
                    tracing::debug!(digest = %name, "digest already queued for this period")
                }
                Ok(Err(e)) => {
                    tracing::error!(digest = %name, error = %format!("{e:#}"), "digest could not be rendered")
                }
                Err(e) => tracing::error!(digest = %name, error = %e, "digest task failed"),
            }
        }
        Job::Sync(name) => {
            resync::run(shared, Some(name.as_str()), false, None).await;
        }
    }
}

/// Delivered outbox entries are kept this long (their snapshots stay).
const OUTBOX_KEEP_DAYS: i64 = 400;

/// Recompute the cached pack when records changed, at most every 2 s.
async fn pack_refresher(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shared.pack_stale.notified() => {}
            _ = stop.changed() => return,
        }
        let s = shared.clone();
        let result = tokio::task::spawn_blocking(move || s.refresh_pack(Utc::now())).await;
        if let Ok(Err(e)) = result {
            tracing::warn!(error = %format!("{e:#}"), "could not compute the KPI pack");
        }
        // Changes during the computation or this pause coalesce into one.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deliver due outbox entries; sleep until the next is due or a digest is queued.
async fn delivery_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let channels = match shared.channels() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "delivery disabled");
            let _ = stop.changed().await;
            return;
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = deliver::deliver_due(&shared.store, &channels, Utc::now()).await {
            tracing::error!(error = %format!("{e:#}"), "outbox delivery pass failed");
        }
        let next = crate::deliver::outbox::Outbox::new(shared.store.outbox())
            .next_due_us()
            .ok()
            .flatten();
        let wait = match next {
            Some(us) => {
                let d = us - Utc::now().timestamp_micros();
                Duration::from_micros(d.clamp(0, 3_600_000_000) as u64)
            }
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.wake_delivery.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// SIGTERM or SIGINT. The handlers are installed when this is called (not
/// when first polled), so a signal during start-up is not lost. Call it
/// inside the runtime.
pub fn termination() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
