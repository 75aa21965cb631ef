//! `jira`: issues of Jira Cloud (`/rest/api/3/search/jql`, token pages until
//! `isLast`) or Data Center (`/rest/api/2/search`, `startAt` pages until
//! `total`) as findings, reviews, threat models, exceptions and releases,
//! one `[[connectors.mappings]]` table per JQL query.
//!
//! Incremental sync: each mapping's query gets `updated >= "<cursor minus
//! overlap>"` (in the token user's time zone, which JQL dates are read in)
//! and `ORDER BY updated ASC, key ASC`; every page is committed with the
//! newest `updated` seen so far, so an interrupted pass resumes from there.
//! A finished pass keeps the earlier of that and its own start time, so an
//! issue updated while the pass ran is read again next time. `--full`
//! reads everything and marks what is gone.
//!
//! Findings carry their severity and resolution history from the changelog
//! (`expand=changelog`, completed through `/issue/{key}/changelog` when the
//! embedded one is truncated), stamped with Jira's times.

pub mod convert;
pub mod issue;
pub mod mapping;

use crate::connector::{Connector, Page, PageSink, SourceHistory, SyncMode, SyncOutcome};
use crate::http::{quota, url_with_query, Auth, Conditional, HttpClient, HttpError, RetrySettings};
use crate::record::{Record, Time};
use crate::Error;
use convert::{Context, FieldIds, IssueView, Outcome};
use issue::{ChangelogPage, History, IssueWire, SearchPage};
use mapping::{MappedKind, Mapping, MappingSettings};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Which Jira REST API the site speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JiraApi {
    /// Jira Cloud: REST v3, enhanced search with page tokens.
    #[default]
    Cloud,
    /// Jira Data Center / Server: REST v2, offset paging.
    DataCenter,
}

impl JiraApi {
    fn version(self) -> &'static str {
        match self {
            JiraApi::Cloud => "3",
            JiraApi::DataCenter => "2",
        }
    }
}

/// Settings of a `jira` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraSettings {
    /// Unique instance name; the `source` of its records.
    pub name: String,
    /// The site, e.g. `https://example.atlassian.net` (Data Center: with
    /// its context path, e.g. `https://jira.example.com/jira`).
    pub base_url: String,
    /// `cloud` (REST v3) or `data_center` (REST v2). Default `cloud`.
    #[serde(default)]
    pub api: JiraApi,
    /// Cloud: the account's email; the token is then its API token (Basic
    /// auth). Without it the token is sent as a Bearer token (a Data Center
    /// personal access token).
    #[serde(default)]
    pub email: Option<String>,
    /// The token inline (prefer `token_env` or `token_file`).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the token (e.g. a systemd credential).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Requests per second allowed (this connector's governor quota).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Requests allowed at once before the rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Issues asked per search page (`maxResults`; the server may send
    /// fewer). 1 to 1000.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Seconds subtracted from the cursor in `updated >=`: Jira's search
    /// is eventually consistent and JQL times have minutes only.
    #[serde(default = "default_overlap")]
    pub overlap_secs: u64,
    /// Retries, timeouts and longest rate-limit wait.
    #[serde(default)]
    pub retry: RetrySettings,
    /// One table per query: which issues become which records.
    pub mappings: Vec<MappingSettings>,
}

fn default_rate() -> f64 {
    5.0
}
fn default_burst() -> u32 {
    10
}
fn default_page_size() -> u32 {
    100
}
fn default_overlap() -> u64 {
    300
}

