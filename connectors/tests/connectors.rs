//! The connectors' integration tests, one binary: external services are
//! played on loopback (`support`), real third-party payloads feed the
//! conformance suite when `SECMETRICS_FIXTURES` is set.

mod conformance;
mod conformance_tickets;
mod faults;
mod github;
mod inventory;
mod jira;
mod pagerduty;
mod sarif;
mod soak;
mod support;
