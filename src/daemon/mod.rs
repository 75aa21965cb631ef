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
use crate::deliver::{self, Channels, OUTBOX_KEEP_DAYS};
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
    /// The store (held by this process alone; shared with blocking tasks).
    pub store: Arc<Store>,
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
    /// Digest fires not in the outbox yet (held, or waiting to be
    /// rendered), by (digest, period label).
    pub due_digests: Mutex<BTreeMap<(String, String), DueDigest>>,
    /// Wakes the digest worker (a digest fired, a sync pass ended, records
    /// changed).
    pub wake_digests: Notify,
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
    /// How the last pass ended (kept in the store across restarts).
    pub last_pass: Option<crate::sync::LastPass>,
    /// A pass completed successfully since the daemon started (scheduled
    /// digests wait for every connector's first one).
    pub synced_since_start: bool,
}

/// A digest fire not in the outbox yet: held (no sync pass since start, no
/// data at all) or waiting for a retry of its rendering.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DueDigest {
    /// Digest name.
    pub digest: String,
    /// Period label.
    pub period: String,
    /// The schedule fire it answers (RFC 3339).
    pub fire_time: String,
    /// Why it is not in the outbox yet.
    pub reason: String,
    #[serde(skip)]
    at: Time,
    #[serde(skip)]
    period_value: Period,
    #[serde(skip)]
    attempts: u32,
    #[serde(skip)]
    next_try: Option<Time>,
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
        let period = Period::last_complete(kpi::Unit::Month, now, self.config.kpi.timezone.0);
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
            http: deliver::slack::client(Duration::from_secs(
                self.config.slack.as_ref().map_or(30, |s| s.timeout_secs),
            ))
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

