//! `github_secret_scanning`: an organization's secret scanning alerts
//! (`GET /orgs/{org}/secret-scanning/alerts`) as `secret_alert` records, and
//! its repositories' coverage (`GET /orgs/{org}/repos`) as `repo` records.
//!
//! The alert's `secret` field is the plaintext credential. It is requested
//! away (`hide_secret=true`) and, should a server send it anyway, never read:
//! the wire struct below has no such field, so serde skips its bytes.

use super::repos::{self, RepoSettings};
use super::{
    default_base_url, default_burst, default_pages_per_commit, default_per_page, default_rate,
    opt_time, req_time, sync_list, Access, Converted, GithubApi, GithubCursor, Item, RepoRef,
};
use crate::connector::{Connector, PageSink, SyncMode, SyncOutcome};
use crate::http::RetrySettings;
use crate::record::{Extra, Record, SecretAlert, SecretResolution, SecretValidity};
use crate::Error;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Settings of a `github_secret_scanning` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSecretScanningSettings {
    /// Unique instance name; the `source` of its records.
    pub name: String,
    /// The organization whose alerts and repositories are read.
    pub org: String,
    /// API base URL; `https://<host>/api/v3` for GitHub Enterprise Server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The token inline (prefer `token_env` or `token_file`). Needs org admin
    /// or security manager with `repo`/`security_events`, or fine-grained
    /// "Secret scanning alerts: read".
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
    /// Only these secret types (`secret_type` filter). Generic (non-provider)
    /// patterns are returned only when named here.
    #[serde(default)]
    pub secret_types: Vec<String>,
    /// Repository coverage (`repo` records): whether to read it, which
    /// repositories are in scope and how they map to assets.
    #[serde(default)]
    pub repos: RepoSettings,
}

impl GithubSecretScanningSettings {
    /// Build the connector. `token` is the resolved secret (from `token_env`
    /// or `token_file`); `None` falls back to the inline `token`.
    pub fn build(self, token: Option<SecretString>) -> Result<GithubSecretScanning, Error> {
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
        Ok(GithubSecretScanning {
            settings: self,
            api,
        })
    }
}

/// The `github_secret_scanning` connector.
#[derive(Debug)]
pub struct GithubSecretScanning {
    settings: GithubSecretScanningSettings,
    api: GithubApi,
}

impl GithubSecretScanning {
    /// The API client (its HTTP counters).
    pub fn api(&self) -> &GithubApi {
        &self.api
    }
}

/// A secret scanning alert as GitHub sends it, minus `secret`.
#[derive(Debug, Deserialize)]
struct AlertWire {
    number: Option<u64>,
    created_at: Option<String>,
    updated_at: Option<String>,
    state: Option<String>,
    resolution: Option<String>,
    resolved_at: Option<String>,
    secret_type: Option<String>,
    secret_type_display_name: Option<String>,
    validity: Option<String>,
    push_protection_bypassed: Option<bool>,
    push_protection_bypassed_at: Option<String>,
    publicly_leaked: Option<bool>,
    multi_repo: Option<bool>,
    html_url: Option<String>,
    repository: Option<RepoRef>,
}

