//! Configuration: one TOML file plus environment overrides
//! (`SECMETRICS__SECTION__KEY`), read with the `config` crate into serde
//! structs with defaults. Unknown keys are errors that name the key, so a
//! typo never silently does nothing. `config/secmetrics.example.toml`
//! documents every key.

pub mod secret;

use secmetrics_connectors::ConnectorSettings;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the store lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The daemon's admin API and push endpoint.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The KPI pack: maturity stage, per-KPI owner, cadence, target and
    /// business sentence, coverage windows and SLA days.
    #[serde(default)]
    pub kpi: crate::kpi::KpiConfig,
    /// Reconciliation of linked findings: which source's record is a
    /// group's canonical member.
    #[serde(default)]
    pub reconcile: crate::reconcile::ReconcileConfig,
    /// The daemon: time zone, sync schedules, shutdown, retries.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Scheduled digests (`[[digests]]`).
    #[serde(default)]
    pub digests: Vec<DigestConfig>,
    /// Slack delivery.
    pub slack: Option<SlackConfig>,
    /// Email delivery.
    pub email: Option<EmailConfig>,
    /// `[[connectors]]`: one table per source instance, each with a unique
    /// `name` and a `kind` from the closed set of
    /// [`secmetrics_connectors::ConnectorSettings`].
    #[serde(default)]
    pub connectors: Vec<ConnectorSettings>,
    /// NDJSON input read by `import` and the daemon's push endpoint.
    #[serde(default)]
    pub ndjson: NdjsonInputConfig,
    /// Sync passes (`secmetrics sync`, the daemon's schedules and resyncs).
    #[serde(default)]
    pub sync: SyncConfig,
}

/// The offline demo's configuration (owners, targets, maturity).
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// Default of `sync.max_pass_secs`: one hour.
pub const DEFAULT_MAX_PASS_SECS: u64 = 3600;

/// `[sync]`: bounds of a connector's pass.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Longest one connector's pass may run, in seconds. Past it the pass
    /// is stopped (the request in flight is cut), reported failed, and the
    /// next pass resumes from its last committed page. Default 3600.
    #[serde(default = "default_max_pass_secs")]
    pub max_pass_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            max_pass_secs: DEFAULT_MAX_PASS_SECS,
        }
    }
}

fn default_max_pass_secs() -> u64 {
    DEFAULT_MAX_PASS_SECS
}

/// `[ndjson]`: limits of NDJSON input (`import`, `POST /api/v1/records`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonInputConfig {
    /// Lines longer than this many bytes are rejected like any bad line,
    /// never held whole. Default 1 MiB (a record is a few hundred bytes).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

impl Default for NdjsonInputConfig {
    fn default() -> Self {
        NdjsonInputConfig {
            max_line_bytes: default_max_line_bytes(),
        }
    }
}

fn default_max_line_bytes() -> usize {
    secmetrics_connectors::ndjson::DEFAULT_MAX_LINE_BYTES
}

/// `[daemon]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// IANA time zone the cron schedules are read in, e.g. `Europe/Berlin`.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Cron schedule (6 fields, seconds first) of every connector's sync.
    #[serde(default = "default_sync_schedule")]
    pub sync_schedule: String,
    /// Per-connector schedules that replace `sync_schedule`, by connector name.
    #[serde(default)]
    pub sync_schedules: std::collections::BTreeMap<String, String>,
    /// Seconds SIGTERM may take: the page in flight finishes, then the daemon exits.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// First retry delay of an undelivered digest, in seconds (doubles each time).
    #[serde(default = "default_retry_base")]
    pub retry_base_secs: u64,
    /// Longest retry delay of an undelivered digest, in seconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
    /// Public URL of the HTML report, linked from Slack and email when set.
    pub report_url: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            timezone: default_tz(),
            sync_schedule: default_sync_schedule(),
            sync_schedules: Default::default(),
            shutdown_grace_secs: default_grace(),
            retry_base_secs: default_retry_base(),
            retry_max_secs: default_retry_max(),
            report_url: None,
        }
    }
}

