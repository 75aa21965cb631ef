//! `pagerduty`: incidents (`GET /incidents`, offset paging with `more`) as
//! `incident` records.
//!
//! Windows: PagerDuty filters by creation time within `since`/`until` of at
//! most six months, and `offset + limit` may not pass 10,000. The pass walks
//! windows of `window_days` (≤ 180) sorted by `created_at`; when a window
//! holds more than 10,000 incidents it is split at the creation time of the
//! last one read and continues from there. The first pass reads
//! `lookback_days` (default 400: a year of trend plus the previous period);
//! later passes start at the cursor minus an overlap, or earlier when an
//! incident read before was still unresolved (so its acknowledgement and
//! resolution are read when they happen).
//!
//! Times: `alerted_at` = `created_at`; `triaged_at` = the first
//! acknowledgement from the incident's log entries (its `acknowledgements`
//! list is emptied on resolve and re-trigger), or a resolve by a person when
//! nobody acknowledged; `contained_at` = `resolved_at`.

use crate::connector::{Connector, Page, PageSink, SyncMode, SyncOutcome};
use crate::http::{quota, url_with_query, Auth, Conditional, HttpClient, RetrySettings};
use crate::ndjson::parse_time;
use crate::record::{Extra, Incident, Record, Severity, Time};
use crate::Error;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

/// The largest `offset + limit` PagerDuty accepts on classic paging.
pub const OFFSET_CEILING: u64 = 10_000;

/// Settings of a `pagerduty` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutySettings {
    /// Unique instance name; the `source` of its records.
    pub name: String,
    /// API base URL.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The REST API key inline (prefer `token_env` or `token_file`); sent as
    /// `Authorization: Token token=…`. A read-only key is enough.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Environment variable holding the key.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the key (e.g. a systemd credential).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Requests per second (PagerDuty allows 960 per minute per key; the
    /// default 15 with a burst of 15 stays under it in any minute).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Requests allowed at once before the rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Incidents per page (`limit`, at most 100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Days of history the first pass (and `--full`) reads.
    #[serde(default = "default_lookback")]
    pub lookback_days: u32,
    /// Days per `since`/`until` window (1 to 180: PagerDuty allows six
    /// months).
    #[serde(default = "default_window")]
    pub window_days: u32,
    /// Seconds a later pass reaches back before the cursor.
    #[serde(default = "default_overlap")]
    pub overlap_secs: u64,
    /// Only these services (`service_ids[]`); empty: all.
    #[serde(default)]
    pub service_ids: Vec<String>,
    /// Only these teams (`team_ids[]`); empty: all.
    #[serde(default)]
    pub team_ids: Vec<String>,
    /// Service id or name → asset id; other services use their name.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
    /// Priority name (e.g. `P1`) → severity, over the defaults P1 →
    /// critical, P2 → high, P3 → medium, P4 → low, P5 → info. Incidents
    /// without a priority (or with one not listed) have no severity.
    #[serde(default)]
    pub severities: BTreeMap<String, String>,
    /// How `validated` is decided; without it every incident is undecided.
    #[serde(default)]
    pub validated: Option<ValidatedRule>,
    /// Retries, timeouts and longest rate-limit wait.
    #[serde(default)]
    pub retry: RetrySettings,
}

/// What an incident's `validated` is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidatedFrom {
    /// The priority name (`priority.summary`).
    Priority,
    /// `urgency` (`high` / `low`).
    Urgency,
    /// A field of the incident by dotted path, e.g. `incident_type.name`.
    Field,
    /// The incident's notes (resolution notes): substrings.
    ResolutionNote,
}

/// The rule that decides `validated`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatedRule {
    /// `priority`, `urgency`, `field` or `resolution_note`.
    pub from: ValidatedFrom,
    /// With `from = "field"`: the dotted path of the field.
    #[serde(default)]
    pub field: Option<String>,
    /// Values (case-insensitive; for notes: substrings) meaning a real
    /// incident.
    #[serde(default)]
    pub true_values: Vec<String>,
    /// Values meaning a false positive; they win over `true_values`.
    #[serde(default)]
    pub false_values: Vec<String>,
}

fn default_base_url() -> String {
    "https://api.pagerduty.com".into()
}
fn default_rate() -> f64 {
    15.0
}
fn default_burst() -> u32 {
    15
}
fn default_page_size() -> u32 {
    100
}
fn default_lookback() -> u32 {
    400
}
fn default_window() -> u32 {
    180
}
fn default_overlap() -> u64 {
    600
}

