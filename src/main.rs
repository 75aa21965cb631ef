//! The `secmetrics` command line.
fn main() {}
