//! One Jira issue → one record, by its mapping: findings (with their
//! severity and status history from the changelog, stamped with Jira's
//! times), reviews, threat models, exceptions and releases. A mapped field
//! that is missing or malformed is a [`Problem`] naming the field; the
//! issue is then left out and the rest of the page syncs.

use super::issue::{parse_date_value, parse_jira_time, urls_in_description, values_of, History};
use super::mapping::{MappedKind, Mapping, Source};
use crate::connector::{SourceChange, SourceHistory};
use crate::record::{
    Domain, Environment, Exception, Extra, Finding, Identity, Record, Release, Review, Severity,
    Status, ThreatModel, Time, Tracked, Validity,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Configured field names and ids resolved to the site's (id, name).
#[derive(Debug, Clone, Default)]
pub struct FieldIds {
    /// As configured → (id, display name).
    pub map: BTreeMap<String, (String, String)>,
}

impl FieldIds {
    /// The id of a configured field (itself when not resolved).
    pub fn id<'a>(&'a self, configured: &'a str) -> &'a str {
        self.map
            .get(configured)
            .map(|(id, _)| id.as_str())
            .unwrap_or(configured)
    }

    /// The display name of a configured field (itself when not resolved).
    pub fn name<'a>(&'a self, configured: &'a str) -> &'a str {
        self.map
            .get(configured)
            .map(|(_, n)| n.as_str())
            .unwrap_or(configured)
    }
}

/// What the conversion needs besides the issue.
pub struct Context<'a> {
    /// Connector instance name (the records' `source`).
    pub source: &'a str,
    /// The site's base URL, for browse links.
    pub base_url: &'a str,
    /// Resolved field ids.
    pub fields: &'a FieldIds,
}

/// A mapped field that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, as configured or as Jira names it.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

/// What became of one issue.
#[derive(Debug)]
pub enum Outcome {
    /// A record, with the history the changelog gives (findings).
    Record(Box<Record>, Option<SourceHistory>),
    /// Not a record (yet), on purpose: e.g. a review not completed.
    Left(&'static str),
    /// A mapped field is missing or malformed.
    Problem(Problem),
}

/// The parts of an issue the conversion reads.
pub struct IssueView<'a> {
    /// Issue key.
    pub key: &'a str,
    /// Fields by id.
    pub fields: &'a Map<String, Value>,
    /// Every history, any order.
    pub histories: &'a [History],
    /// Remote link URLs (when read).
    pub remote_links: &'a [String],
}

impl IssueView<'_> {
    fn get(&self, id: &str) -> Option<&Value> {
        self.fields.get(id).filter(|v| !v.is_null())
    }

    fn name_of(&self, id: &str) -> Option<String> {
        self.get(id)
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn time(&self, id: &str) -> Result<Option<Time>, Problem> {
        match self.get(id) {
            None => Ok(None),
            Some(Value::String(s)) => parse_jira_time(s).map(Some).map_err(|e| problem(id, e)),
            Some(other) => Err(problem(id, format!("expected a timestamp, found {other}"))),
        }
    }

    fn req_time(&self, id: &str) -> Result<Time, Problem> {
        self.time(id)?
            .ok_or_else(|| problem(id, "the field is missing"))
    }

    fn values(&self, source: &Source, ctx: &Context<'_>) -> Vec<String> {
        match source {
            Source::Priority => self.name_of("priority").into_iter().collect(),
            Source::Component => self.get("components").map(values_of).unwrap_or_default(),
            Source::Label(prefix) => self
                .get("labels")
                .map(values_of)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
                .filter(|l| !l.is_empty())
                .collect(),
            Source::Field(f) => self
                .get(ctx.fields.id(f))
                .map(values_of)
                .unwrap_or_default(),
        }
    }

    /// A configured date field: `Ok(None)` when empty, a problem when
    /// malformed.
    fn date_field(
        &self,
        configured: &str,
        ctx: &Context<'_>,
        end_of_day: bool,
    ) -> Result<Option<Time>, Problem> {
        match self.get(ctx.fields.id(configured)) {
            None => Ok(None),
            Some(Value::String(s)) => parse_date_value(s, end_of_day)
                .map(Some)
                .map_err(|e| problem(configured, e)),
            Some(other) => Err(problem(
                configured,
                format!("expected a date, found {other}"),
            )),
        }
    }

    fn resolution(&self) -> Option<String> {
        self.name_of("resolution")
    }

    fn status_name(&self) -> Option<String> {
        self.name_of("status")
    }

    fn status_done(&self) -> bool {
        self.get("status")
            .and_then(|s| s.pointer("/statusCategory/key"))
            .and_then(Value::as_str)
            == Some("done")
    }

    fn links(&self) -> Vec<(String, String)> {
        // (link type name, other issue's key)
        let mut out = Vec::new();
        if let Some(Value::Array(links)) = self.get("issuelinks") {
            for l in links {
                let ty = l
                    .pointer("/type/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                for side in ["outwardIssue", "inwardIssue"] {
                    if let Some(k) = l
                        .get(side)
                        .and_then(|i| i.get("key"))
                        .and_then(Value::as_str)
                    {
                        out.push((ty.clone(), k.to_string()));
                    }
                }
            }
        }
        out
    }
}

