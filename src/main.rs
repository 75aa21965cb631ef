//! The `secmetrics` binary: everything lives in the library; this only runs
//! the command line and turns its result into the exit code.

fn main() {
    std::process::exit(secmetrics::cli::main());
}
