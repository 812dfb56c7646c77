//! The `leviathan-host` command: a thin binary over the host's crates; `cli/` holds
//! the commands.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
