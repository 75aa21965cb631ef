//! A Jira played on loopback: Cloud enhanced search (`/rest/api/3/search/jql`,
//! `nextPageToken` until `isLast`) or Data Center search (`/rest/api/2/search`,
//! `startAt` with the server's own `maxResults` cap and `total`), the field
//! list, `/myself`, paged issue changelogs, remote links, the removed Cloud
//! `/search` (410), and scripted answers per path.
//!
//! Search filters the JQL's `updated >= "YYYY-MM-DD HH:MM"` clause in the
//! user's time zone and orders by `updated`, then key, as the connector asks.

#![allow(dead_code)]

use super::{ApiSeen, Scripted};
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fake's state.
pub struct JiraState {
    /// `cloud` or `data_center` (which search paths exist).
    pub cloud: bool,
    /// Issues (key, fields) without changelogs.
    pub issues: Vec<Value>,
    /// Full changelog histories per key, oldest first.
    pub histories: HashMap<String, Vec<Value>>,
    /// Histories embedded in search results (newest first, like Cloud).
    pub embed_max: usize,
    /// Page size cap of changelog pages.
    pub changelog_page: usize,
    /// Data Center: the server's own `maxResults` cap.
    pub max_results_cap: usize,
    /// Cloud: send `nextPageToken: ""` on the last page instead of none.
    pub empty_token_on_last: bool,
    /// `GET /field`.
    pub fields: Vec<Value>,
    /// `/myself` time zone.
    pub time_zone: Option<String>,
    /// Remote links per key.
    pub remote_links: HashMap<String, Vec<Value>>,
    /// Raw search pages served in order instead of the issues (fixtures).
    pub raw_pages: VecDeque<Value>,
    /// Raw changelog pages per key served in order (fixtures).
    pub raw_changelog: HashMap<String, VecDeque<Value>>,
    /// Scripted answers per path, served first, one per request.
    pub script: HashMap<String, VecDeque<Scripted>>,
    /// Everything seen.
    pub seen: Vec<ApiSeen>,
}

/// A fake Jira on 127.0.0.1.
#[derive(Clone)]
pub struct FakeJira {
    pub state: Arc<Mutex<JiraState>>,
    pub base: String,
}

impl FakeJira {
    pub async fn start(cloud: bool) -> FakeJira {
        let state = Arc::new(Mutex::new(JiraState {
            cloud,
            issues: Vec::new(),
            histories: HashMap::new(),
            embed_max: 100,
            changelog_page: 100,
            max_results_cap: 1000,
            empty_token_on_last: false,
            fields: default_fields(),
            time_zone: Some("UTC".into()),
            remote_links: HashMap::new(),
            raw_pages: VecDeque::new(),
            raw_changelog: HashMap::new(),
            script: HashMap::new(),
            seen: Vec::new(),
        }));
        let st = state.clone();
        let base =
            super::serve_on_loopback(|_| axum::Router::new().fallback(handle).with_state(st)).await;
        FakeJira { state, base }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut JiraState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn set_issues(&self, issues: Vec<Value>) {
        self.with(|s| s.issues = issues);
    }

    pub fn script(&self, path: &str, answers: Vec<Scripted>) {
        self.with(|s| s.script.insert(path.into(), answers.into()));
    }

    pub fn seen(&self) -> Vec<ApiSeen> {
        self.with(|s| s.seen.clone())
    }

    pub fn seen_paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }

    pub fn clear_seen(&self) {
        self.with(|s| s.seen.clear());
    }
}