fn default_tz() -> String {
    "UTC".into()
}
fn default_sync_schedule() -> String {
    "0 0 * * * *".into()
}
fn default_grace() -> u64 {
    8
}
fn default_retry_base() -> u64 {
    30
}
fn default_retry_max() -> u64 {
    3600
}

/// One `[[digests]]` table: what to send, when, and where.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// Unique name (used in the outbox key and `secmetrics digest NAME`).
    pub name: String,
    /// Cron schedule (6 fields, seconds first), in `daemon.timezone`.
    pub schedule: String,
    /// Which period the digest covers: the last `month`, `week` (ISO, Monday
    /// to Monday) or `day` that had ended in `kpi.timezone` when it fired.
    #[serde(default)]
    pub period: DigestPeriod,
    /// KPI ids to show; default: the spec's monthly pack.
    pub kpis: Option<Vec<String>>,
    /// Channels: `slack` and/or `email`.
    pub channels: Vec<ChannelKind>,
    /// Slack channel for this digest (bot token only; overrides `slack.channel`).
    pub slack_channel: Option<String>,
    /// Email recipients for this digest (override `email.to`).
    pub email_to: Option<Vec<String>>,
}

/// The period a digest covers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestPeriod {
    /// The last complete calendar month.
    #[default]
    Month,
    /// The last complete ISO week (Monday to Monday, in `kpi.timezone`).
    Week,
    /// The last complete day (in `kpi.timezone`).
    Day,
}

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Slack (webhook or bot token).
    Slack,
    /// Email over SMTP.
    Email,
}

impl ChannelKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Email => "email",
        }
    }
}

/// `[slack]`: an incoming webhook, or a bot token with a channel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Incoming webhook URL (a secret: it grants posting).
    pub webhook_url: Option<SecretString>,
    /// File holding the webhook URL.
    pub webhook_url_file: Option<PathBuf>,
    /// Environment variable holding the webhook URL.
    pub webhook_url_env: Option<String>,
    /// Bot token (`xoxb-…`) for `chat.postMessage`.
    pub bot_token: Option<SecretString>,
    /// File holding the bot token.
    pub bot_token_file: Option<PathBuf>,
    /// Environment variable holding the bot token.
    pub bot_token_env: Option<String>,
    /// Channel id or name for `chat.postMessage`.
    pub channel: Option<String>,
    /// Web API base URL (change only for tests or proxies).
    #[serde(default = "default_slack_api")]
    pub api_base: String,
    /// Request timeout in seconds (connecting may take at most half of it);
    /// a request sent without an answer in time is unconfirmed.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Largest answer read from Slack, in bytes (its answers are a few
    /// hundred); a longer one is cut off there. Default 1 MiB.
    #[serde(default = "default_slack_max_answer")]
    pub max_answer_bytes: usize,
}

/// Default of `slack.max_answer_bytes`: 1 MiB.
pub const DEFAULT_SLACK_MAX_ANSWER_BYTES: usize = 1024 * 1024;

fn default_slack_max_answer() -> usize {
    DEFAULT_SLACK_MAX_ANSWER_BYTES
}

fn default_slack_api() -> String {
    "https://slack.com/api".into()
}
fn default_timeout() -> u64 {
    30
}

