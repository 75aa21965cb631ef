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
//! pass: each page is asked with its own ETag from the last pass, a `304`
//! page is unchanged and the pass goes on to the page that followed it
//! then. An unchanged list costs one request per page (one for up to
//! `per_page` repositories) and writes nothing.
//!
//! Repository level. With `repos = ["owner/name", ...]` instead of `org`
//! (tokens that cannot read the organization's lists), each repository's
//! own lists are read the same way, each with its own cursor entry
//! (`secret_scanning_alerts:owner/name`); their alerts carry no
//! `repository`, so the repository of the list is the alert's. Coverage is
//! then each repository's own object (`GET /repos/{owner}/{repo}`, with its
//! ETag). A repository whose alert list answers `404` (the feature is off)
//! is skipped with a warning.

pub mod code_scanning;
pub mod repos;
pub mod secret_scanning;
pub mod settings;

pub use settings::{CoverageSettings, GithubKind, GithubSettings, Target, DEFAULT_BASE_URL};

use crate::connector::{Page, PageSink, SyncMode, SyncOutcome};
use crate::http::{quota, Auth, Conditional, HttpClient};
use crate::ndjson::parse_time;
use crate::record::{Environment, Record, Time};
use crate::Error;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The GitHub API of one connector instance: its client and where it points.
#[derive(Debug)]
pub struct GithubApi {
    pub(crate) http: HttpClient,
    pub(crate) base: String,
    pub(crate) target: Target,
    pub(crate) per_page: u32,
    pub(crate) pages_per_commit: u32,
}