/// The time an issue was resolved, and where it came from: the
/// `resolutiondate`; else (real Cloud payloads lack it) the last
/// transition into a done status, or the setting of the resolution, in the
/// changelog; else `updated`.
fn resolution_time(
    m: &Mapping,
    issue: &IssueView<'_>,
) -> Result<Option<(Time, &'static str)>, Problem> {
    if issue.resolution().is_none() {
        return Ok(None);
    }
    if let Some(t) = issue.time("resolutiondate")? {
        return Ok(Some((t, "resolutiondate")));
    }
    let mut done = m.done_statuses.clone();
    if issue.status_done() {
        if let Some(s) = issue.status_name() {
            done.push(s.to_lowercase());
        }
    }
    let last = issue
        .histories
        .iter()
        .filter(|h| {
            h.items.iter().any(|i| {
                let to = i.to_string.as_deref().unwrap_or("").to_lowercase();
                (i.is_field("status", "status") && done.contains(&to))
                    || (i.is_field("resolution", "resolution") && !to.is_empty())
            })
        })
        .filter_map(History::at)
        .max();
    if let Some(t) = last {
        return Ok(Some((t, "changelog")));
    }
    Ok(Some((issue.req_time("updated")?, "updated")))
}

fn meaning(m: &Mapping, resolution: Option<&str>) -> Option<(Status, Validity)> {
    match resolution.map(str::trim).filter(|r| !r.is_empty()) {
        None => Some((Status::Open, m.unresolved_validity)),
        Some(r) => m.resolutions.get(&r.to_lowercase()).copied(),
    }
}

fn unknown_resolution(name: &str) -> Problem {
    problem(
        "resolution",
        format!(
            "resolution {name:?} is not in the resolutions table \
             (add it under [connectors.mappings.resolutions])"
        ),
    )
}

/// Convert one issue.
pub fn convert(m: &Mapping, ctx: &Context<'_>, issue: &IssueView<'_>) -> Outcome {
    match convert_inner(m, ctx, issue) {
        Ok(o) => o,
        Err(p) => Outcome::Problem(p),
    }
}

