//! Secrets in configuration: a value may be given inline, read from a file
//! (`*_file`, e.g. a systemd credential) or from an environment variable
//! (`*_env`). The resolved value is held in a `SecretString`, whose Debug
//! output is redacted, so it cannot reach a log line by accident.

use secrecy::SecretString;
use std::path::PathBuf;

/// Why a secret could not be resolved. Never contains the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// More than one way to give the secret was used.
    #[error("`{key}`: give only one of `{key}`, `{key}_file` and `{key}_env`")]
    Ambiguous {
        /// Config key, e.g. `admin.push_token`.
        key: String,
    },
    /// The file named by `*_file` cannot be read.
    #[error("`{key}_file`: cannot read {path}: {source}")]
    File {
        /// Config key.
        key: String,
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The variable named by `*_env` is not set.
    #[error("`{key}_env`: environment variable {var} is not set")]
    Env {
        /// Config key.
        key: String,
        /// Variable name.
        var: String,
    },
    /// The secret resolved to an empty string.
    #[error("`{key}`: the secret is empty")]
    Empty {
        /// Config key.
        key: String,
    },
}

/// Resolve a secret given inline, by file, or by environment variable.
/// `key` is the dotted config key used in error messages.
pub fn resolve(
    key: &str,
    inline: Option<&SecretString>,
    file: Option<&PathBuf>,
    env: Option<&String>,
) -> Result<Option<SecretString>, SecretError> {
    use secrecy::ExposeSecret;
    let given = inline.is_some() as u8 + file.is_some() as u8 + env.is_some() as u8;
    if given > 1 {
        return Err(SecretError::Ambiguous { key: key.into() });
    }
    let value: Option<String> = if let Some(s) = inline {
        Some(s.expose_secret().to_string())
    } else if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            key: key.into(),
            path: path.clone(),
            source,
        })?;
        // Credential files usually end with a newline that is not part of it.
        Some(text.trim_end_matches(['\n', '\r']).to_string())
    } else if let Some(var) = env {
        Some(std::env::var(var).map_err(|_| SecretError::Env {
            key: key.into(),
            var: var.clone(),
        })?)
    } else {
        None
    };
    match value {
        Some(v) if v.is_empty() => Err(SecretError::Empty { key: key.into() }),
        Some(v) => Ok(Some(SecretString::from(v))),
        None => Ok(None),
    }
}
