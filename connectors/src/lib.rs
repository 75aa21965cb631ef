//! secmetrics connectors: the normalized record types of `records.md`, their
//! validation, and the [`Connector`] trait through which sources (Jira,
//! GitHub, SARIF, PagerDuty, NDJSON files) hand records over page by page.
//!
//! Layout: [`record`] and [`ndjson`] (the contract), [`connector`] (the
//! trait and the page sink), [`http`] (the client every HTTP connector
//! shares: quota, rate limits, retries, `Link` pagination, ETags),
//! [`github`], [`jira`], [`pagerduty`], [`inventory`], [`sarif`] and
//! [`ndjson_files`] (one module per source), [`files`] (local input files
//! of the file-based connectors), [`fingerprint`] (stable hashes and the
//! cross-source location fingerprint), [`config_serde`] (serde helpers of
//! settings), and [`settings`] (the closed set of kinds a `[[connectors]]`
//! table names).
//!
//! This crate knows nothing of the store, KPIs or delivery: the dependency
//! runs one way, from the `secmetrics` binary to here.
#![deny(missing_docs)]

pub mod config_serde;
pub mod connector;
pub mod files;
pub mod fingerprint;
pub mod github;
pub mod http;
pub mod inventory;
pub mod jira;
pub mod ndjson;
pub mod ndjson_files;
pub mod pagerduty;
pub mod record;
pub mod sarif;
pub mod settings;

pub use connector::{
    with_cancel, Cancel, Committed, Connector, Page, PageSink, SinkError, SourceChange,
    SourceHistory, StateChange, SyncMode, SyncOutcome,
};
pub use record::*;
pub use settings::ConnectorSettings;

/// Errors of a connector's sync pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sink refused a page.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Reading a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// An HTTP request failed (names connector, method, path and status).
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// The connector's settings are unusable.
    #[error("connector {connector}: {message}")]
    Config {
        /// Connector instance.
        connector: String,
        /// What is wrong.
        message: String,
    },
    /// A SARIF file could not be read.
    #[error(transparent)]
    Sarif(#[from] sarif::SarifError),
    /// The source answered something this connector cannot use.
    #[error("{connector}: {message}")]
    Source {
        /// Connector instance.
        connector: String,
        /// What went wrong (never a token).
        message: String,
    },
}
