//! The `secmetrics` binary: everything lives in the library; this only runs
//! the command line and turns its result into the exit code.

/// mimalloc: the reader and writer threads of an import allocate and free
/// millions of small values; glibc's malloc made them wait on each other.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(secmetrics::cli::main());
}
