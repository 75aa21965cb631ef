//! GitHub connectors: secret scanning alerts with repo coverage, and code
//! scanning alerts. This file holds what they share: the API client, the
//! cursor, and the paged sync of one list endpoint.
//!
//! Incremental sync. GitHub's org alert lists take no `since` filter, so each
//! list is read newest-updated first (`sort=updated&direction=desc`) and the
//! pass stops at the first item older than the watermark of the last
//! finished pass. The first page is requested with the ETag of the last pass:
//! `304 Not Modified` means nothing changed, costs one request and writes
//! nothing. Each page is committed with a cursor that names the next page, so
//! a failed pass resumes where it stopped.
//!
//! The org's repository list is small and a setting change (enabling secret
//! scanning) need not touch a repo's `updated_at`, so it is read whole every
//! pass ([`sync_whole_list`]): each page is asked with its own ETag from the
//! last pass, a `304` page is unchanged and the pass goes on to the page
//! that followed it then. An unchanged list costs one request per page (one
//! for up to `per_page` repositories) and writes nothing.

pub mod code_scanning;
pub mod repos;
pub mod secret_scanning;

use crate::connector::{Page, PageSink, SyncMode, SyncOutcome};
use crate::http::{quota, Auth, Conditional, HttpClient, RetrySettings};
use crate::ndjson::parse_time;
use crate::record::{Environment, Record, Time};
use crate::Error;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default GitHub API base URL (GHES: `https://<host>/api/v3`).
pub const DEFAULT_BASE_URL: &str = "https://api.github.com";

pub(crate) fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}
pub(crate) fn default_rate() -> f64 {
    // 5,000 requests per hour for a token, with room for other clients.
    1.2
}
pub(crate) fn default_burst() -> u32 {
    10
}
pub(crate) fn default_per_page() -> u32 {
    100
}
pub(crate) fn default_pages_per_commit() -> u32 {
    1
}

/// The GitHub API of one connector instance: its client and where it points.
#[derive(Debug)]
pub struct GithubApi {
    pub(crate) http: HttpClient,
    pub(crate) base: String,
    pub(crate) org: String,
    pub(crate) per_page: u32,
    pub(crate) pages_per_commit: u32,
}

/// The connection settings shared by the GitHub connector kinds.
pub(crate) struct Access<'a> {
    pub name: &'a str,
    pub org: &'a str,
    pub base_url: &'a str,
    pub rate: f64,
    pub burst: u32,
    pub per_page: u32,
    pub pages_per_commit: u32,
    pub retry: &'a RetrySettings,
}

impl GithubApi {
    pub(crate) fn new(a: Access<'_>, token: Option<SecretString>) -> Result<GithubApi, Error> {
        let cfg = |message: String| Error::Config {
            connector: a.name.to_string(),
            message,
        };
        if a.org.is_empty()
            || !a
                .org
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(cfg(format!(
                "`org` {:?} is not a GitHub organization name",
                a.org
            )));
        }
        let base = a.base_url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| cfg(format!("`base_url` is not a URL: {e}")))?;
        if !(1..=100).contains(&a.per_page) {
            return Err(cfg(format!(
                "`per_page` must be 1 to 100, found {}",
                a.per_page
            )));
        }
        let quota = quota(a.rate, a.burst).map_err(cfg)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        let auth = match token {
            Some(t) => Auth::Bearer(t),
            None => Auth::None,
        };
        let http = HttpClient::new(a.name, quota, auth, headers, a.retry.clone())?;
        Ok(GithubApi {
            http,
            base,
            org: a.org.to_string(),
            per_page: a.per_page,
            pages_per_commit: a.pages_per_commit.max(1),
        })
    }

    /// The HTTP client (for its counters).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}{}", self.base, path);
        let mut sep = '?';
        for (k, v) in query {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
            sep = '&';
        }
        url
    }

    /// A `Link` target is followed only on the configured origin: the token
    /// must never travel to another host.
    fn check_next(&self, next: &str) -> Result<(), Error> {
        let origin = |u: &str| {
            reqwest::Url::parse(u)
                .ok()
                .map(|u| u.origin().ascii_serialization())
        };
        if origin(next).is_some() && origin(next) == origin(&self.base) {
            Ok(())
        } else {
            Err(Error::Source {
                connector: self.http.connector().to_string(),
                message: "a Link header points away from the configured base URL; not followed"
                    .into(),
            })
        }
    }
}

