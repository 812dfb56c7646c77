//! `cargo xtask test` (every check) and `cargo xtask bench`.

use crate::build::{WASM_TARGET, build};
use crate::run::{cmd, run};
use anyhow::Result;

/// Makes sure `python3 -m pytest` works (the tests executor's output is run by it).
fn ensure_pytest() -> Result<()> {
    let has = cmd("python3", &["-c", "import pytest"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has {
        run(&mut cmd(
            "python3",
            &["-m", "pip", "install", "--quiet", "--user", "pytest"],
        ))?;
    }
    Ok(())
}

/// fmt, clippy, build, guests, every test.
pub fn test() -> Result<()> {
    run(&mut cmd("cargo", &["fmt", "--all", "--check"]))?;
    build()?;
    run(&mut cmd(
        "cargo",
        &[
            "clippy",
            "--release",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ))?;
    run(&mut cmd(
        "cargo",
        &[
            "clippy",
            "--release",
            "--target",
            WASM_TARGET,
            "-p",
            "docs-executor",
            "-p",
            "tests-executor",
            "-p",
            "hostile-guest",
            "--",
            "-D",
            "warnings",
        ],
    ))?;
    run(&mut cmd(
        "cargo",
        &[
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "-p",
            "hostile-guest",
        ],
    ))?;
    ensure_pytest()?;
    run(&mut cmd("cargo", &["test", "--release", "--workspace"]))?;
    Ok(())
}

/// Builds, then runs the benchmarks (extra arguments go to the bench binaries).
pub fn bench(extra: &[String]) -> Result<()> {
    build()?;
    let mut command = cmd("cargo", &["bench", "-p", "leviathan-host"]);
    if !extra.is_empty() {
        command.arg("--").args(extra);
    }
    run(&mut command)
}
