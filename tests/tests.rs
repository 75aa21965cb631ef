//! The integration tests: one binary, one module per area, real processes
//! of the `secmetrics` binary against stores in temporary directories.

mod common;
mod config_errors;
mod import;
mod sync;
