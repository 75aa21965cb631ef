//! The admin API (axum) on a Unix socket (mode 0600), plus an optional
//! loopback TCP listener for Prometheus: health, readiness, metrics, the KPI
//! JSON and HTML report, resync requests, digests on demand, and the
//! authenticated NDJSON push endpoint.

use super::{JobStatus, Shared};
use crate::kpi::{self, Period};
use crate::report;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use secmetrics_connectors::ndjson;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Start the listeners; they stop when `stop` turns true.
pub async fn serve(
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    use anyhow::Context as _;
    let socket = shared.config.admin.socket.clone();
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // A live daemon (of another store) answering here is never displaced;
    // a socket left by a crashed daemon is removed.
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        anyhow::bail!(
            "another secmetrics daemon answers on {}; give this one its own admin.socket",
            socket.display()
        );
    }
    // The TCP listener first: a port in use fails the start before the
    // socket exists, so nothing is left behind.
    let tcp = match shared.config.admin.metrics_listen {
        Some(addr) => {
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "`admin.metrics_listen` {addr} is not a loopback address; the metrics listener only binds loopback"
            );
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding admin.metrics_listen {addr}"))?,
            )
        }
        None => None,
    };
    let _ = std::fs::remove_file(&socket);
    let listener = bind_private(&socket)
        .with_context(|| format!("binding the admin socket {}", socket.display()))?;
    let mut handles = Vec::new();
    let app = router(shared.clone());
    let s = stop.clone();
    handles.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped(s))
            .await
        {
            tracing::error!(error = %e, "admin socket server failed");
        }
    }));
    if let Some(tcp) = tcp {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(shared.clone());
        let s = stop.clone();
        handles.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(tcp, app)
                .with_graceful_shutdown(stopped(s))
                .await
            {
                tracing::error!(error = %e, "metrics listener failed");
            }
        }));
    }
    Ok(handles)
}

/// Bind the socket with mode 0600 from its first moment: it is created in a
/// fresh 0700 directory beside its final path, narrowed, then renamed into
/// place, so no other user can connect in between.
fn bind_private(socket: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let parent = socket.parent().unwrap_or(std::path::Path::new("."));
    let staging = parent.join(format!(".secmetrics-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let tmp = staging.join("admin.sock");
    let result = (|| {
        let listener = tokio::net::UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, socket)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The routes of the admin socket.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/kpis", get(kpis))
        .route("/report", get(html_report))
        .route("/api/v1/report", get(report_answer).post(report_answer))
        .route("/api/v1/resync", post(resync))
        .route("/api/v1/resync/{id}", get(resync_status))
        .route("/api/v1/digests/{name}", post(digest_now))
        .route("/api/v1/digests/{name}/preview", get(digest_preview))
        .route("/api/v1/records", post(push_records))
        .merge(super::decisions::routes())
        .merge(super::backup::routes())
        // Bodies read by extractors (a resync request); the push reads its
        // own, up to `admin.push_max_bytes`.
        .layer(axum::extract::DefaultBodyLimit::max(
            shared.config.admin.max_request_bytes,
        ))
        .with_state(shared)
}

/// How long the scheduler loop may go without a beat before `/healthz`
/// says the daemon is not healthy (it beats at least once a second).
pub const SCHEDULER_STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// Healthy while the scheduler loop beats; 503 once it has stopped (the
/// same sign that stops the systemd watchdog).
pub(crate) async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let age = s.heartbeat.age();
    if age > SCHEDULER_STALL.max(s.heartbeat.period() * 4) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the scheduler loop has not run for {} s\n", age.as_secs()),
        )
            .into_response();
    }
    "ok\n".into_response()
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let syncs = s.syncs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // The outbox's summaries only (never a rendered body), read off the
    // runtime's workers.
    let shared = s.clone();
    let summaries = tokio::task::spawn_blocking(move || {
        crate::deliver::outbox::Outbox::open(&shared.store)?.summaries()
    })
    .await;
    let summaries = match summaries {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
    };
    let depth = crate::deliver::outbox::depth_of(&summaries);
    let states = crate::deliver::outbox::counts_of(&summaries);
    let undelivered = crate::deliver::outbox::undelivered_of(&summaries);
    // Ready once the first KPI pack is computed from the store.
    let ready = s
        .current
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let held: Vec<super::DueDigest> = s
        .due_digests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    (
        status,
        Json(json!({
            "ready": ready,
            "store": s.store.path(),
            "connectors": syncs,
            "outbox_depth": depth,
            "outbox": states,
            "outbox_undelivered": undelivered,
            "digests_held": held,
        })),
    )
        .into_response()
}

