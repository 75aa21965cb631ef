//! The one settings shape of both GitHub kinds (`github_secret_scanning`,
//! `github_code_scanning`): where to read (an organization, or a list of
//! repositories for tokens that cannot see the org), how (token, quota,
//! paging, retries), and how repositories map to assets. Keys that belong
//! to the other kind are refused by name when the connector is built.

use super::GithubApi;
use crate::config_serde as env_serde;
use crate::http::RetrySettings;
use crate::record::Environment;
use crate::Error;
use secrecy::SecretString;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The default GitHub API base URL (GHES: `https://<host>/api/v3`).
pub const DEFAULT_BASE_URL: &str = "https://api.github.com";

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}
fn default_rate() -> f64 {
    // 5,000 requests per hour for a token, with room for other clients.
    1.2
}
fn default_burst() -> u32 {
    10
}
fn default_per_page() -> u32 {
    100
}
fn default_pages_per_commit() -> u32 {
    1
}

/// Settings of a GitHub connector, either kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// Unique instance name; the `source` of its records.
    pub name: String,
    /// The organization whose alerts (and, for secret scanning,
    /// repositories) are read. One of `org` or `repos`.
    #[serde(default)]
    pub org: Option<String>,
    /// Instead of `org`: these repositories (`owner/name`), each read
    /// through its own endpoints, for tokens that cannot read the
    /// organization's lists.
    #[serde(default, deserialize_with = "repo_list")]
    pub repos: Vec<String>,
    /// API base URL; `https://<host>/api/v3` for GitHub Enterprise Server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The token inline (prefer `token_env` or `token_file`).
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
    /// Repository (`owner/name`) → asset id. Code scanning: repositories
    /// not named here use their full name as the asset. Secret scanning:
    /// the repository's asset, before topics and custom properties.
    #[serde(default)]
    pub assets: BTreeMap<String, String>,
    /// `github_secret_scanning` only: only these secret types. Generic
    /// (non-provider) patterns are returned only when named here.
    #[serde(default)]
    pub secret_types: Vec<String>,
    /// `github_secret_scanning` only: repository coverage (`repo` records).
    #[serde(default)]
    pub coverage: Option<CoverageSettings>,
    /// `github_code_scanning` only: only this tool's alerts, e.g. `CodeQL`.
    #[serde(default)]
    pub tool_name: Option<String>,
    /// `github_code_scanning` only: environment by repository or asset.
    #[serde(default, deserialize_with = "env_serde::map")]
    pub environments: BTreeMap<String, Environment>,
    /// `github_code_scanning` only: environment of everything not in
    /// `environments`. Default production.
    #[serde(default, deserialize_with = "opt_environment")]
    pub default_environment: Option<Environment>,
}

/// Repository coverage of `github_secret_scanning`: whether to read it,
/// which repositories are in scope and how they map to assets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoverageSettings {
    /// Read repositories at all. Default true.
    pub enabled: bool,
    /// Archived repositories are in scope. Default false.
    pub include_archived: bool,
    /// Forks are in scope. Default false.
    pub include_forks: bool,
    /// A topic starting with this prefix names the asset, e.g. with
    /// `asset-`, the topic `asset-payments-api` maps to `payments-api`.
    pub asset_topic_prefix: Option<String>,
    /// The custom property whose value is the asset id.
    pub asset_property: Option<String>,
}

impl Default for CoverageSettings {
    fn default() -> Self {
        CoverageSettings {
            enabled: true,
            include_archived: false,
            include_forks: false,
            asset_topic_prefix: None,
            asset_property: None,
        }
    }
}

/// What a connector reads: an organization's lists, or repositories one by
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `GET /orgs/{org}/...`.
    Org(String),
    /// `GET /repos/{owner}/{repo}/...` for each.
    Repos(Vec<String>),
}

/// The two GitHub kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GithubKind {
    /// Secret scanning alerts and repository coverage.
    SecretScanning,
    /// Code scanning alerts.
    CodeScanning,
}

impl GithubKind {
    /// The kind as spelled in config.
    pub fn as_str(self) -> &'static str {
        match self {
            GithubKind::SecretScanning => "github_secret_scanning",
            GithubKind::CodeScanning => "github_code_scanning",
        }
    }
}

impl GithubSettings {
    /// The coverage settings of secret scanning (defaults when unset).
    pub fn coverage(&self) -> CoverageSettings {
        self.coverage.clone().unwrap_or_default()
    }

    /// The environment of code scanning findings outside `environments`.
    pub fn default_environment(&self) -> Environment {
        self.default_environment.unwrap_or(Environment::Production)
    }