impl PagerdutySettings {
    /// Build the connector. `token` is the resolved secret (from `token_env`
    /// or `token_file`); `None` falls back to the inline `token`.
    pub fn build(self, token: Option<SecretString>) -> Result<PagerdutyConnector, Error> {
        let cfg = |message: String| Error::Config {
            connector: self.name.clone(),
            message,
        };
        let base = self.base_url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| cfg(format!("`base_url` is not a URL: {e}")))?;
        if !(1..=100).contains(&self.page_size) {
            return Err(cfg(format!(
                "`page_size` must be 1 to 100, found {}",
                self.page_size
            )));
        }
        if !(1..=180).contains(&self.window_days) {
            return Err(cfg(format!(
                "`window_days` must be 1 to 180 (PagerDuty allows six months), found {}",
                self.window_days
            )));
        }
        if self.lookback_days == 0 {
            return Err(cfg("`lookback_days` must be at least 1".into()));
        }
        let mut severities = BTreeMap::new();
        for (p, s) in [
            ("p1", Severity::Critical),
            ("p2", Severity::High),
            ("p3", Severity::Medium),
            ("p4", Severity::Low),
            ("p5", Severity::Info),
        ] {
            severities.insert(p.to_string(), s);
        }
        for (p, s) in &self.severities {
            let sev = Severity::parse(s).ok_or_else(|| {
                cfg(format!(
                    "`severities.{p:?}`: unknown value {s:?} (expected one of {})",
                    Severity::expected()
                ))
            })?;
            severities.insert(p.to_lowercase(), sev);
        }
        if let Some(r) = &self.validated {
            if r.from == ValidatedFrom::Field && r.field.as_deref().map_or(true, str::is_empty) {
                return Err(cfg(
                    "`validated.field` is needed with from = \"field\"".into()
                ));
            }
            if r.from != ValidatedFrom::Field && r.field.is_some() {
                return Err(cfg(
                    "`validated.field` applies only to from = \"field\"".into()
                ));
            }
            if r.true_values.is_empty() && r.false_values.is_empty() {
                return Err(cfg(
                    "`validated` needs true_values or false_values (else nothing is decided)"
                        .into(),
                ));
            }
        }
        // Without a key every request is refused (401, named in the error),
        // as for the other HTTP kinds.
        let token = token.or_else(|| self.token.clone());
        let auth = token.map(Auth::TokenKey).unwrap_or(Auth::None);
        let quota = quota(self.rate, self.burst).map_err(cfg)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.pagerduty+json;version=2"),
        );
        let http = HttpClient::new(&self.name, quota, auth, headers, self.retry.clone())?;
        Ok(PagerdutyConnector {
            base,
            severities,
            http,
            reported: Mutex::new(HashSet::new()),
            settings: self,
        })
    }
}

/// The `pagerduty` connector.
#[derive(Debug)]
pub struct PagerdutyConnector {
    settings: PagerdutySettings,
    base: String,
    severities: BTreeMap<String, Severity>,
    http: HttpClient,
    reported: Mutex<HashSet<String>>,
}

/// The connector's cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PagerdutyCursor {
    /// Incidents created before this time were read by a finished pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Time>,
    /// Creation time of the oldest incident still unresolved when read:
    /// the next pass starts no later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reread_from: Option<Time>,
    /// A pass that has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<PassState>,
}

/// An unfinished pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassState {
    /// The pass reads incidents created before this time.
    pub until: Time,
    /// Incidents created before this were committed: resume here.
    pub pos: Time,
    /// Oldest unresolved incident seen so far in this pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_open: Option<Time>,
}

/// A page of `GET /incidents`. Both keys are required: PagerDuty always
/// sends them, and a JSON answer without them (a gateway's message) must
/// fail the pass, not read as an empty last page that ends the window.
#[derive(Debug, Deserialize)]
struct IncidentsPage {
    incidents: Vec<Box<serde_json::value::RawValue>>,
    more: bool,
}

/// An incident as PagerDuty sends it (the fields used; the raw JSON is
/// kept for field rules).
#[derive(Debug, Deserialize)]
struct IncidentWire {
    id: Option<String>,
    incident_number: Option<u64>,
    status: Option<String>,
    urgency: Option<String>,
    created_at: Option<String>,
    resolved_at: Option<String>,
    last_status_change_at: Option<String>,
    html_url: Option<String>,
    #[serde(default)]
    priority: Option<Named>,
    #[serde(default)]
    service: Option<Named>,
    #[serde(default)]
    acknowledgements: Vec<Ack>,
}

