//! The daemon: schedules syncs and digests, delivers the outbox, serves the
//! admin API, and shuts down cleanly on SIGTERM. `run` takes its shutdown
//! signal as an argument (as mini-redis does), which keeps it testable.

pub mod admin;
pub mod backup;
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
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

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
    /// The reconciled estate the cached pack was computed from. Requests
    /// for other periods and reports compute from it instead of reloading
    /// the store; it is replaced when records change (see `pack_stale`).
    pub estate: RwLock<Option<(u64, Arc<crate::estate::Estate>)>>,
    /// Counts changes of records and overrides ([`Shared::records_changed`]);
    /// the estate above is kept with the count it was loaded at, and one
    /// asked for after a change is reloaded first (a request sees its own
    /// writes).
    pub generation: std::sync::atomic::AtomicU64,
    /// Computations from the estate for a period other than the cached
    /// one, at most this many at once (each is a pass over every finding).
    pub compute_slots: tokio::sync::Semaphore,
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
    /// Syncs running as their own tasks (the pass at start, scheduled
    /// syncs, resyncs asked for through the admin API); shutdown waits for
    /// them to finish their page in flight.
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The scheduler loop's sign of life: the watchdog is fed only while
    /// it beats.
    pub heartbeat: notify::Heartbeat,
    /// Jobs that panicked since the daemon started, by (job kind, name):
    /// caught, logged and counted; each runs again at its next fire.
    pub job_panics: Mutex<BTreeMap<(String, String), u64>>,
    /// Connectors whose scheduled sync is queued or running: a fire while
    /// one still waits (for the sync lock) or runs is skipped, so slow
    /// passes never pile up.
    pub scheduled_syncs: Mutex<BTreeSet<String>>,
}

/// Finished resync jobs kept for `GET /api/v1/resync/ID` (running ones are
/// always kept); older ones are forgotten.
pub const KEEP_FINISHED_JOBS: usize = 100;

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

/// The text of a caught panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Run `job` as a task of its own. A panic in it is caught, logged and
/// counted (`secmetrics_job_panics_total{job=KIND,name=NAME}`); nothing
/// else stops, and a scheduled job runs again at its next fire. With
/// `resync`, that resync job's status turns `failed`.
pub fn spawn_job<F>(
    shared: &Arc<Shared>,
    kind: &'static str,
    name: String,
    resync: Option<u64>,
    job: F,
) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let inner = tokio::spawn(job);
    let shared = shared.clone();
    tokio::spawn(async move {
        let Err(e) = inner.await else { return };
        if !e.is_panic() {
            return;
        }
        let message = panic_message(e.into_panic());
        shared.count_panic(kind, &name, &message);
        if let Some(id) = resync {
            if let Some(j) = shared
                .jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&id)
            {
                j.state = "failed".into();
                j.messages.push(format!("the sync panicked: {message}"));
            }
        }
    })
}

impl Shared {
    /// The state of a daemon starting on `store`, stopping when `stopping`
    /// turns true; `watchdog` is how often systemd wants a ping, if it does.
    pub fn new(
        store: Arc<Store>,
        config: Config,
        secrets: Secrets,
        stopping: watch::Receiver<bool>,
        watchdog: Option<Duration>,
    ) -> Shared {
        Shared {
            store,
            config,
            secrets,
            current: RwLock::new(None),
            estate: RwLock::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            compute_slots: tokio::sync::Semaphore::new(COMPUTE_SLOTS),
            syncs: Mutex::new(BTreeMap::new()),
            jobs: Mutex::new(BTreeMap::new()),
            wake_delivery: Notify::new(),
            due_digests: Mutex::new(BTreeMap::new()),
            wake_digests: Notify::new(),
            pack_stale: Notify::new(),
            stopping,
            sync_lock: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
            heartbeat: notify::Heartbeat::new(watchdog),
            job_panics: Mutex::new(BTreeMap::new()),
            scheduled_syncs: Mutex::new(BTreeSet::new()),
        }
    }

