//! One `[[connectors.mappings]]` table of the `jira` connector: which issues
//! (a JQL query) become which record kind, and how fields, values and
//! resolutions translate. Validated into a [`Mapping`] when the connector is
//! built, so a typo shows at `secmetrics check`, not at the first sync.

use crate::record::{Domain, Environment, Gate, Kind, ReviewType, Severity, Status, Validity};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The record kinds a Jira mapping can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappedKind {
    /// Vulnerability tickets.
    Finding,
    /// Completed design or security reviews.
    Review,
    /// Threat models.
    ThreatModel,
    /// Risk acceptances and waivers.
    Exception,
    /// Releases and their security gate.
    Release,
}

impl MappedKind {
    /// The record kind.
    pub fn kind(self) -> Kind {
        match self {
            MappedKind::Finding => Kind::Finding,
            MappedKind::Review => Kind::Review,
            MappedKind::ThreatModel => Kind::ThreatModel,
            MappedKind::Exception => Kind::Exception,
            MappedKind::Release => Kind::Release,
        }
    }
}

/// What a resolution means for a finding.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionMeaning {
    /// `open`, `remediated`, `mitigated`, `risk_accepted` or `closed`.
    pub status: String,
    /// `valid`, `unverified`, `false_positive`, `duplicate` or `invalid`.
    pub validity: String,
}

