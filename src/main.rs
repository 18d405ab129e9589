//! The `headstart` command line with the built-in environments.

fn main() -> std::process::ExitCode {
    headstart::cli::run(headstart::env::Registry::builtin())
}