/// The system fields and a few custom ones, by id and name.
pub fn default_fields() -> Vec<Value> {
    let mut v = vec![];
    for (id, name) in [
        ("summary", "Summary"),
        ("priority", "Priority"),
        ("labels", "Labels"),
        ("components", "Component/s"),
        ("duedate", "Due date"),
        ("resolutiondate", "Resolved"),
        ("customfield_10100", "Alert URL"),
        ("customfield_10101", "Fingerprint"),
        ("customfield_10200", "Risk expiry"),
        ("customfield_10201", "Approved on"),
        ("customfield_10202", "Risk reason"),
        ("customfield_10300", "Gate outcome"),
        ("customfield_10301", "Gate reason"),
        ("customfield_10302", "Release date"),
        ("customfield_10400", "Model reviewed"),
        ("customfield_10500", "Security severity"),
        ("customfield_10600", "Environment tier"),
    ] {
        v.push(
            json!({"id": id, "key": id, "name": name, "custom": id.starts_with("customfield_")}),
        );
    }
    v
}

/// An issue in the search shape. `fields` is merged over a minimal issue.
pub fn issue(key: &str, created: &str, updated: &str, fields: Value) -> Value {
    let mut f = json!({
        "summary": format!("{key} summary"),
        "created": created,
        "updated": updated,
        "resolution": null,
        "resolutiondate": null,
        "priority": {"self": "https://x/rest/api/2/priority/3", "name": "Medium", "id": "3"},
        "labels": [],
        "components": [],
        "status": {"name": "To Do", "statusCategory": {"key": "new"}},
        "issuetype": {"name": "Vulnerability"},
        "issuelinks": []
    });
    for (k, v) in fields.as_object().unwrap() {
        f[k] = v.clone();
    }
    json!({"id": key, "key": key, "self": format!("https://x/rest/api/3/issue/{key}"), "fields": f})
}

/// A changelog history (`created` in Jira's format) with items.
pub fn history(id: u32, created: &str, items: Value) -> Value {
    json!({"id": id.to_string(), "author": {"displayName": "Sec Lead"}, "created": created, "items": items})
}

/// A changelog item.
pub fn item(field: &str, field_id: &str, from: Option<&str>, to: Option<&str>) -> Value {
    json!({"field": field, "fieldtype": "jira", "fieldId": field_id, "from": null,
           "fromString": from, "to": null, "toString": to})
}

fn updated_of(issue: &Value) -> chrono::DateTime<chrono::Utc> {
    let s = issue["fields"]["updated"]
        .as_str()
        .unwrap_or("1970-01-01T00:00:00.000+0000");
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .map(|t| t.to_utc())
        .unwrap_or_default()
}

/// The lower bound of `updated >= "..."` in the JQL, read in `zone`.
fn since_of(jql: &str, zone: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let i = jql.find("updated >= \"")?;
    let text = &jql[i + 12..i + 28];
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").ok()?;
    let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
    use chrono::TimeZone;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.to_utc())
}

async fn handle(State(state): State<Arc<Mutex<JiraState>>>, req: Request) -> Response {
    let (response, delay) = respond(&state, &req);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    response
}

fn respond(state: &Mutex<JiraState>, req: &Request) -> (Response, u64) {
    let mut seen = ApiSeen::of(req);
    let (path, params) = (seen.path.clone(), seen.params.clone());
    let param = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let mut st = state.lock().unwrap();
    if let Some(a) = st.script.get_mut(&path).and_then(|q| q.pop_front()) {
        seen.status = a.status;
        st.seen.push(seen);
        return a.answer(JIRA_JSON);
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, body) = match parts.as_slice() {
        ["rest", "api", v, "search", "jql"] if *v == "3" && st.cloud => {
            search(&mut st, &param, true)
        }
        ["rest", "api", _, "search"] if st.cloud => (
            410,
            json!({"errorMessages": ["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"], "errors": {}}),
        ),
        ["rest", "api", "2", "search"] if !st.cloud => search(&mut st, &param, false),
        ["rest", "api", _, "field"] => (200, Value::Array(st.fields.clone())),
        ["rest", "api", _, "myself"] => (
            200,
            json!({"accountId": "5b10", "displayName": "svc", "timeZone": st.time_zone}),
        ),
        ["rest", "api", _, "issue", key, "changelog"] => {
            let key = key.to_string();
            if let Some(p) = st.raw_changelog.get_mut(&key).and_then(|q| q.pop_front()) {
                (200, p)
            } else {
                let all = st.histories.get(&key).cloned().unwrap_or_default();
                let start: usize = param("startAt").and_then(|s| s.parse().ok()).unwrap_or(0);
                let max: usize = param("maxResults")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(100)
                    .min(st.changelog_page);
                let values: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
                let last = start + values.len() >= all.len();
                (
                    200,
                    json!({"startAt": start, "maxResults": max, "total": all.len(), "isLast": last, "values": values}),
                )
            }
        }
        ["rest", "api", _, "issue", key, "remotelink"] => (
            200,
            Value::Array(st.remote_links.get(*key).cloned().unwrap_or_default()),
        ),
        _ => (404, json!({"errorMessages": ["Not found"], "errors": {}})),
    };
    seen.status = status;
    st.seen.push(seen);
    (json_response(status, &[], body.to_string()), 0)
}

