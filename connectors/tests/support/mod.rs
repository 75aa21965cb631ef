//! Test helpers: an in-memory page sink, a GitHub API played on loopback
//! (Link pagination, ETags, scripted rate-limit and error answers), and a
//! log capture.

#![allow(dead_code)]

pub mod chaos;
pub mod fake_jira;
pub mod fake_pagerduty;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use secmetrics_connectors::{
    Committed, Page, PageSink, Record, SinkError, SourceHistory, StateChange,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records pages and the cursor like the store would: each page and its
/// cursor together; can be told to refuse pages.
#[derive(Default)]
pub struct MemorySink {
    /// Every committed page, in order.
    pub pages: Vec<Page>,
    /// The cursor after the last page that carried one.
    pub cursor: Option<String>,
    /// Current records by (kind, id).
    pub records: BTreeMap<(String, String), Record>,
    /// How many times each (kind, id) was committed.
    pub times: BTreeMap<(String, String), u32>,
    /// Ask the connector to stop once this many pages are committed.
    pub cancel_after: Option<usize>,
    /// Source-stamped history handed over with pages, in order.
    pub history: Vec<SourceHistory>,
    /// The connector's own state (see `StateChange`), as committed.
    pub state: BTreeMap<String, String>,
    /// State changes handed over with pages, in order.
    pub state_changes: Vec<StateChange>,
}

impl PageSink for MemorySink {
    fn commit(&mut self, page: Page) -> Result<Committed, SinkError> {
        let mut c = Committed::default();
        for r in &page.records {
            let key = (r.kind().as_str().to_string(), r.id().to_string());
            *self.times.entry(key.clone()).or_default() += 1;
            match self.records.insert(key, r.clone()) {
                None => c.inserted += 1,
                Some(old) if old == *r => c.unchanged += 1,
                Some(_) => c.replaced += 1,
            }
        }
        if page.cursor.is_some() {
            self.cursor = page.cursor.clone();
        }
        self.pages.push(page);
        Ok(c)
    }

    fn cancelled(&self) -> bool {
        self.cancel_after.is_some_and(|n| self.pages.len() >= n)
    }

    fn commit_with_history(
        &mut self,
        page: Page,
        history: Vec<SourceHistory>,
    ) -> Result<Committed, SinkError> {
        self.history.extend(history);
        self.commit(page)
    }

    fn commit_with_state(
        &mut self,
        page: Page,
        state: StateChange,
    ) -> Result<Committed, SinkError> {
        if state.reset {
            self.state.clear();
        }
        for (k, v) in &state.writes {
            match v {
                Some(v) => self.state.insert(k.clone(), v.clone()),
                None => self.state.remove(k),
            };
        }
        self.state_changes.push(state);
        self.commit(page)
    }

    fn state(&self, prefix: &str) -> Result<Vec<(String, String)>, SinkError> {
        Ok(self
            .state
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl MemorySink {
    /// Every record committed, in order (repeats included).
    pub fn all(&self) -> Vec<&Record> {
        self.pages.iter().flat_map(|p| p.records.iter()).collect()
    }

    /// Count of committed records of a kind.
    pub fn count(&self, kind: &str) -> usize {
        self.records.keys().filter(|(k, _)| k == kind).count()
    }
}

/// A scripted answer served instead of the real page.
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to trip the client's timeout).
    pub delay_ms: u64,
}

impl Scripted {
    pub fn new(status: u16, headers: &[(&str, &str)], body: &str) -> Scripted {
        Scripted {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
            delay_ms: 0,
        }
    }

    pub fn delayed(mut self, ms: u64) -> Scripted {
        self.delay_ms = ms;
        self
    }

    /// The answer (with `content_type`) and how long to wait before it.
    pub fn answer(&self, content_type: &'static str) -> (Response, u64) {
        let hs: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        (
            json_response_as(content_type, self.status, &hs, self.body.clone()),
            self.delay_ms,
        )
    }
}

/// Serve `app(base)` on a fresh loopback port until the test ends; the
/// base URL (`http://127.0.0.1:PORT`).
pub async fn serve_on_loopback(app: impl FnOnce(&str) -> axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = app(&base);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    base
}

/// One request the fake Jira or PagerDuty saw: its path, its decoded query
/// pairs, the status it was answered with and the headers tests look at.
#[derive(Clone, Debug)]
pub struct ApiSeen {
    pub at: Instant,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub status: u16,
    pub authorization: Option<String>,
    pub accept: Option<String>,
}

impl ApiSeen {
    /// `req` as seen, answered 200 until the fake says otherwise.
    pub fn of(req: &Request) -> ApiSeen {
        let header = |k: &str| {
            req.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        ApiSeen {
            at: Instant::now(),
            path: req.uri().path().to_string(),
            params: req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (query_decode(k), query_decode(v))
                })
                .collect(),
            status: 200,
            authorization: header("authorization"),
            accept: header("accept"),
        }
    }

    /// The first value of query parameter `k`.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
    }