/// Settings of one mapping, as written in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSettings {
    /// The record kind: `finding`, `review`, `threat_model`, `exception` or
    /// `release`.
    pub record: MappedKind,
    /// The issues, as JQL without `ORDER BY` (the connector adds
    /// `updated >= …` and `ORDER BY updated ASC, key ASC`).
    pub jql: String,
    /// Where the asset comes from: `component`, `label:PREFIX` (the first
    /// label with the prefix, prefix removed) or `field:NAME` (a field by
    /// name or id).
    #[serde(default = "default_asset_from")]
    pub asset_from: String,
    /// The asset of issues where `asset_from` finds none; without it such
    /// issues are reported and skipped.
    #[serde(default)]
    pub asset: Option<String>,
    /// Value found by `asset_from` → asset id; values not listed are used
    /// as they are.
    #[serde(default)]
    pub assets: BTreeMap<String, String>,
    /// Jira status names that count as done when a resolved issue has no
    /// `resolutiondate` (besides the issue's current status when its
    /// category is done): the last transition into one is the resolution
    /// time.
    #[serde(default)]
    pub done_statuses: Vec<String>,
    /// Resolution name → status and validity, over the defaults (Done,
    /// Fixed → remediated + valid; Duplicate → closed + duplicate; Cannot
    /// Reproduce, Invalid, Not A Problem, Incomplete → closed + invalid;
    /// Won't Do, Won't Fix, Later → risk_accepted + valid). Names match
    /// without regard to case. Reviews and threat models count as
    /// completed when their resolution means `remediated`.
    #[serde(default)]
    pub resolutions: BTreeMap<String, ResolutionMeaning>,

    // --- finding ---
    /// Finding severity from `priority` or `field:NAME`.
    #[serde(default)]
    pub severity_from: Option<String>,
    /// Value → severity, over the defaults (Highest, Blocker, Critical →
    /// critical; High, Major → high; Medium → medium; Low, Minor → low;
    /// Lowest, Trivial, Info, Informational → info). Case-insensitive.
    #[serde(default)]
    pub severities: BTreeMap<String, String>,
    /// Environment from `component`, `label:PREFIX` or `field:NAME`.
    #[serde(default)]
    pub environment_from: Option<String>,
    /// Value → `production` / `non_production` (values spelled that way
    /// need no entry).
    #[serde(default)]
    pub environments: BTreeMap<String, String>,
    /// Environment when none is found (default `production`).
    #[serde(default)]
    pub default_environment: Option<String>,
    /// Domain from `component`, `label:PREFIX` or `field:NAME`.
    #[serde(default)]
    pub domain_from: Option<String>,
    /// Value → `application` / `infrastructure` / `hygiene`.
    #[serde(default)]
    pub domains: BTreeMap<String, String>,
    /// Domain when none is found (default `application`).
    #[serde(default)]
    pub default_domain: Option<String>,
    /// Validity of unresolved findings (default `unverified`).
    #[serde(default)]
    pub unresolved_validity: Option<String>,
    /// A field (name or id) whose URLs are the scanner alerts this ticket
    /// tracks (`refs`): every URL in it counts.
    #[serde(default)]
    pub refs_field: Option<String>,
    /// Substrings that make a URL in the description or a remote link a
    /// scanner alert URL (default: GitHub code scanning, secret scanning
    /// and Dependabot alert paths).
    #[serde(default)]
    pub ref_patterns: Option<Vec<String>>,
    /// Look for scanner alert URLs in the description (default true).
    #[serde(default)]
    pub refs_from_description: Option<bool>,
    /// Read each finding's remote links for scanner alert URLs: one more
    /// request per issue read (default false).
    #[serde(default)]
    pub remote_links: Option<bool>,
    /// Fingerprint from `field:NAME` or `label:PREFIX`.
    #[serde(default)]
    pub fingerprint_from: Option<String>,

    // --- review ---
    /// Review type when `review_type_from` finds none: `design` or
    /// `security` (default `security`).
    #[serde(default)]
    pub review_type: Option<String>,
    /// Review type from `component`, `label:PREFIX` or `field:NAME`.
    #[serde(default)]
    pub review_type_from: Option<String>,
    /// Value → `design` / `security`.
    #[serde(default)]
    pub review_types: BTreeMap<String, String>,

    // --- threat_model ---
    /// A date field (name or id) holding when the model was last reviewed;
    /// when empty, the resolution time of a completed issue.
    #[serde(default)]
    pub reviewed_at_field: Option<String>,

    // --- exception ---
    /// A date field holding the approval time (default: `created`).
    #[serde(default)]
    pub opened_at_field: Option<String>,
    /// A date field holding the expiry; an issue without a value has no
    /// expiry (reported by the KPIs). A date without time expires at the
    /// end of that day (UTC).
    #[serde(default)]
    pub expires_at_field: Option<String>,
    /// Issue link type names (e.g. "Relates") whose linked issues are the
    /// findings an exception covers; empty: every link.
    #[serde(default)]
    pub link_types: Vec<String>,

    // --- exception, release ---
    /// A field holding the reason (exceptions default to the summary).
    #[serde(default)]
    pub reason_field: Option<String>,

    // --- release ---
    /// A date field holding the release time (default: the resolution
    /// time; unreleased issues are left out).
    #[serde(default)]
    pub at_field: Option<String>,
    /// The field holding the gate outcome (required for releases).
    #[serde(default)]
    pub gate_field: Option<String>,
    /// Value → `passed` / `passed_with_exception` / `failed`, over the
    /// defaults (those spellings, with spaces or dashes, and Pass, Passed
    /// with exception, Fail). Case-insensitive.
    #[serde(default)]
    pub gates: BTreeMap<String, String>,
}

fn default_asset_from() -> String {
    "component".into()
}

/// Where a value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The issue's priority name.
    Priority,
    /// Component names.
    Component,
    /// Labels with this prefix (prefix removed).
    Label(String),
    /// A field, by name or id as configured (resolved at the first sync).
    Field(String),
}

impl Source {
    fn parse(key: &str, text: &str, allowed: &[&str]) -> Result<Source, String> {
        let s = text.trim();
        let parsed = if s == "priority" {
            Source::Priority
        } else if s == "component" {
            Source::Component
        } else if let Some(p) = s.strip_prefix("label:") {
            Source::Label(p.to_string())
        } else if let Some(f) = s.strip_prefix("field:") {
            if f.trim().is_empty() {
                return Err(format!("`{key}`: `field:` needs a field name or id"));
            }
            Source::Field(f.trim().to_string())
        } else {
            return Err(format!(
                "`{key}` = {text:?}: expected one of {}",
                allowed.join(", ")
            ));
        };
        let tag = match &parsed {
            Source::Priority => "priority",
            Source::Component => "component",
            Source::Label(_) => "label:PREFIX",
            Source::Field(_) => "field:NAME",
        };
        if allowed.contains(&tag) {
            Ok(parsed)
        } else {
            Err(format!(
                "`{key}` = {text:?}: expected one of {}",
                allowed.join(", ")
            ))
        }
    }