fn search(st: &mut JiraState, param: &dyn Fn(&str) -> Option<String>, cloud: bool) -> (u16, Value) {
    if let Some(p) = st.raw_pages.pop_front() {
        return (200, p);
    }
    let jql = param("jql").unwrap_or_default();
    let zone = st.time_zone.clone().unwrap_or_else(|| "UTC".into());
    let since = since_of(&jql, &zone);
    // `project = KEY` keeps that project's issues (other JQL is not read).
    let project = jql.find("project = ").map(|i| {
        jql[i + 10..]
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_string()
    });
    let mut matching: Vec<Value> = st
        .issues
        .iter()
        .filter(|i| {
            project.as_deref().map_or(true, |p| {
                i["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(&format!("{p}-")))
            })
        })
        .filter(|i| since.map_or(true, |s| updated_of(i) >= s))
        .cloned()
        .collect();
    matching.sort_by(|a, b| {
        updated_of(a)
            .cmp(&updated_of(b))
            .then_with(|| a["key"].as_str().cmp(&b["key"].as_str()))
    });
    let asked: usize = param("maxResults")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let expand = param("expand").unwrap_or_default();
    let (start, max) = if cloud {
        let start = param("nextPageToken")
            .and_then(|t| t.strip_prefix("tok-").and_then(|n| n.parse().ok()))
            .unwrap_or(0usize);
        (start, asked)
    } else {
        let start: usize = param("startAt").and_then(|s| s.parse().ok()).unwrap_or(0);
        (start, asked.min(st.max_results_cap))
    };
    let issues: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(max)
        .map(|i| {
            let mut i = i.clone();
            if expand.split(',').any(|e| e == "changelog") {
                let key = i["key"].as_str().unwrap_or_default().to_string();
                let all = st.histories.get(&key).cloned().unwrap_or_default();
                let newest_first: Vec<Value> = all.iter().rev().take(st.embed_max).cloned().collect();
                i["changelog"] = json!({"startAt": 0, "maxResults": st.embed_max, "total": all.len(), "histories": newest_first});
            }
            i
        })
        .collect();
    let end = start + issues.len();
    if cloud {
        let last = end >= matching.len();
        let mut page = json!({"issues": issues, "isLast": last});
        if !last {
            page["nextPageToken"] = json!(format!("tok-{end}"));
        } else if st.empty_token_on_last {
            page["nextPageToken"] = json!("");
        }
        (200, page)
    } else {
        (
            200,
            json!({"expand": "schema,names", "startAt": start, "maxResults": max, "total": matching.len(), "issues": issues}),
        )
    }
}

/// Jira's `content-type`.
const JIRA_JSON: &str = "application/json;charset=UTF-8";

fn json_response(status: u16, headers: &[(&str, &str)], body: String) -> Response {
    super::json_response_as(JIRA_JSON, status, headers, body)
}