/// The store's status document (as `secmetrics status --json` prints it)
/// plus what only the running daemon knows: its connectors' passes since
/// start and the digests it holds.
async fn status(State(s): State<Arc<Shared>>) -> Response {
    let shared = s.clone();
    let doc = tokio::task::spawn_blocking(move || crate::status::collect(&shared.store)).await;
    let mut doc = match doc {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let syncs = s.syncs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let held: Vec<super::DueDigest> = s
        .due_digests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    doc["daemon"] = json!({
        "socket": s.config.admin.socket,
        "connectors": syncs,
        "digests_held": held,
    });
    Json(doc).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let body = tokio::task::spawn_blocking(move || super::metrics::render(&s))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct PeriodQuery {
    period: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn pack_for(s: Arc<Shared>, period: Option<String>) -> Result<Arc<kpi::KpiPack>, Response> {
    let Some(text) = period else {
        return tokio::task::spawn_blocking(move || s.pack())
            .await
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")));
    };
    let period = Period::parse(&text, s.config.kpi.timezone.0)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    // From the estate held in memory, a bounded number at once.
    let _slot = s
        .compute_slots
        .acquire()
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let held = s.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<kpi::KpiPack>> {
        let s = held;
        let estate = s.estate()?;
        Ok(Arc::new(kpi::with_history(
            &estate,
            &period,
            &s.config.kpi,
            Utc::now(),
            6,
        )))
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))
}

async fn kpis(State(s): State<Arc<Shared>>, Query(q): Query<PeriodQuery>) -> Response {
    match pack_for(s, q.period).await {
        Ok(pack) => (
            [(header::CONTENT_TYPE, "application/json")],
            report::json::render(&pack),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn html_report(State(s): State<Arc<Shared>>, Query(q): Query<PeriodQuery>) -> Response {
    match pack_for(s, q.period).await {
        Ok(pack) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report::html::render(&pack),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// A report as `secmetrics report` asks for it (the same code answers it
/// there when no daemon runs); `snapshot` only with POST.
async fn report_answer(
    State(s): State<Arc<Shared>>,
    method: axum::http::Method,
    Query(q): Query<crate::report::request::ReportRequest>,
) -> Response {
    if q.snapshot && method != axum::http::Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "keeping a snapshot writes the store: use POST",
        );
    }
    // From the estate held in memory, a bounded number at once.
    let Ok(_slot) = s.compute_slots.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let held = s.clone();
    let result = tokio::task::spawn_blocking(move || {
        let s = held;
        q.answer_with(&s.store, &s.config.kpi, Utc::now(), || {
            Ok(crate::report::request::EstateRef::Shared(s.estate()?))
        })
    })
    .await;
    match result {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(e))
            if e.downcast_ref::<crate::report::request::NotFound>()
                .is_some() =>
        {
            error(StatusCode::NOT_FOUND, format!("{e:#}"))
        }
        Ok(Err(e)) if e.downcast_ref::<crate::store::StoreError>().is_some() => {
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
        }
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Body of `POST /api/v1/resync`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct ResyncRequest {
    /// Only this connector.
    pub connector: Option<String>,
    /// Re-read everything.
    #[serde(default)]
    pub full: bool,
}

async fn resync(State(s): State<Arc<Shared>>, body: Option<Json<ResyncRequest>>) -> Response {
    let req = body.map(|Json(r)| r).unwrap_or_default();
    if let Some(name) = &req.connector {
        if s.config.connector(name).is_none() {
            return error(
                StatusCode::NOT_FOUND,
                format!("no connector named {name:?}"),
            );
        }
    }
    // Ids come from the store's id generator: unique across restarts, so
    // an id a client holds never names another run's job.
    let shared = s.clone();
    let id = match tokio::task::spawn_blocking(move || shared.store.generate_id()).await {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    s.add_job(
        id,
        JobStatus {
            state: "running".into(),
            connectors_done: 0,
            connectors_total: 0,
            records: 0,
            messages: Vec::new(),
            current: None,
        },
    );
    let shared = s.clone();
    let name = req.connector.clone().unwrap_or_else(|| "all".into());
    let task = super::spawn_job(&s, "resync", name, Some(id), async move {
        super::resync::run(&shared, req.connector.as_deref(), req.full, Some(id)).await;
    });
    s.keep_task(task);
    (StatusCode::ACCEPTED, Json(json!({"id": id}))).into_response()
}

async fn resync_status(State(s): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    match s.jobs.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        Some(j) => Json(j.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no resync job {id}")),
    }
}

#[derive(Deserialize)]
struct DigestQuery {
    period: Option<String>,
    /// Put failed and unconfirmed entries of the period back in line.
    #[serde(default)]
    resend: bool,
    /// With `resend`: delivered entries too.
    #[serde(default)]
    force: bool,
}

/// The configured digest `name` and the period asked for (else its last
/// complete one), or the status and message to answer with.
fn digest_asked(
    s: &Shared,
    name: &str,
    period: Option<&str>,
) -> Result<(crate::config::DigestConfig, Period), (StatusCode, String)> {
    let Some(d) = s.config.digests.iter().find(|d| d.name == name).cloned() else {
        return Err((StatusCode::NOT_FOUND, format!("no digest named {name:?}")));
    };
    match crate::deliver::asked_digest_period(&d, period, Utc::now(), s.config.kpi.timezone.0) {
        Ok(p) => Ok((d, p)),
        Err(e) => Err((StatusCode::BAD_REQUEST, format!("{e:#}"))),
    }
}

async fn digest_now(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(q): Query<DigestQuery>,
) -> Response {
    let (d, period) = match digest_asked(&s, &name, q.period.as_deref()) {
        Ok(found) => found,
        Err((status, message)) => return error(status, message),
    };
    let shared = s.clone();
    let label = period.label();
    if q.resend {
        let force = q.force;
        let result = tokio::task::spawn_blocking(move || {
            crate::deliver::resend(
                &shared.store,
                &shared.config,
                &d,
                &period,
                force,
                Utc::now(),
            )
        })
        .await;
        return match result {
            Ok(Ok(channels)) => {
                s.wake_delivery.notify_one();
                let status = if channels.iter().any(|c| c.refused()) {
                    StatusCode::CONFLICT
                } else {
                    StatusCode::OK
                };
                (
                    status,
                    Json(json!({"digest": name, "period": label, "resend": channels})),
                )
                    .into_response()
            }
            Ok(Err(e)) if e.downcast_ref::<crate::deliver::Hold>().is_some() => {
                error(StatusCode::CONFLICT, format!("{e}"))
            }
            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let result = tokio::task::spawn_blocking(move || {
        crate::deliver::queue_digest(
            &shared.store,
            &shared.config,
            &d,
            &period,
            Utc::now(),
            &crate::deliver::QueueOptions::default(),
        )
    })
    .await;
    match result {
        Ok(Ok(queued)) => {
            s.wake_delivery.notify_one();
            Json(json!({
                "digest": name,
                "period": label,
                "queued": queued.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            }))
            .into_response()
        }
        Ok(Err(e)) if e.downcast_ref::<crate::deliver::Hold>().is_some() => {
            error(StatusCode::CONFLICT, format!("{e}"))
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn digest_preview(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(q): Query<DigestQuery>,
) -> Response {
    let (d, period) = match digest_asked(&s, &name, q.period.as_deref()) {
        Ok(found) => found,
        Err((status, message)) => return error(status, message),
    };
    let result = tokio::task::spawn_blocking(move || {
        crate::deliver::preview(&s.store, &s.config, &d, &period, Utc::now())
    })
    .await;
    match result {
        Ok(Ok(p)) => Json(p).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Constant-time comparison, so response timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn push_records(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    use secrecy::ExposeSecret;
    let Some(expected) = &s.secrets.push_token else {
        return error(
            StatusCode::FORBIDDEN,
            "the push endpoint is disabled: set admin.push_token_file",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(given.as_bytes(), expected.expose_secret().as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response();
    }
    let limit = s.config.admin.push_max_bytes as usize;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over admin.push_max_bytes ({limit} bytes)"),
            )
        }
    };
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let opts = ndjson::StreamOptions {
        origin: "push",
        default_source: "push",
        max_line_bytes: s.config.ndjson.max_line_bytes,
    };
    // Reading from memory cannot fail; a bad line (not UTF-8, too long,
    // not a record) is reported with its number and the rest is stored.
    let _ = ndjson::read_stream(
        &bytes[..],
        &opts,
        |_, r| {
            records.push(r);
            Ok(())
        },
        |e| {
            errors.push(json!({
                "line": e.line,
                "field": e.error.field,
                "error": e.error.message,
            }))
        },
    );
    let loaded = records.len();
    let shared = s.clone();
    let outcome =
        tokio::task::spawn_blocking(move || shared.store.upsert_batch(&records, Utc::now())).await;
    let outcome = match outcome {
        Ok(Ok(o)) => {
            let t = o.total();
            if t.new + t.replaced > 0 {
                s.records_changed();
            }
            o
        }
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let t = outcome.total();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        Json(json!({
            "loaded": loaded,
            "new": t.new,
            "replaced": t.replaced,
            "unchanged": t.unchanged,
            "rejected": errors.len(),
            "errors": errors,
        })),
    )
        .into_response()
}
