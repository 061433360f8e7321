//! The `lagc` command: a thin layer over the library in `lagc::cli`.

fn main() {
    std::process::exit(lagc::cli::main());
}
