//! secmetrics: the product-security KPI daemon.
//!
//! Data flows one way and the modules follow it: records arrive through
//! `connectors` (a separate crate) or `import`, are kept in the [`store`],
//! gathered into an [`estate::Estate`], reconciled by [`reconcile`] (one
//! weakness counts once), turned into the KPI pack by `kpi`,
//! rendered by `report`, and delivered by `deliver`, with `daemon` driving it.
#![deny(missing_docs)]

pub mod backup;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod demo;
pub mod estate;
pub mod explain;
pub mod kpi;
pub mod logging;
pub mod reconcile;
pub mod report;
pub mod status;
pub mod store;
pub mod sync;
