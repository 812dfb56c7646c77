//! `cargo xtask build`: install the wasm target if missing, build the executor
//! components and install them into the registry, build the host in release.

use crate::run::{cmd, output, root, run};
use anyhow::Result;
use std::path::PathBuf;

/// The WebAssembly target executors are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Executor crates shipped in the registry: (package, crate directory).
pub const PLUGINS: &[(&str, &str)] = &[
    ("docs-executor", "plugins/docs-executor"),
    ("tests-executor", "plugins/tests-executor"),
    ("changelog-executor", "plugins/changelog-executor"),
];

/// Installs the wasm target through rustup unless it is already installed.
pub fn ensure_wasm_target() -> Result<()> {
    let installed = output(&mut cmd("rustup", &["target", "list", "--installed"]))?;
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        run(&mut cmd("rustup", &["target", "add", WASM_TARGET]))?;
    }
    Ok(())
}

/// Test-only guest components: built with the plugins, never installed.
pub const TEST_GUESTS: &[&str] = &["hostile-guest", "network-guest", "docs-twin"];

/// The host binary built by [`build`].
pub fn host_binary() -> PathBuf {
    root().join("target/release/leviathan-host")
}

/// The registry directory plugins are installed into.
pub fn registry_dir() -> PathBuf {
    root().join("plugins/registry")
}

/// What [`build`] compiles natively.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the host binary (enough to run it).
    Host,
    /// Every workspace target, tests included, with the feature set `cargo test
    /// --workspace` resolves, so the test run reuses these artifacts instead of
    /// compiling wasmtime a second time.
    AllTargets,
}

/// Builds everything; returns once the registry is populated.
pub fn build(scope: Scope) -> Result<()> {
    ensure_wasm_target()?;
    // Always the same package set (the test set-up builds exactly these too), so the
    // components are not rebuilt with other features between runs.
    let mut args = vec!["build", "--release", "--target", WASM_TARGET];
    for package in PLUGINS
        .iter()
        .map(|(p, _)| *p)
        .chain(TEST_GUESTS.iter().copied())
    {
        args.extend(["-p", package]);
    }
    run(&mut cmd("cargo", &args))?;
    let native: &[&str] = match scope {
        Scope::Host => &["build", "--release", "-p", "leviathan-host"],
        Scope::AllTargets => &["build", "--release", "--workspace", "--all-targets"],
    };
    run(&mut cmd("cargo", native))?;
    for (package, dir) in PLUGINS {
        let wasm = root().join(format!(
            "target/{WASM_TARGET}/release/{}.wasm",
            package.replace('-', "_")
        ));
        let manifest = root().join(dir).join("plugin.toml");
        run(
            cmd(&host_binary().to_string_lossy(), &["plugins", "install"])
                .arg(&wasm)
                .arg("--manifest")
                .arg(&manifest)
                .arg("--plugin-dir")
                .arg(registry_dir()),
        )?;
    }
    Ok(())
}
