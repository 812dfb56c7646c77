//! The `leviathan-host` command.

mod cli;
mod cli_api;
mod cli_events;

fn main() {
    std::process::exit(cli::main());
}
