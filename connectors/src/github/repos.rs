//! Repository coverage: `GET /orgs/{org}/repos?type=all` as `repo` records,
//! the denominator of secret scanning coverage.
//!
//! `security_and_analysis` is shown only to admins and security managers:
//! when it is absent, coverage is *unknown* (`secret_scanning: None`, and
//! `extra.security_and_analysis = "unknown"`), never "disabled".

use super::{opt_time, sync_whole_list, Converted, GithubApi, GithubCursor, Item};
use crate::connector::{PageSink, SyncMode, SyncOutcome};
use crate::record::{Extra, Record, Repo, RepoType};
use crate::Error;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Which repositories count and how they map to assets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepoSettings {
    /// Read repositories at all. Default true.
    pub enabled: bool,
    /// Archived repositories are in scope. Default false.
    pub include_archived: bool,
    /// Forks are in scope. Default false.
    pub include_forks: bool,
    /// Explicit map of `owner/name` to asset id; wins over topics and
    /// custom properties.
    pub assets: BTreeMap<String, String>,
    /// A topic starting with this prefix names the asset, e.g. with
    /// `asset-`, the topic `asset-payments-api` maps to `payments-api`.
    pub asset_topic_prefix: Option<String>,
    /// The custom property whose value is the asset id.
    pub asset_property: Option<String>,
}

impl Default for RepoSettings {
    fn default() -> Self {
        RepoSettings {
            enabled: true,
            include_archived: false,
            include_forks: false,
            assets: BTreeMap::new(),
            asset_topic_prefix: None,
            asset_property: None,
        }
    }
}

/// One repository as the org list gives it.
#[derive(Debug, Deserialize)]
struct RepoWire {
    full_name: Option<String>,
    archived: Option<bool>,
    fork: Option<bool>,
    disabled: Option<bool>,
    visibility: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    pushed_at: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    custom_properties: BTreeMap<String, Value>,
    security_and_analysis: Option<BTreeMap<String, Feature>>,
}

#[derive(Debug, Deserialize)]
struct Feature {
    status: Option<String>,
}

fn feature(sa: &BTreeMap<String, Feature>, key: &str) -> Option<bool> {
    match sa.get(key).and_then(|f| f.status.as_deref()) {
        Some("enabled") => Some(true),
        Some("disabled") => Some(false),
        _ => None,
    }
}

/// The asset of a repository: table, then topic, then custom property.
fn asset_of(s: &RepoSettings, r: &RepoWire, name: &str) -> Option<String> {
    if let Some(a) = s.assets.get(name) {
        return Some(a.clone());
    }
    if let Some(prefix) = &s.asset_topic_prefix {
        if let Some(a) = r
            .topics
            .iter()
            .find_map(|t| t.strip_prefix(prefix.as_str()).filter(|a| !a.is_empty()))
        {
            return Some(a.to_string());
        }
    }
    if let Some(prop) = &s.asset_property {
        match r.custom_properties.get(prop) {
            Some(Value::String(v)) if !v.is_empty() => return Some(v.clone()),
            Some(Value::Array(vs)) => {
                if let Some(Value::String(v)) = vs.first() {
                    return Some(v.clone());
                }
            }
            _ => {}
        }
    }
    None
}