    /// Check the settings for `kind` and build the API client. `token` is
    /// the resolved secret (from `token_env` or `token_file`); `None` falls
    /// back to the inline `token`.
    pub(crate) fn api(
        &self,
        kind: GithubKind,
        token: Option<SecretString>,
    ) -> Result<GithubApi, Error> {
        let cfg = |message: String| Error::Config {
            connector: self.name.clone(),
            message,
        };
        let foreign: Vec<&str> = match kind {
            GithubKind::SecretScanning => [
                ("tool_name", self.tool_name.is_some()),
                ("environments", !self.environments.is_empty()),
                ("default_environment", self.default_environment.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect(),
            GithubKind::CodeScanning => [
                ("secret_types", !self.secret_types.is_empty()),
                ("coverage", self.coverage.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect(),
        };
        if let Some(k) = foreign.first() {
            return Err(cfg(format!(
                "`{k}` does not apply to kind {} (see the example configuration)",
                kind.as_str()
            )));
        }
        let target = match (&self.org, self.repos.is_empty()) {
            (Some(_), false) => {
                return Err(cfg(
                    "give either `org` or `repos` (a list of owner/name), not both".into(),
                ))
            }
            (None, true) => {
                return Err(cfg(
                    "give `org` (an organization) or `repos` (a list of owner/name)".into(),
                ))
            }
            (Some(org), true) => {
                if !is_name(org) {
                    return Err(cfg(format!(
                        "`org` {org:?} is not a GitHub organization name"
                    )));
                }
                Target::Org(org.clone())
            }
            (None, false) => {
                for r in &self.repos {
                    let ok = r
                        .split_once('/')
                        .is_some_and(|(o, n)| is_name(o) && is_name(n) && !n.contains('/'));
                    if !ok {
                        return Err(cfg(format!(
                            "`repos` entry {r:?} is not a repository as owner/name"
                        )));
                    }
                }
                Target::Repos(self.repos.clone())
            }
        };
        GithubApi::new(self, target, token.or_else(|| self.token.clone()))
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// `repos`: a list of `owner/name`. A table here is the coverage settings
/// of earlier versions, now `coverage`: said so, by name.
fn repo_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct ReposVisitor;
    impl<'de> Visitor<'de> for ReposVisitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of repositories as \"owner/name\"")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(r) = seq.next_element::<String>()? {
                out.push(r);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<String>, A::Error> {
            Err(serde::de::Error::custom(
                "`repos` is now a list of repositories [\"owner/name\", ...]; the repository \
                 coverage table is `coverage` (enabled, include_archived, include_forks, \
                 asset_topic_prefix, asset_property) and the repository → asset map is `assets`",
            ))
        }
    }
    d.deserialize_any(ReposVisitor)
}

fn opt_environment<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Environment>, D::Error> {
    env_serde::one(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(v: serde_json::Value) -> Result<GithubSettings, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn org_or_repos_exactly_one_and_foreign_keys_are_named() {
        let s =
            settings(serde_json::json!({"name": "g", "repos": ["acme/web", "acme/api"]})).unwrap();
        let api = s.api(GithubKind::CodeScanning, None).unwrap();
        assert_eq!(
            api.target,
            Target::Repos(vec!["acme/web".into(), "acme/api".into()])
        );
        let both = settings(serde_json::json!({"name": "g", "org": "acme", "repos": ["acme/web"]}))
            .unwrap();
        assert!(both
            .api(GithubKind::CodeScanning, None)
            .unwrap_err()
            .to_string()
            .contains("either `org` or `repos`"));
        let neither = settings(serde_json::json!({"name": "g"})).unwrap();
        assert!(neither.api(GithubKind::SecretScanning, None).is_err());
        let bad = settings(serde_json::json!({"name": "g", "repos": ["acme"]})).unwrap();
        assert!(bad
            .api(GithubKind::SecretScanning, None)
            .unwrap_err()
            .to_string()
            .contains("\"acme\" is not a repository as owner/name"));
        let foreign =
            settings(serde_json::json!({"name": "g", "org": "acme", "tool_name": "CodeQL"}))
                .unwrap();
        assert_eq!(
            foreign
                .api(GithubKind::SecretScanning, None)
                .unwrap_err()
                .to_string(),
            "connector g: `tool_name` does not apply to kind github_secret_scanning (see the example configuration)"
        );
    }

    #[test]
    fn the_old_repos_table_is_refused_with_its_new_name() {
        let e =
            settings(serde_json::json!({"name": "g", "org": "acme", "repos": {"enabled": false}}))
                .unwrap_err();
        assert!(e.contains("coverage table is `coverage`"), "{e}");
    }
}