impl JiraSettings {
    /// Build the connector. `token` is the resolved secret (from `token_env`
    /// or `token_file`); `None` falls back to the inline `token`.
    pub fn build(self, token: Option<SecretString>) -> Result<JiraConnector, Error> {
        let cfg = |message: String| Error::Config {
            connector: self.name.clone(),
            message,
        };
        let base = self.base_url.trim_end_matches('/').to_string();
        let parsed =
            reqwest::Url::parse(&base).map_err(|e| cfg(format!("`base_url` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(cfg("`base_url` must be http or https".into()));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(cfg(format!(
                "`page_size` must be 1 to 1000, found {}",
                self.page_size
            )));
        }
        if self.mappings.is_empty() {
            return Err(cfg(
                "no [[connectors.mappings]]: name at least one query and its record kind".into(),
            ));
        }
        let mut mappings = Vec::new();
        let mut keys = HashSet::new();
        for (i, m) in self.mappings.iter().enumerate() {
            let m = m
                .validate()
                .map_err(|e| cfg(format!("mappings[{i}] ({}): {e}", m.record.kind())))?;
            if !keys.insert(m.cursor_key()) {
                return Err(cfg(format!(
                    "mappings[{i}]: the same record kind and jql appear twice"
                )));
            }
            mappings.push(m);
        }
        let token = token.or_else(|| self.token.clone());
        let auth = match (&self.email, token) {
            (Some(email), Some(t)) => Auth::Basic {
                user: email.clone(),
                password: t,
            },
            (Some(_), None) if self.token_env.is_none() && self.token_file.is_none() => {
                return Err(cfg(
                    "`email` is set but no token: give token_env or token_file (the API token)"
                        .into(),
                ))
            }
            // A token source the caller did not resolve: requests go
            // without, and the site's 401 names the problem.
            (Some(_), None) => Auth::None,
            (None, Some(t)) => Auth::Bearer(t),
            (None, None) => Auth::None,
        };
        let quota = quota(self.rate, self.burst).map_err(cfg)?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = HttpClient::new(&self.name, quota, auth, headers, self.retry.clone())?;
        Ok(JiraConnector {
            base,
            mappings,
            http,
            fields: Mutex::new(None),
            reported: Mutex::new(HashSet::new()),
            settings: self,
        })
    }
}

/// The `jira` connector.
#[derive(Debug)]
pub struct JiraConnector {
    settings: JiraSettings,
    base: String,
    mappings: Vec<Mapping>,
    http: HttpClient,
    /// Configured field names resolved to ids, once per instance.
    fields: Mutex<Option<Arc<FieldIds>>>,
    /// Problems already reported (each issue and field once).
    reported: Mutex<HashSet<String>>,
}

/// The connector's cursor: one entry per mapping (by record kind and JQL,
/// so a changed query starts afresh).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JiraCursor {
    /// Per mapping.
    #[serde(default)]
    pub mappings: BTreeMap<String, MappingCursor>,
}

/// Where one mapping stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MappingCursor {
    /// Issues updated before this time were read by a finished pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Time>,
    /// A pass that has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<PassState>,
}

/// An unfinished pass of one mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassState {
    /// When the pass started (our clock).
    pub started: Time,
    /// The pass's lower bound on `updated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// Newest `updated` committed so far: the pass resumes from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seen: Option<Time>,
}

/// One page of a search, as far as paging goes.
enum Position {
    Cloud(Option<String>),
    DataCenter(u64),
}

/// The fields every search asks for (besides the mapping's own).
const BASE_FIELDS: [&str; 11] = [
    "summary",
    "created",
    "updated",
    "resolution",
    "resolutiondate",
    "priority",
    "labels",
    "components",
    "status",
    "issuetype",
    "issuelinks",
];

impl JiraConnector {
    fn api_path(&self, rest: &str) -> String {
        format!("/rest/api/{}{}", self.settings.api.version(), rest)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        outcome: &mut SyncOutcome,
    ) -> Result<T, Error> {
        let url = url_with_query(&self.base, path, query);
        outcome.requests += 1;
        let body = match self.http.get(&url, None).await {
            Ok(Conditional::Modified(f)) => f.body,
            Ok(Conditional::NotModified) => Vec::new(),
            Err(e) => return Err(self.explain(e)),
        };
        serde_json::from_slice(&body).map_err(|e| Error::Source {
            connector: self.settings.name.clone(),
            message: format!("GET {path}: the answer is not what Jira sends: {e}"),
        })
    }