#[derive(Debug, Deserialize)]
struct Named {
    id: Option<String>,
    summary: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Ack {
    at: Option<String>,
}

/// A page of an incident's log entries (keys required, as above: an
/// empty log would lose the acknowledgement for good once resolved).
#[derive(Debug, Deserialize)]
struct LogEntriesPage {
    log_entries: Vec<LogEntry>,
    more: bool,
}

#[derive(Debug, Deserialize)]
struct LogEntry {
    #[serde(rename = "type")]
    kind: Option<String>,
    created_at: Option<String>,
    #[serde(default)]
    agent: Option<AgentRef>,
}

#[derive(Debug, Deserialize)]
struct AgentRef {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NotesPage {
    notes: Vec<Note>,
}

#[derive(Debug, Deserialize)]
struct Note {
    content: Option<String>,
}

fn opt_time(field: &str, v: &Option<String>) -> Result<Option<Time>, String> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => parse_time(t)
            .map(Some)
            .map_err(|e| format!("field `{field}`: {e}")),
    }
}

fn text(t: Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An incident's fields read and checked, before its log or notes are
/// asked for.
struct Checked {
    w: IncidentWire,
    id: String,
    created: Time,
    resolved: bool,
    contained_at: Option<Time>,
    acks: Vec<Time>,
    /// Still triggered and never changed status: never acknowledged.
    never_changed: bool,
}

/// Read and check one incident; `Err` names it (or `?`) and the field at
/// fault.
fn check_incident(raw: &serde_json::value::RawValue) -> Result<Checked, (String, String)> {
    let w: IncidentWire = serde_json::from_str(raw.get())
        .map_err(|e| ("?".to_string(), format!("not an incident: {e}")))?;
    // An empty id is no identity: the record could not be exported and
    // imported again (found by the `pagerduty_page` fuzz target).
    let id = w.id.clone().filter(|id| !id.is_empty()).ok_or_else(|| {
        (
            "?".to_string(),
            "field `id` is missing or empty".to_string(),
        )
    })?;
    let bad = |m: String| (id.clone(), m);
    let created = match opt_time("created_at", &w.created_at) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(bad("field `created_at` is missing".into())),
        Err(e) => return Err(bad(e)),
    };
    let status = w.status.clone().unwrap_or_default();
    let resolved = status == "resolved";
    let contained_at = if resolved {
        opt_time("resolved_at", &w.resolved_at)
            .and_then(|r| Ok(r.or(opt_time("last_status_change_at", &w.last_status_change_at)?)))
            .map_err(bad)?
    } else {
        None
    };
    let mut acks: Vec<Time> = Vec::new();
    for a in &w.acknowledgements {
        match opt_time("acknowledgements[].at", &a.at) {
            Ok(Some(t)) => acks.push(t),
            Ok(None) => {}
            Err(e) => return Err(bad(e)),
        }
    }
    let last_change = opt_time("last_status_change_at", &w.last_status_change_at)
        .ok()
        .flatten();
    let never_changed =
        status == "triggered" && acks.is_empty() && last_change.map_or(true, |t| t <= created);
    Ok(Checked {
        w,
        id,
        created,
        resolved,
        contained_at,
        acks,
        never_changed,
    })
}

