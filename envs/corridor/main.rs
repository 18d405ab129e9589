//! A user's own `headstart`: the built-in environments plus Corridor-v0, with the whole command
//! line. Run it with `cargo run --release --example corridor -- <headstart arguments>`, e.g.
//! `cargo run --release --example corridor -- check Corridor-v0 -p length=12`.

mod corridor;

fn main() -> std::process::ExitCode {
    let mut registry = headstart::env::Registry::builtin();
    registry.register(corridor::entry());
    headstart::cli::run(registry)
}