    /// Name the common misconfigurations in an HTTP error.
    fn explain(&self, e: HttpError) -> Error {
        match &e {
            HttpError::Status {
                status: 410,
                path,
                message,
                ..
            } if path.ends_with("/search") => Error::Source {
                connector: self.settings.name.clone(),
                message: format!(
                    "GET {path}: HTTP 410 Gone{}: Jira Cloud removed /rest/api/2/search and \
                     /rest/api/3/search (CHANGE-2046); this site is Jira Cloud: set \
                     api = \"cloud\" to search with /rest/api/3/search/jql",
                    message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ),
            },
            HttpError::Status {
                status: 404, path, ..
            } if path.ends_with("/search/jql") => Error::Source {
                connector: self.settings.name.clone(),
                message: format!(
                    "GET {path}: HTTP 404: this site has no enhanced search; a Jira Data \
                     Center or Server site needs api = \"data_center\" (/rest/api/2/search)"
                ),
            },
            _ => Error::Http(e),
        }
    }

    /// The configured fields' ids (one `/field` request per instance).
    async fn field_ids(&self, outcome: &mut SyncOutcome) -> Result<Arc<FieldIds>, Error> {
        if let Some(f) = self.fields.lock().ok().and_then(|f| f.clone()) {
            return Ok(f);
        }
        let wanted: Vec<&str> = self
            .mappings
            .iter()
            .flat_map(|m| m.named_fields())
            .collect();
        let mut ids = FieldIds::default();
        if !wanted.is_empty() {
            #[derive(Deserialize)]
            struct FieldWire {
                id: String,
                #[serde(default)]
                name: Option<String>,
            }
            let list: Vec<FieldWire> = self
                .get_json(&self.api_path("/field"), &[], outcome)
                .await?;
            for w in wanted {
                if let Some(f) = list.iter().find(|f| f.id == w) {
                    let name = f.name.clone().unwrap_or_else(|| f.id.clone());
                    ids.map.insert(w.to_string(), (f.id.clone(), name));
                    continue;
                }
                let named: Vec<&FieldWire> = list
                    .iter()
                    .filter(|f| f.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(w)))
                    .collect();
                match named.as_slice() {
                    [f] => {
                        ids.map.insert(
                            w.to_string(),
                            (f.id.clone(), f.name.clone().unwrap_or_default()),
                        );
                    }
                    [] => {
                        return Err(Error::Config {
                            connector: self.settings.name.clone(),
                            message: format!(
                                "field {w:?} is not a field of this Jira site (by name or id)"
                            ),
                        })
                    }
                    many => {
                        let list: Vec<&str> = many.iter().map(|f| f.id.as_str()).collect();
                        return Err(Error::Config {
                            connector: self.settings.name.clone(),
                            message: format!(
                                "field name {w:?} is ambiguous on this site ({}): use the id",
                                list.join(", ")
                            ),
                        });
                    }
                }
            }
        }
        let ids = Arc::new(ids);
        if let Ok(mut f) = self.fields.lock() {
            *f = Some(ids.clone());
        }
        Ok(ids)
    }

    /// The token user's time zone: JQL reads dates in it. `None` when the
    /// site does not say (or names one unknown here).
    async fn user_zone(&self, outcome: &mut SyncOutcome) -> Result<Option<chrono_tz::Tz>, Error> {
        #[derive(Deserialize)]
        struct Myself {
            #[serde(rename = "timeZone", default)]
            time_zone: Option<String>,
        }
        let me: Myself = self
            .get_json(&self.api_path("/myself"), &[], outcome)
            .await?;
        let zone = me.time_zone.as_deref().and_then(|z| z.parse().ok());
        if zone.is_none() {
            tracing::warn!(connector = %self.settings.name, zone = ?me.time_zone,
                "the token user's time zone is unknown; `updated >=` is widened by 12 hours");
        }
        Ok(zone)
    }

    /// Every history of an issue whose embedded changelog is truncated.
    async fn full_changelog(
        &self,
        key: &str,
        outcome: &mut SyncOutcome,
    ) -> Result<Vec<History>, Error> {
        let path = self.api_path(&format!(
            "/issue/{}/changelog",
            crate::http::percent_encode(key)
        ));
        let mut out = Vec::new();
        let mut start = 0u64;
        loop {
            let s = start.to_string();
            let page: ChangelogPage = self
                .get_json(&path, &[("startAt", &s), ("maxResults", "100")], outcome)
                .await?;
            let n = page.values.len() as u64;
            start = page.start_at.unwrap_or(start) + n;
            out.extend(page.values);
            let done = n == 0
                || page.is_last == Some(true)
                || (page.is_last.is_none() && page.total.map_or(true, |t| start >= t));
            if done {
                return Ok(out);
            }
        }
    }

    /// The URLs of an issue's remote links.
    async fn remote_links(
        &self,
        key: &str,
        outcome: &mut SyncOutcome,
    ) -> Result<Vec<String>, Error> {
        let path = self.api_path(&format!(
            "/issue/{}/remotelink",
            crate::http::percent_encode(key)
        ));
        let links: Vec<serde_json::Value> = self.get_json(&path, &[], outcome).await?;
        Ok(links
            .iter()
            .filter_map(|l| l.pointer("/object/url").and_then(|u| u.as_str()))
            .map(str::to_string)
            .collect())
    }

    /// Report a problem once per issue, field and message.
    fn report(&self, mapping: &Mapping, key: &str, p: &convert::Problem) {
        let id = format!("{}|{key}|{}|{}", mapping.cursor_key(), p.field, p.message);
        let first = self
            .reported
            .lock()
            .map(|mut r| r.insert(id))
            .unwrap_or(true);
        if first {
            tracing::warn!(
                connector = %self.settings.name, issue = key, field = %p.field,
                record = mapping.kind.kind().as_str(),
                "issue {key} skipped: field `{}`: {}", p.field, p.message
            );
        } else {
            tracing::debug!(connector = %self.settings.name, issue = key, field = %p.field, "issue skipped again");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_mapping(
        &self,
        m: &Mapping,
        cur: &mut JiraCursor,
        mode: SyncMode,
        sink: &mut dyn PageSink,
        outcome: &mut SyncOutcome,
        fields: &FieldIds,
        zone: &mut Option<Option<chrono_tz::Tz>>,
    ) -> Result<(), Error> {
        let key = m.cursor_key();
        let before = cur.mappings.get(&key).cloned().unwrap_or_default();
        let now = chrono::Utc::now();
        let (since, started, mut max_seen) = match (&before.pass, mode) {
            (Some(p), _) => (p.max_seen.or(p.since), p.started, p.max_seen),
            (None, SyncMode::Full) => (None, now, None),
            (None, SyncMode::Incremental) => (before.watermark, now, None),
        };
        let clause = match since {
            None => String::new(),
            Some(t) => {
                if zone.is_none() {
                    *zone = Some(self.user_zone(outcome).await?);
                }
                let from = t - chrono::Duration::seconds(self.settings.overlap_secs as i64);
                let text = match zone.flatten() {
                    Some(z) => from.with_timezone(&z).format("%Y-%m-%d %H:%M").to_string(),
                    // Zones run from UTC-12 to UTC+14: a UTC wall time 12 h
                    // earlier is never later than meant in any of them.
                    None => (from - chrono::Duration::hours(12))
                        .format("%Y-%m-%d %H:%M")
                        .to_string(),
                };
                format!(" AND updated >= \"{text}\"")
            }
        };
        let jql = format!("({}){clause} ORDER BY updated ASC, key ASC", m.jql);
        let mut field_list: Vec<&str> = BASE_FIELDS.to_vec();
        if m.kind == MappedKind::Finding && m.refs_from_description {
            field_list.push("description");
        }
        for f in m.named_fields() {
            field_list.push(fields.id(f));
        }
        field_list.sort_unstable();
        field_list.dedup();
        let field_param = field_list.join(",");
        let page_size = self.settings.page_size.to_string();
        let ctx = Context {
            source: &self.settings.name,
            base_url: &self.base,
            fields,
        };
        let mut position = match self.settings.api {
            JiraApi::Cloud => Position::Cloud(None),
            JiraApi::DataCenter => Position::DataCenter(0),
        };
        loop {
            if sink.cancelled() {
                outcome.interrupted = true;
                return Ok(());
            }
            let mut query: Vec<(&str, &str)> = vec![
                ("jql", &jql),
                ("maxResults", &page_size),
                ("fields", &field_param),
                ("expand", "changelog"),
            ];
            let start_text;
            let path = match &position {
                Position::Cloud(token) => {
                    if let Some(t) = token {
                        query.push(("nextPageToken", t));
                    }
                    self.api_path("/search/jql")
                }
                Position::DataCenter(start) => {
                    start_text = start.to_string();
                    query.push(("startAt", &start_text));
                    self.api_path("/search")
                }
            };
            let page: SearchPage = self.get_json(&path, &query, outcome).await?;
            let count = page.issues.len() as u64;
            let mut records: Vec<Record> = Vec::with_capacity(page.issues.len());
            let mut history: Vec<SourceHistory> = Vec::new();
            for raw in &page.issues {
                let (issue, issue_key) = match read_issue(raw) {
                    Ok(i) => i,
                    Err(e) => {
                        outcome.skipped += 1;
                        outcome.unreadable += 1;
                        tracing::warn!(connector = %self.settings.name, error = %e, "an issue is not readable; skipped");
                        continue;
                    }
                };
                if let Some(u) = issue
                    .fields
                    .get("updated")
                    .and_then(|v| v.as_str())
                    .and_then(|s| issue::parse_jira_time(s).ok())
                {
                    max_seen = max_seen.max(Some(u));
                }
                let mut changelog = issue.changelog.unwrap_or_default();
                let resolved_without_date =
                    issue.fields.get("resolution").is_some_and(|r| !r.is_null())
                        && issue
                            .fields
                            .get("resolutiondate")
                            .map_or(true, |d| d.is_null());
                if changelog.truncated() && (m.kind == MappedKind::Finding || resolved_without_date)
                {
                    changelog.histories = self.full_changelog(&issue_key, outcome).await?;
                }
                let remote = if m.kind == MappedKind::Finding && m.remote_links {
                    self.remote_links(&issue_key, outcome).await?
                } else {
                    Vec::new()
                };
                let view = IssueView {
                    key: &issue_key,
                    fields: &issue.fields,
                    histories: &changelog.histories,
                    remote_links: &remote,
                };
                match convert::convert(m, &ctx, &view) {
                    Outcome::Record(r, h) => {
                        records.push(*r);
                        history.extend(h);
                    }
                    Outcome::Left(why) => {
                        outcome.skipped += 1;
                        tracing::debug!(connector = %self.settings.name, issue = %issue_key, why, "not a record");
                    }
                    Outcome::Problem(p) => {
                        outcome.skipped += 1;
                        outcome.unreadable += 1;
                        self.report(m, &issue_key, &p);
                    }
                }
            }
            // The next page, or the end.
            let next = match &position {
                Position::Cloud(_) => {
                    let token = page.next_page_token.clone().filter(|t| !t.is_empty());
                    match (page.is_last, token) {
                        (Some(true), _) | (_, None) => {
                            if page.is_last == Some(false) {
                                tracing::warn!(connector = %self.settings.name,
                                    "a page says it is not the last but gives no nextPageToken; stopping here");
                            }
                            None
                        }
                        (_, Some(t)) => Some(Position::Cloud(Some(t))),
                    }
                }
                Position::DataCenter(start) => {
                    let from = page.start_at.unwrap_or(*start);
                    let next = from + count;
                    let more = match page.total {
                        Some(total) => next < total,
                        None => count >= page.max_results.unwrap_or(self.settings.page_size as u64),
                    };
                    (count > 0 && more).then_some(Position::DataCenter(next))
                }
            };
            let mapping_cursor = match next {
                Some(_) => MappingCursor {
                    watermark: before.watermark,
                    pass: Some(PassState {
                        started,
                        since,
                        max_seen,
                    }),
                },
                None => MappingCursor {
                    watermark: match max_seen {
                        Some(m) => Some(m.min(started)),
                        None => before.watermark.or(since),
                    },
                    pass: None,
                },
            };
            let changed = cur.mappings.get(&key) != Some(&mapping_cursor);
            cur.mappings.insert(key.clone(), mapping_cursor);
            if !records.is_empty() || changed {
                let cursor = serde_json::to_string(cur).map_err(|e| Error::Source {
                    connector: self.settings.name.clone(),
                    message: format!("cannot encode the cursor: {e}"),
                })?;
                let committed = sink.commit_with_history(
                    Page {
                        records,
                        cursor: Some(cursor),
                    },
                    history,
                )?;
                outcome.pages += 1;
                outcome.committed += committed;
            }
            match next {
                Some(p) => position = p,
                None => return Ok(()),
            }
        }
    }
}

/// One issue of a search page in its wire shape, with its key.
fn read_issue(raw: &serde_json::value::RawValue) -> Result<(IssueWire, String), String> {
    let issue: IssueWire = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    let key = issue
        .key
        .clone()
        .filter(|k| !k.is_empty())
        .ok_or("an issue without `key`")?;
    Ok((issue, key))
}

/// Convert one search page body (Cloud or Data Center) into records
/// without HTTP, as a pass converts each page it fetches when every
/// embedded changelog is whole and remote links are off: `Err` when the
/// body is not a search page (the pass fails), else one outcome per issue
/// (an unreadable issue is a [`convert::Problem`] on the field `issue`).
/// Used by the fuzz targets and tests.
pub fn parse_search_page(
    m: &Mapping,
    ctx: &Context<'_>,
    body: &[u8],
) -> Result<Vec<Outcome>, String> {
    let page: SearchPage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(page
        .issues
        .iter()
        .map(|raw| match read_issue(raw) {
            Err(message) => Outcome::Problem(convert::Problem {
                field: "issue".into(),
                message,
            }),
            Ok((issue, key)) => {
                let changelog = issue.changelog.unwrap_or_default();
                let view = IssueView {
                    key: &key,
                    fields: &issue.fields,
                    histories: &changelog.histories,
                    remote_links: &[],
                };
                convert::convert(m, ctx, &view)
            }
        })
        .collect())
}

#[async_trait::async_trait]
impl Connector for JiraConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> &'static str {
        "jira"
    }

    fn http_stats(&self) -> Option<crate::http::HttpStatsSnapshot> {
        Some(self.http.stats().snapshot())
    }

    async fn sync(
        &self,
        cursor: Option<String>,
        mode: SyncMode,
        sink: &mut dyn PageSink,
    ) -> Result<SyncOutcome, Error> {
        let name = self.settings.name.as_str();
        let mut cur: JiraCursor = match (mode, cursor.as_deref()) {
            (SyncMode::Full, _) | (_, None) => JiraCursor::default(),
            (_, Some(text)) => serde_json::from_str(text).unwrap_or_else(|e| {
                tracing::warn!(connector = name, error = %e, "unreadable cursor; starting from the beginning");
                JiraCursor::default()
            }),
        };
        // Mappings removed from config leave their cursors behind: drop them.
        let live: HashSet<String> = self.mappings.iter().map(Mapping::cursor_key).collect();
        cur.mappings.retain(|k, _| live.contains(k));
        let mut outcome = SyncOutcome::default();
        let fields = self.field_ids(&mut outcome).await?;
        let mut zone = None;
        for m in &self.mappings {
            self.sync_mapping(m, &mut cur, mode, sink, &mut outcome, &fields, &mut zone)
                .await?;
            if outcome.interrupted {
                break;
            }
        }
        Ok(outcome)
    }
}
