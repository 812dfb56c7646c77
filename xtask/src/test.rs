//! `cargo xtask test` (every check) and `cargo xtask bench`.

use crate::build::{PLUGINS, Scope, TEST_GUESTS, WASM_TARGET, build};
use crate::run::{cmd, has, pip_install, run};
use anyhow::Result;

/// Makes sure `python3 -m pytest` works (the tests executor's output is run by it).
fn ensure_pytest() -> Result<()> {
    let installed = cmd("python3", &["-c", "import pytest"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    pip_install(&["--user", "pytest"])
}

/// Installs Debian `packages` with apt-get (as root, or through `sudo -n`),
/// refreshing the package lists once if the first try fails; whether it worked.
fn apt_install(packages: &[&str]) -> bool {
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(packages);
    let as_root = cmd("id", &["-u"])
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    let attempt = |args: &[&str]| {
        let mut c = if as_root {
            cmd("apt-get", args)
        } else {
            let mut c = cmd("sudo", &["-n", "apt-get"]);
            c.args(args);
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c).is_ok()
    };
    attempt(&install) || (attempt(&["update"]) && attempt(&install))
}

/// Makes `promtool` available when Debian's `prometheus` package can be installed;
/// returns whether it is. The API test checks `/metrics` with it when it is.
fn ensure_promtool() -> bool {
    if has("promtool") {
        return true;
    }
    if !apt_install(&["prometheus"]) {
        eprintln!("xtask: promtool is not installable here; /metrics is checked without it");
    }
    has("promtool")
}

/// Installs Debian's `chromium` and `chromium-driver` (one version) for the
/// console's browser test, which fails under `CI=true` without them.
fn ensure_chromium() {
    if has("chromium") && has("chromedriver") {
        return;
    }
    if !apt_install(&["chromium", "chromium-driver"]) {
        eprintln!("xtask: chromium is not installable here; the console's browser test needs it");
    }
}

/// `cargo clippy` with warnings as errors; `scope` selects target and packages.
fn clippy(scope: &[&str]) -> Result<()> {
    let mut args = vec!["clippy", "--release"];
    args.extend(scope);
    args.extend(["--", "-D", "warnings"]);
    run(&mut cmd("cargo", &args))
}

/// fmt, build, clippy (native and wasm), every test.
pub fn test() -> Result<()> {
    run(&mut cmd("cargo", &["fmt", "--all", "--check"]))?;
    build(Scope::AllTargets)?;
    clippy(&["--workspace", "--all-targets"])?;
    let mut wasm_scope = vec!["--target", WASM_TARGET];
    for package in PLUGINS
        .iter()
        .map(|(p, _)| *p)
        .chain(TEST_GUESTS.iter().copied())
    {
        wasm_scope.extend(["-p", package]);
    }
    clippy(&wasm_scope)?;
    let promtool = ensure_promtool();
    crate::ops::check()?;
    ensure_pytest()?;
    ensure_chromium();
    let mut tests = cmd("cargo", &["test", "--release", "--workspace"]);
    if promtool {
        tests.env("LEVIATHAN_REQUIRE_PROMTOOL", "1");
    }
    run(&mut tests)
}

/// Builds, then runs the benchmarks (extra arguments go to the bench binaries).
pub fn bench(extra: &[String]) -> Result<()> {
    build(Scope::Host)?;
    let mut command = cmd(
        "cargo",
        &[
            "bench",
            "-p",
            "leviathan-sandbox",
            "-p",
            "leviathan-events",
            "-p",
            "leviathan-scheduler",
            "-p",
            "leviathan-host",
            "-p",
            "leviathan-tests",
        ],
    );
    if !extra.is_empty() {
        command.arg("--").args(extra);
    }
    run(&mut command)
}
