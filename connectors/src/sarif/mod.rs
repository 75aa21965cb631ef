//! A streaming SARIF 2.1.0 reader: results come out one by one, so a 200 MB
//! log never sits in memory as a JSON tree.
//!
//! A file is read twice. The first pass keeps what results refer to (each
//! run's tool, rules tables, artifact URIs, invocation times) and skips the
//! results; the second streams `runs[].results[]` through a serde visitor.
//! Two passes are needed because a run's `results` may come before its
//! `tool` (Semgrep writes them in that order).
//!
//! What is never kept: `region.snippet` and `contextRegion` (secret scanners
//! put the secret there) and result messages (the title comes from the rule).
//!
//! The mapping rules, in the order they apply:
//! - severity: a `kind` other than `fail` → info; else the first of these
//!   properties that holds a usable value (see [`severity`]):
//!   1. `security-severity` of the result's, then the rule's, `properties`
//!      (the standard one: a score as number or string, from 9.0 critical,
//!      from 7.0 high, from 4.0 medium, above 0 low, 0 info; or a label,
//!      as Semgrep writes `"CRITICAL"`);
//!   2. tools' own documented properties, when no standard one is there:
//!      `issue_severity` of the result, then the rule (Bandit, ShiftLeft
//!      scan); the rule's `cvssv3_baseSeverity`, else `cvssv3_baseScore`,
//!      else `cvssv2_severity`, else `cvssv2_score` (Dependency-Check); a
//!      rule tag that is a severity label in capitals (Trivy, gosec); the
//!      rule's `priority` 1 to 5 when the tool is PMD;
//!   3. the level: the result's `level`, else the rule's
//!      `defaultConfiguration.level`, else `warning` (error → high, warning
//!      → medium, note → low, none → info).
//!
//!   The finding's `extra.severity_from` names the property used;
//! - the rule: `rule.toolComponent.index` (or `.name`) into
//!   `tool.extensions[]` with `rule.index`; else `ruleIndex` or `rule.index`
//!   into `tool.driver.rules`; else `ruleId` / `rule.id` looked up by id;
//! - status: `baselineState: absent` → remediated at the run's time; else an
//!   accepted suppression (see [`SuppressionPolicy`]); else open;
//! - fingerprint: the first usable `fingerprints` entry by key (not empty,
//!   not Semgrep OSS's placeholder "requires login"); else all
//!   `partialFingerprints` with the rule id; else rule, URI, region and
//!   message; hashed to 32 hex digits. This identity is part of the
//!   finding id; the record's `fingerprint` is the location fingerprint
//!   (tool, rule, path, start line) when the result has a path, the
//!   identity otherwise.

pub mod connector;

use crate::fingerprint::{location_fingerprint, stable_hash};
use crate::record::{Domain, Environment, Extra, Finding, Severity, Status, Time, Validity};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::BufReader;
use std::path::Path;

/// A SARIF file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SarifError {
    /// The file.
    pub path: String,
    /// What is wrong (with line and column for JSON errors).
    pub message: String,
}

/// What an accepted suppression turns a result into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppressed {
    /// Status `risk_accepted`.
    RiskAccepted,
    /// Status `closed`, validity `false_positive`.
    FalsePositive,
    /// Ignore the suppression: the result stays open.
    Open,
}

/// How `suppressions[]` are read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuppressionPolicy {
    /// An accepted suppression of kind `external` (a triage decision kept
    /// outside the code). Default `risk_accepted`.
    pub external: Suppressed,
    /// An accepted suppression of kind `inSource` (an annotation in the
    /// code). Default `false_positive`.
    pub in_source: Suppressed,
    /// A suppression without `status` counts as accepted (the spec leaves it
    /// open; tools such as the SARIF SDK omit it). Default true.
    pub missing_status_accepted: bool,
}

impl Default for SuppressionPolicy {
    fn default() -> Self {
        SuppressionPolicy {
            external: Suppressed::RiskAccepted,
            in_source: Suppressed::FalsePositive,
            missing_status_accepted: true,
        }
    }
}

/// One rule, as far as results need it.
#[derive(Debug, Clone, Default)]
pub struct RuleMeta {
    /// `id`.
    pub id: Option<String>,
    /// `shortDescription.text`, else `name`.
    pub title: Option<String>,
    /// `defaultConfiguration.level`.
    pub level: Option<String>,
    /// `properties["security-severity"]`, parsed.
    pub security_severity: Option<Severity>,
    /// The severity the rule's tool-specific properties state (step 2 of
    /// the module docs), and the property's name.
    pub tool_severity: Option<(Severity, &'static str)>,
}

/// A tool component (the driver or an extension) and its rules.
#[derive(Debug, Clone, Default)]
pub struct ComponentMeta {
    /// `name`.
    pub name: Option<String>,
    /// `rules[]`.
    pub rules: Vec<RuleMeta>,
}

/// What results of one run refer to.
#[derive(Debug, Clone, Default)]
pub struct RunMeta {
    /// `tool.driver`.
    pub driver: ComponentMeta,
    /// `tool.extensions[]`.
    pub extensions: Vec<ComponentMeta>,
    /// `artifacts[].location.uri`, by index.
    pub artifacts: Vec<Option<String>>,
    /// The run's time: the latest invocation end (else start) time.
    pub time: Option<Time>,
    /// The run's category, read as GitHub code scanning reads it:
    /// `automationDetails.id` up to and including its last `/` (the rest is
    /// the run's own id), the whole id when it has no `/`.
    pub category: Option<String>,
    /// Rule id → (extension index or `None` for the driver, rule index).
    by_id: HashMap<String, (Option<usize>, usize)>,
}

impl RunMeta {
    /// The tool name (`tool.driver.name`).
    pub fn tool(&self) -> &str {
        self.driver.name.as_deref().unwrap_or("sarif")
    }

