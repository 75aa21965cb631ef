//! A PagerDuty REST API played on loopback: `GET /incidents` filtered by
//! creation time within `since`/`until` (at most six months apart), sorted
//! by `created_at`, paged by `limit` (≤ 100) and `offset` with `more`, and
//! refusing `offset + limit` over 10,000 as PagerDuty does; per-incident log
//! entries and notes; scripted answers per path.

#![allow(dead_code)]

use super::{ApiSeen, Scripted};
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fake's state.
#[derive(Default)]
pub struct PdState {
    pub incidents: Vec<Value>,
    pub log_entries: HashMap<String, Vec<Value>>,
    pub notes: HashMap<String, Vec<Value>>,
    /// Raw `/incidents` pages served in order instead (fixtures).
    pub raw_pages: VecDeque<Value>,
    pub script: HashMap<String, VecDeque<Scripted>>,
    pub seen: Vec<ApiSeen>,
}

/// A fake PagerDuty on 127.0.0.1.
#[derive(Clone)]
pub struct FakePagerduty {
    pub state: Arc<Mutex<PdState>>,
    pub base: String,
}

impl FakePagerduty {
    pub async fn start() -> FakePagerduty {
        let state = Arc::new(Mutex::new(PdState::default()));
        let st = state.clone();
        let base =
            super::serve_on_loopback(|_| axum::Router::new().fallback(handle).with_state(st)).await;
        FakePagerduty { state, base }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut PdState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn seen(&self) -> Vec<ApiSeen> {
        self.with(|s| s.seen.clone())
    }

    pub fn list_requests(&self) -> Vec<ApiSeen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path == "/incidents")
            .collect()
    }
}

/// An incident in the list shape.
pub fn incident(id: &str, created: &str, status: &str, fields: Value) -> Value {
    let mut v = json!({
        "id": id, "type": "incident", "summary": format!("[#1] {id}"),
        "self": format!("https://api.pagerduty.com/incidents/{id}"),
        "html_url": format!("https://acme.pagerduty.com/incidents/{id}"),
        "incident_number": 1, "title": "Suspicious login", "created_at": created,
        "updated_at": created, "status": status, "incident_key": "k",
        "service": {"id": "PSVC9", "type": "service_reference", "summary": "Checkout"},
        "assignments": [], "last_status_change_at": created, "resolved_at": null,
        "acknowledgements": [], "priority": null, "urgency": "high",
        "teams": [], "escalation_policy": {"id": "PEP1", "type": "escalation_policy_reference"}
    });
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// A log entry.
pub fn log_entry(kind: &str, at: &str, agent: &str) -> Value {
    json!({"id": format!("Q{at}"), "type": kind, "summary": kind, "created_at": at,
           "agent": {"id": "PXPGF42", "type": agent, "summary": "Earline Greenholt"},
           "channel": {"type": "web_trigger"}})
}

fn t(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

async fn handle(State(state): State<Arc<Mutex<PdState>>>, req: Request) -> Response {
    let (r, delay) = respond(&state, &req);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    r
}

fn error(status: u16, message: &str, errors: &[&str]) -> (u16, Value) {
    (
        status,
        json!({"error": {"message": message, "code": 2001, "errors": errors}}),
    )
}

fn respond(state: &Mutex<PdState>, req: &Request) -> (Response, u64) {
    let mut seen = ApiSeen::of(req);
    let (path, params) = (seen.path.clone(), seen.params.clone());
    let param = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let mut st = state.lock().unwrap();
    if let Some(a) = st.script.get_mut(&path).and_then(|q| q.pop_front()) {
        seen.status = a.status;
        st.seen.push(seen);
        return a.answer(super::JSON);
    }
    let limit: usize = param("limit").and_then(|s| s.parse().ok()).unwrap_or(25);
    let offset: usize = param("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, body) = match parts.as_slice() {
        ["incidents"] => {
            if let Some(p) = st.raw_pages.pop_front() {
                (200, p)
            } else if limit > 100 {
                error(
                    400,
                    "Invalid Input Provided",
                    &["Limit must be at most 100"],
                )
            } else if offset + limit > 10_000 {
                error(
                    400,
                    "Invalid Input Provided",
                    &["Offset must be less than 10000"],
                )
            } else {
                let since = param("since").and_then(|s| t(&s));
                let until = param("until").and_then(|s| t(&s));
                match (since, until) {
                    (Some(a), Some(b)) if b - a > chrono::Duration::days(184) => error(
                        400,
                        "Invalid Input Provided",
                        &["The date range must be at most 6 months"],
                    ),
                    _ => {
                        let mut list: Vec<&Value> = st
                            .incidents
                            .iter()
                            .filter(|i| {
                                let c = i["created_at"].as_str().and_then(t);
                                match c {
                                    None => true,
                                    Some(c) => {
                                        since.map_or(true, |s| c >= s)
                                            && until.map_or(true, |u| c < u)
                                    }
                                }
                            })
                            .collect();
                        list.sort_by(|a, b| {
                            a["created_at"]
                                .as_str()
                                .cmp(&b["created_at"].as_str())
                                .then(a["id"].as_str().cmp(&b["id"].as_str()))
                        });
                        let page: Vec<Value> = list
                            .iter()
                            .skip(offset)
                            .take(limit)
                            .map(|v| (*v).clone())
                            .collect();
                        let more = offset + page.len() < list.len();
                        (
                            200,
                            json!({"incidents": page, "limit": limit, "offset": offset, "more": more, "total": null}),
                        )
                    }
                }
            }
        }
        ["incidents", id, "log_entries"] => {
            let all = st.log_entries.get(*id).cloned().unwrap_or_default();
            let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
            let more = offset + page.len() < all.len();
            (
                200,
                json!({"log_entries": page, "limit": limit, "offset": offset, "more": more, "total": null}),
            )
        }
        ["incidents", id, "notes"] => (
            200,
            json!({"notes": st.notes.get(*id).cloned().unwrap_or_default()}),
        ),
        _ => error(404, "Not Found", &[]),
    };
    seen.status = status;
    st.seen.push(seen);
    (json_response(status, &[], body.to_string()), 0)
}

fn json_response(status: u16, headers: &[(&str, &str)], body: String) -> Response {
    super::json_response_as(super::JSON, status, headers, body)
}