    /// Reload the reconciled estate from the store and recompute the cached
    /// pack (last complete month) from it.
    pub fn refresh_pack(&self, now: Time) -> anyhow::Result<Arc<KpiPack>> {
        // Read before loading: a change during the load makes it stale.
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let estate = Arc::new(crate::reconcile::load(&self.store, &self.config.reconcile)?.estate);
        *self.estate.write().unwrap_or_else(|p| p.into_inner()) =
            Some((generation, estate.clone()));
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

    /// The reconciled estate of the last refresh, loading it when there is
    /// none yet (runs blocking work: call it off the runtime's workers).
    pub fn estate(&self) -> anyhow::Result<Arc<crate::estate::Estate>> {
        let now = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        if let Some((at, e)) = self
            .estate
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            if at == now {
                return Ok(e);
            }
        }
        self.refresh_pack(Utc::now())?;
        self.estate
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(|(_, e)| e)
            .ok_or_else(|| anyhow::anyhow!("the estate could not be loaded"))
    }

    /// Records or overrides changed: the estate held is stale, and the
    /// cached pack is recomputed (debounced, off the request path).
    pub fn records_changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.pack_stale.notify_one();
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

    /// Keep a new resync job's status under `id`, forgetting the oldest
    /// finished jobs beyond [`KEEP_FINISHED_JOBS`].
    pub fn add_job(&self, id: u64, status: JobStatus) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.insert(id, status);
        let finished: Vec<u64> = jobs
            .iter()
            .filter(|(_, j)| j.state != "running")
            .map(|(id, _)| *id)
            .collect();
        if finished.len() > KEEP_FINISHED_JOBS {
            // Ids grow with time: the smallest are the oldest.
            for id in &finished[..finished.len() - KEEP_FINISHED_JOBS] {
                jobs.remove(id);
            }
        }
    }

    /// Keep a task that must finish its page in flight before shutdown
    /// ends, forgetting those already finished.
    pub fn keep_task(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Count a caught panic of a job.
    fn count_panic(&self, kind: &str, name: &str, message: &str) {
        tracing::error!(job = kind, name, panic = %message,
            "job panicked; caught and counted, it runs again at its next fire");
        *self
            .job_panics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((kind.to_string(), name.to_string()))
            .or_default() += 1;
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

/// A schedule that parses and fires at least once after `now`.
fn check_schedule(expr: &str, tz: &str, now: Time) -> Result<(), String> {
    let s = CronSchedule::parse(expr, tz)?;
    if s.next_after(now).is_none() {
        return Err(format!(
            "cron expression {expr:?} never fires (no time after now matches it)"
        ));
    }
    Ok(())
}

/// An email address (`Name <addr>` or `addr`) that a message can carry.
fn check_mailbox(key: &str, text: &str) -> Result<(), String> {
    text.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| format!("`{key}`: {text:?} is not an email address ({e})"))
}

/// An http(s) URL with a host. `secret`: never repeat the value.
fn check_url(key: &str, text: &str, secret: bool) -> Result<(), String> {
    let shown = if secret {
        String::new()
    } else {
        format!(" {text:?}")
    };
    match reqwest::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(u) => Err(format!(
            "`{key}`{shown} is not an http(s) URL (scheme `{}`)",
            u.scheme()
        )),
        Err(e) => Err(format!("`{key}`{shown} is not a URL ({e})")),
    }
}