fn convert(source: &str, s: &RepoSettings, r: RepoWire) -> Result<Converted, String> {
    let name = r.full_name.clone().ok_or("`full_name` is missing")?;
    let archived = r.archived.unwrap_or(false);
    let fork = r.fork.unwrap_or(false);
    let in_scope = (s.include_archived || !archived)
        && (s.include_forks || !fork)
        && !r.disabled.unwrap_or(false);
    let mut extra = serde_json::Map::new();
    extra.insert("archived".into(), Value::Bool(archived));
    extra.insert("fork".into(), Value::Bool(fork));
    if let Some(v) = &r.visibility {
        extra.insert("visibility".into(), Value::String(v.clone()));
    }
    let (secret_scanning, push_protection) = match &r.security_and_analysis {
        Some(sa) => (
            feature(sa, "secret_scanning"),
            feature(sa, "secret_scanning_push_protection"),
        ),
        None => {
            extra.insert(
                "security_and_analysis".into(),
                Value::String("unknown".into()),
            );
            (None, None)
        }
    };
    let updated = [
        opt_time("updated_at", &r.updated_at)?,
        opt_time("pushed_at", &r.pushed_at)?,
        opt_time("created_at", &r.created_at)?,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or_default();
    Ok(Converted::Item(Item {
        record: Record::Repo(Repo {
            asset: asset_of(s, &r, &name),
            id: name,
            source: source.to_string(),
            repo_type: RepoType::Repository,
            in_scope,
            secret_scanning,
            push_protection,
            extra: Extra(extra),
        }),
        updated,
    }))
}

/// Read the organization's repositories, whole every pass (enabling secret
/// scanning need not change a repo's `updated_at`), sorted by name so a
/// change alters only its own page; unchanged pages answer `304`.
pub(crate) async fn sync_repos(
    api: &GithubApi,
    settings: &RepoSettings,
    cursor: &mut GithubCursor,
    mode: SyncMode,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
) -> Result<(), Error> {
    let source = api.http.connector().to_string();
    let per_page = api.per_page.to_string();
    let url = api.url(
        &format!("/orgs/{}/repos", api.org),
        &[
            ("type", "all"),
            ("per_page", &per_page),
            ("sort", "full_name"),
            ("direction", "asc"),
        ],
    );
    sync_whole_list(
        api,
        cursor,
        "repos",
        url,
        mode,
        sink,
        outcome,
        |r: RepoWire| convert(&source, settings, r),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(json: &str, s: &RepoSettings) -> Repo {
        let w: RepoWire = serde_json::from_str(json).unwrap();
        match convert("gh", s, w).unwrap() {
            Converted::Item(Item {
                record: Record::Repo(r),
                ..
            }) => r,
            _ => panic!(),
        }
    }

    #[test]
    fn missing_security_and_analysis_is_unknown_not_disabled() {
        let r = repo(
            r#"{"full_name":"o/a","updated_at":"2026-01-01T00:00:00Z"}"#,
            &RepoSettings::default(),
        );
        assert_eq!(r.secret_scanning, None);
        assert_eq!(r.extra.0["security_and_analysis"], "unknown");
        assert!(r.in_scope);
    }

    #[test]
    fn archived_and_forks_are_out_of_scope_unless_configured() {
        let s = RepoSettings::default();
        assert!(!repo(r#"{"full_name":"o/a","archived":true}"#, &s).in_scope);
        assert!(!repo(r#"{"full_name":"o/a","fork":true}"#, &s).in_scope);
        let s = RepoSettings {
            include_archived: true,
            include_forks: true,
            ..s
        };
        assert!(repo(r#"{"full_name":"o/a","archived":true,"fork":true}"#, &s).in_scope);
    }

    #[test]
    fn asset_comes_from_table_then_topic_then_property() {
        let mut s = RepoSettings {
            asset_topic_prefix: Some("asset-".into()),
            asset_property: Some("asset".into()),
            ..RepoSettings::default()
        };
        let j = r#"{"full_name":"o/a","topics":["go","asset-pay"],"custom_properties":{"asset":"billing"},
                    "security_and_analysis":{"secret_scanning":{"status":"enabled"},"secret_scanning_push_protection":{"status":"disabled"}}}"#;
        let r = repo(j, &s);
        assert_eq!(r.asset.as_deref(), Some("pay"));
        assert_eq!(
            (r.secret_scanning, r.push_protection),
            (Some(true), Some(false))
        );
        s.asset_topic_prefix = None;
        assert_eq!(repo(j, &s).asset.as_deref(), Some("billing"));
        s.assets.insert("o/a".into(), "core".into());
        assert_eq!(repo(j, &s).asset.as_deref(), Some("core"));
    }
}