impl PagerdutyConnector {
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        outcome: &mut SyncOutcome,
    ) -> Result<T, Error> {
        let url = url_with_query(&self.base, path, query);
        outcome.requests += 1;
        let body = match self.http.get(&url, None).await? {
            Conditional::Modified(f) => f.body,
            Conditional::NotModified => Vec::new(),
        };
        serde_json::from_slice(&body).map_err(|e| Error::Source {
            connector: self.settings.name.clone(),
            message: format!("GET {path}: the answer is not what PagerDuty sends: {e}"),
        })
    }

    /// The first acknowledgement (or resolve by a person) in the log.
    async fn first_triage(
        &self,
        id: &str,
        outcome: &mut SyncOutcome,
    ) -> Result<Option<Time>, Error> {
        let path = format!("/incidents/{}/log_entries", crate::http::percent_encode(id));
        let limit = 100u64;
        let mut offset = 0u64;
        let mut ack: Option<Time> = None;
        let mut human_resolve: Option<Time> = None;
        loop {
            let off = offset.to_string();
            let lim = limit.to_string();
            let page: LogEntriesPage = self
                .get_json(
                    &path,
                    &[("limit", &lim), ("offset", &off), ("time_zone", "UTC")],
                    outcome,
                )
                .await?;
            let n = page.log_entries.len() as u64;
            for e in page.log_entries {
                let Some(at) = e.created_at.as_deref().and_then(|t| parse_time(t).ok()) else {
                    continue;
                };
                match e.kind.as_deref() {
                    Some("acknowledge_log_entry") => ack = Some(ack.map_or(at, |a| a.min(at))),
                    Some("resolve_log_entry")
                        if e.agent.and_then(|a| a.kind).as_deref() == Some("user_reference") =>
                    {
                        human_resolve = Some(human_resolve.map_or(at, |h| h.min(at)))
                    }
                    _ => {}
                }
            }
            offset += n;
            if !page.more || n == 0 || offset + limit > OFFSET_CEILING {
                return Ok(ack.or(human_resolve));
            }
        }
    }

    /// The incident's notes, lowercased.
    async fn notes(&self, id: &str, outcome: &mut SyncOutcome) -> Result<Vec<String>, Error> {
        let path = format!("/incidents/{}/notes", crate::http::percent_encode(id));
        let page: NotesPage = self.get_json(&path, &[], outcome).await?;
        Ok(page
            .notes
            .into_iter()
            .filter_map(|n| n.content.map(|c| c.to_lowercase()))
            .collect())
    }

    fn report(&self, id: &str, message: &str) {
        let key = format!("{id}|{message}");
        if self
            .reported
            .lock()
            .map(|mut r| r.insert(key))
            .unwrap_or(true)
        {
            tracing::warn!(connector = %self.settings.name, incident = id, "incident {id} skipped: {message}");
        }
    }

    /// Convert one incident; `Err` names the field at fault. Its log
    /// entries (and, for a resolution-note rule, its notes) are read when
    /// the conversion needs them.
    async fn convert(
        &self,
        raw: &serde_json::value::RawValue,
        outcome: &mut SyncOutcome,
    ) -> Result<Result<(Incident, bool), (String, String)>, Error> {
        let checked = match check_incident(raw) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        // An incident still triggered that never changed status was never
        // acknowledged: its log need not be read.
        let from_log = if checked.never_changed {
            None
        } else {
            self.first_triage(&checked.id, outcome).await?
        };
        let notes = match &self.settings.validated {
            Some(rule) if rule.from == ValidatedFrom::ResolutionNote && checked.resolved => {
                self.notes(&checked.id, outcome).await?
            }
            _ => Vec::new(),
        };
        Ok(Ok(self.incident(raw, checked, from_log, &notes)))
    }

    /// Convert one page body of `GET /incidents` into incidents without
    /// HTTP, as a pass converts each page it fetches when no incident's
    /// log holds an acknowledgement or a resolve by a person and none has
    /// notes: `Err` when the body is not an incidents page (the pass
    /// fails), else one entry per incident (`Err` naming the incident and
    /// the field at fault for one the pass skips as unreadable). Used by
    /// the fuzz targets and tests.
    pub fn parse_incidents_page(
        &self,
        body: &[u8],
    ) -> Result<Vec<Result<Incident, String>>, String> {
        let page: IncidentsPage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(page
            .incidents
            .iter()
            .map(|raw| match check_incident(raw) {
                Ok(c) => Ok(self.incident(raw, c, None, &[]).0),
                Err((id, message)) => Err(format!("incident {id}: {message}")),
            })
            .collect())
    }

    /// The incident record from its checked fields, the first triage its
    /// log shows and its notes (lowercased); with whether it is still open.
    fn incident(
        &self,
        raw: &serde_json::value::RawValue,
        checked: Checked,
        from_log: Option<Time>,
        notes: &[String],
    ) -> (Incident, bool) {
        let Checked {
            w,
            id,
            created,
            resolved,
            contained_at,
            acks,
            ..
        } = checked;
        let mut extra = Map::new();
        let from_acks = acks.iter().min().copied();
        let triaged_at = match (from_log, from_acks) {
            (Some(l), Some(a)) => Some(l.min(a)),
            (l, a) => l.or(a),
        };
        let triaged_from = match (from_log, from_acks) {
            (Some(l), Some(a)) if a < l => Some("acknowledgements"),
            (Some(_), _) => Some("log_entries"),
            (None, Some(_)) => Some("acknowledgements"),
            (None, None) => None,
        };
        if let Some(from) = triaged_from {
            extra.insert("triaged_from".into(), json!(from));
        }
        let priority = w
            .priority
            .as_ref()
            .and_then(|p| p.summary.clone().or_else(|| p.name.clone()));
        let severity = priority
            .as_deref()
            .and_then(|p| self.severities.get(&p.to_lowercase()).copied());
        let service_name = w
            .service
            .as_ref()
            .and_then(|s| s.summary.clone().or_else(|| s.name.clone()));
        let service_id = w.service.as_ref().and_then(|s| s.id.clone());
        let asset = service_id
            .as_deref()
            .and_then(|i| self.settings.services.get(i))
            .or_else(|| {
                service_name
                    .as_deref()
                    .and_then(|n| self.settings.services.get(n))
            })
            .cloned()
            .or(service_name.clone());
        let validated = match &self.settings.validated {
            None => None,
            Some(rule) => {
                let lower =
                    |v: &[String]| -> Vec<String> { v.iter().map(|s| s.to_lowercase()).collect() };
                let (yes, no) = (lower(&rule.true_values), lower(&rule.false_values));
                let value: Option<String> = match rule.from {
                    ValidatedFrom::Priority => priority.clone(),
                    ValidatedFrom::Urgency => w.urgency.clone(),
                    ValidatedFrom::Field => {
                        let v: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                        let ptr =
                            format!("/{}", rule.field.as_deref().unwrap_or("").replace('.', "/"));
                        match v.pointer(&ptr) {
                            Some(Value::String(s)) => Some(s.clone()),
                            Some(Value::Bool(b)) => Some(b.to_string()),
                            Some(Value::Number(n)) => Some(n.to_string()),
                            _ => None,
                        }
                    }
                    ValidatedFrom::ResolutionNote => None,
                };
                match rule.from {
                    ValidatedFrom::ResolutionNote => {
                        if resolved {
                            let has = |pats: &[String]| {
                                notes
                                    .iter()
                                    .any(|n| pats.iter().any(|p| n.contains(p.as_str())))
                            };
                            if has(&no) {
                                Some(false)
                            } else if has(&yes) {
                                Some(true)
                            } else {
                                None
                            }
                        } else {
                            None
                        }
                    }
                    _ => value.map(|v| v.to_lowercase()).and_then(|v| {
                        if no.contains(&v) {
                            Some(false)
                        } else if yes.contains(&v) {
                            Some(true)
                        } else {
                            None
                        }
                    }),
                }
            }
        };
        for (k, v) in [
            ("incident_number", w.incident_number.map(|n| json!(n))),
            ("status", w.status.clone().map(Value::String)),
            ("urgency", w.urgency.clone().map(Value::String)),
            ("priority", priority.map(Value::String)),
            ("service_id", service_id.map(Value::String)),
            ("url", w.html_url.clone().map(Value::String)),
        ] {
            if let Some(v) = v {
                extra.insert(k.into(), v);
            }
        }
        (
            Incident {
                id,
                source: self.settings.name.clone(),
                asset,
                severity,
                alerted_at: created,
                triaged_at,
                contained_at,
                validated,
                extra: Extra(extra),
            },
            !resolved,
        )
    }

    fn commit(
        &self,
        cursor: &PagerdutyCursor,
        records: Vec<Record>,
        sink: &mut dyn PageSink,
        outcome: &mut SyncOutcome,
    ) -> Result<(), Error> {
        let text = serde_json::to_string(cursor).map_err(|e| Error::Source {
            connector: self.settings.name.clone(),
            message: format!("cannot encode the cursor: {e}"),
        })?;
        outcome.committed += sink.commit(Page {
            records,
            cursor: Some(text),
        })?;
        outcome.pages += 1;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Connector for PagerdutyConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> &'static str {
        "pagerduty"
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
        let name = self.settings.name.clone();
        let before: PagerdutyCursor = match (mode, cursor.as_deref()) {
            (SyncMode::Full, _) | (_, None) => PagerdutyCursor::default(),
            (_, Some(t)) => serde_json::from_str(t).unwrap_or_else(|e| {
                tracing::warn!(connector = %name, error = %e, "unreadable cursor; starting from the lookback");
                PagerdutyCursor::default()
            }),
        };
        // Whole seconds: `since`/`until` are sent with seconds only.
        let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0);
        let overlap = chrono::Duration::seconds(self.settings.overlap_secs as i64);
        let (until, mut pos, mut min_open) = match &before.pass {
            Some(p) => (p.until, p.pos, p.min_open),
            None => {
                let start = match before.watermark {
                    None => now - chrono::Duration::days(i64::from(self.settings.lookback_days)),
                    Some(w) => {
                        let from = w - overlap;
                        before.reread_from.map_or(from, |r| r.min(from))
                    }
                };
                (now, start, None)
            }
        };
        let mut outcome = SyncOutcome::default();
        let limit = u64::from(self.settings.page_size);
        let lim_text = limit.to_string();
        let window = chrono::Duration::days(i64::from(self.settings.window_days));
        while pos < until {
            let w_end = (pos + window).min(until);
            let mut offset = 0u64;
            // Creation time of the last incident read in this window.
            let mut last_created: Option<Time> = None;
            loop {
                if sink.cancelled() {
                    outcome.interrupted = true;
                    return Ok(outcome);
                }
                let (since_t, until_t, off) = (text(pos), text(w_end), offset.to_string());
                let mut query: Vec<(&str, &str)> = vec![
                    ("since", &since_t),
                    ("until", &until_t),
                    ("limit", &lim_text),
                    ("offset", &off),
                    ("sort_by", "created_at:asc"),
                    ("time_zone", "UTC"),
                ];
                for s in &self.settings.service_ids {
                    query.push(("service_ids[]", s));
                }
                for t in &self.settings.team_ids {
                    query.push(("team_ids[]", t));
                }
                let page: IncidentsPage = self.get_json("/incidents", &query, &mut outcome).await?;
                let n = page.incidents.len() as u64;
                let mut records = Vec::with_capacity(page.incidents.len());
                for raw in &page.incidents {
                    match self.convert(raw, &mut outcome).await? {
                        Ok((incident, open)) => {
                            last_created = last_created.max(Some(incident.alerted_at));
                            if open {
                                min_open =
                                    Some(min_open.map_or(incident.alerted_at, |m| {
                                        m.min(incident.alerted_at)
                                    }));
                            }
                            records.push(Record::Incident(incident));
                        }
                        Err((id, message)) => {
                            outcome.skipped += 1;
                            outcome.unreadable += 1;
                            self.report(&id, &message);
                        }
                    }
                }
                let more = page.more && n > 0;
                let next = if !more {
                    None
                } else if offset + n + limit > OFFSET_CEILING {
                    // The next page would pass the 10,000 ceiling: split the
                    // window at the last creation time read.
                    match last_created {
                        Some(t) if t > pos => Some((t, 0)),
                        _ => {
                            return Err(Error::Source {
                                connector: name,
                                message: format!(
                                    "more than {OFFSET_CEILING} incidents created at {}: the window cannot be split",
                                    text(pos)
                                ),
                            })
                        }
                    }
                } else {
                    Some((pos, offset + n))
                };
                let cursor = match next {
                    // Mid-window: resume from the newest creation time read.
                    Some(_) => PagerdutyCursor {
                        pass: Some(PassState {
                            until,
                            pos: last_created.unwrap_or(pos).max(pos),
                            min_open,
                        }),
                        ..before.clone()
                    },
                    None if w_end < until => PagerdutyCursor {
                        pass: Some(PassState {
                            until,
                            pos: w_end,
                            min_open,
                        }),
                        ..before.clone()
                    },
                    None => PagerdutyCursor {
                        watermark: Some(until),
                        reread_from: min_open,
                        pass: None,
                    },
                };
                self.commit(&cursor, records, sink, &mut outcome)?;
                match next {
                    Some((p, o)) => {
                        if p != pos {
                            tracing::debug!(connector = %name, at = %text(p), "window split at the 10,000 offset ceiling");
                        }
                        pos = p;
                        offset = o;
                    }
                    None => break,
                }
            }
            pos = w_end;
        }
        if before.pass.is_none() && pos >= until && outcome.pages == 0 {
            // Nothing to read (an empty window): still move the cursor on.
            let cursor = PagerdutyCursor {
                watermark: Some(until),
                reread_from: min_open,
                pass: None,
            };
            self.commit(&cursor, Vec::new(), sink, &mut outcome)?;
        }
        Ok(outcome)
    }
}