/// `[email]`: SMTP submission.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name.
    pub host: String,
    /// Port; default 587 for `starttls`, 465 for `implicit`, 25 for `none`.
    pub port: Option<u16>,
    /// `starttls`, `implicit` (SMTPS) or `none` (plain, for a local relay only).
    #[serde(default)]
    pub tls: SmtpTls,
    /// SMTP user name (with a password: authenticate).
    pub username: Option<String>,
    /// SMTP password (inline; prefer `password_file`).
    pub password: Option<SecretString>,
    /// File holding the SMTP password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the SMTP password.
    pub password_env: Option<String>,
    /// Sender, e.g. `secmetrics <secmetrics@example.com>`.
    pub from: String,
    /// Default recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Timeout of each SMTP step in seconds (connect, STARTTLS, AUTH, MAIL,
    /// each RCPT, DATA, the message and its answer).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// How SMTP is secured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No TLS: only for a relay on the same host.
    None,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Store directory (created with mode 0700). Default: `$STATE_DIRECTORY`
    /// under systemd, else `/var/lib/secmetrics` when it exists (the
    /// installed service's store), else `$XDG_DATA_HOME/secmetrics`, else
    /// `~/.local/share/secmetrics`. `--data-dir` overrides it.
    pub path: Option<PathBuf>,
}

/// `[log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Level filter in `RUST_LOG` syntax (e.g. `info`, `secmetrics=debug`).
    /// `RUST_LOG`, when set, wins.
    #[serde(default = "default_level")]
    pub level: String,
    /// `auto` (the journal under systemd, human-readable text on a terminal,
    /// JSON otherwise), `text`, `json` or `journald`.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
            format: LogFormat::default(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

/// Log line format.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
    /// Native journald entries (fields kept as journal fields).
    Journald,
}

/// `[admin]`: the daemon's admin API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Unix socket of the admin API (mode 0600).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Optional loopback TCP address for Prometheus scrapes, e.g. `127.0.0.1:9477`.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Bearer token for `POST /api/v1/records` (inline; prefer `push_token_file`).
    pub push_token: Option<SecretString>,
    /// File holding the push token (e.g. a systemd credential).
    pub push_token_file: Option<PathBuf>,
    /// Environment variable holding the push token.
    pub push_token_env: Option<String>,
    /// Largest accepted push body in bytes.
    #[serde(default = "default_push_max")]
    pub push_max_bytes: u64,
    /// Largest accepted body of any other admin request (a resync request
    /// is a few bytes), in bytes. Default 64 KiB.
    #[serde(default = "default_request_max")]
    pub max_request_bytes: usize,
}

fn default_request_max() -> usize {
    64 * 1024
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            socket: default_socket(),
            metrics_listen: None,
            push_token: None,
            push_token_file: None,
            push_token_env: None,
            push_max_bytes: default_push_max(),
            max_request_bytes: default_request_max(),
        }
    }
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/secmetrics/admin.sock")
}

fn default_push_max() -> u64 {
    16 * 1024 * 1024
}

/// Secrets resolved from the configuration.
#[derive(Debug, Default)]
pub struct Secrets {
    /// The push endpoint's bearer token.
    pub push_token: Option<SecretString>,
    /// Slack incoming webhook URL.
    pub slack_webhook: Option<SecretString>,
    /// Slack bot token.
    pub slack_bot_token: Option<SecretString>,
    /// SMTP password.
    pub smtp_password: Option<SecretString>,
    /// Each connector's token, by connector name (kinds that take one).
    pub connector_tokens: BTreeMap<String, SecretString>,
}

/// A configuration problem, in plain words, naming the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an override could not be read or does not fit.
    #[error("{0}")]
    Invalid(String),
    /// A secret could not be resolved.
    #[error(transparent)]
    Secret(#[from] secret::SecretError),
}

