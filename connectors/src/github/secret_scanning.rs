//! `github_secret_scanning`: secret scanning alerts as `secret_alert`
//! records (`GET /orgs/{org}/secret-scanning/alerts`, or each repository's
//! `GET /repos/{owner}/{repo}/secret-scanning/alerts`), and repository
//! coverage as `repo` records (see [`super::repos`]).
//!
//! The alert's `secret` field is the plaintext credential. It is requested
//! away (`hide_secret=true`) and, should a server send it anyway, never read:
//! the wire struct below has no such field, so serde skips its bytes.

use super::repos;
use super::{
    opt_time, sync_alert_lists, AlertHead, Converted, GithubApi, GithubCursor, GithubKind,
    GithubSettings, Item, RepoRef,
};
use crate::connector::{Connector, PageSink, SyncMode, SyncOutcome};
use crate::record::{Extra, Record, SecretAlert, SecretResolution, SecretValidity};
use crate::Error;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

/// The `github_secret_scanning` connector.
#[derive(Debug)]
pub struct GithubSecretScanning {
    settings: GithubSettings,
    api: GithubApi,
}

impl GithubSecretScanning {
    /// Build the connector. `token` is the resolved secret (from
    /// `token_env` or `token_file`); `None` falls back to the inline `token`.
    pub fn new(settings: GithubSettings, token: Option<SecretString>) -> Result<Self, Error> {
        let api = settings.api(GithubKind::SecretScanning, token)?;
        Ok(GithubSecretScanning { settings, api })
    }

    /// The API client (its HTTP counters).
    pub fn api(&self) -> &GithubApi {
        &self.api
    }
}

/// A secret scanning alert as GitHub sends it, minus `secret`.
#[derive(Debug, Deserialize)]
pub(super) struct AlertWire {
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

/// Convert one alert; the error names the field at fault. `listed_in` is
/// the repository whose own list the alert came from.
pub(super) fn convert(
    source: &str,
    listed_in: Option<&str>,
    a: AlertWire,
) -> Result<Converted, String> {
    let head = AlertHead::parse(a.number, a.repository, listed_in, &a.created_at)?;
    let resolved_at = opt_time("resolved_at", &a.resolved_at)?;
    let bypassed_at = opt_time(
        "push_protection_bypassed_at",
        &a.push_protection_bypassed_at,
    )?;
    let updated = head.updated(&a.updated_at, &[resolved_at, bypassed_at])?;
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
            id: head.id(),
            source: source.to_string(),
            repo: head.repo,
            secret_type: a.secret_type,
            opened_at: head.opened_at,
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
        GithubKind::SecretScanning.as_str()
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
        let coverage = self.settings.coverage();
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
        let lists = self
            .api
            .alert_lists("secret-scanning", "secret_scanning_alerts", &query);
        if coverage.enabled {
            repos::sync_repos(
                &self.api,
                &self.settings,
                &coverage,
                &mut cur,
                mode,
                sink,
                &mut outcome,
            )
            .await?;
        }
        sync_alert_lists(
            &self.api,
            &mut cur,
            lists,
            mode,
            sink,
            &mut outcome,
            |listed_in, a: AlertWire| convert(&name, listed_in, a),
        )
        .await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(json: &str, listed_in: Option<&str>) -> Result<(SecretAlert, String), String> {
        let a: AlertWire = serde_json::from_str(json).unwrap();
        assert!(!format!("{a:?}").contains("SHOULD_NEVER"));
        let Converted::Item(item) = convert("gh", listed_in, a)?;
        let Record::SecretAlert(s) = item.record else {
            panic!()
        };
        Ok((s, item.updated.to_rfc3339()))
    }

    #[test]
    fn secret_is_never_read_and_fields_map() {
        let (s, updated) = alert(
            r#"{"number":7,"created_at":"2026-01-02T03:04:05Z","updated_at":null,"state":"resolved",
                "resolution":"revoked","resolved_at":"2026-01-03T00:00:00Z","secret_type":"github_personal_access_token",
                "secret":"ghp_SHOULD_NEVER_BE_SEEN","validity":"inactive","push_protection_bypassed":true,
                "push_protection_bypassed_at":"2026-01-02T03:00:00Z","repository":{"full_name":"o/r"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(s.id, "o/r#7");
        assert_eq!(s.resolution, Some(SecretResolution::Revoked));
        assert_eq!(s.validity, SecretValidity::Inactive);
        assert!(s.push_protection_bypassed);
        assert_eq!(updated, "2026-01-03T00:00:00+00:00");
    }

    #[test]
    fn a_repository_list_alert_takes_the_repository_of_its_list() {
        let j = r#"{"number":3,"created_at":"2026-01-02T03:04:05Z","state":"open"}"#;
        assert_eq!(
            alert(j, None).unwrap_err(),
            "`repository.full_name` is missing"
        );
        let (s, _) = alert(j, Some("acme/api")).unwrap();
        assert_eq!((s.id.as_str(), s.repo.as_str()), ("acme/api#3", "acme/api"));
    }
}
