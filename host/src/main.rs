//! The `leviathan-host` command.

mod cli;
mod cli_api;
mod cli_events;
mod cli_plugins;
mod cli_sched;
mod scaffold;

fn main() {
    std::process::exit(cli::main());
}
