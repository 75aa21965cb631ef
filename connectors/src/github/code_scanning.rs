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
    environment_of, opt_time, sync_alert_lists, AlertHead, Converted, GithubApi, GithubCursor,
    GithubKind, GithubSettings, Item, RepoRef,
};
use crate::connector::{Connector, PageSink, SyncMode, SyncOutcome};
use crate::fingerprint::location_fingerprint;
use crate::record::{Domain, Extra, Finding, Record, Severity, Status, Validity};
use crate::Error;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

/// The `github_code_scanning` connector.
#[derive(Debug)]
pub struct GithubCodeScanning {
    settings: GithubSettings,
    api: GithubApi,
}

impl GithubCodeScanning {
    /// Build the connector. `token` is the resolved secret (from
    /// `token_env` or `token_file`); `None` falls back to the inline `token`.
    pub fn new(settings: GithubSettings, token: Option<SecretString>) -> Result<Self, Error> {
        let api = settings.api(GithubKind::CodeScanning, token)?;
        Ok(GithubCodeScanning { settings, api })
    }

    /// The API client (its HTTP counters).
    pub fn api(&self) -> &GithubApi {
        &self.api
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct AlertWire {
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

/// Convert one alert; the error names the field at fault. `listed_in` is
/// the repository whose own list the alert came from.
pub(super) fn convert(
    s: &GithubSettings,
    listed_in: Option<&str>,
    a: AlertWire,
) -> Result<Converted, String> {
    let head = AlertHead::parse(a.number, a.repository, listed_in, &a.created_at)?;
    let fixed_at = opt_time("fixed_at", &a.fixed_at)?;
    let dismissed_at = opt_time("dismissed_at", &a.dismissed_at)?;
    let updated = head.updated(&a.updated_at, &[fixed_at, dismissed_at])?;
    let opened_at = head.opened_at;
    let repo = head.repo.clone();
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
    let environment = environment_of(&s.environments, s.default_environment(), &repo, &asset);
    let tool_name = a.tool.as_ref().and_then(|t| t.name.clone());
    let location = a
        .most_recent_instance
        .as_ref()
        .and_then(|i| i.location.as_ref());
    let fingerprint = location.and_then(|l| {
        location_fingerprint(
            tool_name.as_deref().unwrap_or(""),
            rule.id.as_deref().unwrap_or(""),
            l.path.as_deref().unwrap_or(""),
            l.start_line,
        )
    });
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
            id: head.id(),
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
            fingerprint,
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
        GithubKind::CodeScanning.as_str()
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
        let lists = self
            .api
            .alert_lists("code-scanning", "code_scanning_alerts", &query);
        let settings = &self.settings;
        sync_alert_lists(
            &self.api,
            &mut cur,
            lists,
            mode,
            sink,
            &mut outcome,
            |listed_in, a: AlertWire| convert(settings, listed_in, a),
        )
        .await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Environment;

    fn settings() -> GithubSettings {
        serde_json::from_value(serde_json::json!({
            "name": "cs", "org": "o",
            "assets": {"o/r": "pay"},
            "environments": {"pay": "non_production"}
        }))
        .unwrap()
    }

    fn finding(json: &str) -> Finding {
        let w: AlertWire = serde_json::from_str(json).unwrap();
        match convert(&settings(), None, w).unwrap() {
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