    /// Query parameter `k` as an RFC 3339 time (panics when absent).
    pub fn time(&self, k: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(self.param(k).unwrap())
            .unwrap()
            .to_utc()
    }
}

/// Decode a query key or value (`%XX`, and `+` as a space).
fn query_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let h = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?');
                out.push(h);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One request the fake GitHub saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub list: String,
    pub page: u32,
    pub query: String,
    pub status: u16,
    pub if_none_match: Option<String>,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub api_version: Option<String>,
}

/// The fake GitHub's state.
#[derive(Default)]
pub struct GithubState {
    /// Items per list (`secret`, `code`, `repos`), in the order served.
    pub lists: HashMap<String, Vec<Value>>,
    /// Scripted answers per (list, page), served first, one per request.
    pub script: HashMap<(String, u32), VecDeque<Scripted>>,
    /// Everything seen.
    pub seen: Vec<Seen>,
    /// Extra headers on every successful page (e.g. recorded rate headers).
    pub page_headers: Vec<(String, String)>,
    /// Serve a `Link` to another host instead of the next page.
    pub foreign_link: bool,
    /// Single objects by list name (`repo:owner/name` for
    /// `GET /repos/{owner}/{name}`), with ETags like pages.
    pub objects: HashMap<String, Value>,
    /// Lists that answer `404` with this message (a feature that is off).
    pub missing: HashMap<String, String>,
}

/// A fake GitHub on 127.0.0.1.
#[derive(Clone)]
pub struct FakeGithub {
    pub state: Arc<Mutex<GithubState>>,
    pub base: String,
}

impl FakeGithub {
    pub async fn start() -> FakeGithub {
        let state = Arc::new(Mutex::new(GithubState::default()));
        let st = state.clone();
        let base = serve_on_loopback(|base| {
            axum::Router::new()
                .fallback(handle)
                .with_state((st, base.to_string()))
        })
        .await;
        FakeGithub { state, base }
    }

    pub fn set(&self, list: &str, items: Vec<Value>) {
        self.state.lock().unwrap().lists.insert(list.into(), items);
    }

    pub fn script(&self, list: &str, page: u32, answers: Vec<Scripted>) {
        self.state
            .lock()
            .unwrap()
            .script
            .insert((list.into(), page), answers.into());
    }

    pub fn set_object(&self, name: &str, value: Value) {
        self.state
            .lock()
            .unwrap()
            .objects
            .insert(name.into(), value);
    }