/// Percent-encode a query value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The cursor of a GitHub connector: one entry per list endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GithubCursor {
    /// Per endpoint (`repos`, `secret_scanning_alerts`, `code_scanning_alerts`).
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointCursor>,
}

impl GithubCursor {
    pub(crate) fn parse(connector: &str, cursor: Option<&str>) -> GithubCursor {
        match cursor {
            None => GithubCursor::default(),
            Some(text) => serde_json::from_str(text).unwrap_or_else(|e| {
                tracing::warn!(connector, error = %e, "unreadable cursor; starting from the beginning");
                GithubCursor::default()
            }),
        }
    }
}

/// Where one list endpoint stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointCursor {
    /// ETag of the first page at the start of the last finished pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Newest `updated` time seen by finished passes (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// Ids whose `updated` equals the watermark: already read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_watermark: Vec<String>,
    /// A pass that has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
    /// Lists read whole: the pages of the last finished pass, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageTag>,
}

/// An unfinished pass: the next page and what was seen so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    /// The next page's URL (from the `Link` header).
    pub next: String,
    /// A full pass (ignores the watermark).
    #[serde(default)]
    pub full: bool,
    /// ETag of this pass's first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Newest `updated` time seen in this pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    /// Ids at `max`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_max: Vec<String>,
    /// Whole lists: the pages read so far in this pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageTag>,
    /// Items of this pass that could not be read: when there are any, the
    /// pass keeps the validators (ETag, watermark) of the last one, so the
    /// next pass reads those items again instead of a `304`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unreadable: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One page of a list read whole every pass, and its ETag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageTag {
    /// The page's URL.
    pub url: String,
    /// Its ETag, if the server gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// It held `per_page` items: a page may follow that its ETag does not
    /// show (the `Link` header is not part of it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
}

/// One converted list item.
pub(crate) struct Item {
    pub record: Record,
    pub updated: Time,
}

/// What `convert` made of one list item.
pub(crate) enum Converted {
    /// A record.
    Item(Item),
}

/// Parse an optional RFC 3339 time field; a bad value is an error naming it.
pub(crate) fn opt_time(field: &str, v: &Option<String>) -> Result<Option<Time>, String> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => parse_time(t)
            .map(Some)
            .map_err(|e| format!("`{field}`: {e}")),
    }
}

/// Parse a required RFC 3339 time field.
pub(crate) fn req_time(field: &str, v: &Option<String>) -> Result<Time, String> {
    opt_time(field, v)?.ok_or_else(|| format!("`{field}` is missing"))
}

/// A repository reference inside an alert.
#[derive(Debug, Deserialize)]
pub(crate) struct RepoRef {
    pub full_name: Option<String>,
}

/// The environment of a repo or its asset, from the settings table.
pub(crate) fn environment_of(
    table: &BTreeMap<String, Environment>,
    default: Environment,
    repo: &str,
    asset: &str,
) -> Environment {
    table
        .get(repo)
        .or_else(|| table.get(asset))
        .copied()
        .unwrap_or(default)
}

/// Read one list endpoint page by page into `sink`, newest-updated first,
/// stopping at the watermark (see the module docs).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn sync_list<T: DeserializeOwned>(
    api: &GithubApi,
    cursor: &mut GithubCursor,
    key: &str,
    first_url: String,
    mode: SyncMode,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
    convert: impl FnMut(T) -> Result<Converted, String>,
) -> Result<(), Error> {
    sync_pages(
        api, cursor, key, first_url, mode, sink, outcome, false, convert,
    )
    .await
}

