//! The closed set of connector kinds a `[[connectors]]` table can name, and
//! how each is built. A new kind is one variant here and its module.

use crate::connector::Connector;
use crate::github::code_scanning::GithubCodeScanningSettings;
use crate::github::secret_scanning::GithubSecretScanningSettings;
use crate::inventory::InventorySettings;
use crate::jira::JiraSettings;
use crate::ndjson_files::NdjsonSettings;
use crate::pagerduty::PagerdutySettings;
use crate::sarif::connector::SarifSettings;
use crate::Error;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;

/// One `[[connectors]]` table, selected by its `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorSettings {
    /// GitHub secret scanning alerts and repository coverage of an org.
    GithubSecretScanning(GithubSecretScanningSettings),
    /// GitHub code scanning alerts of an org.
    GithubCodeScanning(GithubCodeScanningSettings),
    /// SARIF files mapped to assets by path.
    Sarif(SarifSettings),
    /// Files in the normalized NDJSON format.
    Ndjson(NdjsonSettings),
    /// Jira Cloud or Data Center issues mapped to records by JQL.
    Jira(JiraSettings),
    /// PagerDuty incidents.
    Pagerduty(PagerdutySettings),
    /// Assets from a TOML or CSV file and optionally a Backstage catalog.
    Inventory(InventorySettings),
}

/// Where a connector's token is to be read from (resolved by the caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenRef<'a> {
    /// Inline `token` (already a secret).
    pub token: Option<&'a SecretString>,
    /// `token_env`: an environment variable name.
    pub token_env: Option<&'a str>,
    /// `token_file`: a file path.
    pub token_file: Option<&'a Path>,
}

impl ConnectorSettings {
    /// The instance name.
    pub fn name(&self) -> &str {
        match self {
            ConnectorSettings::GithubSecretScanning(s) => &s.name,
            ConnectorSettings::GithubCodeScanning(s) => &s.name,
            ConnectorSettings::Sarif(s) => &s.name,
            ConnectorSettings::Ndjson(s) => &s.name,
            ConnectorSettings::Jira(s) => &s.name,
            ConnectorSettings::Pagerduty(s) => &s.name,
            ConnectorSettings::Inventory(s) => &s.name,
        }
    }

    /// The kind, as spelled in config.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorSettings::GithubSecretScanning(_) => "github_secret_scanning",
            ConnectorSettings::GithubCodeScanning(_) => "github_code_scanning",
            ConnectorSettings::Sarif(_) => "sarif",
            ConnectorSettings::Ndjson(_) => "ndjson",
            ConnectorSettings::Jira(_) => "jira",
            ConnectorSettings::Pagerduty(_) => "pagerduty",
            ConnectorSettings::Inventory(_) => "inventory",
        }
    }

    /// The token keys of kinds that take one.
    pub fn token_ref(&self) -> TokenRef<'_> {
        match self {
            ConnectorSettings::GithubSecretScanning(s) => TokenRef {
                token: s.token.as_ref(),
                token_env: s.token_env.as_deref(),
                token_file: s.token_file.as_deref(),
            },
            ConnectorSettings::GithubCodeScanning(s) => TokenRef {
                token: s.token.as_ref(),
                token_env: s.token_env.as_deref(),
                token_file: s.token_file.as_deref(),
            },
            ConnectorSettings::Jira(s) => TokenRef {
                token: s.token.as_ref(),
                token_env: s.token_env.as_deref(),
                token_file: s.token_file.as_deref(),
            },
            ConnectorSettings::Pagerduty(s) => TokenRef {
                token: s.token.as_ref(),
                token_env: s.token_env.as_deref(),
                token_file: s.token_file.as_deref(),
            },
            ConnectorSettings::Inventory(s) => TokenRef {
                token: s.token.as_ref(),
                token_env: s.token_env.as_deref(),
                token_file: s.token_file.as_deref(),
            },
            _ => TokenRef::default(),
        }
    }

    /// Build the connector. `token` is the secret resolved from
    /// `token_env`/`token_file` by the caller; `None` uses the inline
    /// `token`, if any.
    pub fn build(self, token: Option<SecretString>) -> Result<Box<dyn Connector>, Error> {
        Ok(match self {
            ConnectorSettings::GithubSecretScanning(s) => Box::new(s.build(token)?),
            ConnectorSettings::GithubCodeScanning(s) => Box::new(s.build(token)?),
            ConnectorSettings::Sarif(s) => Box::new(s.build()?),
            ConnectorSettings::Ndjson(s) => Box::new(s.build()?),
            ConnectorSettings::Jira(s) => Box::new(s.build(token)?),
            ConnectorSettings::Pagerduty(s) => Box::new(s.build(token)?),
            ConnectorSettings::Inventory(s) => Box::new(s.build(token)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_unknown_keys_are_rejected_by_name() {
        let ok: ConnectorSettings = serde_json::from_value(serde_json::json!({
            "kind": "github_secret_scanning", "name": "gh", "org": "acme", "token_env": "GH_TOKEN",
            "repos": {"asset_topic_prefix": "asset-"}
        }))
        .unwrap();
        assert_eq!((ok.name(), ok.kind()), ("gh", "github_secret_scanning"));
        assert_eq!(ok.token_ref().token_env, Some("GH_TOKEN"));
        let err = serde_json::from_value::<ConnectorSettings>(serde_json::json!({
            "kind": "github_code_scanning", "name": "cs", "org": "acme", "orgg": "x"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("orgg"), "{err}");
        let err = serde_json::from_value::<ConnectorSettings>(
            serde_json::json!({"kind": "jiraa", "name": "j"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("jiraa"), "{err}");
    }

    #[test]
    fn token_never_shows_in_debug() {
        let s: ConnectorSettings = serde_json::from_value(serde_json::json!({
            "kind": "github_code_scanning", "name": "cs", "org": "acme", "token": "ghp_TOPSECRET"
        }))
        .unwrap();
        assert!(!format!("{s:?}").contains("TOPSECRET"));
        let c = s.build(None).unwrap();
        assert_eq!(c.kind(), "github_code_scanning");
    }
}