    fn index(&mut self) {
        for (i, r) in self.driver.rules.iter().enumerate() {
            if let Some(id) = &r.id {
                self.by_id.entry(id.clone()).or_insert((None, i));
            }
        }
        for (c, comp) in self.extensions.iter().enumerate() {
            for (i, r) in comp.rules.iter().enumerate() {
                if let Some(id) = &r.id {
                    self.by_id.entry(id.clone()).or_insert((Some(c), i));
                }
            }
        }
    }

    fn rule_at(&self, comp: Option<usize>, index: usize) -> Option<&RuleMeta> {
        match comp {
            None => self.driver.rules.get(index),
            Some(c) => self.extensions.get(c)?.rules.get(index),
        }
    }

    /// The rule a result refers to (see the module docs for the order).
    fn rule_of(&self, r: &ResultWire) -> Option<&RuleMeta> {
        let rule_ref = r.rule.as_ref();
        let id = r
            .rule_id
            .as_deref()
            .or(rule_ref.and_then(|x| x.id.as_deref()));
        let rule_index = rule_ref
            .and_then(|x| x.index)
            .or(r.rule_index)
            .filter(|i| *i >= 0)
            .map(|i| i as usize);
        if let Some(tc) = rule_ref.and_then(|x| x.tool_component.as_ref()) {
            let comp = tc
                .index
                .filter(|i| *i >= 0)
                .map(|i| i as usize)
                .or_else(|| {
                    let name = tc.name.as_deref()?;
                    self.extensions
                        .iter()
                        .position(|e| e.name.as_deref() == Some(name))
                });
            if let Some(c) = comp {
                if let Some(rule) = rule_index.and_then(|i| self.rule_at(Some(c), i)) {
                    return Some(rule);
                }
                if let Some(id) = id {
                    if let Some(rule) = self
                        .extensions
                        .get(c)
                        .and_then(|e| e.rules.iter().find(|x| x.id.as_deref() == Some(id)))
                    {
                        return Some(rule);
                    }
                }
            }
        }
        if let Some(rule) = rule_index.and_then(|i| self.rule_at(None, i)) {
            if id.is_none() || rule.id.is_none() || rule.id.as_deref() == id {
                return Some(rule);
            }
        }
        let (c, i) = *self.by_id.get(id?)?;
        self.rule_at(c, i)
    }
}

/// One result, converted.
#[derive(Debug, Clone, PartialEq)]
pub struct SarifResult {
    /// Index of the run in the file.
    pub run: usize,
    /// `tool.driver.name`.
    pub tool: String,
    /// The rule id.
    pub rule_id: Option<String>,
    /// The rule's short description or name, else its id.
    pub title: Option<String>,
    /// Per the rules of the module docs.
    pub severity: Severity,
    /// The property the severity came from (`security-severity`,
    /// `issue_severity`, `tags`, `level`, ...).
    pub severity_from: &'static str,
    /// Open, remediated (`absent`), risk accepted or closed (suppressed).
    pub status: Status,
    /// `false_positive` for suppressions read that way, else unverified.
    pub validity: Validity,
    /// When the status left open: the run's time.
    pub resolved_at: Option<Time>,
    /// `provenance.firstDetectionTimeUtc`, if given.
    pub first_detected: Option<Time>,
    /// The result's identity in its tool: 32 hex digits (see the module
    /// docs); part of the finding id.
    pub fingerprint: String,
    /// The cross-source fingerprint by tool, rule, path and start line
    /// ([`crate::fingerprint::location_fingerprint`]), which the same
    /// result read from a code scanning alert also has.
    pub location_fingerprint: Option<String>,
    /// The first location's URI.
    pub uri: Option<String>,
    /// The first location's start line.
    pub line: Option<u64>,
    /// The run's time (see [`RunMeta::time`]), else the fallback given.
    pub scan_time: Time,
}

// ---- wire structs: only what is used; unknown fields are skipped unread ----

#[derive(Deserialize)]
struct LogMetaWire {
    runs: Option<Vec<RunMetaWire>>,
}

#[derive(Deserialize)]
struct RunMetaWire {
    tool: Option<ToolWire>,
    invocations: Option<Vec<InvocationWire>>,
    artifacts: Option<Vec<ArtifactWire>>,
    #[serde(rename = "automationDetails")]
    automation_details: Option<AutomationWire>,
}

#[derive(Deserialize)]
struct AutomationWire {
    id: Option<String>,
}

#[derive(Deserialize)]
struct ToolWire {
    driver: Option<ComponentWire>,
    extensions: Option<Vec<ComponentWire>>,
}

#[derive(Deserialize)]
struct ComponentWire {
    name: Option<String>,
    rules: Option<Vec<RuleWire>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleWire {
    id: Option<String>,
    name: Option<String>,
    short_description: Option<MessageWire>,
    default_configuration: Option<DefaultConfigWire>,
    properties: Option<PropsWire>,
}

#[derive(Deserialize)]
struct DefaultConfigWire {
    level: Option<String>,
}

/// `properties` of a rule or result: the standard `security-severity` and
/// the tools' own severity properties (see the module docs).
#[derive(Deserialize, Default)]
struct PropsWire {
    #[serde(rename = "security-severity")]
    security_severity: Option<Value>,
    issue_severity: Option<Value>,
    #[serde(rename = "cvssv3_baseSeverity")]
    cvssv3_base_severity: Option<Value>,
    #[serde(rename = "cvssv3_baseScore")]
    cvssv3_base_score: Option<Value>,
    cvssv2_severity: Option<Value>,
    cvssv2_score: Option<Value>,
    tags: Option<Vec<Value>>,
    priority: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationWire {
    start_time_utc: Option<String>,
    end_time_utc: Option<String>,
}

#[derive(Deserialize)]
struct ArtifactWire {
    location: Option<ArtifactLocationWire>,
}

#[derive(Deserialize)]
struct MessageWire {
    text: Option<String>,
    id: Option<String>,
    arguments: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultWire {
    rule_id: Option<String>,
    rule_index: Option<i64>,
    rule: Option<RuleRefWire>,
    kind: Option<String>,
    level: Option<String>,
    message: Option<MessageWire>,
    locations: Option<Vec<LocationWire>>,
    fingerprints: Option<BTreeMap<String, Value>>,
    partial_fingerprints: Option<BTreeMap<String, Value>>,
    suppressions: Option<Vec<SuppressionWire>>,
    baseline_state: Option<String>,
    properties: Option<PropsWire>,
    provenance: Option<ProvenanceWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleRefWire {
    id: Option<String>,
    index: Option<i64>,
    tool_component: Option<ComponentRefWire>,
}

#[derive(Deserialize)]
struct ComponentRefWire {
    index: Option<i64>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationWire {
    physical_location: Option<PhysicalLocationWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocationWire {
    artifact_location: Option<ArtifactLocationWire>,
    // No `contextRegion`, and `Region` has no `snippet`: never read.
    region: Option<RegionWire>,
}

#[derive(Deserialize)]
struct ArtifactLocationWire {
    uri: Option<String>,
    index: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegionWire {
    start_line: Option<u64>,
    start_column: Option<u64>,
    end_line: Option<u64>,
    end_column: Option<u64>,
}

#[derive(Deserialize)]
struct SuppressionWire {
    kind: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProvenanceWire {
    first_detection_time_utc: Option<String>,
}

fn score(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// Severity from a severity label, as tools write it in properties
/// (`CRITICAL`, `High`, `moderate`, `informational`, ...); `None` for
/// anything else (`UNKNOWN` included).
pub fn severity_from_label(label: &str) -> Option<Severity> {
    match label.trim().to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        "medium" | "moderate" => Some(Severity::Medium),
        "low" => Some(Severity::Low),
        "info" | "informational" | "information" | "none" | "negligible" => Some(Severity::Info),
        _ => None,
    }
}

/// A `security-severity` value: a score (number or numeric string) or a
/// label.
fn standard_severity(v: &Value) -> Option<Severity> {
    match v {
        Value::String(s) if s.trim().parse::<f64>().is_err() => severity_from_label(s),
        other => score(other).map(severity_from_score),
    }
}

/// A label property (`issue_severity`, `cvssv2_severity`, ...).
fn label_severity(v: &Value) -> Option<Severity> {
    v.as_str().and_then(severity_from_label)
}

/// A CVSS v2 score: v2 has no critical band (7.0 and up is high).
fn cvss2_severity(v: &Value) -> Option<Severity> {
    score(v).map(|s| match severity_from_score(s) {
        Severity::Critical => Severity::High,
        other => other,
    })
}

/// PMD's rule priority: 1 high, 2 and 3 medium, 4 and 5 low.
fn pmd_priority(v: &Value) -> Option<Severity> {
    match score(v)? as i64 {
        1 => Some(Severity::High),
        2 | 3 => Some(Severity::Medium),
        4 | 5 => Some(Severity::Low),
        _ => None,
    }
}

/// The severity a rule's tool-specific properties state (step 2 of the
/// module docs), after the result's own `issue_severity`.
fn rule_tool_severity(p: &PropsWire, tool: Option<&str>) -> Option<(Severity, &'static str)> {
    if let Some(s) = p.issue_severity.as_ref().and_then(label_severity) {
        return Some((s, "issue_severity"));
    }
    if let Some(s) = p.cvssv3_base_severity.as_ref().and_then(label_severity) {
        return Some((s, "cvssv3_baseSeverity"));
    }
    if let Some(s) = p.cvssv3_base_score.as_ref().and_then(score) {
        return Some((severity_from_score(s), "cvssv3_baseScore"));
    }
    if let Some(s) = p.cvssv2_severity.as_ref().and_then(label_severity) {
        return Some((s, "cvssv2_severity"));
    }
    if let Some(s) = p.cvssv2_score.as_ref().and_then(cvss2_severity) {
        return Some((s, "cvssv2_score"));
    }
    // Only a tag in capitals: lower-case tags name other things
    // (`security`, a precision).
    if let Some(s) = p.tags.iter().flatten().find_map(|t| {
        let t = t.as_str()?;
        (t.chars().all(|c| c.is_ascii_uppercase()) && t != "NONE")
            .then(|| severity_from_label(t))
            .flatten()
    }) {
        return Some((s, "tags"));
    }
    if tool.is_some_and(|t| t.eq_ignore_ascii_case("pmd")) {
        if let Some(s) = p.priority.as_ref().and_then(pmd_priority) {
            return Some((s, "priority"));
        }
    }
    None
}

/// Severity from a `security-severity` score.
pub fn severity_from_score(score: f64) -> Severity {
    if score >= 9.0 {
        Severity::Critical
    } else if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else if score > 0.0 {
        Severity::Low
    } else {
        Severity::Info
    }
}

/// Severity from a SARIF level (`None` for an unknown level).
pub fn severity_from_level(level: &str) -> Option<Severity> {
    match level {
        "error" => Some(Severity::High),
        "warning" => Some(Severity::Medium),
        "note" => Some(Severity::Low),
        "none" => Some(Severity::Info),
        _ => None,
    }
}

fn parse_opt_time(v: Option<&str>) -> Option<Time> {
    v.and_then(|t| crate::ndjson::parse_time(t).ok())
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The severity of a result and the property it came from, in the order
/// of the module docs.
fn severity(meta: &RunMeta, rule: Option<&RuleMeta>, r: &ResultWire) -> (Severity, &'static str) {
    if r.kind.as_deref().is_some_and(|k| k != "fail") {
        return (Severity::Info, "kind");
    }
    let props = r.properties.as_ref();
    if let Some(s) = props
        .and_then(|p| p.security_severity.as_ref())
        .and_then(standard_severity)
        .or_else(|| rule.and_then(|x| x.security_severity))
    {
        return (s, "security-severity");
    }
    if let Some(s) = props
        .and_then(|p| p.issue_severity.as_ref())
        .and_then(label_severity)
    {
        return (s, "issue_severity");
    }
    if let Some(found) = rule.and_then(|x| x.tool_severity) {
        return found;
    }
    let level = r
        .level
        .as_deref()
        .or_else(|| rule.and_then(|x| x.level.as_deref()))
        .unwrap_or("warning");
    let s = severity_from_level(level).unwrap_or_else(|| {
        tracing::warn!(
            tool = meta.tool(),
            level,
            "unknown SARIF level; counted as warning"
        );
        Severity::Medium
    });
    (s, "level")
}

fn convert(
    meta: &RunMeta,
    run: usize,
    r: ResultWire,
    policy: &SuppressionPolicy,
    fallback: Time,
) -> SarifResult {
    let rule = meta.rule_of(&r);
    let rule_id = r
        .rule_id
        .clone()
        .or_else(|| r.rule.as_ref().and_then(|x| x.id.clone()))
        .or_else(|| rule.and_then(|x| x.id.clone()));
    let scan_time = meta.time.unwrap_or(fallback);
    let (severity, severity_from) = severity(meta, rule, &r);
    let (status, validity, resolved_at) = if r.baseline_state.as_deref() == Some("absent") {
        (Status::Remediated, Validity::Unverified, Some(scan_time))
    } else {
        let accepted = r
            .suppressions
            .iter()
            .flatten()
            .find(|s| match s.status.as_deref() {
                Some("accepted") => true,
                None => policy.missing_status_accepted,
                Some(_) => false,
            });
        let how = accepted.map(|s| match s.kind.as_deref() {
            Some("inSource") => policy.in_source,
            _ => policy.external,
        });
        match how {
            Some(Suppressed::RiskAccepted) => {
                (Status::RiskAccepted, Validity::Unverified, Some(scan_time))
            }
            Some(Suppressed::FalsePositive) => {
                (Status::Closed, Validity::FalsePositive, Some(scan_time))
            }
            Some(Suppressed::Open) | None => (Status::Open, Validity::Unverified, None),
        }
    };
    let loc = r
        .locations
        .as_ref()
        .and_then(|l| l.first())
        .and_then(|l| l.physical_location.as_ref());
    let uri = loc
        .and_then(|p| p.artifact_location.as_ref())
        .and_then(|a| {
            a.uri.clone().or_else(|| {
                let i = usize::try_from(a.index?).ok()?;
                meta.artifacts.get(i).cloned().flatten()
            })
        });
    let region = loc.and_then(|p| p.region.as_ref());
    let line = region.and_then(|g| g.start_line);
    let rid = rule_id.as_deref().unwrap_or("");
    let usable = |v: &Value| {
        let t = value_text(v);
        // Semgrep OSS writes the placeholder "requires login" for every
        // result: it identifies nothing.
        !(t.trim().is_empty() || t == "requires login")
    };
    let fingerprint = if let Some((k, v)) = r
        .fingerprints
        .as_ref()
        .and_then(|f| f.iter().find(|(_, v)| usable(v)))
    {
        stable_hash(&["f", k, &value_text(v)])
    } else if let Some(p) = r.partial_fingerprints.as_ref().filter(|p| !p.is_empty()) {
        let mut parts: Vec<String> = vec!["p".into(), rid.to_string()];
        for (k, v) in p {
            parts.push(format!("{k}={}", value_text(v)));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        stable_hash(&refs)
    } else {
        let g = region.map(|g| {
            format!(
                "{}:{}-{}:{}",
                g.start_line.unwrap_or(0),
                g.start_column.unwrap_or(0),
                g.end_line.unwrap_or(0),
                g.end_column.unwrap_or(0)
            )
        });
        let msg = r
            .message
            .as_ref()
            .map(|m| match (&m.text, &m.id) {
                (Some(t), _) => t.clone(),
                (None, Some(id)) => {
                    let args: Vec<String> = m.arguments.iter().flatten().map(value_text).collect();
                    format!("{id}({})", args.join(","))
                }
                _ => String::new(),
            })
            .unwrap_or_default();
        stable_hash(&[
            "h",
            rid,
            uri.as_deref().unwrap_or(""),
            g.as_deref().unwrap_or(""),
            &msg,
        ])
    };
    let location_fingerprint = uri
        .as_deref()
        .and_then(|u| location_fingerprint(meta.tool(), rid, u, line));
    SarifResult {
        run,
        tool: meta.tool().to_string(),
        location_fingerprint,
        title: rule
            .and_then(|x| x.title.clone())
            .or_else(|| rule_id.clone()),
        rule_id,
        severity,
        severity_from,
        status,
        validity,
        resolved_at,
        first_detected: r
            .provenance
            .as_ref()
            .and_then(|p| parse_opt_time(p.first_detection_time_utc.as_deref())),
        fingerprint,
        uri,
        line,
        scan_time,
    }
}

/// The category of an `automationDetails.id`: up to and including the last
/// `/`, else the whole id; `None` when empty.
pub fn category_of(id: &str) -> Option<String> {
    let c = match id.rfind('/') {
        Some(i) => &id[..=i],
        None => id,
    };
    (!c.is_empty()).then(|| c.to_string())
}

/// A tool component's metadata; `tool` is the driver's name (tools'
/// own severity properties are read by tool).
fn component(c: ComponentWire, tool: Option<&str>) -> ComponentMeta {
    ComponentMeta {
        name: c.name,
        rules: c
            .rules
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let props = r.properties.unwrap_or_default();
                RuleMeta {
                    title: r.short_description.and_then(|d| d.text).or(r.name),
                    id: r.id,
                    level: r.default_configuration.and_then(|d| d.level),
                    security_severity: props.security_severity.as_ref().and_then(standard_severity),
                    tool_severity: rule_tool_severity(&props, tool),
                }
            })
            .collect(),
    }
}

/// An opened SARIF file whose run metadata has been read (first pass).
#[derive(Debug)]
pub struct SarifFile {
    path: std::path::PathBuf,
    /// One entry per run.
    pub runs: Vec<RunMeta>,
    /// The file's bytes, when it was small enough to be kept: the results
    /// pass then parses from memory, about twice as fast as from a reader.
    data: Option<Vec<u8>>,
}

/// Files up to this size are read whole into memory for the metadata pass
/// (parsing a slice is about twice as fast as parsing a reader); larger
/// ones stream from disk, so memory stays bounded whatever a scanner writes.
pub const IN_MEMORY_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Files up to this size keep their bytes for the results pass too. A
/// larger file's bytes are dropped after the metadata pass and its results
/// stream from disk: the bytes would otherwise sit in memory beside the
/// store's pages for the whole import (a 130 MB file: 310 MB peak instead
/// of 170 MB, for 0.8 s less).
pub const RESULTS_IN_MEMORY_MAX_BYTES: u64 = 32 * 1024 * 1024;

fn open(path: &Path) -> Result<BufReader<std::fs::File>, SarifError> {
    std::fs::File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|e| SarifError {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

impl SarifFile {
    /// Read the run metadata of `path` (results are skipped).
    pub fn open(path: &Path) -> Result<SarifFile, SarifError> {
        let io = |e: std::io::Error| SarifError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let not_sarif = |e: serde_json::Error| SarifError {
            path: path.display().to_string(),
            message: format!("not a SARIF log: {e}"),
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        let (log, data): (LogMetaWire, _) = if size <= IN_MEMORY_MAX_BYTES {
            let data = std::fs::read(path).map_err(io)?;
            (
                serde_json::from_slice(&data).map_err(not_sarif)?,
                Some(data),
            )
        } else {
            (
                serde_json::from_reader(open(path)?).map_err(not_sarif)?,
                None,
            )
        };
        let runs = log
            .runs
            .unwrap_or_default()
            .into_iter()
            .map(|run| {
                let tool = run.tool.unwrap_or(ToolWire {
                    driver: None,
                    extensions: None,
                });
                let time = run
                    .invocations
                    .iter()
                    .flatten()
                    .filter_map(|i| {
                        parse_opt_time(i.end_time_utc.as_deref())
                            .or_else(|| parse_opt_time(i.start_time_utc.as_deref()))
                    })
                    .max();
                let tool_name = tool.driver.as_ref().and_then(|d| d.name.clone());
                let mut meta = RunMeta {
                    driver: tool
                        .driver
                        .map(|d| component(d, tool_name.as_deref()))
                        .unwrap_or_default(),
                    extensions: tool
                        .extensions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| component(c, tool_name.as_deref()))
                        .collect(),
                    artifacts: run
                        .artifacts
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| a.location.and_then(|l| l.uri))
                        .collect(),
                    time,
                    category: run
                        .automation_details
                        .and_then(|a| a.id)
                        .and_then(|id| category_of(&id)),
                    by_id: HashMap::new(),
                };
                meta.index();
                meta
            })
            .collect();
        Ok(SarifFile {
            path: path.to_path_buf(),
            runs,
            data: data.filter(|_| size <= RESULTS_IN_MEMORY_MAX_BYTES),
        })
    }

    /// Stream every result (second pass), converted, to `on_result`; an
    /// error from it stops the read and is returned. `fallback_time` is the
    /// scan time of runs that carry no invocation time. Returns the number
    /// of results read.
    pub fn results<E>(
        &self,
        policy: &SuppressionPolicy,
        fallback_time: Time,
        mut on_result: impl FnMut(SarifResult) -> Result<(), E>,
    ) -> Result<u64, ReadError<E>> {
        let mut stopped: Option<E> = None;
        let mut count = 0u64;
        let mut cb = |run: usize, r: ResultWire| -> bool {
            let Some(meta) = self.runs.get(run) else {
                return true;
            };
            count += 1;
            match on_result(convert(meta, run, r, policy, fallback_time)) {
                Ok(()) => true,
                Err(e) => {
                    stopped = Some(e);
                    false
                }
            }
        };
        let res = match &self.data {
            Some(data) => {
                LogSeed { on: &mut cb }.deserialize(&mut serde_json::Deserializer::from_slice(data))
            }
            None => {
                let reader = open(&self.path).map_err(ReadError::Sarif)?;
                LogSeed { on: &mut cb }
                    .deserialize(&mut serde_json::Deserializer::from_reader(reader))
            }
        };
        if let Some(e) = stopped {
            return Err(ReadError::Stopped(e));
        }
        res.map_err(|e| {
            ReadError::Sarif(SarifError {
                path: self.path.display().to_string(),
                message: format!("a result cannot be read: {e}"),
            })
        })?;
        Ok(count)
    }
}

/// Why [`SarifFile::results`] stopped.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The file is unreadable or malformed.
    Sarif(SarifError),
    /// The callback returned this error.
    Stopped(E),
}

/// Read every result of `path` (both passes).
pub fn read_results<E>(
    path: &Path,
    policy: &SuppressionPolicy,
    fallback_time: Time,
    on_result: impl FnMut(SarifResult) -> Result<(), E>,
) -> Result<u64, ReadError<E>> {
    SarifFile::open(path)
        .map_err(ReadError::Sarif)?
        .results(policy, fallback_time, on_result)
}

/// Where imported findings belong.
#[derive(Debug, Clone)]
pub struct FindingContext {
    /// `source` of the records.
    pub source: String,
    /// The asset of every finding.
    pub asset: String,
    /// Their environment.
    pub environment: Environment,
}

/// A finding id: asset, tool and fingerprint (an `#n` suffix tells apart
/// identical results of one scan).
pub fn finding_id(asset: &str, tool: &str, fingerprint: &str, occurrence: u32) -> String {
    if occurrence <= 1 {
        format!("{asset}:{tool}:{fingerprint}")
    } else {
        format!("{asset}:{tool}:{fingerprint}#{occurrence}")
    }
}

/// Counts results per (tool, fingerprint) within one scan, 16 bytes a key,
/// so identical results get distinct ids.
#[derive(Debug, Default)]
pub struct Occurrences(HashMap<u128, u32>);

impl Occurrences {
    /// The occurrence number (1-based) of this result of `tool` with `fingerprint`.
    pub fn next(&mut self, tool: &str, fingerprint: &str) -> u32 {
        let key = u128::from_str_radix(&stable_hash(&[tool, fingerprint]), 16).unwrap_or_default();
        let n = self.0.entry(key).or_insert(0);
        *n += 1;
        *n
    }
}

/// Turn a converted result into a `finding` record.
pub fn to_finding(ctx: &FindingContext, r: &SarifResult, id: String, opened_at: Time) -> Finding {
    let mut extra = serde_json::Map::new();
    extra.insert("tool".into(), Value::String(r.tool.clone()));
    if let Some(rule) = &r.rule_id {
        extra.insert("rule".into(), Value::String(rule.clone()));
    }
    extra.insert(
        "severity_from".into(),
        Value::String(r.severity_from.to_string()),
    );
    if let Some(uri) = &r.uri {
        let loc = match r.line {
            Some(l) => format!("{uri}:{l}"),
            None => uri.clone(),
        };
        extra.insert("location".into(), Value::String(loc));
    }
    Finding {
        id,
        source: ctx.source.clone(),
        asset: ctx.asset.clone(),
        title: r.title.clone(),
        severity: r.severity,
        environment: ctx.environment,
        domain: Domain::Application,
        opened_at,
        status: r.status,
        resolved_at: r.resolved_at,
        validity: r.validity,
        duplicate_of: None,
        // The location fingerprint when there is one: the same result seen
        // by code scanning has it too, so the two link.
        fingerprint: Some(
            r.location_fingerprint
                .clone()
                .unwrap_or_else(|| r.fingerprint.clone()),
        ),
        url: None,
        refs: Vec::new(),
        extra: Extra(extra),
    }
}

/// Import one SARIF file as findings of one asset, without scan-to-scan
/// state (what `secmetrics import --format sarif` does). `opened_at` is
/// the result's first detection time, else the run's time, else
/// `fallback_time`.
pub fn import_file<E>(
    path: &Path,
    ctx: &FindingContext,
    policy: &SuppressionPolicy,
    fallback_time: Time,
    mut on_finding: impl FnMut(Finding) -> Result<(), E>,
) -> Result<u64, ReadError<E>> {
    let mut seen = Occurrences::default();
    read_results(path, policy, fallback_time, |r| {
        let n = seen.next(&r.tool, &r.fingerprint);
        let id = finding_id(&ctx.asset, &r.tool, &r.fingerprint, n);
        let opened = r.first_detected.unwrap_or(r.scan_time);
        on_finding(to_finding(ctx, &r, id, opened))
    })
}

// ---- the streaming second pass ----

type OnResult<'a> = &'a mut dyn FnMut(usize, ResultWire) -> bool;

struct LogSeed<'a> {
    on: OnResult<'a>,
}

impl<'de> DeserializeSeed<'de> for LogSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SARIF log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let on = self.on;
        while let Some(key) = map.next_key::<String>()? {
            if key == "runs" {
                map.next_value_seed(RunsSeed { on: &mut *on })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct RunsSeed<'a> {
    on: OnResult<'a>,
}

impl<'de> DeserializeSeed<'de> for RunsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RunsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of runs")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let on = self.on;
        let mut index = 0;
        while seq
            .next_element_seed(RunSeed {
                index,
                on: &mut *on,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }
}

struct RunSeed<'a> {
    index: usize,
    on: OnResult<'a>,
}

impl<'de> DeserializeSeed<'de> for RunSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RunSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SARIF run object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let on = self.on;
        while let Some(key) = map.next_key::<String>()? {
            if key == "results" {
                map.next_value_seed(ResultsSeed {
                    index: self.index,
                    on: &mut *on,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ResultsSeed<'a> {
    index: usize,
    on: OnResult<'a>,
}

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of results")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(r) = seq.next_element::<ResultWire>()? {
            if !(self.on)(self.index, r) {
                return Err(serde::de::Error::custom("stopped by the caller"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_map_to_severities() {
        assert_eq!(severity_from_score(9.0), Severity::Critical);
        assert_eq!(severity_from_score(8.9), Severity::High);
        assert_eq!(severity_from_score(7.0), Severity::High);
        assert_eq!(severity_from_score(4.0), Severity::Medium);
        assert_eq!(severity_from_score(0.1), Severity::Low);
        assert_eq!(severity_from_score(0.0), Severity::Info);
    }

    #[test]
    fn placeholder_fingerprints_do_not_merge_distinct_results() {
        let dir = std::env::temp_dir().join(format!("sarif-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("semgrep.sarif");
        let result = |line: u32| {
            format!(
                r#"{{"ruleId":"r","fingerprints":{{"matchBasedId/v1":"requires login"}},"message":{{"text":"m"}},
                    "locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"a.py"}},"region":{{"startLine":{line}}}}}}}]}}"#
            )
        };
        std::fs::write(
            &p,
            format!(
                r#"{{"version":"2.1.0","runs":[{{"results":[{},{}],"tool":{{"driver":{{"name":"Semgrep OSS"}}}}}}]}}"#,
                result(1),
                result(2)
            ),
        )
        .unwrap();
        let mut fps = Vec::new();
        read_results(&p, &SuppressionPolicy::default(), chrono::Utc::now(), |r| {
            fps.push(r.fingerprint);
            Ok::<(), ()>(())
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(fps.len(), 2);
        assert_ne!(fps[0], fps[1]);
    }

    #[test]
    fn category_is_the_automation_id_up_to_its_last_slash() {
        assert_eq!(
            category_of("my-analysis/tool1/2022-01-02").as_deref(),
            Some("my-analysis/tool1/")
        );
        assert_eq!(
            category_of("/language:python/").as_deref(),
            Some("/language:python/")
        );
        assert_eq!(category_of("nightly").as_deref(), Some("nightly"));
        assert_eq!(category_of(""), None);
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(&["a", "b"]), stable_hash(&["a", "b"]));
        assert_ne!(stable_hash(&["ab", ""]), stable_hash(&["a", "b"]));
        assert_eq!(stable_hash(&[""]).len(), 32);
    }

    /// Write `runs` as a SARIF file and read its results' (rule, severity,
    /// property) triples.
    fn severities(name: &str, runs: Value) -> Vec<(String, Severity, &'static str)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            serde_json::json!({"version": "2.1.0", "runs": runs}).to_string(),
        )
        .unwrap();
        let mut out = Vec::new();
        read_results(&p, &SuppressionPolicy::default(), chrono::Utc::now(), |r| {
            out.push((r.rule_id.unwrap_or_default(), r.severity, r.severity_from));
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    fn rule(id: &str, props: Value) -> Value {
        serde_json::json!({"id": id, "properties": props})
    }

    fn result(id: &str, extra: Value) -> Value {
        let mut r = serde_json::json!({"ruleId": id, "message": {"text": id},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.go"}, "region": {"startLine": 3}}}]});
        if let (Some(o), Value::Object(e)) = (r.as_object_mut(), extra) {
            o.extend(e);
        }
        r
    }

    #[test]
    fn text_security_severity_and_tool_properties_are_read_in_the_documented_order() {
        use serde_json::json;
        let run = |tool: &str, rules: Vec<Value>, results: Vec<Value>| json!({"tool": {"driver": {"name": tool, "rules": rules}}, "results": results});
        let got = severities(
            "mixed.sarif",
            json!([
                // Semgrep: labels in `security-severity`.
                run(
                    "Semgrep OSS",
                    vec![
                        rule("s1", json!({"security-severity": "CRITICAL"})),
                        rule("s2", json!({"security-severity": "Medium"})),
                        rule("s3", json!({"security-severity": "8.1"}))
                    ],
                    vec![
                        result("s1", json!({})),
                        result("s2", json!({})),
                        result("s3", json!({}))
                    ]
                ),
                // Trivy and gosec: a severity tag in capitals; the standard
                // property wins when both are there.
                run(
                    "Trivy",
                    vec![
                        rule("t1", json!({"tags": ["vulnerability", "security", "HIGH"]})),
                        rule(
                            "t2",
                            json!({"tags": ["security", "CRITICAL"], "security-severity": "5.3"})
                        ),
                        rule("t3", json!({"tags": ["security", "low"]}))
                    ],
                    vec![
                        result("t1", json!({})),
                        result("t2", json!({})),
                        result("t3", json!({"level": "error"}))
                    ]
                ),
                // Dependency-Check: v3 label, v3 score, v2 label, v2 score.
                run(
                    "dependency-check",
                    vec![
                        rule(
                            "d1",
                            json!({"cvssv3_baseSeverity": "CRITICAL", "cvssv2_severity": "HIGH"})
                        ),
                        rule("d2", json!({"cvssv3_baseScore": 7.5})),
                        rule(
                            "d3",
                            json!({"cvssv2_severity": "MEDIUM", "cvssv2_score": 9.3})
                        ),
                        rule("d4", json!({"cvssv2_score": 9.3}))
                    ],
                    vec![
                        result("d1", json!({"level": "warning"})),
                        result("d2", json!({"level": "warning"})),
                        result("d3", json!({"level": "warning"})),
                        result("d4", json!({"level": "warning"}))
                    ]
                ),
                // PMD: rule priority (only for PMD).
                run(
                    "PMD",
                    vec![
                        rule("p1", json!({"priority": 1})),
                        rule("p3", json!({"priority": 3})),
                        rule("p5", json!({"priority": 5}))
                    ],
                    vec![
                        result("p1", json!({})),
                        result("p3", json!({})),
                        result("p5", json!({}))
                    ]
                ),
                run(
                    "other",
                    vec![rule("o1", json!({"priority": 1}))],
                    vec![result("o1", json!({"level": "note"}))]
                ),
                // Bandit / ShiftLeft: the result's `issue_severity`.
                run(
                    "Bandit",
                    vec![rule("b1", json!({}))],
                    vec![result(
                        "b1",
                        json!({"level": "error", "properties": {"issue_severity": "LOW"}})
                    )]
                ),
                // A label nobody knows falls through to the level.
                run(
                    "x",
                    vec![rule(
                        "u1",
                        json!({"security-severity": "UNKNOWN", "tags": ["UNKNOWN"]})
                    )],
                    vec![result("u1", json!({"level": "note"}))]
                ),
            ]),
        );
        use Severity::*;
        let want: Vec<(String, Severity, &str)> = [
            ("s1", Critical, "security-severity"),
            ("s2", Medium, "security-severity"),
            ("s3", High, "security-severity"),
            ("t1", High, "tags"),
            ("t2", Medium, "security-severity"),
            ("t3", High, "level"),
            ("d1", Critical, "cvssv3_baseSeverity"),
            ("d2", High, "cvssv3_baseScore"),
            ("d3", Medium, "cvssv2_severity"),
            ("d4", High, "cvssv2_score"),
            ("p1", High, "priority"),
            ("p3", Medium, "priority"),
            ("p5", Low, "priority"),
            ("o1", Low, "level"),
            ("b1", Low, "issue_severity"),
            ("u1", Low, "level"),
        ]
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), b, c))
        .collect();
        assert_eq!(got, want);
    }
}
