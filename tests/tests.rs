//! The integration tests: one binary, one module per area, real processes
//! of the `secmetrics` binary against stores in temporary directories.

mod backup;
mod cli_report;
mod common;
mod config_errors;
mod daemon;
mod daemon_jobs;
mod explain;
mod export;
mod import;
mod jira_history;
mod kill;
mod kpi_golden;
mod linked_sources;
mod properties;
mod reconcile;
mod report_render;
mod store_format;
mod sync;
mod systemd_unit;
