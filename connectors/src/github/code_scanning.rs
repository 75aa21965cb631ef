//! `github_code_scanning`: an organization's code scanning alerts
//! (`GET /orgs/{org}/code-scanning/alerts`, default branches only) as
//! `finding` records.
//!
//! Severity: `rule.security_severity_level` (low..critical) when set, else
//! `rule.severity`: error → high, warning → medium, note → low, none → info.
//! State: `open` → open; `fixed` → remediated at `fixed_at`; `dismissed`
//! by `dismissed_reason`: "false positive" → closed + false_positive,
//! "won't fix" → risk_accepted, "used in tests" → closed + invalid, anything
//! else → closed (reason kept in `extra`), each at `dismissed_at`.

use super::{
    default_base_url, default_burst, default_pages_per_commit, default_per_page, default_rate,
    env_serde, environment_of, opt_time, req_time, sync_list, Access, Converted, GithubApi,
    GithubCursor, Item, RepoRef,
};
use crate::connector::{Connector, PageSink, SyncMode, SyncOutcome};
use crate::http::RetrySettings;
use crate::record::{Domain, Environment, Extra, Finding, Record, Severity, Status, Validity};
use crate::Error;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings of a `github_code_scanning` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubCodeScanningSettings {
    /// Unique instance name; the `source` of its records.
    pub name: String,
    /// The organization whose alerts are read.
    pub org: String,
    /// API base URL; `https://<host>/api/v3` for GitHub Enterprise Server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The token inline (prefer `token_env` or `token_file`). Needs
    /// `security_events` or `repo`, as an owner or security manager.
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
    /// Items per page, at most 100.
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// HTTP pages per store commit (default 1): each commit is one durable
    /// write with the cursor, so a failure or shutdown re-reads at most this
    /// many pages; more pages per commit mean fewer disk flushes.
    #[serde(default = "default_pages_per_commit")]
    pub pages_per_commit: u32,
    /// Retries, timeouts and longest rate-limit wait.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Only this tool's alerts (`tool_name` filter), e.g. `CodeQL`.
    #[serde(default)]
    pub tool_name: Option<String>,
    /// Map of `owner/name` to asset id; unmapped repositories use their
    /// full name as the asset (reported as unmapped downstream).
    #[serde(default)]
    pub assets: BTreeMap<String, String>,
    /// Environment by repository (`owner/name`) or asset id.
    #[serde(default, deserialize_with = "env_serde::map")]
    pub environments: BTreeMap<String, Environment>,
    /// Environment of everything not in `environments`. Default production.
    #[serde(default = "env_serde::production", deserialize_with = "env_serde::one")]
    pub default_environment: Environment,
}

impl GithubCodeScanningSettings {
    /// Build the connector. `token` is the resolved secret (from `token_env`
    /// or `token_file`); `None` falls back to the inline `token`.
    pub fn build(self, token: Option<SecretString>) -> Result<GithubCodeScanning, Error> {
        let token = token.or_else(|| self.token.clone());
        let api = GithubApi::new(
            Access {
                name: &self.name,
                org: &self.org,
                base_url: &self.base_url,
                rate: self.rate,
                burst: self.burst,
                per_page: self.per_page,
                pages_per_commit: self.pages_per_commit,
                retry: &self.retry,
            },
            token,
        )?;
        Ok(GithubCodeScanning {
            settings: self,
            api,
        })
    }
}

/// The `github_code_scanning` connector.
#[derive(Debug)]
pub struct GithubCodeScanning {
    settings: GithubCodeScanningSettings,
    api: GithubApi,
}

impl GithubCodeScanning {
    /// The API client (its HTTP counters).
    pub fn api(&self) -> &GithubApi {
        &self.api
    }
}

#[derive(Debug, Deserialize)]
struct AlertWire {
    number: Option<u64>,
    created_at: Option<String>,
    updated_at: Option<String>,
    html_url: Option<String>,
    state: Option<String>,
    fixed_at: Option<String>,
    dismissed_at: Option<String>,
    dismissed_reason: Option<String>,
    rule: Option<RuleWire>,
    tool: Option<ToolWire>,
    most_recent_instance: Option<InstanceWire>,
    repository: Option<RepoRef>,
}

