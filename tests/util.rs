//! Helpers shared by the integration tests: fixture paths and estate loading.

use secmetrics::estate::Estate;
use secmetrics_connectors::ndjson::parse_line;
use std::path::PathBuf;

/// A file under `tests/data`.
pub fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// Read a fixture as text.
pub fn read(path: &str) -> String {
    let p = data(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Load an NDJSON estate the way `import` into an empty store would.
pub fn estate(path: &str) -> Estate {
    let text = read(path);
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(l, "import").unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1)));
    Estate::from_records(records)
}
