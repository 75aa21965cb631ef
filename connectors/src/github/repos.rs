//! Repository coverage: `GET /orgs/{org}/repos?type=all` (or, for a list of
//! repositories, each `GET /repos/{owner}/{repo}` with its own ETag) as
//! `repo` records, the denominator of secret scanning coverage.
//!
//! `security_and_analysis` is shown only to admins and security managers:
//! when it is absent, coverage is *unknown* (`secret_scanning: None`, and
//! `extra.security_and_analysis = "unknown"`), never "disabled".

use super::{
    commit, opt_time, sync_list, Converted, CoverageSettings, EndpointCursor, GithubApi,
    GithubCursor, GithubSettings, Item, List, Target,
};
use crate::connector::{PageSink, SyncMode, SyncOutcome};
use crate::http::{Conditional, HttpError};
use crate::record::{Extra, Record, Repo, RepoType};
use crate::Error;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One repository as the org list gives it.
#[derive(Debug, Deserialize)]
pub(super) struct RepoWire {
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

/// The asset of a repository: the `assets` table, then a topic, then the
/// custom property.
fn asset_of(
    assets: &BTreeMap<String, String>,
    s: &CoverageSettings,
    r: &RepoWire,
    name: &str,
) -> Option<String> {
    if let Some(a) = assets.get(name) {
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

pub(super) fn convert(
    source: &str,
    assets: &BTreeMap<String, String>,
    s: &CoverageSettings,
    r: RepoWire,
) -> Result<Converted, String> {
    let name = r
        .full_name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("`full_name` is missing or empty")?;
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
            asset: asset_of(assets, s, &r, &name),
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

/// Read repository coverage: the organization's list whole every pass
/// (enabling secret scanning need not change a repo's `updated_at`), sorted
/// by name so a change alters only its own page, unchanged pages answering
/// `304`; or each listed repository's own object with its ETag.
pub(crate) async fn sync_repos(
    api: &GithubApi,
    settings: &GithubSettings,
    coverage: &CoverageSettings,
    cursor: &mut GithubCursor,
    mode: SyncMode,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
) -> Result<(), Error> {
    let source = api.http.connector().to_string();
    let org = match &api.target {
        Target::Org(org) => org,
        Target::Repos(repos) => {
            return sync_repo_objects(api, settings, coverage, repos, cursor, mode, sink, outcome)
                .await
        }
    };
    let per_page = api.per_page.to_string();
    let url = api.url(
        &format!("/orgs/{org}/repos"),
        &[
            ("type", "all"),
            ("per_page", &per_page),
            ("sort", "full_name"),
            ("direction", "asc"),
        ],
    );
    let list = List {
        key: "repos".into(),
        first_url: url,
        whole: true,
        missing_ok: false,
    };
    sync_list(api, cursor, list, mode, sink, outcome, |r: RepoWire| {
        convert(&source, &settings.assets, coverage, r)
    })
    .await
}

/// Each listed repository's own object, asked with the ETag of the last
/// pass: an unchanged repository costs one `304` and writes nothing.
#[allow(clippy::too_many_arguments)]
async fn sync_repo_objects(
    api: &GithubApi,
    settings: &GithubSettings,
    coverage: &CoverageSettings,
    repos: &[String],
    cursor: &mut GithubCursor,
    mode: SyncMode,
    sink: &mut dyn PageSink,
    outcome: &mut SyncOutcome,
) -> Result<(), Error> {
    let source = api.http.connector().to_string();
    for name in repos {
        if sink.cancelled() {
            outcome.interrupted = true;
            return Ok(());
        }
        let key = format!("repo:{name}");
        let ep = cursor.endpoints.get(&key).cloned().unwrap_or_default();
        let etag = match mode {
            SyncMode::Full => None,
            SyncMode::Incremental => ep.etag.as_deref(),
        };
        outcome.requests += 1;
        let fetched = match api
            .http
            .get(&api.url(&format!("/repos/{name}"), &[]), etag)
            .await
        {
            Err(HttpError::Cancelled { .. }) => {
                outcome.interrupted = true;
                return Ok(());
            }
            Err(HttpError::Status { status: 404, .. }) => {
                outcome.unreadable_item(format!(
                    "repo {name}: not found, or not visible to the token"
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
            Ok(Conditional::NotModified) => continue,
            Ok(Conditional::Modified(f)) => f,
        };
        let record = serde_json::from_slice::<RepoWire>(&fetched.body)
            .map_err(|e| e.to_string())
            .and_then(|r| convert(&source, &settings.assets, coverage, r));
        match record {
            Ok(Converted::Item(item)) => {
                cursor.endpoints.insert(
                    key,
                    EndpointCursor {
                        etag: fetched.etag,
                        ..EndpointCursor::default()
                    },
                );
                commit(&source, cursor, vec![item.record], sink, outcome)?;
            }
            Err(message) => outcome.unreadable_item(format!("repo {name}: {message}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(json: &str, s: &CoverageSettings) -> Repo {
        repo_with(json, s, &BTreeMap::new())
    }

    fn repo_with(json: &str, s: &CoverageSettings, assets: &BTreeMap<String, String>) -> Repo {
        let w: RepoWire = serde_json::from_str(json).unwrap();
        match convert("gh", assets, s, w).unwrap() {
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
            &CoverageSettings::default(),
        );
        assert_eq!(r.secret_scanning, None);
        assert_eq!(r.extra.0["security_and_analysis"], "unknown");
        assert!(r.in_scope);
    }

    #[test]
    fn archived_and_forks_are_out_of_scope_unless_configured() {
        let s = CoverageSettings::default();
        assert!(!repo(r#"{"full_name":"o/a","archived":true}"#, &s).in_scope);
        assert!(!repo(r#"{"full_name":"o/a","fork":true}"#, &s).in_scope);
        let s = CoverageSettings {
            include_archived: true,
            include_forks: true,
            ..s
        };
        assert!(repo(r#"{"full_name":"o/a","archived":true,"fork":true}"#, &s).in_scope);
    }

    #[test]
    fn asset_comes_from_table_then_topic_then_property() {
        let mut s = CoverageSettings {
            asset_topic_prefix: Some("asset-".into()),
            asset_property: Some("asset".into()),
            ..CoverageSettings::default()
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
        let assets = BTreeMap::from([("o/a".to_string(), "core".to_string())]);
        assert_eq!(repo_with(j, &s, &assets).asset.as_deref(), Some("core"));
    }
}