    /// The configured field name, if this reads a field.
    pub fn field(&self) -> Option<&str> {
        match self {
            Source::Field(f) => Some(f),
            _ => None,
        }
    }
}

/// A validated mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The record kind.
    pub kind: MappedKind,
    /// The user's JQL.
    pub jql: String,
    /// Asset source, fallback and table.
    pub asset_from: Source,
    /// Fallback asset.
    pub asset: Option<String>,
    /// Value → asset id.
    pub assets: BTreeMap<String, String>,
    /// Lowercased done status names.
    pub done_statuses: Vec<String>,
    /// Lowercased resolution name → (status, validity).
    pub resolutions: BTreeMap<String, (Status, Validity)>,
    /// Severity source (findings).
    pub severity_from: Source,
    /// Lowercased value → severity.
    pub severities: BTreeMap<String, Severity>,
    /// Environment source, table and default.
    pub environment_from: Option<Source>,
    /// Lowercased value → environment.
    pub environments: BTreeMap<String, Environment>,
    /// Default environment.
    pub default_environment: Environment,
    /// Domain source, table and default.
    pub domain_from: Option<Source>,
    /// Lowercased value → domain.
    pub domains: BTreeMap<String, Domain>,
    /// Default domain.
    pub default_domain: Domain,
    /// Validity of unresolved findings.
    pub unresolved_validity: Validity,
    /// Field with scanner alert URLs.
    pub refs_field: Option<String>,
    /// URL substrings of scanner alerts.
    pub ref_patterns: Vec<String>,
    /// Scan the description for alert URLs.
    pub refs_from_description: bool,
    /// Read remote links.
    pub remote_links: bool,
    /// Fingerprint source.
    pub fingerprint_from: Option<Source>,
    /// Default review type.
    pub review_type: ReviewType,
    /// Review type source.
    pub review_type_from: Option<Source>,
    /// Lowercased value → review type.
    pub review_types: BTreeMap<String, ReviewType>,
    /// Threat model date field.
    pub reviewed_at_field: Option<String>,
    /// Exception approval date field.
    pub opened_at_field: Option<String>,
    /// Exception expiry field.
    pub expires_at_field: Option<String>,
    /// Lowercased link type names.
    pub link_types: Vec<String>,
    /// Reason field.
    pub reason_field: Option<String>,
    /// Release time field.
    pub at_field: Option<String>,
    /// Gate field.
    pub gate_field: Option<String>,
    /// Lowercased value → gate.
    pub gates: BTreeMap<String, Gate>,
}

/// The default alert URL patterns (GitHub's alert pages).
pub const DEFAULT_REF_PATTERNS: [&str; 3] = [
    "/security/code-scanning/",
    "/security/secret-scanning/",
    "/security/dependabot/",
];

fn default_resolutions() -> BTreeMap<String, (Status, Validity)> {
    let mut m = BTreeMap::new();
    for name in ["done", "fixed"] {
        m.insert(name.into(), (Status::Remediated, Validity::Valid));
    }
    m.insert("duplicate".into(), (Status::Closed, Validity::Duplicate));
    for name in ["cannot reproduce", "invalid", "not a problem", "incomplete"] {
        m.insert(name.into(), (Status::Closed, Validity::Invalid));
    }
    for name in ["won't do", "won't fix", "later"] {
        m.insert(name.into(), (Status::RiskAccepted, Validity::Valid));
    }
    m
}

fn default_severities() -> BTreeMap<String, Severity> {
    let mut m = BTreeMap::new();
    for (names, s) in [
        (&["highest", "blocker", "critical"][..], Severity::Critical),
        (&["high", "major"][..], Severity::High),
        (&["medium"][..], Severity::Medium),
        (&["low", "minor"][..], Severity::Low),
        (
            &["lowest", "trivial", "info", "informational"][..],
            Severity::Info,
        ),
    ] {
        for n in names {
            m.insert(n.to_string(), s);
        }
    }
    m
}

