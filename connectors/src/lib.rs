//! secmetrics connectors: the normalized record types of `records.md`, their
//! validation, and the [`Connector`] trait through which sources (Jira,
//! GitHub, SARIF, PagerDuty, NDJSON files) hand records over page by page.
//!
//! This crate knows nothing of the store, KPIs or delivery: the dependency
//! runs one way, from the `secmetrics` binary to here.
#![deny(missing_docs)]

pub mod connector;
pub mod ndjson;
pub mod record;

pub use connector::{Committed, Connector, Page, PageSink, SinkError, SyncMode, SyncOutcome};
pub use record::*;

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
    /// The source answered something this connector cannot use.
    #[error("{connector}: {message}")]
    Source {
        /// Connector instance.
        connector: String,
        /// What went wrong (never a token).
        message: String,
    },
}
