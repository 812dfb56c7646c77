//! Project automation, run as `cargo xtask <command>`:
//! `build` (toolchain target, plugins into the registry, host in release),
//! `demo` (the main job on a local demo repository), `test` (every check),
//! `bench` (benchmarks; figures go to docs/PERFORMANCE.md).

mod build;
mod demo;
mod ops;
mod run;
mod test;

use anyhow::{Result, bail};

fn main() {
    if let Err(e) = dispatch() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => build::build(build::Scope::Host),
        Some("demo") => demo::demo(),
        Some("test") => test::test(),
        Some("ops") => ops::check(),
        Some("bench") => test::bench(&args[1..]),
        _ => bail!("usage: cargo xtask <build|demo|test|ops|bench>"),
    }
}