/// Validate what the daemon needs before it starts: schedules (that parse
/// and fire), digests, channels, addresses and URLs, the metrics
/// listener. Returns every problem in plain words.
pub fn validate(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let tz = &config.daemon.timezone;
    let now = Utc::now();
    if let Err(e) = check_schedule(&config.daemon.sync_schedule, tz, now) {
        problems.push(format!("daemon.sync_schedule: {e}"));
    }
    for (name, expr) in &config.daemon.sync_schedules {
        if config.connector(name).is_none() {
            problems.push(format!(
                "daemon.sync_schedules.{name}: there is no connector named {name:?}"
            ));
        }
        if let Err(e) = check_schedule(expr, tz, now) {
            problems.push(format!("daemon.sync_schedules.{name}: {e}"));
        }
    }
    if let Some(addr) = config.admin.metrics_listen {
        if !addr.ip().is_loopback() {
            problems.push(format!(
                "`admin.metrics_listen` {addr} is not a loopback address; the metrics listener \
                 only binds loopback (e.g. 127.0.0.1:9477), put a proxy in front for more"
            ));
        }
    }
    if let Some(url) = &config.daemon.report_url {
        if let Err(e) = check_url("daemon.report_url", url, false) {
            problems.push(e);
        }
    }
    if let Some(slack) = &config.slack {
        if let Err(e) = check_url("slack.api_base", &slack.api_base, false) {
            problems.push(e);
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
        if let Err(p) = check_mailbox("email.from", &e.from) {
            problems.push(p);
        }
        for to in &e.to {
            if let Err(p) = check_mailbox("email.to", to) {
                problems.push(p);
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for d in &config.digests {
        if !names.insert(&d.name) {
            problems.push(format!("digests: the name `{}` is used twice", d.name));
        }
        if let Err(e) = check_schedule(&d.schedule, tz, now) {
            problems.push(format!("digest `{}`: schedule: {e}", d.name));
        }
        if let Err(e) = deliver::digest_kpis(d) {
            problems.push(e);
        }
        if d.channels.is_empty() {
            problems.push(format!("digest `{}`: `channels` is empty", d.name));
        }
        for to in d.email_to.iter().flatten() {
            if let Err(p) = check_mailbox(&format!("digests.{}.email_to", d.name), to) {
                problems.push(p);
            }
        }
        let sends_email = d.channels.contains(&crate::config::ChannelKind::Email);
        let to = d.email_to.as_ref().or(config.email.as_ref().map(|e| &e.to));
        if sends_email && config.email.is_some() && to.map_or(true, |t| t.is_empty()) {
            problems.push(format!(
                "digest `{}` sends email but has no recipients (`email.to` or its `email_to`)",
                d.name
            ));
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

/// Validate what only the resolved secrets show: the Slack webhook is a
/// URL (named by its key, never repeated: it is a secret), and a `[slack]`
/// section has a way to post.
pub fn validate_secrets(config: &Config, secrets: &Secrets) -> Vec<String> {
    use secrecy::ExposeSecret;
    let mut problems = Vec::new();
    if let Some(url) = &secrets.slack_webhook {
        if let Err(e) = check_url("slack.webhook_url", url.expose_secret().trim(), true) {
            problems.push(e);
        }
    }
    if let Some(slack) = &config.slack {
        if secrets.slack_webhook.is_none() && secrets.slack_bot_token.is_none() {
            problems.push(
                "[slack] has neither a webhook URL (`webhook_url_file`, `webhook_url_env`, \
                 `webhook_url`) nor a bot token (`bot_token_file`, ...)"
                    .into(),
            );
        }
        let digest_channel = config.digests.iter().any(|d| {
            d.slack_channel.is_some() && d.channels.contains(&crate::config::ChannelKind::Slack)
        });
        if secrets.slack_bot_token.is_some() && slack.channel.is_none() && !digest_channel {
            problems.push(
                "`slack.bot_token` needs `slack.channel` (or a digest's `slack_channel`)".into(),
            );
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
    let mut problems = validate(&config);
    problems.extend(validate_secrets(&config, &secrets));
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    for note in notes(&config) {
        tracing::warn!("{note}");
    }
    // Connector outcomes survive restarts in the store's cursors. Every
    // store read and write below runs off the runtime's workers.
    let store = Arc::new(store);
    let (cursors, passes) = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((
                store.cursors()?,
                crate::sync::LastPass::load_all(&store)?,
            ))
        })
        .await??
    };
    let mut syncs = BTreeMap::new();
    for (name, c) in cursors {
        syncs.insert(
            name,
            SyncStats {
                last_success: c.last_success_us.map(crate::store::time_text),
                last_error: c.last_error,
                ..SyncStats::default()
            },
        );
    }
    for (name, pass) in passes {
        syncs.entry(name).or_default().last_pass = Some(pass);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let watchdog_every = notify::watchdog_interval();
    let shared = Arc::new(Shared::new(
        store,
        config,
        secrets,
        stop_rx.clone(),
        watchdog_every,
    ));
    *shared.syncs.lock().unwrap_or_else(|p| p.into_inner()) = syncs;
    // Computing the pack loads every record (seconds for a large store):
    // off the start path, so signals and the admin API answer at once, and
    // debounced, so a burst of pushes costs one recomputation.
    let refresher = tokio::spawn(pack_refresher(shared.clone(), stop_rx.clone()));
    shared.records_changed();
    let (pruned, interrupted) = {
        let s = shared.clone();
        tokio::task::spawn_blocking(move || {
            let outbox = crate::deliver::outbox::Outbox::open(&s.store)?;
            let pruned = outbox.prune_sent_before(
                (Utc::now() - chrono::Duration::days(OUTBOX_KEEP_DAYS)).timestamp_micros(),
            )?;
            Ok::<_, crate::store::StoreError>((pruned, outbox.recover_interrupted()?))
        })
        .await??
    };
    if pruned > 0 {
        tracing::info!(
            pruned,
            "removed delivered outbox entries older than {OUTBOX_KEEP_DAYS} days"
        );
    }
    for e in interrupted {
        tracing::warn!(digest = %e.digest, period = %e.period, channel = %e.channel,
            "the last run stopped while sending this digest; not re-sent (at most once): check the channel");
    }
    let admin = admin::serve(shared.clone(), stop_rx.clone())
        .await
        .context("starting the admin API")?;
    shared.heartbeat.beat();
    let scheduler = tokio::spawn(scheduler(shared.clone(), stop_rx.clone(), Hooks::daemon()));
    let digests = tokio::spawn(digest_worker(shared.clone(), stop_rx.clone()));
    let delivery = tokio::spawn(delivery_loop(shared.clone(), stop_rx.clone()));
    if !shared.config.connectors.is_empty() {
        // A pass at start: scheduled digests wait for one, so they never
        // report a store that has not been synced since it was last run.
        let s = shared.clone();
        let first = spawn_job(&shared, "sync", "start".into(), None, async move {
            resync::run(&s, None, false, None).await;
        });
        shared.keep_task(first);
    }
    let watchdog = watchdog_every.map(|every| {
        let (s, stop) = (shared.clone(), stop_rx.clone());
        tokio::spawn(async move { notify::watchdog(every, &s.heartbeat, notify::ping, stop).await })
    });
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
    if let Some(w) = watchdog {
        w.abort();
    }
    refresher.abort();
    let s = shared.clone();
    let flushed = tokio::task::spawn_blocking(move || s.store.flush()).await;
    let _ = std::fs::remove_file(&shared.config.admin.socket);
    flushed??;
    tracing::info!("secmetrics daemon stopped");
    Ok(())
}

/// A scheduled sync of one connector, run to its end.
pub type SyncRunner = fn(Arc<Shared>, String) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the scheduler takes from outside: the time, and how a scheduled
/// sync runs. The daemon uses the wall clock and [`resync::run`]; tests
/// use a clock on tokio's paused time and a stand-in sync.
pub struct Hooks {
    /// The current time.
    pub now: Box<dyn Fn() -> Time + Send + Sync>,
    /// Runs one scheduled sync of the named connector.
    pub run_sync: SyncRunner,
}

impl Hooks {
    /// The wall clock and the real sync.
    pub fn daemon() -> Hooks {
        Hooks {
            now: Box::new(Utc::now),
            run_sync: |shared, name| {
                Box::pin(async move {
                    resync::run(&shared, Some(name.as_str()), false, None).await;
                })
            },
        }
    }
}

/// Fire due jobs; at start, catch up digests missed while the daemon was down.
pub async fn scheduler(shared: Arc<Shared>, mut stop: watch::Receiver<bool>, hooks: Hooks) {
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
    let now = (hooks.now)();
    let names: Vec<String> = jobs
        .iter()
        .filter_map(|(j, _)| match j {
            Job::Digest(n) => Some(n.clone()),
            Job::Sync(_) => None,
        })
        .collect();
    let fired = {
        let s = shared.clone();
        tokio::task::spawn_blocking(move || {
            names
                .into_iter()
                .map(|n| {
                    let last = deliver::last_fire(&s.store, &n);
                    (n, last)
                })
                .collect::<BTreeMap<_, _>>()
        })
        .await
        .unwrap_or_default()
    };
    for (job, s) in &jobs {
        if let Job::Digest(name) = job {
            let Some(missed) = s.last_at_or_before(now) else {
                continue;
            };
            match fired.get(name).copied().flatten() {
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
    tracing::info!(
        digests = jobs
            .iter()
            .filter(|(j, _)| matches!(j, Job::Digest(_)))
            .count(),
        syncs = jobs
            .iter()
            .filter(|(j, _)| matches!(j, Job::Sync(_)))
            .count(),
        "scheduler running (missed digests caught up)"
    );
    // Each due job starts as a task of its own and the loop goes on: a
    // sync waiting for the sync lock or running for an hour delays no
    // digest. The loop beats the heartbeat at least every period, which
    // is what feeds the watchdog.
    let beat = shared.heartbeat.period();
    let mut last = now;
    loop {
        shared.heartbeat.beat();
        let next = jobs
            .iter()
            .filter_map(|(j, s)| s.next_after(last).map(|t| (t, j.clone())))
            .min_by_key(|(t, _)| *t);
        let wait = next
            .as_ref()
            .map(|(at, _)| (*at - (hooks.now)()).to_std().unwrap_or(Duration::ZERO));
        let Some((at, _)) = next.filter(|_| wait.is_some_and(|w| w <= beat)) else {
            // Nothing due within a beat: beat, and look again.
            tokio::select! {
                _ = tokio::time::sleep(beat) => {}
                _ = stop.changed() => return,
            }
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.unwrap_or(Duration::ZERO)) => {}
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
            start_job(&shared, &job, at, hooks.run_sync);
        }
    }
}

/// Removes a connector from [`Shared::scheduled_syncs`] when its scheduled
/// sync ends, however it ends (a panic included).
struct ScheduledSync<'a> {
    shared: &'a Shared,
    name: &'a str,
}

impl Drop for ScheduledSync<'_> {
    fn drop(&mut self) {
        self.shared
            .scheduled_syncs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.name);
    }
}

/// Start a due job without waiting for it: a digest goes to the digest
/// worker, a sync runs as a task of its own (skipped while the previous
/// scheduled sync of that connector is still queued or running).
fn start_job(shared: &Arc<Shared>, job: &Job, at: Time, run_sync: SyncRunner) {
    match job {
        Job::Digest(name) => fire_digest(shared, name, at),
        Job::Sync(name) => {
            let fresh = shared
                .scheduled_syncs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone());
            if !fresh {
                tracing::info!(connector = %name, fire_time = %at,
                    "scheduled sync skipped: the previous one is still waiting or running");
                return;
            }
            let (s, n) = (shared.clone(), name.clone());
            let task = spawn_job(shared, "sync", name.clone(), None, async move {
                let _queued = ScheduledSync {
                    shared: &s,
                    name: &n,
                };
                run_sync(s.clone(), n.clone()).await;
            });
            shared.keep_task(task);
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
                estate: None,
            };
            tracing::info!(digest = %due.digest, period = %due.period, fire_time = %due.fire_time, "rendering digest");
            let s = shared.clone();
            let period = due.period_value;
            let result = tokio::task::spawn_blocking(move || {
                // The estate held in memory, reloaded first if records
                // changed since (a digest never reports stale data).
                let options = deliver::QueueOptions {
                    estate: Some(s.estate()?),
                    ..options
                };
                deliver::queue_digest(&s.store, &s.config, &d, &period, Utc::now(), &options)
            })
            .await
            .map_err(|e| {
                // A panic while rendering is caught here: counted, and the
                // fire stays due and is retried like a failed rendering.
                let text = if e.is_panic() {
                    let message = panic_message(e.into_panic());
                    shared.count_panic("digest", &due.digest, &message);
                    format!("panicked: {message}")
                } else {
                    e.to_string()
                };
                anyhow::anyhow!(text)
            })
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

/// Period computations from the cached estate run at most this many at once.
pub const COMPUTE_SLOTS: usize = 2;

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
            let outbox = crate::deliver::outbox::Outbox::open(&s.store)?;
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
            let guard = InFlight {
                keys: in_flight.clone(),
                key,
            };
            let label = format!("{}/{}/{}", entry.digest, entry.period, entry.channel);
            running.spawn(async move {
                // Released however the delivery ends, a panic included.
                let _guard = guard;
                let result = match s.channels() {
                    Ok(channels) => deliver::deliver_one(&s.store, &channels, entry).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::error!(error = %format!("{e:#}"), "outbox delivery failed");
                }
                label
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
            Some(done) = running.join_next(), if busy => delivery_ended(&shared, done),
            _ = stop.changed() => break,
        }
    }
    while let Some(done) = running.join_next().await {
        delivery_ended(&shared, done);
    }
}

/// Keys of the outbox entries being delivered; each delivery removes its
/// own when it ends.
struct InFlight {
    keys: Arc<Mutex<std::collections::HashSet<Vec<u8>>>>,
    key: Vec<u8>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// A delivery task ended: a panic is caught and counted. The entry was
/// durably `sending`, so it becomes `unconfirmed` at the next start rather
/// than being sent twice.
fn delivery_ended(shared: &Shared, done: Result<String, tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            shared.count_panic("delivery", "outbox", &panic_message(e.into_panic()));
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

#[cfg(test)]
mod tests;
