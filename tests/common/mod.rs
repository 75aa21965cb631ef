//! Shared helpers: run the built binary, locate test data, play external
//! APIs on loopback.

pub mod loopback;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built `secmetrics` binary.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_secmetrics"));
    // Keep the tests independent of the developer's environment.
    c.env_remove("SECMETRICS_CONFIG").env_remove("RUST_LOG");
    c
}

/// A file under `tests/data`.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// Run `secmetrics --data-dir DIR ARGS...`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run secmetrics")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `status --json` of a store.
pub fn status(dir: &Path) -> serde_json::Value {
    let o = run(dir, &["status", "--json"]);
    assert!(o.status.success(), "status failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

/// The row of `kind` in an import summary: [loaded, new, replaced, unchanged, rejected].
pub fn summary_row(out: &str, kind: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(kind))
        .unwrap_or_else(|| panic!("no row {kind} in\n{out}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    cells[cells.len() - 5..]
        .iter()
        .map(|n| n.parse().expect("count"))
        .collect()
}

/// Read a file under `tests/data` as text.
pub fn read(rel: &str) -> String {
    let p = data(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Load an NDJSON fixture into an estate the way `import` into an empty
/// store would (later line wins).
pub fn estate(rel: &str) -> secmetrics::estate::Estate {
    let text = read(rel);
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            secmetrics_connectors::ndjson::parse_line(l, "import")
                .unwrap_or_else(|e| panic!("{rel}:{}: {e}", i + 1))
        });
    secmetrics::estate::Estate::from_records(records)
}

/// [`estate`], reconciled as every pack path does.
pub fn reconciled_estate(
    rel: &str,
    cfg: &secmetrics::reconcile::ReconcileConfig,
) -> secmetrics::estate::Estate {
    let mut e = estate(rel);
    secmetrics::reconcile::reconcile(&mut e, cfg);
    e
}
