//! The scheduler and its jobs on tokio's paused time: a panicking job is
//! caught, counted and runs again at its next fire; a sync that never ends
//! delays no digest and does not pile up.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A daemon's shared state over a fresh store, with `toml` as configuration.
fn shared(dir: &std::path::Path, toml: &str) -> (Arc<Shared>, watch::Sender<bool>) {
    let path = dir.join("c.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(Some(&path)).unwrap();
    let store = Arc::new(Store::open(&dir.join("store")).unwrap());
    let (tx, rx) = watch::channel(false);
    let shared = Shared::new(store, config, Secrets::default(), rx, None);
    (Arc::new(shared), tx)
}

/// A clock that starts at the wall clock and then follows tokio's (paused)
/// time.
fn virtual_clock() -> Box<dyn Fn() -> Time + Send + Sync> {
    let (wall, base) = (Utc::now(), tokio::time::Instant::now());
    Box::new(move || {
        wall + chrono::Duration::from_std(base.elapsed()).unwrap_or(chrono::TimeDelta::zero())
    })
}

/// Calls of the stand-in sync: the first panics, the second returns, every
/// later one never ends.
static CALLS: AtomicUsize = AtomicUsize::new(0);

fn flaky_sync(_: Arc<Shared>, name: String) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        match CALLS.fetch_add(1, Ordering::SeqCst) {
            0 => panic!("connector {name} blew up"),
            1 => {}
            _ => std::future::pending::<()>().await,
        }
    })
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_sync_is_counted_and_runs_again_and_a_stuck_one_delays_no_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, stop) = shared(
        dir.path(),
        r#"
[daemon]
sync_schedule = "* * * * * *"

[[connectors]]
kind = "ndjson"
name = "inv"
paths = []

[slack]
webhook_url = "http://127.0.0.1:9/x"

[[digests]]
name = "daily"
schedule = "*/5 * * * * *"
period = "day"
channels = ["slack"]
"#,
    );
    let hooks = Hooks {
        now: virtual_clock(),
        run_sync: flaky_sync,
    };
    let task = tokio::spawn(scheduler(shared.clone(), stop.subscribe(), hooks));
    // Fire 1 panics, fire 2 runs, fire 3 starts a sync that never ends.
    until("three syncs started", || CALLS.load(Ordering::SeqCst) >= 3).await;
    assert_eq!(
        shared
            .job_panics
            .lock()
            .unwrap()
            .get(&("sync".into(), "inv".into())),
        Some(&1)
    );
    let fired = |s: &Shared| s.due_digests.lock().unwrap().values().map(|d| d.at).max();
    let first = fired(&shared);
    // Thirty more seconds: the stuck sync holds its place (later fires are
    // skipped, none piles up), while the digest keeps firing on time.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);
    assert!(shared.scheduled_syncs.lock().unwrap().contains("inv"));
    let later = fired(&shared).expect("the digest fired");
    assert!(
        first.map_or(true, |f| later >= f + chrono::Duration::seconds(25)),
        "{first:?} -> {later}"
    );
    // The scheduler is alive: it beat within its period.
    assert!(shared.heartbeat.age() <= shared.heartbeat.period());
    assert!(!task.is_finished());
    let metrics = metrics::render(&shared);
    assert!(
        metrics.contains("secmetrics_job_panics_total{job=\"sync\",name=\"inv\"} 1"),
        "{metrics}"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn healthz_fails_once_the_scheduler_loop_stops_beating() {
    use axum::extract::State;
    let dir = tempfile::tempdir().unwrap();
    let (shared, _stop) = shared(dir.path(), "");
    shared.heartbeat.beat();
    let status = |r: axum::response::Response| r.status().as_u16();
    assert_eq!(status(admin::healthz(State(shared.clone())).await), 200);
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(status(admin::healthz(State(shared.clone())).await), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(admin::healthz(State(shared.clone())).await), 503);
    shared.heartbeat.beat();
    assert_eq!(status(admin::healthz(State(shared.clone())).await), 200);
}

#[test]
fn finished_resync_jobs_are_forgotten_beyond_the_last_hundred() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, _stop) = shared(dir.path(), "");
    let job = |state: &str| JobStatus {
        state: state.into(),
        connectors_done: 0,
        connectors_total: 1,
        records: 0,
        messages: Vec::new(),
        current: None,
    };
    shared.add_job(1, job("running"));
    for id in 2..=150 {
        shared.add_job(id, job("done"));
    }
    let jobs = shared.jobs.lock().unwrap();
    assert_eq!(jobs.len(), 1 + KEEP_FINISHED_JOBS);
    assert!(jobs.contains_key(&1), "a running job is kept");
    assert!(!jobs.contains_key(&50));
    assert!(jobs.contains_key(&51) && jobs.contains_key(&150));
}

#[test]
fn resync_job_ids_are_unique_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = Store::open(dir.path()).unwrap();
        let ids = [store.generate_id().unwrap(), store.generate_id().unwrap()];
        store.flush().unwrap();
        ids
    };
    let store = Store::open(dir.path()).unwrap();
    let next = store.generate_id().unwrap();
    assert!(
        first[0] < first[1] && first[1] < next,
        "{first:?} then {next}"
    );
}