impl GithubApi {
    fn new(
        s: &GithubSettings,
        target: Target,
        token: Option<SecretString>,
    ) -> Result<GithubApi, Error> {
        let cfg = |message: String| Error::Config {
            connector: s.name.clone(),
            message,
        };
        let base = s.base_url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| cfg(format!("`base_url` is not a URL: {e}")))?;
        if !(1..=100).contains(&s.per_page) {
            return Err(cfg(format!(
                "`per_page` must be 1 to 100, found {}",
                s.per_page
            )));
        }
        let quota = quota(s.rate, s.burst).map_err(cfg)?;
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
        let http = HttpClient::new(&s.name, quota, auth, headers, s.retry.clone())?;
        Ok(GithubApi {
            http,
            base,
            target,
            per_page: s.per_page,
            pages_per_commit: s.pages_per_commit.max(1),
        })
    }

    /// The HTTP client (for its counters).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The alert lists of `feature` (`secret-scanning`, `code-scanning`)
    /// for the target: the organization's one list, or each repository's
    /// own (keyed `key:owner/name` in the cursor; a repository without the
    /// list is skipped), each with the repository it belongs to.
    pub(crate) fn alert_lists<'a>(
        &'a self,
        feature: &str,
        key: &str,
        query: &[(&str, &str)],
    ) -> Vec<(Option<&'a str>, List)> {
        match &self.target {
            Target::Org(org) => vec![(
                None,
                List {
                    key: key.to_string(),
                    first_url: self.url(&format!("/orgs/{org}/{feature}/alerts"), query),
                    whole: false,
                    missing_ok: false,
                },
            )],
            Target::Repos(repos) => repos
                .iter()
                .map(|r| {
                    (
                        Some(r.as_str()),
                        List {
                            key: format!("{key}:{r}"),
                            first_url: self.url(&format!("/repos/{r}/{feature}/alerts"), query),
                            whole: false,
                            missing_ok: true,
                        },
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        crate::http::url_with_query(&self.base, path, query)
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

/// What every alert starts with, read the same way for both kinds.
pub(crate) struct AlertHead {
    /// The alert's number in its repository.
    pub number: u64,
    /// `owner/name`: the alert's `repository`, else the repository whose
    /// own list it came from (repository lists leave `repository` out).
    pub repo: String,
    /// `created_at`.
    pub opened_at: Time,
}

impl AlertHead {
    pub(crate) fn parse(
        number: Option<u64>,
        repository: Option<RepoRef>,
        listed_in: Option<&str>,
        created_at: &Option<String>,
    ) -> Result<AlertHead, String> {
        let number = number.ok_or("`number` is missing")?;
        let repo = repository
            .and_then(|r| r.full_name)
            .or_else(|| listed_in.map(str::to_string))
            .ok_or("`repository.full_name` is missing")?;
        let opened_at = req_time("created_at", created_at)?;
        Ok(AlertHead {
            number,
            repo,
            opened_at,
        })
    }

    /// The alert's `updated_at`; it is nullable, so then the latest of the
    /// times known (`later`) and the opening.
    pub(crate) fn updated(
        &self,
        updated_at: &Option<String>,
        later: &[Option<Time>],
    ) -> Result<Time, String> {
        Ok(match opt_time("updated_at", updated_at)? {
            Some(t) => t,
            None => later
                .iter()
                .flatten()
                .copied()
                .chain([self.opened_at])
                .max()
                .unwrap_or(self.opened_at),
        })
    }

    /// The record id: `owner/name#number`.
    pub(crate) fn id(&self) -> String {
        format!("{}#{}", self.repo, self.number)
    }
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

/// One list endpoint to read.
pub(crate) struct List {
    /// Its key in the cursor (`secret_scanning_alerts`, with `:owner/name`
    /// for a repository's own list).
    pub key: String,
    /// The first page's URL.
    pub first_url: String,
    /// Read whole every pass (each page with its own ETag) instead of
    /// newest-updated first down to the watermark.
    pub whole: bool,
    /// A `404` on the first page means the list does not exist for this
    /// repository (the feature is off, or the token cannot see it): it is
    /// reported and skipped instead of failing the pass.
    pub missing_ok: bool,
}

/// Read each of `lists` (see [`GithubApi::alert_lists`]) in turn, stopping
/// between lists once the pass is cancelled; `convert` gets the repository
/// the list belongs to with each alert.
pub(crate) async fn sync_alert_lists<T: DeserializeOwned>(
    api: &GithubApi,
    cursor: &mut GithubCursor,
    lists: Vec<(Option<&str>, List)>,
    mode: SyncMode,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
    convert: impl Fn(Option<&str>, T) -> Result<Converted, String>,
) -> Result<(), Error> {
    for (listed_in, list) in lists {
        if outcome.interrupted || sink.cancelled() {
            outcome.interrupted = true;
            break;
        }
        sync_list(api, cursor, list, mode, sink, outcome, |a: T| {
            convert(listed_in, a)
        })
        .await?;
    }
    Ok(())
}

/// Read one list endpoint page by page into `sink` (see the module docs).
pub(crate) async fn sync_list<T: DeserializeOwned>(
    api: &GithubApi,
    cursor: &mut GithubCursor,
    list: List,
    mode: SyncMode,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
    mut convert: impl FnMut(T) -> Result<Converted, String>,
) -> Result<(), Error> {
    let List {
        key,
        first_url,
        whole,
        missing_ok,
    } = list;
    let key = key.as_str();
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
        let etag = if pass.full {
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
            Err(crate::http::HttpError::Status {
                status: 404,
                message,
                ..
            }) if missing_ok && first => {
                tracing::warn!(
                    connector,
                    endpoint = key,
                    message = message.as_deref().unwrap_or(""),
                    "list not found (feature off, or not visible to the token); skipped"
                );
                outcome.skipped += 1;
                return Ok(());
            }
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
                // A full last page is followed by its probe (see below),
                // asked with the probe's own ETag.
                let next = ep
                    .pages
                    .get(page_ix + 1)
                    .map(|p| p.url.clone())
                    .or_else(|| was_full.then(|| next_page_url(&url)).flatten());
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
            Some(b) => page_items(b).map_err(|message| Error::Source {
                connector: connector.clone(),
                message: format!("{key}: {message}"),
            })?,
        };
        let full_page = was_full || items.len() >= api.per_page as usize;
        let body_was_read = body.is_some();
        let mut stop = false;
        let mut page_unreadable = false;
        for raw in items {
            let item = match read_item(raw, &mut convert) {
                Ok(item) => item,
                Err(message) => {
                    let what = format!("{key}: {}: {message}", item_name(raw));
                    tracing::warn!(connector, problem = %what, "item skipped");
                    outcome.unreadable_item(what);
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
        // A full last page of a whole list: a page added after it would not
        // change its ETag (only its `Link`), so the page after it is asked
        // too — empty today, it answers `304` while nothing is added.
        let fetched_next = match fetched_next {
            None if whole && full_page && body_was_read => next_page_url(&url),
            other => other,
        };
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

/// The items of one list page: a JSON array, each item kept raw so one
/// bad item spoils nothing else.
fn page_items(body: &[u8]) -> Result<Vec<&serde_json::value::RawValue>, String> {
    serde_json::from_slice(body).map_err(|e| format!("the page is not a JSON array: {e}"))
}

/// One list item read into its wire shape and converted; the error names
/// the field at fault.
fn read_item<T: DeserializeOwned>(
    raw: &serde_json::value::RawValue,
    convert: &mut impl FnMut(T) -> Result<Converted, String>,
) -> Result<Item, String> {
    let wire = serde_json::from_str::<T>(raw.get()).map_err(|e| e.to_string())?;
    match convert(wire)? {
        Converted::Item(item) => Ok(item),
    }
}

/// What one page of a list converts to: the page's records and, in
/// place, each item that could not be read (named as a pass names it).
pub type PageRecords = Vec<Result<Record, String>>;

/// Which GitHub list a page comes from (see [`parse_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Secret scanning alerts (org or repository list).
    SecretAlerts,
    /// Code scanning alerts (org or repository list).
    CodeAlerts,
    /// The organization's repositories (coverage).
    Repos,
}

/// Convert one page body of a GitHub list into records without HTTP,
/// exactly as a sync pass converts each page it fetches: `Err` when the
/// body is not a JSON array (the pass fails), else one entry per item
/// (an item that cannot be read is named and skipped by the pass).
/// `listed_in` is the repository of a repository-level list. Used by the
/// fuzz targets and tests.
pub fn parse_page(
    settings: &GithubSettings,
    list: ListKind,
    listed_in: Option<&str>,
    body: &[u8],
) -> Result<PageRecords, String> {
    fn each<T: DeserializeOwned>(
        body: &[u8],
        mut convert: impl FnMut(T) -> Result<Converted, String>,
    ) -> Result<PageRecords, String> {
        Ok(page_items(body)?
            .into_iter()
            .map(|raw| read_item(raw, &mut convert).map(|i| i.record))
            .collect())
    }
    match list {
        ListKind::SecretAlerts => each(body, |a| {
            secret_scanning::convert(&settings.name, listed_in, a)
        }),
        ListKind::CodeAlerts => each(body, |a| code_scanning::convert(settings, listed_in, a)),
        ListKind::Repos => {
            let coverage = settings.coverage();
            each(body, |r| {
                repos::convert(&settings.name, &settings.assets, &coverage, r)
            })
        }
    }
}

/// The URL of the page after `url` (its `page` parameter plus one).
fn next_page_url(url: &str) -> Option<String> {
    let mut u = reqwest::Url::parse(url).ok()?;
    let mut pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let page = pairs
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(1);
    pairs.retain(|(k, _)| k != "page");
    pairs.push(("page".into(), (page + 1).to_string()));
    u.query_pairs_mut().clear().extend_pairs(pairs);
    Some(u.to_string())
}

/// How an item that could not be read is named: its `number` (an alert)
/// or `full_name` (a repository), else its place is all there is.
fn item_name(raw: &serde_json::value::RawValue) -> String {
    #[derive(Deserialize)]
    struct Name {
        number: Option<serde_json::Value>,
        full_name: Option<String>,
    }
    match serde_json::from_str::<Name>(raw.get()) {
        Ok(Name {
            number: Some(n), ..
        }) => format!("alert {n}"),
        Ok(Name {
            full_name: Some(f), ..
        }) => format!("repository {f}"),
        _ => "an item without a number".to_string(),
    }
}

/// Commit `records` with the whole cursor in one store write.
pub(crate) fn commit(
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
