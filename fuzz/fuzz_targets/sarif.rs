//! Fuzz target: the SARIF reader (`sarif::import_file`: the metadata pass,
//! the streaming results pass and the conversion to findings) over
//! arbitrary bytes written to a temporary file. Every finding must survive
//! export and import.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use secmetrics_connectors::sarif::{import_file, FindingContext, SuppressionPolicy};
use secmetrics_connectors::{Environment, Record};
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("secmetrics-fuzz-{}.sarif", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(path(), data).expect("write the input file");
    let ctx = FindingContext {
        source: "sarif".into(),
        asset: "app".into(),
        environment: Environment::Production,
    };
    let fallback = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("a time");
    let _ = import_file(
        path(),
        &ctx,
        &SuppressionPolicy::default(),
        fallback,
        |finding| {
            common::check_record(&Record::Finding(finding));
            Ok::<(), ()>(())
        },
    );
});