impl Config {
    /// Load `path` (if any) plus `SECMETRICS__SECTION__KEY` overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("SECMETRICS")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let raw = builder.build().map_err(|e| describe(e, path))?;
        let config = raw
            .try_deserialize::<Config>()
            .map_err(|e| describe(e, path))?;
        config.validate().map_err(|e| {
            let file = path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "environment".into());
            ConfigError::Invalid(format!("{file}: {e}"))
        })?;
        Ok(config)
    }

    /// The configuration in `text` (TOML) named `name` in errors, with no
    /// environment overrides: a configuration shipped with the binary.
    pub fn from_toml(text: &str, name: &str) -> Result<Config, ConfigError> {
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::Invalid(format!("{name}: {e}")))?;
        let config = raw
            .try_deserialize::<Config>()
            .map_err(|e| ConfigError::Invalid(format!("{name}: {e}")))?;
        config
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("{name}: {e}")))?;
        Ok(config)
    }

    /// The offline demo's configuration (`config/demo.toml`, built in).
    pub fn demo() -> Config {
        // Parsed by a test: it cannot fail in a build that passed them.
        Config::from_toml(DEMO_CONFIG, "config/demo.toml").expect("config/demo.toml parses")
    }

    /// Checks serde cannot express: connector names are unique and usable
    /// as the `source` of records.
    fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for c in &self.connectors {
            let name = c.name();
            if name.is_empty() || name.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
                return Err(format!(
                    "connector name {name:?} must be non-empty, without spaces or control characters"
                ));
            }
            if name == "import" {
                return Err("connector name \"import\" is reserved for `secmetrics import`".into());
            }
            if !names.insert(name) {
                return Err(format!(
                    "two [[connectors]] are named {name:?}; names must be unique"
                ));
            }
        }
        Ok(())
    }

    /// The connector named `name`.
    pub fn connector(&self, name: &str) -> Option<&ConnectorSettings> {
        self.connectors.iter().find(|c| c.name() == name)
    }

    /// Resolve every secret (files, environment), reporting the first problem.
    pub fn secrets(&self) -> Result<Secrets, ConfigError> {
        let slack = self.slack.as_ref();
        let email = self.email.as_ref();
        let mut connector_tokens = BTreeMap::new();
        for c in &self.connectors {
            if let Some(token) = connector_token(c)? {
                connector_tokens.insert(c.name().to_string(), token);
            }
        }
        Ok(Secrets {
            push_token: secret::resolve(
                "admin.push_token",
                self.admin.push_token.as_ref(),
                self.admin.push_token_file.as_ref(),
                self.admin.push_token_env.as_ref(),
            )?,
            slack_webhook: secret::resolve(
                "slack.webhook_url",
                slack.and_then(|s| s.webhook_url.as_ref()),
                slack.and_then(|s| s.webhook_url_file.as_ref()),
                slack.and_then(|s| s.webhook_url_env.as_ref()),
            )?,
            slack_bot_token: secret::resolve(
                "slack.bot_token",
                slack.and_then(|s| s.bot_token.as_ref()),
                slack.and_then(|s| s.bot_token_file.as_ref()),
                slack.and_then(|s| s.bot_token_env.as_ref()),
            )?,
            smtp_password: secret::resolve(
                "email.password",
                email.and_then(|e| e.password.as_ref()),
                email.and_then(|e| e.password_file.as_ref()),
                email.and_then(|e| e.password_env.as_ref()),
            )?,
            connector_tokens,
        })
    }

    /// The store directory: `--data-dir`, else `store.path`, else the default.
    pub fn store_path(&self, data_dir: Option<&Path>) -> PathBuf {
        if let Some(d) = data_dir {
            return d.to_path_buf();
        }
        if let Some(p) = &self.store.path {
            return p.clone();
        }
        default_store_path()
    }
}

/// Resolve one connector's token (`token`, `token_file` or `token_env`).
pub fn connector_token(c: &ConnectorSettings) -> Result<Option<SecretString>, ConfigError> {
    let t = c.token_ref();
    let file = t.token_file.map(Path::to_path_buf);
    let env = t.token_env.map(str::to_string);
    Ok(secret::resolve(
        &format!("connectors.{}.token", c.name()),
        t.token,
        file.as_ref(),
        env.as_ref(),
    )?)
}

/// The store directory of the shipped systemd unit (`StateDirectory=secmetrics`).
pub const SYSTEMD_STATE_DIR: &str = "/var/lib/secmetrics";

fn default_store_path() -> PathBuf {
    default_store_path_with(|k| std::env::var_os(k), Path::new(SYSTEMD_STATE_DIR))
}

