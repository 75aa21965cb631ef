//! The closed set of connector kinds a `[[connectors]]` table can name, and
//! how each is built. A new kind is one variant here and its module.

use crate::connector::Connector;
use crate::github::code_scanning::GithubCodeScanning;
use crate::github::secret_scanning::GithubSecretScanning;
use crate::github::GithubSettings;
use crate::inventory::InventorySettings;
use crate::jira::JiraSettings;
use crate::ndjson_files::NdjsonSettings;
use crate::pagerduty::PagerdutySettings;
use crate::sarif::connector::SarifSettings;
use crate::Error;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::path::Path;

/// One `[[connectors]]` table, selected by its `kind`. Read by hand rather
/// than as a tagged enum so that an error names the key inside the table
/// (`per_page`, `retry.max_attempts`), not only the table.
#[derive(Debug, Clone)]
pub enum ConnectorSettings {
    /// GitHub secret scanning alerts and repository coverage of an org (or
    /// of listed repositories).
    GithubSecretScanning(GithubSettings),
    /// GitHub code scanning alerts of an org (or of listed repositories).
    GithubCodeScanning(GithubSettings),
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

/// The kinds, as spelled in config.
pub const KINDS: [&str; 7] = [
    "github_secret_scanning",
    "github_code_scanning",
    "sarif",
    "ndjson",
    "jira",
    "pagerduty",
    "inventory",
];

/// One kind's settings from the table's other keys; an error names the
/// key path at fault.
fn variant<T: DeserializeOwned>(table: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(table).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("`{path}`: {inner}")
        }
    })
}

impl<'de> Deserialize<'de> for ConnectorSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = serde_json::Map::<String, Value>::deserialize(d)?;
        let kind = match table.remove("kind") {
            Some(Value::String(k)) => k,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`kind` must be a string, found {other}"
                )))
            }
            None => return Err(D::Error::custom("missing field `kind`")),
        };
        let name = table
            .get("name")
            .and_then(Value::as_str)
            .map(|n| format!("connector {n:?}"))
            .unwrap_or_else(|| "a connector".into());
        let table = Value::Object(table);
        let settings = match kind.as_str() {
            "github_secret_scanning" => variant(table).map(ConnectorSettings::GithubSecretScanning),
            "github_code_scanning" => variant(table).map(ConnectorSettings::GithubCodeScanning),
            "sarif" => variant(table).map(ConnectorSettings::Sarif),
            "ndjson" => variant(table).map(ConnectorSettings::Ndjson),
            "jira" => variant(table).map(ConnectorSettings::Jira),
            "pagerduty" => variant(table).map(ConnectorSettings::Pagerduty),
            "inventory" => variant(table).map(ConnectorSettings::Inventory),
            other => Err(format!(
                "unknown kind `{other}`, expected one of {}",
                KINDS.join(", ")
            )),
        };
        settings.map_err(|m| D::Error::custom(format!("{name} (kind {kind}): {m}")))
    }
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
            ConnectorSettings::GithubSecretScanning(s)
            | ConnectorSettings::GithubCodeScanning(s) => TokenRef {
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
            ConnectorSettings::GithubSecretScanning(s) => {
                Box::new(GithubSecretScanning::new(s, token)?)
            }
            ConnectorSettings::GithubCodeScanning(s) => {
                Box::new(GithubCodeScanning::new(s, token)?)
            }
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
            "coverage": {"asset_topic_prefix": "asset-"}
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
    fn a_wrong_type_names_the_key_inside_the_table() {
        let e = serde_json::from_value::<ConnectorSettings>(serde_json::json!({
            "kind": "github_code_scanning", "name": "cs", "org": "acme", "per_page": "lots"
        }))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "connector \"cs\" (kind github_code_scanning): `per_page`: invalid type: string \"lots\", expected u32"
        );
        let e = serde_json::from_value::<ConnectorSettings>(serde_json::json!({
            "kind": "sarif", "name": "s", "paths": ["a"], "suppressions": {"external": 3}
        }))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("connector \"s\" (kind sarif): `suppressions.external`: "),
            "{e}"
        );
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
