//! The integration-test binary: every behaviour test of the crate, with the
//! shared helpers in `util` and fixtures under `tests/data`.

mod kpi_golden;
mod report_render;
mod util;