/// Things worth knowing about a valid configuration: a digest schedule
/// read in one time zone while periods end at midnights in another.
pub fn notes(config: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    let kpi_zone = config.kpi.timezone.0;
    let cron_zone = config.daemon.timezone.parse::<chrono_tz::Tz>().ok();
    if !config.digests.is_empty() && cron_zone.is_some_and(|z| z != kpi_zone) {
        notes.push(format!(
            "digest schedules are read in daemon.timezone = {:?}, but periods end at midnights \
             in kpi.timezone = {:?}: a digest reports the last period that has ended there \
             when it fires (08:00 on the 1st in Tokyo is still the previous day in UTC, so a \
             monthly digest would report the month before last); set kpi.timezone to the \
             zone whose months and weeks the digests should report",
            config.daemon.timezone,
            kpi_zone.name()
        ));
    }
    notes
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
    for note in notes(&config) {
        tracing::warn!("{note}");
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
    for (name, pass) in crate::sync::LastPass::load_all(&store)? {
        syncs.entry(name).or_default().last_pass = Some(pass);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        store: Arc::new(store),
        config,
        secrets,
        current: RwLock::new(None),
        syncs: Mutex::new(syncs),
        jobs: Mutex::new(BTreeMap::new()),
        wake_delivery: Notify::new(),
        due_digests: Mutex::new(BTreeMap::new()),
        wake_digests: Notify::new(),
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
    let digests = tokio::spawn(digest_worker(shared.clone(), stop_rx.clone()));
    let delivery = tokio::spawn(delivery_loop(shared.clone(), stop_rx.clone()));
    if !shared.config.connectors.is_empty() {
        // A pass at start: scheduled digests wait for one, so they never
        // report a store that has not been synced since it was last run.
        let s = shared.clone();
        let first = tokio::spawn(async move {
            resync::run(&s, None, false, None).await;
        });
        shared
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(first);
    }
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
        let _ = digests.await;
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
            match deliver::last_fire(&shared.store, name) {
                Some(done) if done >= missed => {}
                Some(_) => {
                    tracing::info!(digest = %name, fire_time = %missed, "catching up a digest missed while the daemon was down");
                    fire_digest(&shared, name, missed);
                }
                None => {
                    // First start: fires from now on count as missed if the
                    // daemon is down when they come.
                    let s = shared.clone();
                    let key = deliver::fire_key(name);
                    let result = tokio::task::spawn_blocking(move || {
                        s.store
                            .put_meta(&key, &now.timestamp_micros().to_be_bytes())
                    })
                    .await;
                    if !matches!(result, Ok(Ok(()))) {
                        tracing::error!(digest = %name, "could not record the digest's first start");
                    }
                }
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

async fn run_job(shared: &Arc<Shared>, job: &Job, at: Time) {
    match job {
        Job::Digest(name) => fire_digest(shared, name, at),
        Job::Sync(name) => {
            resync::run(shared, Some(name.as_str()), false, None).await;
        }
    }
}

/// A digest's schedule fired at `at`: its period (the last complete one
/// at `at`) goes to the digest worker. Nothing is recorded yet: the fire
/// is recorded with its outbox entries, in one write.
fn fire_digest(shared: &Shared, name: &str, at: Time) {
    let Some(d) = shared.config.digests.iter().find(|d| d.name == name) else {
        return;
    };
    let period = deliver::digest_period(d.period, at, shared.config.kpi.timezone.0);
    let label = period.label();
    let mut due = shared.due_digests.lock().unwrap_or_else(|p| p.into_inner());
    let entry = due
        .entry((name.to_string(), label.clone()))
        .or_insert_with(|| DueDigest {
            digest: name.to_string(),
            period: label,
            fire_time: kpi::period::rfc3339(&at),
            reason: "due: being rendered".into(),
            at,
            period_value: period,
            attempts: 0,
            next_try: None,
        });
    if at > entry.at {
        entry.at = at;
        entry.fire_time = kpi::period::rfc3339(&at);
    }
    drop(due);
    shared.wake_digests.notify_one();
}

/// Why scheduled digests must wait: connectors without a complete pass
/// since the daemon started. `None` when there is none (or no connector:
/// the store is fed by import and push).
fn sync_gate(shared: &Shared) -> Option<String> {
    let syncs = shared.syncs.lock().unwrap_or_else(|p| p.into_inner());
    let waiting: Vec<String> = resync::connector_names(&shared.config)
        .into_iter()
        .filter(|n| !syncs.get(n).is_some_and(|s| s.synced_since_start))
        .map(|n| match syncs.get(&n).and_then(|s| s.last_error.clone()) {
            Some(e) => format!("`{n}` (last error: {e})"),
            None => format!("`{n}`"),
        })
        .collect();
    (!waiting.is_empty()).then(|| {
        format!(
            "held until a sync pass since the daemon started has completed for {}",
            waiting.join(", ")
        )
    })
}

/// Warnings a digest carries about its sources: connectors whose last pass
/// failed.
fn sync_notes(shared: &Shared) -> Vec<String> {
    let syncs = shared.syncs.lock().unwrap_or_else(|p| p.into_inner());
    resync::connector_names(&shared.config)
        .into_iter()
        .filter_map(|n| {
            let s = syncs.get(&n)?;
            let e = s.last_error.as_ref()?;
            Some(format!(
                "connector `{n}`: its last sync failed ({e}); its records are as of {}",
                s.last_success
                    .as_deref()
                    .unwrap_or("its last successful sync")
            ))
        })
        .collect()
}

/// Render due digests into the outbox (each in one write with its fire
/// time), holding those that must wait and retrying failed renderings.
async fn digest_worker(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let hold = |due: &DueDigest, reason: String, next_try: Option<Time>, failed: bool| {
        let mut all = shared.due_digests.lock().unwrap_or_else(|p| p.into_inner());
        let Some(d) = all.get_mut(&(due.digest.clone(), due.period.clone())) else {
            return;
        };
        if failed {
            d.attempts += 1;
            tracing::error!(digest = %d.digest, period = %d.period, fire_time = %d.fire_time, %reason, "digest could not be rendered; the fire stays due and is retried");
        } else if d.reason != reason {
            tracing::warn!(digest = %d.digest, period = %d.period, fire_time = %d.fire_time, %reason, "digest held");
        }
        d.reason = reason;
        d.next_try = next_try;
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Utc::now();
        let ready: Vec<DueDigest> = shared
            .due_digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|d| d.next_try.map_or(true, |t| t <= now))
            .cloned()
            .collect();
        let gate = if ready.is_empty() {
            None
        } else {
            sync_gate(&shared)
        };
        for due in ready {
            if *stop.borrow() {
                return;
            }
            if let Some(reason) = &gate {
                hold(&due, reason.clone(), None, false);
                continue;
            }
            let Some(d) = shared
                .config
                .digests
                .iter()
                .find(|d| d.name == due.digest)
                .cloned()
            else {
                continue;
            };
            let options = deliver::QueueOptions {
                fired: Some(due.at),
                notes: sync_notes(&shared),
            };
            tracing::info!(digest = %due.digest, period = %due.period, fire_time = %due.fire_time, "rendering digest");
            let s = shared.clone();
            let period = due.period_value;
            let result = tokio::task::spawn_blocking(move || {
                deliver::queue_digest(&s.store, &s.config, &d, &period, Utc::now(), &options)
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
            match result {
                Ok(queued) => {
                    shared
                        .due_digests
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&(due.digest.clone(), due.period.clone()));
                    if queued.is_empty() {
                        tracing::debug!(digest = %due.digest, period = %due.period, "digest already queued for this period");
                    } else {
                        tracing::info!(digest = %due.digest, period = %due.period, channels = ?queued, "digest rendered into the outbox");
                        shared.wake_delivery.notify_one();
                    }
                }
                Err(e) if e.downcast_ref::<deliver::Hold>().is_some() => {
                    hold(&due, format!("{e}"), None, false);
                }
                Err(e) => {
                    let wait = deliver::outbox::backoff_secs(
                        due.attempts + 1,
                        shared.config.daemon.retry_base_secs,
                        shared.config.daemon.retry_max_secs,
                    );
                    let next = Utc::now() + chrono::Duration::milliseconds((wait * 1e3) as i64);
                    hold(&due, format!("rendering failed: {e:#}"), Some(next), true);
                }
            }
        }
        let next = shared
            .due_digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|d| d.next_try)
            .min();
        let wait = next
            .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = shared.wake_digests.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

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
        // Records changed: a digest held for want of data may go now.
        shared.wake_digests.notify_one();
        // Changes during the computation or this pause coalesce into one.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deliver due outbox entries, each in its own task, so a channel that is
/// slow or stuck never holds back the others; sleep until the next is due,
/// a digest is queued or a delivery ends. On shutdown, wait for the
/// deliveries in flight (`run` bounds that by the grace period).
async fn delivery_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    if let Err(e) = shared.channels() {
        tracing::error!(error = %format!("{e:#}"), "delivery disabled");
        let _ = stop.changed().await;
        return;
    }
    let in_flight: Arc<Mutex<std::collections::HashSet<Vec<u8>>>> = Arc::default();
    let mut running = tokio::task::JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let s = shared.clone();
        let due = tokio::task::spawn_blocking(move || {
            let outbox = crate::deliver::outbox::Outbox::new(s.store.outbox());
            let due = outbox.due(Utc::now().timestamp_micros())?;
            let next = outbox.next_due_us()?;
            Ok::<_, crate::store::StoreError>((due, next))
        })
        .await;
        let (due, next) = match due {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "outbox delivery pass failed");
                (Vec::new(), None)
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox delivery pass failed");
                (Vec::new(), None)
            }
        };
        for entry in due {
            let key = entry.own_key();
            if !in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone())
            {
                continue;
            }
            let s = shared.clone();
            let in_flight = in_flight.clone();
            running.spawn(async move {
                let result = match s.channels() {
                    Ok(channels) => deliver::deliver_one(&s.store, &channels, entry).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::error!(error = %format!("{e:#}"), "outbox delivery failed");
                }
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
            });
        }
        // Entries in flight are `sending`, not due: the earliest pending
        // one decides the sleep.
        let wait = match next {
            Some(us) => {
                let d = us - Utc::now().timestamp_micros();
                Duration::from_micros(d.clamp(0, 3_600_000_000) as u64)
            }
            None => Duration::from_secs(3600),
        };
        let busy = !running.is_empty();
        tokio::select! {
            _ = tokio::time::sleep(wait), if !busy || wait > Duration::ZERO => {}
            _ = shared.wake_delivery.notified() => {}
            Some(_) = running.join_next(), if busy => {}
            _ = stop.changed() => break,
        }
    }
    while running.join_next().await.is_some() {}
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