    pub fn set_missing(&self, list: &str, message: &str) {
        self.state
            .lock()
            .unwrap()
            .missing
            .insert(list.into(), message.into());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn clear_seen(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

/// The list (or object) a path names: `secret`, `code`, `repos` for the
/// org lists; `secret:o/r`, `code:o/r` for a repository's lists;
/// `repo:o/r` for a repository's own object.
fn list_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["orgs", _, "secret-scanning", "alerts"] => Some("secret".into()),
        ["orgs", _, "code-scanning", "alerts"] => Some("code".into()),
        ["orgs", _, "repos"] => Some("repos".into()),
        ["repos", o, r, "secret-scanning", "alerts"] => Some(format!("secret:{o}/{r}")),
        ["repos", o, r, "code-scanning", "alerts"] => Some(format!("code:{o}/{r}")),
        ["repos", o, r] => Some(format!("repo:{o}/{r}")),
        _ => None,
    }
}

fn etag_of(bytes: &[u8]) -> String {
    // A content hash, weak like GitHub's.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("W/\"{h:016x}\"")
}

async fn handle(
    State((state, base)): State<(Arc<Mutex<GithubState>>, String)>,
    req: Request,
) -> Response {
    let (response, delay_ms) = respond(&state, &base, &req);
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    response
}

fn respond(state: &Mutex<GithubState>, base: &str, req: &Request) -> (Response, u64) {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let param = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let header = |h: &HeaderMap, k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(String::from);
    let headers = req.headers().clone();
    let page: u32 = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let per_page: usize = param("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
    let mut st = state.lock().unwrap();
    let mut seen = Seen {
        at: Instant::now(),
        list: String::new(),
        page,
        query: query.clone(),
        status: 200,
        if_none_match: header(&headers, "if-none-match"),
        authorization: header(&headers, "authorization"),
        accept: header(&headers, "accept"),
        api_version: header(&headers, "x-github-api-version"),
    };
    let Some(list) = list_of(&path) else {
        seen.status = 404;
        st.seen.push(seen);
        return (
            json_response(
                404,
                &[],
                r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}"#.into(),
            ),
            0,
        );
    };
    seen.list = list.clone();
    let list = list.as_str();
    if let Some(answer) = st
        .script
        .get_mut(&(list.to_string(), page))
        .and_then(|q| q.pop_front())
    {
        seen.status = answer.status;
        st.seen.push(seen);
        return answer.answer(JSON);
    }
    if let Some(message) = st.missing.get(list).cloned() {
        seen.status = 404;
        st.seen.push(seen);
        let body = serde_json::json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": "404"});
        return (json_response(404, &[], body.to_string()), 0);
    }
    if list.starts_with("repo:") {
        let Some(object) = st.objects.get(list).cloned() else {
            seen.status = 404;
            st.seen.push(seen);
            return (
                json_response(404, &[], r#"{"message":"Not Found","status":"404"}"#.into()),
                0,
            );
        };
        let body = serde_json::to_vec(&object).unwrap();
        let etag = etag_of(&body);
        if seen.if_none_match.as_deref() == Some(etag.as_str()) {
            seen.status = 304;
            st.seen.push(seen);
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            return (r, 0);
        }
        st.seen.push(seen);
        return (
            json_response(200, &[("etag", &etag)], String::from_utf8(body).unwrap()),
            0,
        );
    }
    let items = st.lists.get(list).cloned().unwrap_or_default();
    let pages = items.len().div_ceil(per_page).max(1) as u32;
    let start = (page as usize - 1) * per_page;
    let slice: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    let body = serde_json::to_vec(&slice).unwrap();
    let etag = etag_of(&body);
    if seen.if_none_match.as_deref() == Some(etag.as_str()) {
        seen.status = 304;
        st.seen.push(seen);
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r.headers_mut()
            .insert("etag", HeaderValue::from_str(&etag).unwrap());
        return (r, 0);
    }
    let link_for = |p: u32| {
        let mut q: Vec<String> = params
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        q.push(format!("page={p}"));
        let host = if st.foreign_link {
            "http://127.0.0.2:1"
        } else {
            base
        };
        format!("{host}{path}?{}", q.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_for(page - 1)));
    }
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", link_for(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", link_for(pages)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", link_for(1)));
    }
    let mut hs: Vec<(String, String)> = st.page_headers.clone();
    hs.push(("etag".into(), etag));
    if !links.is_empty() {
        hs.push(("link".into(), links.join(", ")));
    }
    st.seen.push(seen);
    let hs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (json_response(200, &hs, String::from_utf8(body).unwrap()), 0)
}

/// GitHub's and PagerDuty's `content-type`.
pub const JSON: &str = "application/json; charset=utf-8";

fn json_response(status: u16, headers: &[(&str, &str)], body: String) -> Response {
    json_response_as(JSON, status, headers, body)
}

/// A JSON answer with the service's own `content-type`, `status` and
/// `headers`.
pub fn json_response_as(
    content_type: &'static str,
    status: u16,
    headers: &[(&str, &str)],
    body: String,
) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    for (k, v) in headers {
        r.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    r
}