#[derive(Debug, Deserialize)]
struct RuleWire {
    id: Option<String>,
    severity: Option<String>,
    security_severity_level: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ToolWire {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InstanceWire {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    category: Option<String>,
    location: Option<LocationWire>,
    #[serde(default)]
    classifications: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct LocationWire {
    path: Option<String>,
    start_line: Option<u64>,
}

/// Severity from `security_severity_level`, else from `rule.severity`.
pub fn severity(
    security_severity_level: Option<&str>,
    rule_severity: Option<&str>,
) -> Option<Severity> {
    let from_level = match security_severity_level {
        Some("critical") => Some(Severity::Critical),
        Some("high") => Some(Severity::High),
        Some("medium") => Some(Severity::Medium),
        Some("low") => Some(Severity::Low),
        _ => None,
    };
    from_level.or(match rule_severity {
        Some("error") => Some(Severity::High),
        Some("warning") => Some(Severity::Medium),
        Some("note") => Some(Severity::Low),
        Some("none") => Some(Severity::Info),
        _ => None,
    })
}

fn convert(s: &GithubCodeScanningSettings, a: AlertWire) -> Result<Converted, String> {
    let number = a.number.ok_or("`number` is missing")?;
    let repo = a
        .repository
        .and_then(|r| r.full_name)
        .ok_or("`repository.full_name` is missing")?;
    let opened_at = req_time("created_at", &a.created_at)?;
    let fixed_at = opt_time("fixed_at", &a.fixed_at)?;
    let dismissed_at = opt_time("dismissed_at", &a.dismissed_at)?;
    let updated = match opt_time("updated_at", &a.updated_at)? {
        Some(t) => t,
        None => [Some(opened_at), fixed_at, dismissed_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(opened_at),
    };
    let rule = a.rule.unwrap_or(RuleWire {
        id: None,
        severity: None,
        security_severity_level: None,
        description: None,
    });
    let mut extra = serde_json::Map::new();
    let severity = match severity(
        rule.security_severity_level.as_deref(),
        rule.severity.as_deref(),
    ) {
        Some(s) => s,
        None => {
            // An open enum: keep the value, count it as medium rather than hide it.
            tracing::warn!(source = %s.name, level = ?rule.security_severity_level, severity = ?rule.severity, "unknown code scanning severity; counted as medium");
            extra.insert(
                "severity".into(),
                Value::String(rule.severity.clone().unwrap_or_default()),
            );
            Severity::Medium
        }
    };
    let state = a.state.as_deref().unwrap_or("open");
    let (status, validity, resolved_at) = match state {
        "open" => (Status::Open, Validity::Unverified, None),
        "fixed" | "closed" => (
            Status::Remediated,
            Validity::Unverified,
            fixed_at.or(Some(updated)),
        ),
        "dismissed" => {
            let at = dismissed_at.or(Some(updated));
            match a.dismissed_reason.as_deref() {
                Some("false positive") => (Status::Closed, Validity::FalsePositive, at),
                Some("won't fix") => (Status::RiskAccepted, Validity::Unverified, at),
                Some("used in tests") => (Status::Closed, Validity::Invalid, at),
                other => {
                    extra.insert(
                        "dismissed_reason".into(),
                        other
                            .map(|r| Value::String(r.into()))
                            .unwrap_or(Value::Null),
                    );
                    (Status::Closed, Validity::Unverified, at)
                }
            }
        }
        other => {
            tracing::warn!(source = %s.name, state = other, "unknown code scanning state; kept open");
            extra.insert("state".into(), Value::String(other.into()));
            (Status::Open, Validity::Unverified, None)
        }
    };
    let asset = s.assets.get(&repo).cloned().unwrap_or_else(|| repo.clone());
    let environment = environment_of(&s.environments, s.default_environment, &repo, &asset);
    extra.insert("repo".into(), Value::String(repo.clone()));
    if let Some(id) = &rule.id {
        extra.insert("rule".into(), Value::String(id.clone()));
    }
    if let Some(t) = a.tool {
        if let Some(n) = t.name {
            extra.insert("tool".into(), Value::String(n));
        }
        if let Some(v) = t.version {
            extra.insert("tool_version".into(), Value::String(v));
        }
    }
    if let Some(i) = a.most_recent_instance {
        if let Some(r) = i.git_ref {
            extra.insert("ref".into(), Value::String(r));
        }
        if let Some(c) = i.category {
            extra.insert("category".into(), Value::String(c));
        }
        if let Some(l) = i.location {
            if let Some(p) = l.path {
                let loc = match l.start_line {
                    Some(n) => format!("{p}:{n}"),
                    None => p,
                };
                extra.insert("location".into(), Value::String(loc));
            }
        }
        if !i.classifications.is_empty() {
            extra.insert(
                "classifications".into(),
                Value::Array(i.classifications.into_iter().map(Value::String).collect()),
            );
        }
    }
    Ok(Converted::Item(Item {
        record: Record::Finding(Finding {
            id: format!("{repo}#{number}"),
            source: s.name.clone(),
            asset,
            title: rule.description.or(rule.id),
            severity,
            environment,
            domain: Domain::Application,
            opened_at,
            status,
            resolved_at,
            validity,
            duplicate_of: None,
            fingerprint: None,
            url: a.html_url,
            refs: Vec::new(),
            extra: Extra(extra),
        }),
        updated,
    }))
}

#[async_trait::async_trait]
impl Connector for GithubCodeScanning {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> &'static str {
        "github_code_scanning"
    }

    fn http_stats(&self) -> Option<crate::http::HttpStatsSnapshot> {
        Some(self.api.http.stats().snapshot())
    }

    async fn sync(
        &self,
        cursor: Option<String>,
        mode: SyncMode,
        sink: &mut dyn PageSink,
    ) -> Result<SyncOutcome, Error> {
        let mut cur = GithubCursor::parse(&self.settings.name, cursor.as_deref());
        let mut outcome = SyncOutcome::default();
        let per_page = self.api.per_page.to_string();
        let mut query: Vec<(&str, &str)> = vec![
            ("per_page", &per_page),
            ("sort", "updated"),
            ("direction", "desc"),
        ];
        if let Some(t) = &self.settings.tool_name {
            query.push(("tool_name", t));
        }
        let url = self.api.url(
            &format!("/orgs/{}/code-scanning/alerts", self.api.org),
            &query,
        );
        let settings = &self.settings;
        sync_list(
            &self.api,
            &mut cur,
            "code_scanning_alerts",
            url,
            mode,
            sink,
            &mut outcome,
            |a: AlertWire| convert(settings, a),
        )
        .await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GithubCodeScanningSettings {
        serde_json::from_value(serde_json::json!({
            "name": "cs", "org": "o",
            "assets": {"o/r": "pay"},
            "environments": {"pay": "non_production"}
        }))
        .unwrap()
    }

    fn finding(json: &str) -> Finding {
        let w: AlertWire = serde_json::from_str(json).unwrap();
        match convert(&settings(), w).unwrap() {
            Converted::Item(Item {
                record: Record::Finding(f),
                ..
            }) => f,
            _ => panic!(),
        }
    }

    #[test]
    fn severity_prefers_security_severity_level() {
        assert_eq!(
            severity(Some("critical"), Some("note")),
            Some(Severity::Critical)
        );
        assert_eq!(severity(None, Some("error")), Some(Severity::High));
        assert_eq!(severity(None, Some("warning")), Some(Severity::Medium));
        assert_eq!(severity(None, Some("note")), Some(Severity::Low));
        assert_eq!(severity(None, Some("none")), Some(Severity::Info));
    }

    #[test]
    fn dismissed_reasons_and_fixed_state_map() {
        let base = r#""number":1,"created_at":"2026-01-01T00:00:00Z","repository":{"full_name":"o/r"},"rule":{"id":"x","severity":"error"}"#;
        let f = finding(&format!(
            r#"{{{base},"state":"dismissed","dismissed_at":"2026-01-05T00:00:00Z","dismissed_reason":"false positive"}}"#
        ));
        assert_eq!(
            (f.status, f.validity),
            (Status::Closed, Validity::FalsePositive)
        );
        assert_eq!(
            f.resolved_at.unwrap().to_rfc3339(),
            "2026-01-05T00:00:00+00:00"
        );
        let f = finding(&format!(
            r#"{{{base},"state":"dismissed","dismissed_at":"2026-01-05T00:00:00Z","dismissed_reason":"won't fix"}}"#
        ));
        assert_eq!(
            (f.status, f.validity),
            (Status::RiskAccepted, Validity::Unverified)
        );
        let f = finding(&format!(
            r#"{{{base},"state":"dismissed","dismissed_at":"2026-01-05T00:00:00Z","dismissed_reason":"used in tests"}}"#
        ));
        assert_eq!((f.status, f.validity), (Status::Closed, Validity::Invalid));
        let f = finding(&format!(
            r#"{{{base},"state":"fixed","fixed_at":"2026-01-06T00:00:00Z"}}"#
        ));
        assert_eq!(f.status, Status::Remediated);
        assert_eq!(
            f.resolved_at.unwrap().to_rfc3339(),
            "2026-01-06T00:00:00+00:00"
        );
        assert_eq!(
            (f.asset.as_str(), f.environment),
            ("pay", Environment::NonProduction)
        );
        assert_eq!(f.severity, Severity::High);
    }
}