/// Convert one alert; the error names the field at fault.
fn convert(source: &str, a: AlertWire) -> Result<Converted, String> {
    let number = a.number.ok_or("`number` is missing")?;
    let repo = a
        .repository
        .and_then(|r| r.full_name)
        .ok_or("`repository.full_name` is missing")?;
    let opened_at = req_time("created_at", &a.created_at)?;
    let resolved_at = opt_time("resolved_at", &a.resolved_at)?;
    let bypassed_at = opt_time(
        "push_protection_bypassed_at",
        &a.push_protection_bypassed_at,
    )?;
    let updated = match opt_time("updated_at", &a.updated_at)? {
        Some(t) => t,
        // `updated_at` is nullable: the latest of what is known.
        None => [Some(opened_at), resolved_at, bypassed_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(opened_at),
    };
    let mut extra = serde_json::Map::new();
    let resolution = match a.resolution.as_deref() {
        None | Some("") => None,
        Some(r) => match SecretResolution::parse(r) {
            Some(r) => Some(r),
            None => {
                tracing::warn!(
                    source,
                    value = r,
                    "unknown secret scanning resolution; kept in extra"
                );
                extra.insert("resolution".into(), Value::String(r.to_string()));
                None
            }
        },
    };
    let validity = match a.validity.as_deref() {
        None => SecretValidity::Unknown,
        Some(v) => SecretValidity::parse(v).unwrap_or_else(|| {
            tracing::warn!(source, value = v, "unknown secret validity; kept in extra");
            extra.insert("validity".into(), Value::String(v.to_string()));
            SecretValidity::Unknown
        }),
    };
    if let Some(s) = a.state {
        extra.insert("state".into(), Value::String(s));
    }
    for (k, v) in [
        (
            "secret_type_display_name",
            a.secret_type_display_name.map(Value::String),
        ),
        ("publicly_leaked", a.publicly_leaked.map(Value::Bool)),
        ("multi_repo", a.multi_repo.map(Value::Bool)),
        ("url", a.html_url.map(Value::String)),
        (
            "push_protection_bypassed_at",
            bypassed_at.map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
        ),
    ] {
        if let Some(v) = v {
            extra.insert(k.into(), v);
        }
    }
    Ok(Converted::Item(Item {
        record: Record::SecretAlert(SecretAlert {
            id: format!("{repo}#{number}"),
            source: source.to_string(),
            repo,
            secret_type: a.secret_type,
            opened_at,
            resolved_at,
            resolution,
            validity,
            push_protection_bypassed: a.push_protection_bypassed.unwrap_or(false),
            extra: Extra(extra),
        }),
        updated,
    }))
}

#[async_trait::async_trait]
impl Connector for GithubSecretScanning {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> &'static str {
        "github_secret_scanning"
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
        let name = self.settings.name.clone();
        let mut cur = GithubCursor::parse(&name, cursor.as_deref());
        let mut outcome = SyncOutcome::default();
        if self.settings.repos.enabled {
            repos::sync_repos(
                &self.api,
                &self.settings.repos,
                &mut cur,
                mode,
                sink,
                &mut outcome,
            )
            .await?;
        }
        if outcome.interrupted {
            return Ok(outcome);
        }
        let per_page = self.api.per_page.to_string();
        let types = self.settings.secret_types.join(",");
        let mut query: Vec<(&str, &str)> = vec![
            ("hide_secret", "true"),
            ("per_page", &per_page),
            ("sort", "updated"),
            ("direction", "desc"),
        ];
        if !types.is_empty() {
            query.push(("secret_type", &types));
        }
        let url = self.api.url(
            &format!("/orgs/{}/secret-scanning/alerts", self.api.org),
            &query,
        );
        sync_list(
            &self.api,
            &mut cur,
            "secret_scanning_alerts",
            url,
            mode,
            sink,
            &mut outcome,
            |a: AlertWire| convert(&name, a),
        )
        .await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_never_read_and_fields_map() {
        let a: AlertWire = serde_json::from_str(
            r#"{"number":7,"created_at":"2026-01-02T03:04:05Z","updated_at":null,"state":"resolved",
                "resolution":"revoked","resolved_at":"2026-01-03T00:00:00Z","secret_type":"github_personal_access_token",
                "secret":"ghp_SHOULD_NEVER_BE_SEEN","validity":"inactive","push_protection_bypassed":true,
                "push_protection_bypassed_at":"2026-01-02T03:00:00Z","repository":{"full_name":"o/r"}}"#,
        )
        .unwrap();
        assert!(!format!("{a:?}").contains("SHOULD_NEVER"));
        let Converted::Item(item) = convert("gh", a).unwrap();
        let Record::SecretAlert(s) = &item.record else {
            panic!()
        };
        assert_eq!(s.id, "o/r#7");
        assert_eq!(s.resolution, Some(SecretResolution::Revoked));
        assert_eq!(s.validity, SecretValidity::Inactive);
        assert!(s.push_protection_bypassed);
        assert_eq!(item.updated.to_rfc3339(), "2026-01-03T00:00:00+00:00");
    }
}