fn convert_inner(
    m: &Mapping,
    ctx: &Context<'_>,
    issue: &IssueView<'_>,
) -> Result<Outcome, Problem> {
    let url = format!(
        "{}/browse/{}",
        ctx.base_url.trim_end_matches('/'),
        issue.key
    );
    let mut extra = Map::new();
    if let Some(s) = issue.status_name() {
        extra.insert("jira_status".into(), Value::String(s));
    }
    if let Some(r) = issue.resolution() {
        extra.insert("jira_resolution".into(), Value::String(r));
    }
    let asset = asset_of(m, ctx, issue)?;
    let source = ctx.source.to_string();
    let id = issue.key.to_string();
    let resolved = resolution_time(m, issue)?;
    let note_resolved = |extra: &mut Map<String, Value>, from: &str| {
        extra.insert("resolved_at_from".into(), Value::String(from.to_string()));
    };
    let record = match m.kind {
        MappedKind::Finding => return finding(m, ctx, issue, asset, url, extra, resolved),
        MappedKind::Review => {
            let completed = matches!(
                meaning(m, issue.resolution().as_deref()),
                Some((Status::Remediated, _))
            );
            let Some((completed_at, from)) = resolved.filter(|_| completed) else {
                return Ok(Outcome::Left("review not completed"));
            };
            note_resolved(&mut extra, from);
            extra.insert("url".into(), Value::String(url));
            let review_type = match &m.review_type_from {
                None => m.review_type,
                Some(s) => {
                    let values = issue.values(s, ctx);
                    let found = values.iter().find_map(|v| {
                        let v = v.to_lowercase();
                        m.review_types
                            .get(&v)
                            .copied()
                            .or_else(|| crate::record::ReviewType::parse(&v))
                    });
                    match (found, s) {
                        (Some(t), _) => t,
                        (None, Source::Field(f)) if !values.is_empty() => {
                            return Err(problem(
                                f.as_str(),
                                format!(
                                    "{:?} is not a review type (add it under review_types)",
                                    values[0]
                                ),
                            ))
                        }
                        (None, _) => m.review_type,
                    }
                }
            };
            Record::Review(Review {
                id,
                source,
                asset,
                review_type,
                completed_at,
                extra: Extra(extra),
            })
        }
        MappedKind::ThreatModel => {
            let from_field = match &m.reviewed_at_field {
                Some(f) => issue.date_field(f, ctx, false)?,
                None => None,
            };
            let reviewed_at = match from_field {
                Some(t) => {
                    extra.insert("reviewed_at_from".into(), json!("field"));
                    t
                }
                None => {
                    let completed = matches!(
                        meaning(m, issue.resolution().as_deref()),
                        Some((Status::Remediated, _))
                    );
                    match resolved.filter(|_| completed) {
                        Some((t, from)) => {
                            note_resolved(&mut extra, from);
                            t
                        }
                        None => return Ok(Outcome::Left("threat model not reviewed yet")),
                    }
                }
            };
            extra.insert("url".into(), Value::String(url));
            Record::ThreatModel(ThreatModel {
                id,
                source,
                asset,
                reviewed_at,
                extra: Extra(extra),
            })
        }
        MappedKind::Exception => {
            let opened_at = match &m.opened_at_field {
                Some(f) => issue.date_field(f, ctx, false)?,
                None => None,
            };
            let opened_at = match opened_at {
                Some(t) => t,
                None => issue.req_time("created")?,
            };
            let expires_at = match &m.expires_at_field {
                Some(f) => issue.date_field(f, ctx, true)?,
                None => None,
            };
            let closed_at = resolved.map(|(t, from)| {
                note_resolved(&mut extra, from);
                t
            });
            let mut findings: Vec<String> = issue
                .links()
                .into_iter()
                .filter(|(ty, _)| {
                    m.link_types.is_empty() || m.link_types.contains(&ty.to_lowercase())
                })
                .map(|(_, k)| k)
                .collect();
            findings.sort();
            findings.dedup();
            let reason = match &m.reason_field {
                Some(f) => {
                    let v = issue.values(&Source::Field(f.clone()), ctx);
                    (!v.is_empty()).then(|| v.join(", "))
                }
                None => issue
                    .get("summary")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            extra.insert("url".into(), Value::String(url));
            Record::Exception(Exception {
                id,
                source,
                asset,
                opened_at,
                expires_at,
                closed_at,
                findings,
                reason,
                extra: Extra(extra),
            })
        }
        MappedKind::Release => {
            let gate_field = m.gate_field.as_deref().unwrap_or_default();
            let at = match &m.at_field {
                Some(f) => issue.date_field(f, ctx, false)?,
                None => None,
            };
            let at = match (at, resolved) {
                (Some(t), _) => t,
                (None, Some((t, from))) => {
                    note_resolved(&mut extra, from);
                    t
                }
                (None, None) => return Ok(Outcome::Left("release not released yet")),
            };
            let values = issue.values(&Source::Field(gate_field.to_string()), ctx);
            let Some(first) = values.first() else {
                return Err(problem(gate_field, "the gate outcome is missing"));
            };
            let gate = m.gates.get(&first.to_lowercase()).copied().ok_or_else(|| {
                problem(
                    gate_field,
                    format!("{first:?} is not a gate outcome (add it under gates)"),
                )
            })?;
            let reason = match &m.reason_field {
                Some(f) => {
                    let v = issue.values(&Source::Field(f.clone()), ctx);
                    (!v.is_empty()).then(|| v.join(", "))
                }
                None => None,
            };
            extra.insert("url".into(), Value::String(url));
            Record::Release(Release {
                id,
                source,
                asset,
                at,
                gate,
                reason,
                extra: Extra(extra),
            })
        }
    };
    Ok(Outcome::Record(Box::new(record), None))
}

fn source_name(s: &Source) -> &str {
    match s {
        Source::Priority => "priority",
        Source::Component => "components",
        Source::Label(_) => "labels",
        Source::Field(f) => f,
    }
}

fn asset_of(m: &Mapping, ctx: &Context<'_>, issue: &IssueView<'_>) -> Result<String, Problem> {
    let values = issue.values(&m.asset_from, ctx);
    if let Some(a) = values.iter().find_map(|v| m.assets.get(v)) {
        return Ok(a.clone());
    }
    if let Some(v) = values.into_iter().next() {
        return Ok(v);
    }
    m.asset.clone().ok_or_else(|| {
        problem(
            source_name(&m.asset_from),
            "no asset found (set `asset` for issues without one)",
        )
    })
}

/// A finding-side value (environment, domain) from its source and table.
fn pick<T: Copy>(
    issue: &IssueView<'_>,
    ctx: &Context<'_>,
    from: &Option<Source>,
    table: &BTreeMap<String, T>,
    parse: fn(&str) -> Option<T>,
    default: T,
    what: &str,
) -> Result<T, Problem> {
    let Some(source) = from else {
        return Ok(default);
    };
    let values = issue.values(source, ctx);
    let found = values.iter().find_map(|v| {
        let v = v.to_lowercase();
        table.get(&v).copied().or_else(|| parse(&v))
    });
    match (found, source) {
        (Some(t), _) => Ok(t),
        // A field holds exactly this value: one we cannot read is malformed.
        // Labels and components hold many things; unmatched ones are ignored.
        (None, Source::Field(f)) if !values.is_empty() => Err(problem(
            f.as_str(),
            format!("{:?} is not a known {what}", values[0]),
        )),
        (None, _) => Ok(default),
    }
}

fn finding(
    m: &Mapping,
    ctx: &Context<'_>,
    issue: &IssueView<'_>,
    asset: String,
    url: String,
    mut extra: Map<String, Value>,
    resolved: Option<(Time, &'static str)>,
) -> Result<Outcome, Problem> {
    let severity_field = match &m.severity_from {
        Source::Field(f) => f.clone(),
        _ => "priority".to_string(),
    };
    let sev_values = issue.values(&m.severity_from, ctx);
    let Some(sev_text) = sev_values.first() else {
        return Err(problem(severity_field, "the severity is missing"));
    };
    let severity = *m.severities.get(&sev_text.to_lowercase()).ok_or_else(|| {
        problem(
            severity_field.as_str(),
            format!("{sev_text:?} is not in the severities table (add it under severities)"),
        )
    })?;
    let environment = pick(
        issue,
        ctx,
        &m.environment_from,
        &m.environments,
        Environment::parse,
        m.default_environment,
        "environment",
    )?;
    let domain = pick(
        issue,
        ctx,
        &m.domain_from,
        &m.domains,
        Domain::parse,
        m.default_domain,
        "domain",
    )?;
    let opened_at = issue.req_time("created")?;
    let resolution = issue.resolution();
    let (status, validity) = meaning(m, resolution.as_deref())
        .ok_or_else(|| unknown_resolution(resolution.as_deref().unwrap_or_default()))?;
    let resolved_at = match (status, resolved) {
        (Status::Open, _) => None,
        (_, Some((t, from))) => {
            extra.insert("resolved_at_from".into(), Value::String(from.to_string()));
            Some(t)
        }
        (_, None) => None,
    };
    let duplicate_of = (validity == Validity::Duplicate)
        .then(|| {
            issue
                .get("issuelinks")
                .and_then(Value::as_array)
                .and_then(|links| {
                    links.iter().find_map(|l| {
                        let dup = l
                            .pointer("/type/name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.eq_ignore_ascii_case("duplicate"));
                        dup.then(|| l.pointer("/outwardIssue/key").and_then(Value::as_str))
                            .flatten()
                            .map(str::to_string)
                    })
                })
        })
        .flatten();
    let fingerprint = match &m.fingerprint_from {
        None => None,
        Some(s) => issue.values(s, ctx).into_iter().next(),
    };
    let refs = refs_of(m, ctx, issue);
    let record = Finding {
        id: issue.key.to_string(),
        source: ctx.source.to_string(),
        asset,
        title: issue
            .get("summary")
            .and_then(Value::as_str)
            .map(str::to_string),
        severity,
        environment,
        domain,
        opened_at,
        status,
        resolved_at,
        validity,
        duplicate_of,
        fingerprint,
        url: Some(url),
        refs,
        extra: Extra(extra),
    };
    let identity = Identity {
        kind: crate::record::Kind::Finding,
        source: record.source.clone(),
        id: record.id.clone(),
    };
    let history = finding_history(m, ctx, issue, identity);
    Ok(Outcome::Record(
        Box::new(Record::Finding(record)),
        Some(history),
    ))
}

/// The scanner alert URLs a ticket names: every URL of `refs_field`, and
/// URLs matching `ref_patterns` in the description and remote links.
fn refs_of(m: &Mapping, ctx: &Context<'_>, issue: &IssueView<'_>) -> Vec<String> {
    let mut refs = Vec::new();
    if let Some(f) = &m.refs_field {
        if let Some(v) = issue.get(ctx.fields.id(f)) {
            for s in values_of(v) {
                super::issue::urls_in_text(&s, &mut refs);
            }
            // An ADF (rich text) field.
            if v.is_object() {
                urls_in_description(v, &mut refs);
            }
        }
    }
    let mut candidates = Vec::new();
    if m.refs_from_description {
        if let Some(d) = issue.get("description") {
            urls_in_description(d, &mut candidates);
        }
    }
    candidates.extend(issue.remote_links.iter().cloned());
    refs.extend(
        candidates
            .into_iter()
            .filter(|u| m.ref_patterns.iter().any(|p| u.contains(p.as_str()))),
    );
    refs.sort();
    refs.dedup();
    refs
}

/// Severity, status and validity changes from the changelog, at Jira's
/// times. Values the tables cannot read are left out.
fn finding_history(
    m: &Mapping,
    ctx: &Context<'_>,
    issue: &IssueView<'_>,
    identity: Identity,
) -> SourceHistory {
    let (sev_id, sev_name) = match &m.severity_from {
        Source::Field(f) => (ctx.fields.id(f), ctx.fields.name(f)),
        _ => ("priority", "priority"),
    };
    let severity = |s: &Option<String>| -> Option<Severity> {
        s.as_deref()
            .and_then(|s| m.severities.get(&s.trim().to_lowercase()).copied())
    };
    let mut changes = Vec::new();
    for h in issue.histories {
        let Some(at) = h.at() else { continue };
        for item in &h.items {
            if item.is_field(sev_id, sev_name) {
                if let (Some(old), Some(new)) =
                    (severity(&item.from_string), severity(&item.to_string))
                {
                    if old != new {
                        changes.push(SourceChange {
                            field: Tracked::Severity,
                            old: old.as_str().into(),
                            new: new.as_str().into(),
                            at,
                        });
                    }
                }
            }
            if item.is_field("resolution", "resolution") {
                let old = meaning(m, item.from_string.as_deref());
                let new = meaning(m, item.to_string.as_deref());
                if let (Some((s0, v0)), Some((s1, v1))) = (old, new) {
                    if s0 != s1 {
                        changes.push(SourceChange {
                            field: Tracked::Status,
                            old: s0.as_str().into(),
                            new: s1.as_str().into(),
                            at,
                        });
                    }
                    if v0 != v1 {
                        changes.push(SourceChange {
                            field: Tracked::Validity,
                            old: v0.as_str().into(),
                            new: v1.as_str().into(),
                            at,
                        });
                    }
                }
            }
        }
    }
    changes.sort_by_key(|c| c.at);
    SourceHistory {
        identity,
        fields: vec![Tracked::Severity, Tracked::Status, Tracked::Validity],
        changes,
    }
}
