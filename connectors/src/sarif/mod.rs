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
//! - severity: a `kind` other than `fail` → info; else `security-severity`
//!   of the result's, then the rule's, `properties` (string or number; from
//!   9.0 critical, from 7.0 high, from 4.0 medium, above 0 low, 0 info);
//!   else the level: the result's `level`, else the rule's
//!   `defaultConfiguration.level`, else `warning` (error → high, warning →
//!   medium, note → low, none → info);
//! - the rule: `rule.toolComponent.index` (or `.name`) into
//!   `tool.extensions[]` with `rule.index`; else `ruleIndex` or `rule.index`
//!   into `tool.driver.rules`; else `ruleId` / `rule.id` looked up by id;
//! - status: `baselineState: absent` → remediated at the run's time; else an
//!   accepted suppression (see [`SuppressionPolicy`]); else open;
//! - fingerprint: the first usable `fingerprints` entry by key (not empty,
//!   not Semgrep OSS's placeholder "requires login"); else all
//!   `partialFingerprints` with the rule id; else rule, URI, region and
//!   message; hashed to 32 hex digits.

pub mod connector;

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
    pub security_severity: Option<f64>,
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
    /// Open, remediated (`absent`), risk accepted or closed (suppressed).
    pub status: Status,
    /// `false_positive` for suppressions read that way, else unverified.
    pub validity: Validity,
    /// When the status left open: the run's time.
    pub resolved_at: Option<Time>,
    /// `provenance.firstDetectionTimeUtc`, if given.
    pub first_detected: Option<Time>,
    /// 32 hex digits.
    pub fingerprint: String,
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

#[derive(Deserialize)]
struct PropsWire {
    #[serde(rename = "security-severity")]
    security_severity: Option<Value>,
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

/// A 128-bit FNV-1a hash as 32 hex digits: stable across builds and
/// platforms, unlike `std`'s hasher.
pub fn stable_hash(parts: &[&str]) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    const P: u128 = 0x0000000001000000000000000000013B;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(P);
        }
        for b in part.bytes() {
            h ^= u128::from(b);
            h = h.wrapping_mul(P);
        }
    }
    format!("{h:032x}")
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
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
    let severity = if r.kind.as_deref().is_some_and(|k| k != "fail") {
        Severity::Info
    } else if let Some(s) = r
        .properties
        .as_ref()
        .and_then(|p| p.security_severity.as_ref())
        .and_then(score)
        .or_else(|| rule.and_then(|x| x.security_severity))
    {
        severity_from_score(s)
    } else {
        let level = r
            .level
            .as_deref()
            .or_else(|| rule.and_then(|x| x.level.as_deref()))
            .unwrap_or("warning");
        severity_from_level(level).unwrap_or_else(|| {
            tracing::warn!(level, "unknown SARIF level; counted as warning");
            Severity::Medium
        })
    };
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
    SarifResult {
        run,
        tool: meta.tool().to_string(),
        title: rule
            .and_then(|x| x.title.clone())
            .or_else(|| rule_id.clone()),
        rule_id,
        severity,
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

fn component(c: ComponentWire) -> ComponentMeta {
    ComponentMeta {
        name: c.name,
        rules: c
            .rules
            .unwrap_or_default()
            .into_iter()
            .map(|r| RuleMeta {
                title: r.short_description.and_then(|d| d.text).or(r.name),
                id: r.id,
                level: r.default_configuration.and_then(|d| d.level),
                security_severity: r
                    .properties
                    .and_then(|p| p.security_severity)
                    .as_ref()
                    .and_then(score),
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
}

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
        let reader = open(path)?;
        let log: LogMetaWire = serde_json::from_reader(reader).map_err(|e| SarifError {
            path: path.display().to_string(),
            message: format!("not a SARIF log: {e}"),
        })?;
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
                let mut meta = RunMeta {
                    driver: tool.driver.map(component).unwrap_or_default(),
                    extensions: tool
                        .extensions
                        .unwrap_or_default()
                        .into_iter()
                        .map(component)
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
        let reader = open(&self.path).map_err(ReadError::Sarif)?;
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
        let mut de = serde_json::Deserializer::from_reader(reader);
        let res = LogSeed { on: &mut cb }.deserialize(&mut de);
        if let Some(e) = stopped {
            return Err(ReadError::Stopped(e));
        }
        res.map_err(|e| {
            ReadError::Sarif(SarifError {
                path: self.path.display().to_string(),
                message: format!("not a SARIF log: {e}"),
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
        fingerprint: Some(r.fingerprint.clone()),
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
}