fn default_gates() -> BTreeMap<String, Gate> {
    let mut m = BTreeMap::new();
    for (names, g) in [
        (&["passed", "pass"][..], Gate::Passed),
        (
            &[
                "passed_with_exception",
                "passed with exception",
                "passed-with-exception",
            ][..],
            Gate::PassedWithException,
        ),
        (&["failed", "fail"][..], Gate::Failed),
    ] {
        for n in names {
            m.insert(n.to_string(), g);
        }
    }
    m
}

fn enum_value<T>(
    key: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Result<T, String> {
    parse(value).ok_or_else(|| {
        format!(
            "`{key}`: unknown value {value:?} (expected one of {})",
            expected()
        )
    })
}

fn table<T>(
    key: &str,
    entries: &BTreeMap<String, String>,
    mut base: BTreeMap<String, T>,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Result<BTreeMap<String, T>, String> {
    for (k, v) in entries {
        let t = enum_value(&format!("{key}.{k:?}"), v, parse, expected)?;
        base.insert(k.to_lowercase(), t);
    }
    Ok(base)
}

impl MappingSettings {
    /// Validate into a [`Mapping`]; the error names the key at fault.
    pub fn validate(&self) -> Result<Mapping, String> {
        let kind = self.record;
        let jql = self.jql.trim();
        if jql.is_empty() {
            return Err("`jql` is empty; name the issues (e.g. `project = SEC`)".into());
        }
        if jql.to_lowercase().contains("order by") {
            return Err(
                "`jql` must not have ORDER BY: the connector orders by `updated, key`".into(),
            );
        }
        // Keys that only some kinds read: set on another kind they would
        // silently do nothing, so they are errors.
        let only = |key: &str, set: bool, kinds: &[MappedKind]| -> Result<(), String> {
            if set && !kinds.contains(&kind) {
                Err(format!(
                    "`{key}` does not apply to record = {:?}",
                    kind.kind().as_str()
                ))
            } else {
                Ok(())
            }
        };
        use MappedKind::*;
        only("severity_from", self.severity_from.is_some(), &[Finding])?;
        only("severities", !self.severities.is_empty(), &[Finding])?;
        only(
            "environment_from",
            self.environment_from.is_some(),
            &[Finding],
        )?;
        only("environments", !self.environments.is_empty(), &[Finding])?;
        only(
            "default_environment",
            self.default_environment.is_some(),
            &[Finding],
        )?;
        only("domain_from", self.domain_from.is_some(), &[Finding])?;
        only("domains", !self.domains.is_empty(), &[Finding])?;
        only("default_domain", self.default_domain.is_some(), &[Finding])?;
        only(
            "unresolved_validity",
            self.unresolved_validity.is_some(),
            &[Finding],
        )?;
        only("refs_field", self.refs_field.is_some(), &[Finding])?;
        only("ref_patterns", self.ref_patterns.is_some(), &[Finding])?;
        only(
            "refs_from_description",
            self.refs_from_description.is_some(),
            &[Finding],
        )?;
        only("remote_links", self.remote_links.is_some(), &[Finding])?;
        only(
            "fingerprint_from",
            self.fingerprint_from.is_some(),
            &[Finding],
        )?;
        only("review_type", self.review_type.is_some(), &[Review])?;
        only(
            "review_type_from",
            self.review_type_from.is_some(),
            &[Review],
        )?;
        only("review_types", !self.review_types.is_empty(), &[Review])?;
        only(
            "reviewed_at_field",
            self.reviewed_at_field.is_some(),
            &[ThreatModel],
        )?;
        only(
            "opened_at_field",
            self.opened_at_field.is_some(),
            &[Exception],
        )?;
        only(
            "expires_at_field",
            self.expires_at_field.is_some(),
            &[Exception],
        )?;
        only("link_types", !self.link_types.is_empty(), &[Exception])?;
        only(
            "reason_field",
            self.reason_field.is_some(),
            &[Exception, Release],
        )?;
        only("at_field", self.at_field.is_some(), &[Release])?;
        only("gate_field", self.gate_field.is_some(), &[Release])?;
        only("gates", !self.gates.is_empty(), &[Release])?;
        if kind == Release && self.gate_field.is_none() {
            return Err("record = \"release\" needs `gate_field` (the gate outcome)".into());
        }

        let vals = ["component", "label:PREFIX", "field:NAME"];
        let asset_from = Source::parse("asset_from", &self.asset_from, &vals)?;
        let severity_from = match &self.severity_from {
            None => Source::Priority,
            Some(s) => Source::parse("severity_from", s, &["priority", "field:NAME"])?,
        };
        let opt = |key: &str, v: &Option<String>, allowed: &[&str]| {
            v.as_deref()
                .map(|s| Source::parse(key, s, allowed))
                .transpose()
        };
        let mut resolutions = default_resolutions();
        for (name, m) in &self.resolutions {
            let key = format!("resolutions.{name:?}");
            let status = enum_value(&key, &m.status, Status::parse, Status::expected)?;
            let validity = enum_value(&key, &m.validity, Validity::parse, Validity::expected)?;
            resolutions.insert(name.to_lowercase(), (status, validity));
        }
        let ref_patterns = match &self.ref_patterns {
            Some(p) => p.clone(),
            None => DEFAULT_REF_PATTERNS.iter().map(|s| s.to_string()).collect(),
        };
        if ref_patterns.iter().any(|p| p.is_empty()) {
            return Err("`ref_patterns`: an empty pattern would match every URL".into());
        }
        Ok(Mapping {
            kind,
            jql: jql.to_string(),
            asset_from,
            asset: self.asset.clone().filter(|a| !a.is_empty()),
            assets: self.assets.clone(),
            done_statuses: self
                .done_statuses
                .iter()
                .map(|s| s.to_lowercase())
                .collect(),
            resolutions,
            severity_from,
            severities: table(
                "severities",
                &self.severities,
                default_severities(),
                Severity::parse,
                Severity::expected,
            )?,
            environment_from: opt("environment_from", &self.environment_from, &vals)?,
            environments: table(
                "environments",
                &self.environments,
                BTreeMap::new(),
                Environment::parse,
                Environment::expected,
            )?,
            default_environment: match &self.default_environment {
                None => Environment::Production,
                Some(e) => enum_value(
                    "default_environment",
                    e,
                    Environment::parse,
                    Environment::expected,
                )?,
            },
            domain_from: opt("domain_from", &self.domain_from, &vals)?,
            domains: table(
                "domains",
                &self.domains,
                BTreeMap::new(),
                Domain::parse,
                Domain::expected,
            )?,
            default_domain: match &self.default_domain {
                None => Domain::Application,
                Some(d) => enum_value("default_domain", d, Domain::parse, Domain::expected)?,
            },
            unresolved_validity: match &self.unresolved_validity {
                None => Validity::Unverified,
                Some(v) => enum_value(
                    "unresolved_validity",
                    v,
                    Validity::parse,
                    Validity::expected,
                )?,
            },
            refs_field: self.refs_field.clone(),
            ref_patterns,
            refs_from_description: self.refs_from_description.unwrap_or(true),
            remote_links: self.remote_links.unwrap_or(false),
            fingerprint_from: opt(
                "fingerprint_from",
                &self.fingerprint_from,
                &["label:PREFIX", "field:NAME"],
            )?,
            review_type: match &self.review_type {
                None => ReviewType::Security,
                Some(t) => enum_value("review_type", t, ReviewType::parse, ReviewType::expected)?,
            },
            review_type_from: opt("review_type_from", &self.review_type_from, &vals)?,
            review_types: table(
                "review_types",
                &self.review_types,
                BTreeMap::new(),
                ReviewType::parse,
                ReviewType::expected,
            )?,
            reviewed_at_field: self.reviewed_at_field.clone(),
            opened_at_field: self.opened_at_field.clone(),
            expires_at_field: self.expires_at_field.clone(),
            link_types: self.link_types.iter().map(|s| s.to_lowercase()).collect(),
            reason_field: self.reason_field.clone(),
            at_field: self.at_field.clone(),
            gate_field: self.gate_field.clone(),
            gates: table(
                "gates",
                &self.gates,
                default_gates(),
                Gate::parse,
                Gate::expected,
            )?,
        })
    }
}

impl Mapping {
    /// Every field this mapping names by name or id (resolved through the
    /// site's field list).
    pub fn named_fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in [
            Some(&self.asset_from),
            Some(&self.severity_from),
            self.environment_from.as_ref(),
            self.domain_from.as_ref(),
            self.fingerprint_from.as_ref(),
            self.review_type_from.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(f) = s.field() {
                out.push(f);
            }
        }
        for f in [
            &self.refs_field,
            &self.reviewed_at_field,
            &self.opened_at_field,
            &self.expires_at_field,
            &self.reason_field,
            &self.at_field,
            &self.gate_field,
        ]
        .into_iter()
        .flatten()
        {
            out.push(f);
        }
        out
    }

    /// The key of this mapping's cursor: a changed query starts afresh.
    pub fn cursor_key(&self) -> String {
        format!("{}:{}", self.kind.kind().as_str(), self.jql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(v: serde_json::Value) -> Result<Mapping, String> {
        serde_json::from_value::<MappingSettings>(v)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn defaults_follow_the_issue_and_tables_merge_case_insensitively() {
        let m = settings(serde_json::json!({
            "record": "finding", "jql": "project = SEC",
            "resolutions": {"Won't Fix": {"status": "closed", "validity": "invalid"}},
            "severities": {"P1": "critical"}
        }))
        .unwrap();
        assert_eq!(m.severity_from, Source::Priority);
        assert_eq!(m.asset_from, Source::Component);
        assert_eq!(
            m.resolutions["won't fix"],
            (Status::Closed, Validity::Invalid)
        );
        assert_eq!(
            m.resolutions["cannot reproduce"],
            (Status::Closed, Validity::Invalid)
        );
        assert_eq!(
            m.resolutions["later"],
            (Status::RiskAccepted, Validity::Valid)
        );
        assert_eq!(m.severities["p1"], Severity::Critical);
        assert_eq!(m.severities["blocker"], Severity::Critical);
        assert_eq!(m.severities["trivial"], Severity::Info);
        assert_eq!(m.unresolved_validity, Validity::Unverified);
        assert!(m.refs_from_description && !m.remote_links);
    }

    #[test]
    fn keys_of_another_kind_and_bad_values_are_named() {
        let e = settings(serde_json::json!({
            "record": "review", "jql": "project = SEC", "expires_at_field": "Expiry"
        }))
        .unwrap_err();
        assert_eq!(
            e,
            "`expires_at_field` does not apply to record = \"review\""
        );
        let e = settings(serde_json::json!({
            "record": "finding", "jql": "project = SEC", "severities": {"P1": "urgent"}
        }))
        .unwrap_err();
        assert!(
            e.contains("severities.\"P1\"") && e.contains("urgent"),
            "{e}"
        );
        let e = settings(serde_json::json!({
            "record": "finding", "jql": "project = SEC ORDER BY key"
        }))
        .unwrap_err();
        assert!(e.contains("ORDER BY"), "{e}");
        let e = settings(serde_json::json!({
            "record": "release", "jql": "project = REL"
        }))
        .unwrap_err();
        assert!(e.contains("gate_field"), "{e}");
        let e = settings(serde_json::json!({
            "record": "finding", "jql": "x", "asset_from": "labels"
        }))
        .unwrap_err();
        assert!(
            e.contains("asset_from") && e.contains("label:PREFIX"),
            "{e}"
        );
        let e = serde_json::from_value::<MappingSettings>(serde_json::json!({
            "record": "finding", "jql": "x", "severity_fro": "priority"
        }))
        .unwrap_err();
        assert!(e.to_string().contains("severity_fro"), "{e}");
    }
}
