//! Plugins as the sandbox runs them: loading a registry entry (its digest, compile or
//! cached artifact, contract, link, `describe()`), the loaded plugin set, and hot
//! reload of the registry directory.

pub mod set;
pub mod watch;

pub use set::{EntryState, LoadedPlugin, PluginSet};
pub use watch::{Reload, SharedPlugins, watch};

use crate::{LoadedComponent, Sandbox};
use leviathan_domain::digest::sha256_hex;
use leviathan_domain::registry::manifest::{self, EXECUTOR_WORLD_NAME};
use leviathan_domain::registry::{Entry, RegistryError, check_exports, read_component};

/// Reads, verifies and loads an entry's component, and checks that the component
/// exports the executor interface at the contract version its manifest declares and
/// describes itself as its manifest does.
pub fn load_entry(entry: &Entry, sandbox: &Sandbox) -> Result<LoadedComponent, RegistryError> {
    let invalid = |message: String| RegistryError::Invalid {
        id: entry.id(),
        file: entry.wasm.clone(),
        message,
    };
    let wasm = read_component(entry).map_err(invalid)?;
    let actual = sha256_hex(&wasm);
    if !actual.eq_ignore_ascii_case(&entry.manifest.sha256) {
        return Err(invalid(format!(
            "digest mismatch: plugin.toml says sha256 {}, the file is {actual}",
            entry.manifest.sha256
        )));
    }
    let declared = manifest::contract_version(&entry.manifest.world, EXECUTOR_WORLD_NAME)
        .ok_or_else(|| {
            invalid(format!(
                "field `world`: `{}` is not an executor world",
                entry.manifest.world
            ))
        })?;
    let component = sandbox
        .load_checked(&entry.id(), &wasm, &actual, |exports| {
            check_exports(exports, &declared)
        })
        .map_err(|e| RegistryError::Load(e.to_string()))?;
    let info = sandbox
        .describe(&component)
        .map_err(|e| invalid(format!("describe() failed: {e}")))?;
    let m = &entry.manifest;
    if info.name != m.name || info.version != m.version.to_string() {
        return Err(invalid(format!(
            "the component describes itself as {}@{}, plugin.toml says {}",
            info.name,
            info.version,
            entry.id()
        )));
    }
    let mut declared = m.scopes.clone();
    let mut described = info.scopes.clone();
    declared.sort();
    described.sort();
    if declared != described {
        return Err(invalid(format!(
            "the component handles scopes [{}], plugin.toml declares [{}]",
            described.join(", "),
            declared.join(", ")
        )));
    }
    Ok(component)
}