/// The default store directory, reading the environment through `env`:
/// `$STATE_DIRECTORY` (the daemon under systemd), else `service_dir` when
/// it exists (the installed service's store, so `status` or `report` from
/// a shell reads the store the daemon writes rather than creating an empty
/// one), else `$XDG_DATA_HOME/secmetrics`, else `~/.local/share/secmetrics`.
pub fn default_store_path_with(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    service_dir: &Path,
) -> PathBuf {
    if let Some(dir) = env("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated; the first is ours.
        let dir = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if !dir.is_empty() {
            return PathBuf::from(dir);
        }
    }
    // `symlink_metadata`: with DynamicUser the path is a link into
    // /var/lib/private, which only root may enter.
    if std::fs::symlink_metadata(service_dir).is_ok() {
        return service_dir.to_path_buf();
    }
    if let Some(d) = env("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("secmetrics");
    }
    if let Some(h) = env("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h).join(".local/share/secmetrics");
    }
    PathBuf::from("secmetrics-data")
}

/// Turn the config crate's error into one plain line naming file and key.
fn describe(e: config::ConfigError, path: Option<&Path>) -> ConfigError {
    let file = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "environment".into());
    let text = e.to_string();
    let text = if text.contains(&file) {
        text
    } else {
        format!("{file}: {text}")
    };
    ConfigError::Invalid(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p))
    }

    #[test]
    fn the_default_store_is_the_service_one_when_it_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        let service = dir.path().join("var-lib-secmetrics");
        let env = |state: Option<&str>| {
            let state = state.map(std::ffi::OsString::from);
            move |k: &str| match k {
                "STATE_DIRECTORY" => state.clone(),
                "HOME" => Some("/home/op".into()),
                _ => None,
            }
        };
        // Not installed: the user's own data directory.
        assert_eq!(
            default_store_path_with(env(None), &service),
            PathBuf::from("/home/op/.local/share/secmetrics")
        );
        // Installed (the path may be a link into /var/lib/private).
        std::os::unix::fs::symlink(dir.path().join("private"), &service).unwrap();
        assert_eq!(default_store_path_with(env(None), &service), service);
        // The daemon under systemd: what systemd says.
        assert_eq!(
            default_store_path_with(env(Some("/var/lib/x:/var/lib/y")), &service),
            PathBuf::from("/var/lib/x")
        );
    }

    #[test]
    fn the_annotated_example_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/secmetrics.example.toml");
        let cfg = Config::load(Some(&p)).expect("example config parses");
        assert_eq!(cfg.admin.push_max_bytes, 16 * 1024 * 1024);
        // The example shows the KPI defaults, not other values.
        assert_eq!(cfg.kpi, crate::kpi::KpiConfig::default());
        assert_eq!(cfg.reconcile, crate::reconcile::ReconcileConfig::default());
    }

    #[test]
    fn the_demo_configuration_gives_every_kpi_an_owner_and_a_target() {
        let cfg = Config::demo();
        assert_eq!(cfg.kpi.maturity, crate::kpi::Maturity::Mature);
        for id in crate::kpi::KpiId::MONTHLY_PACK {
            let k = cfg.kpi.kpis.get(id);
            assert!(k.owner.is_some(), "{}", id.as_str());
            assert!(k.target.is_some(), "{}", id.as_str());
        }
    }

    #[test]
    fn kpi_settings_are_read_and_a_misspelt_kpi_is_an_error() {
        let cfg = parse(
            "[kpi]\nmaturity = \"growing\"\n[kpi.sla_days]\ncritical = 7\n\
             [kpi.kpis.mttr]\nowner = \"platform\"\ntarget = 10\n",
        )
        .expect("parses");
        assert_eq!(cfg.kpi.maturity, crate::kpi::Maturity::Growing);
        assert_eq!(cfg.kpi.sla_days.critical, Some(7));
        assert_eq!(cfg.kpi.sla_days.high, Some(30));
        assert_eq!(cfg.kpi.kpis.mttr.owner.as_deref(), Some("platform"));
        assert_eq!(cfg.kpi.kpis.mttr.target, Some(10.0));
        let e = parse("[kpi.kpis.mtr]\nowner = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mtr"), "{e}");
    }

    #[test]
    fn the_example_documents_every_connector_kind() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/secmetrics.example.toml");
        let cfg = Config::load(Some(&p)).expect("example config parses");
        let kinds: Vec<&str> = cfg.connectors.iter().map(|c| c.kind()).collect();
        assert_eq!(
            kinds,
            [
                "github_secret_scanning",
                "github_code_scanning",
                "sarif",
                "ndjson",
                "jira",
                "pagerduty",
                "inventory"
            ]
        );
        // Table keys keep their case and spaces; quoted JQL survives.
        let jira = format!("{:?}", cfg.connector("jira").unwrap());
        for want in [
            "\"Payments API\": \"payments-api\"",
            "\"Risk Accepted\"",
            "issuetype = \\\"Design Review\\\"",
        ] {
            assert!(jira.contains(want), "{want} not in {jira}");
        }
        for c in cfg.connectors {
            let name = c.name().to_string();
            c.build(None).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn connector_names_must_be_unique() {
        let e = parse(
            "[[connectors]]\nkind = \"ndjson\"\nname = \"a\"\npaths = []\n\
             [[connectors]]\nkind = \"sarif\"\nname = \"a\"\npaths = []\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("two [[connectors]] are named \"a\""), "{e}");
    }

    #[test]
    fn unknown_connector_key_or_kind_is_an_error_naming_it() {
        let e =
            parse("[[connectors]]\nkind = \"ndjson\"\nname = \"a\"\npaths = []\npath = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("path"), "{e}");
        let e = parse("[[connectors]]\nkind = \"jira_cloud\"\nname = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("jira_cloud"), "{e}");
    }

    #[test]
    fn repo_names_keep_their_case_in_connector_tables() {
        let cfg = parse(
            "[[connectors]]\nkind = \"github_code_scanning\"\nname = \"cs\"\norg = \"Octo\"\n\
             token_env = \"NO_SUCH_VAR_FOR_TEST\"\n[connectors.assets]\n\"Octo/Hello-World\" = \"Web\"\n",
        )
        .unwrap();
        let json = format!("{:?}", cfg.connectors[0]);
        assert!(json.contains("\"Octo/Hello-World\": \"Web\""), "{json}");
        let e = cfg.secrets().unwrap_err().to_string();
        assert_eq!(
            e,
            "`connectors.cs.token_env`: environment variable NO_SUCH_VAR_FOR_TEST is not set"
        );
    }

    #[test]
    fn the_reporting_time_zone_is_an_iana_name() {
        let cfg = parse("[kpi]\ntimezone = \"Asia/Tokyo\"\n").unwrap();
        assert_eq!(cfg.kpi.timezone.0, chrono_tz::Asia::Tokyo);
        assert_eq!(Config::default().kpi.timezone.0, chrono_tz::Tz::UTC);
        let e = parse("[kpi]\ntimezone = \"Mars/Base\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kpi.timezone") && e.contains("Mars/Base"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = parse("[store]\npaht = \"/tmp/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("paht"), "{e}");
    }

    #[test]
    fn wrong_type_is_an_error_naming_the_key() {
        let e = parse("[admin]\npush_max_bytes = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("push_max_bytes"), "{e}");
    }

    #[test]
    fn missing_secret_file_names_key_and_path() {
        let cfg = parse("[admin]\npush_token_file = \"/nonexistent/token\"\n").unwrap();
        let e = cfg.secrets().unwrap_err().to_string();
        assert!(
            e.starts_with("`admin.push_token_file`: cannot read /nonexistent/token"),
            "{e}"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let cfg = parse("[admin]\npush_token = \"s3cr3t-value\"\n").unwrap();
        let secrets = cfg.secrets().unwrap();
        assert!(!format!("{cfg:?} {secrets:?}").contains("s3cr3t-value"));
    }
}
