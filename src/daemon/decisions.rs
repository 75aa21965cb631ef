//! The admin API of reconciliation decisions, so the CLI works while the
//! daemon holds the store: manual overrides (`GET`/`POST
//! /api/v1/overrides`, `DELETE /api/v1/overrides/KIND/SOURCE/ID`) and
//! `GET /api/v1/explain/KIND/SOURCE/ID[?period=P]`.

use super::Shared;
use crate::explain::{self, ExplainError};
use crate::kpi::Period;
use crate::reconcile::overrides::{self, OverrideError, SetOverride};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The routes, merged into the admin socket's router.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/overrides", get(list).post(set))
        .route("/api/v1/overrides/{kind}/{source}/{*id}", delete(remove))
        .route("/api/v1/explain/{kind}/{source}/{*id}", get(explain_one))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn override_error(e: OverrideError) -> Response {
    let status = match &e {
        OverrideError::NoRecord(_) => StatusCode::NOT_FOUND,
        OverrideError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn list(State(s): State<Arc<Shared>>) -> Response {
    match blocking(move || overrides::list(&s.store)).await {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => override_error(e),
        Err(r) => r,
    }
}

async fn set(State(s): State<Arc<Shared>>, Json(req): Json<SetOverride>) -> Response {
    let shared = s.clone();
    let result = blocking(move || -> Result<_, OverrideError> {
        let replaced = overrides::set(&shared.store, &req, Utc::now())?;
        let identity = overrides::parse_target(&req.target)?;
        let set = shared
            .store
            .override_of(&identity)?
            .map(|o| overrides::OverrideView::new(&identity, &o));
        Ok((set, replaced))
    })
    .await;
    match result {
        Ok(Ok((set, replaced))) => {
            s.records_changed();
            Json(json!({"override": set, "replaced": replaced})).into_response()
        }
        Ok(Err(e)) => override_error(e),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ByQuery {
    by: Option<String>,
}

async fn remove(
    State(s): State<Arc<Shared>>,
    Path((kind, source, id)): Path<(String, String, String)>,
    Query(q): Query<ByQuery>,
) -> Response {
    let target = format!("{kind}/{source}/{id}");
    let by = q.by.unwrap_or_else(|| "admin API".into());
    let shared = s.clone();
    let t = target.clone();
    match blocking(move || overrides::remove(&shared.store, &t, &by, Utc::now())).await {
        Ok(Ok(Some(removed))) => {
            s.records_changed();
            Json(json!({"removed": removed})).into_response()
        }
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("no override on {target}")),
        Ok(Err(e)) => override_error(e),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct PeriodQuery {
    period: Option<String>,
}

async fn explain_one(
    State(s): State<Arc<Shared>>,
    Path((kind, source, id)): Path<(String, String, String)>,
    Query(q): Query<PeriodQuery>,
) -> Response {
    let period = match q.period {
        Some(p) => match Period::parse(&p, s.config.kpi.timezone.0) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        },
        None => Period::last_complete(crate::kpi::Unit::Month, Utc::now(), s.config.kpi.timezone.0),
    };
    let target = format!("{kind}/{source}/{id}");
    let result = blocking(move || {
        explain::from_store(
            &s.store,
            &target,
            &period,
            &s.config.kpi,
            &s.config.reconcile,
        )
    })
    .await;
    match result {
        Ok(Ok(e)) => Json(e).into_response(),
        Ok(Err(ExplainError::NoRecord(t))) => {
            error(StatusCode::NOT_FOUND, format!("no record {t} in the store"))
        }
        Ok(Err(ExplainError::Target(e))) => override_error(e),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}