/// Read one list endpoint whole, every pass, each page asked with its own
/// ETag of the last pass (see the module docs).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn sync_whole_list<T: DeserializeOwned>(
    api: &GithubApi,
    cursor: &mut GithubCursor,
    key: &str,
    first_url: String,
    mode: SyncMode,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
    convert: impl FnMut(T) -> Result<Converted, String>,
) -> Result<(), Error> {
    sync_pages(
        api, cursor, key, first_url, mode, sink, outcome, true, convert,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn sync_pages<T: DeserializeOwned>(
    api: &GithubApi,
    cursor: &mut GithubCursor,
    key: &str,
    first_url: String,
    mode: SyncMode,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
    whole: bool,
    mut convert: impl FnMut(T) -> Result<Converted, String>,
) -> Result<(), Error> {
    let connector = api.http.connector().to_string();
    let ep = cursor.endpoints.get(key).cloned().unwrap_or_default();
    let full = mode == SyncMode::Full;
    let (mut url, mut pass, resumed) = match &ep.resume {
        Some(r) if !full || r.full => (r.next.clone(), r.clone(), true),
        _ => (
            first_url,
            Resume {
                full,
                ..Resume::default()
            },
            false,
        ),
    };
    let watermark = match (&ep.watermark, pass.full || whole) {
        (Some(w), false) => parse_time(w).ok(),
        _ => None,
    };
    let mut first = !resumed;
    // Whole lists: whether any page of this pass changed (a resumed pass
    // has committed pages already). An unchanged list commits nothing.
    let mut changed = resumed || !whole;
    // Ask the current page again without its ETag (see below).
    let mut refetch = false;
    // Records of fetched pages not yet committed, and how many pages.
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_pages = 0u32;
    loop {
        if sink.cancelled() {
            if pending_pages > 0 && changed {
                commit(
                    &connector,
                    cursor,
                    std::mem::take(&mut pending),
                    sink,
                    outcome,
                )?;
            }
            outcome.interrupted = true;
            return Ok(());
        }
        let page_ix = pass.pages.len();
        let etag = if pass.full || std::mem::take(&mut refetch) {
            None
        } else if whole {
            ep.pages
                .get(page_ix)
                .filter(|p| p.url == url)
                .and_then(|p| p.etag.as_deref())
        } else if first {
            ep.etag.as_deref()
        } else {
            None
        };
        outcome.requests += 1;
        let answer = match api.http.get(&url, etag).await {
            // Cut in flight: the pages fetched before are committed (their
            // cursor names this page), then the pass stops.
            Err(crate::http::HttpError::Cancelled { .. }) => {
                if pending_pages > 0 && changed {
                    commit(
                        &connector,
                        cursor,
                        std::mem::take(&mut pending),
                        sink,
                        outcome,
                    )?;
                }
                outcome.interrupted = true;
                return Ok(());
            }
            other => other?,
        };
        let (body, fetched_next, page_etag, was_full) = match answer {
            Conditional::NotModified if whole => {
                // This page is as it was; go on to the page that followed it.
                tracing::debug!(
                    connector,
                    endpoint = key,
                    page = page_ix + 1,
                    "page not modified"
                );
                let was_full = ep.pages.get(page_ix).is_some_and(|p| p.full);
                let next = ep.pages.get(page_ix + 1).map(|p| p.url.clone());
                if next.is_none() && was_full {
                    // The last page was full: a page added after it does not
                    // change its ETag, only its `Link`. Read it again.
                    refetch = true;
                    continue;
                }
                (None, next, etag.map(str::to_string), was_full)
            }
            Conditional::NotModified => {
                tracing::debug!(
                    connector,
                    endpoint = key,
                    "not modified since the last pass"
                );
                return Ok(());
            }
            Conditional::Modified(f) => {
                changed = true;
                (Some(f.body), f.next, f.etag, false)
            }
        };
        if first {
            pass.etag = page_etag.clone();
        }
        let items: Vec<&serde_json::value::RawValue> = match &body {
            None => Vec::new(),
            Some(b) => serde_json::from_slice(b).map_err(|e| Error::Source {
                connector: connector.clone(),
                message: format!("{key}: the page is not a JSON array: {e}"),
            })?,
        };
        let full_page = was_full || items.len() >= api.per_page as usize;
        let mut stop = false;
        let mut page_unreadable = false;
        for raw in items {
            let parsed = serde_json::from_str::<T>(raw.get()).map_err(|e| e.to_string());
            let item = match parsed.and_then(&mut convert) {
                Ok(Converted::Item(item)) => item,
                Err(message) => {
                    tracing::warn!(connector, endpoint = key, %message, "item skipped");
                    outcome.unreadable_item(format!("{key}: {message}"));
                    pass.unreadable += 1;
                    page_unreadable = true;
                    continue;
                }
            };
            if let Some(w) = watermark {
                if item.updated < w {
                    // Sorted newest first: everything after is older still.
                    stop = true;
                    continue;
                }
                if item.updated == w && ep.at_watermark.iter().any(|id| id == item.record.id()) {
                    continue;
                }
            }
            let updated = item
                .updated
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            match pass.max.as_deref().map(parse_time) {
                Some(Ok(m)) if m > item.updated => {}
                Some(Ok(m)) if m == item.updated => pass.at_max.push(item.record.id().to_string()),
                _ => {
                    pass.max = Some(updated);
                    pass.at_max = vec![item.record.id().to_string()];
                }
            }
            pending.push(item.record);
        }
        if whole {
            // A page with an unreadable item keeps no ETag: the next pass
            // reads it whole again.
            pass.pages.push(PageTag {
                url: url.clone(),
                etag: if page_unreadable { None } else { page_etag },
                full: full_page,
            });
        }
        drop(body);
        let next = if stop { None } else { fetched_next };
        let new_ep = match &next {
            Some(n) => {
                api.check_next(n)?;
                EndpointCursor {
                    resume: Some(Resume {
                        next: n.clone(),
                        ..pass.clone()
                    }),
                    ..ep.clone()
                }
            }
            None => finish(&ep, &pass),
        };
        cursor.endpoints.insert(key.to_string(), new_ep);
        pending_pages += 1;
        if changed && (next.is_none() || pending_pages >= api.pages_per_commit) {
            commit(
                &connector,
                cursor,
                std::mem::take(&mut pending),
                sink,
                outcome,
            )?;
            pending_pages = 0;
        }
        match next {
            Some(n) => {
                url = n;
                first = false;
            }
            None => return Ok(()),
        }
    }
}

/// Commit `records` with the whole cursor in one store write.
fn commit(
    connector: &str,
    cursor: &GithubCursor,
    records: Vec<Record>,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
) -> Result<(), Error> {
    let cursor_text = serde_json::to_string(cursor).map_err(|e| Error::Source {
        connector: connector.to_string(),
        message: format!("cannot encode the cursor: {e}"),
    })?;
    let committed = sink.commit(Page {
        records,
        cursor: Some(cursor_text),
    })?;
    outcome.pages += 1;
    outcome.committed += committed;
    Ok(())
}

/// The endpoint cursor after a finished pass. A pass that skipped
/// unreadable items keeps the last pass's ETag and watermark: saving its
/// own would hide those items from the next pass (a `304`, or a stop at a
/// watermark past them).
fn finish(ep: &EndpointCursor, pass: &Resume) -> EndpointCursor {
    if pass.unreadable > 0 {
        return EndpointCursor {
            resume: None,
            pages: pass.pages.clone(),
            ..ep.clone()
        };
    }
    let old = ep.watermark.as_deref().and_then(|w| parse_time(w).ok());
    let new = pass.max.as_deref().and_then(|w| parse_time(w).ok());
    let (watermark, at_watermark) = match (old, new) {
        (Some(o), Some(n)) if o > n => (ep.watermark.clone(), ep.at_watermark.clone()),
        (Some(o), Some(n)) if o == n => {
            let mut ids = ep.at_watermark.clone();
            for id in &pass.at_max {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            (ep.watermark.clone(), ids)
        }
        (_, Some(_)) => (pass.max.clone(), pass.at_max.clone()),
        (_, None) => (ep.watermark.clone(), ep.at_watermark.clone()),
    };
    EndpointCursor {
        etag: pass.etag.clone().or_else(|| ep.etag.clone()),
        watermark,
        at_watermark,
        resume: None,
        pages: pass.pages.clone(),
    }
}
