//! Running commands from the workspace root, echoing them first.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// The workspace root (the parent of the xtask crate).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A command in the workspace root.
///
/// The `CARGO_*` variables cargo set for running xtask itself are dropped: some build
/// scripts (ring's) rerun when `CARGO_MANIFEST_DIR` changes, so inheriting xtask's would
/// make these builds and the ones the tests start from inside (which drop them too)
/// rebuild each other's dependencies.
pub fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).current_dir(root());
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        let keep = matches!(
            name.as_ref(),
            "CARGO_HOME" | "CARGO_TARGET_DIR" | "CARGO_BUILD_JOBS" | "CARGO_NET_OFFLINE"
        );
        if name.starts_with("CARGO_") && !keep {
            c.env_remove(&key);
        }
    }
    c
}

/// Runs `command`, failing on a non-zero exit.
pub fn run(command: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start `{}`", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(command));
    }
    Ok(())
}

/// Runs `command` and returns its stdout, failing on a non-zero exit.
pub fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot start `{}`", describe(command)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            describe(command),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(command: &Command) -> String {
    let mut parts = vec![command.get_program().to_string_lossy().into_owned()];
    parts.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Whether `bin --version` runs.
pub fn has(bin: &str) -> bool {
    runs(bin, &["--version"])
}

/// Whether `bin args` runs and exits zero.
pub fn runs(bin: &str, args: &[&str]) -> bool {
    cmd(bin, args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `python3 -m pip install --quiet <args>`, retried with `--break-system-packages`
/// where a Debian-managed Python refuses the install (PEP 668).
pub fn pip_install(args: &[&str]) -> Result<()> {
    let mut install = vec!["-m", "pip", "install", "--quiet"];
    install.extend(args);
    if run(&mut cmd("python3", &install)).is_err() {
        install.push("--break-system-packages");
        run(&mut cmd("python3", &install))?;
    }
    Ok(())
}
