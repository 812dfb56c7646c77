//! `plugins install`: copying a component and its manifest into the registry.

use super::manifest::{self, Entry, read_entry};
use super::signing::Key;
use crate::digest::sha256_hex;
use std::fs;
use std::path::Path;

/// Installs the component `wasm` with the manifest template `manifest` (whose
/// `sha256` may be empty) as `<registry>/<name>/<version>/`, replacing an existing
/// entry of the same version, and signs it when `key` is given. The entry is written
/// to a temporary directory, passed to `verify` there, and only then renamed into
/// place: readers never see half an entry, and a manifest or component that fails
/// its checks never removes the entry it would have replaced.
pub fn install(
    registry: &Path,
    wasm: &Path,
    manifest: &Path,
    key: Option<&Key>,
    verify: impl FnOnce(&Entry) -> Result<(), String>,
) -> Result<Entry, String> {
    let text = fs::read_to_string(manifest)
        .map_err(|e| format!("{}: cannot read: {e}", manifest.display()))?;
    let mut parsed = manifest::parse(manifest, &text)?;
    let bytes = fs::read(wasm).map_err(|e| format!("{}: cannot read: {e}", wasm.display()))?;
    parsed.sha256 = sha256_hex(&bytes);
    // A signature in the template belongs to another digest.
    parsed.signature = None;
    parsed.signed_by = None;
    if let Some(key) = key {
        key.sign(&mut parsed);
    }
    // Checked before anything is replaced: a bad template never removes a good entry.
    manifest::validate(manifest, &parsed)?;
    let manifest_text =
        toml::to_string(&parsed).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let name_dir = registry.join(&parsed.name);
    fs::create_dir_all(&name_dir).map_err(|e| format!("{}: {e}", name_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".install-")
        .tempdir_in(&name_dir)
        .map_err(|e| format!("{}: {e}", name_dir.display()))?;
    let write = |file: &str, data: &[u8]| {
        fs::write(staging.path().join(file), data)
            .map_err(|e| format!("{}: {e}", staging.path().display()))
    };
    write("plugin.toml", manifest_text.as_bytes())?;
    let wasm_name = format!("{}.wasm", parsed.name);
    write(&wasm_name, &bytes)?;
    verify(&Entry {
        wasm: staging.path().join(&wasm_name),
        dir: staging.path().to_path_buf(),
        manifest: parsed.clone(),
    })?;
    let target = name_dir.join(parsed.version.to_string());
    let staged = staging.keep();
    if target.exists() {
        // Swapped in one step (`RENAME_EXCHANGE`), so a watcher never sees the
        // version missing between the old entry and the new one; the old one is then
        // removed from the hidden staging name.
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &staged,
            rustix::fs::CWD,
            &target,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| format!("{}: {e}", target.display()))?;
        fs::remove_dir_all(&staged).map_err(|e| format!("{}: {e}", staged.display()))?;
    } else {
        fs::rename(&staged, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    let handle = crate::repofs::RepoDir::open(&target, "the plugin registry")
        .map_err(|e| format!("{}: {e}", target.display()))?;
    read_entry(&handle, &target)
}