/// A secret scanning alert in GitHub's shape (with a plaintext `secret`).
pub fn secret_alert(number: u64, repo: &str, updated: &str, secret: &str) -> Value {
    serde_json::json!({
        "number": number,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": updated,
        "url": format!("https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}"),
        "html_url": format!("https://github.com/{repo}/security/secret-scanning/{number}"),
        "locations_url": format!("https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}/locations"),
        "state": "open",
        "resolution": null,
        "resolved_at": null,
        "resolved_by": null,
        "secret_type": "github_personal_access_token",
        "secret_type_display_name": "GitHub Personal Access Token",
        "secret": secret,
        "validity": "active",
        "push_protection_bypassed_by": null,
        "push_protection_bypassed": false,
        "push_protection_bypassed_at": null,
        "resolution_comment": null,
        "publicly_leaked": false,
        "multi_repo": false,
        "is_base64_encoded": false,
        "repository": {"id": 1, "name": repo.split('/').nth(1).unwrap_or(repo), "full_name": repo, "private": true}
    })
}

/// A code scanning alert in GitHub's org-list shape.
pub fn code_alert(number: u64, repo: &str, updated: &str) -> Value {
    serde_json::json!({
        "number": number,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": updated,
        "url": format!("https://api.github.com/repos/{repo}/code-scanning/alerts/{number}"),
        "html_url": format!("https://github.com/{repo}/security/code-scanning/{number}"),
        "state": "open",
        "fixed_at": null,
        "dismissed_by": null,
        "dismissed_at": null,
        "dismissed_reason": null,
        "dismissed_comment": null,
        "rule": {"id": "js/sql-injection", "severity": "error", "security_severity_level": "high",
                 "description": "Database query built from user-controlled sources", "name": "js/sql-injection",
                 "tags": ["security", "external/cwe/cwe-089"]},
        "tool": {"name": "CodeQL", "guid": null, "version": "2.22.4"},
        "most_recent_instance": {"ref": "refs/heads/main", "analysis_key": ".github/workflows/codeql.yml:analyze",
            "environment": "{\"language\":\"javascript\"}", "category": "/language:javascript", "state": "open",
            "commit_sha": "39406e42cb832f683daa691dd652a8dc36ee8930",
            "message": {"text": "This query depends on a user-provided value."},
            "location": {"path": "src/db.js", "start_line": 10, "end_line": 10, "start_column": 5, "end_column": 20},
            "classifications": []},
        "instances_url": format!("https://api.github.com/repos/{repo}/code-scanning/alerts/{number}/instances"),
        "repository": {"id": 1, "name": repo.split('/').nth(1).unwrap_or(repo), "full_name": repo}
    })
}

/// A repository in the org list shape.
pub fn repo(full_name: &str, updated: &str, scanning: Option<bool>) -> Value {
    let mut v = serde_json::json!({
        "id": 1, "name": full_name.split('/').nth(1).unwrap_or(full_name), "full_name": full_name,
        "private": true, "fork": false, "archived": false, "disabled": false, "visibility": "private",
        "created_at": "2025-01-01T00:00:00Z", "updated_at": updated, "pushed_at": updated,
        "topics": []
    });
    if let Some(on) = scanning {
        let s = if on { "enabled" } else { "disabled" };
        v["security_and_analysis"] = serde_json::json!({
            "advanced_security": {"status": s},
            "secret_scanning": {"status": s},
            "secret_scanning_push_protection": {"status": "disabled"}
        });
    }
    v
}

/// `n` items newest first: updated times descend one minute apart.
pub fn updated_desc(i: usize) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap()
        - chrono::Duration::minutes(i as i64);
    t.to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A log writer into a shared buffer.
#[derive(Clone, Default)]
pub struct LogBuffer(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Time since `t`.
pub fn since(t: Instant) -> Duration {
    t.elapsed()
}

/// A raw HTTP server on loopback that drops the first `drops` connections
/// right after reading the request (a connection reset), then answers
/// every request with `200` and `body`. Returns its base URL and a counter
/// of connections accepted.
pub async fn flaky_server(drops: usize, body: &'static str) -> (String, Arc<Mutex<usize>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(Mutex::new(0usize));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = {
                let mut g = c.lock().unwrap();
                *g += 1;
                *g
            };
            let mut buf = vec![0u8; 8192];
            let _ = sock.read(&mut buf).await;
            if n <= drops {
                drop(sock);
                continue;
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                body.len(),
                body
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    (base, count)
}
