//! Fuzz target: the NDJSON record reader (`ndjson::read_stream`, which
//! `import`, the push endpoint and the `ndjson` connector share, and
//! `parse_line` under it) over arbitrary bytes. Every good line must
//! survive export and import; every bad one is named by a line number that
//! exists.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use secmetrics_connectors::ndjson::{read_stream, StreamOptions};

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|b| *b == b'\n').count() - usize::from(data.ends_with(b"\n"));
    let opts = StreamOptions {
        origin: "fuzz.ndjson",
        default_source: "import",
        // Small, so the over-long-line path is reached too.
        max_line_bytes: 4096,
    };
    read_stream(
        data,
        &opts,
        |n, record| {
            assert!((1..=lines).contains(&n), "record on line {n} of {lines}");
            common::check_record(&record);
            Ok(())
        },
        |e| {
            assert!(
                (1..=lines).contains(&e.line),
                "error on line {} of {lines}",
                e.line
            );
            assert!(e.to_string().starts_with("fuzz.ndjson:"));
        },
    )
    .expect("reading from memory cannot fail");
});
