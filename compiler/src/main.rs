//! The `nmc` binary: runs the command line and maps errors to exit codes (1 invalid model or
//! input, 2 usage, 3 does not fit the target, 4 corrupt artifact; a panic, which is an nmc bug,
//! exits with 101).

fn main() {
    if let Err(e) = nmc::cli::run_args(std::env::args_os()) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
