//! `leviathan-host plugins …`: list, verify, install, sign, scaffold.

use anyhow::{Result, bail};
use clap::Subcommand;
use leviathan_domain::policy::Policy;
use leviathan_domain::registry::signing::{Key, SignatureStatus};
use leviathan_domain::registry::{Registry, install};
use leviathan_sandbox::plugins::load_entry;
use leviathan_sandbox::plugins::set::{EntryState, PluginSet};
use leviathan_sandbox::{ArtifactCache, Sandbox};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// List the registry's plugins (loading each) and the rejected entries.
    List {
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Policy with the `plugins:` settings (trusted keys, signatures, routes).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Check every entry (manifest, digest, signature, contract, describe); exit 1 if
    /// any is rejected.
    Verify {
        /// The registry directory (default: --plugin-dir, $LEVIATHAN_PLUGIN_DIR or plugins/registry).
        #[arg(conflicts_with = "plugin_dir")]
        dir: Option<PathBuf>,
        /// The registry directory, named as the other commands take it.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Install a component with a manifest template, sign it if a key is given, and
    /// verify it loads before it replaces anything.
    Install {
        /// The component (`.wasm`).
        wasm: PathBuf,
        /// The manifest template (`plugin.toml`; `sha256` is filled in).
        #[arg(long)]
        manifest: PathBuf,
        /// Sign the entry with this key file (see `plugins keygen`).
        #[arg(long)]
        sign_key: Option<PathBuf>,
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
    },
    /// Create an Ed25519 signing key file and print its public key.
    Keygen {
        /// Where to write the key (never overwritten; mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Scaffold a new executor crate from plugins/template.
    New {
        /// The plugin name (a-z, 0-9, `-`; e.g. `changelog-executor`).
        name: String,
        /// Where to create it (default: plugins/NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The task scope it handles (default: the name without `-executor`).
        #[arg(long)]
        scope: Option<String>,
        /// The guest SDK crate (default: plugins/sdk under the current directory).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

fn policy(file: Option<&Path>) -> Result<Policy> {
    Ok(match file {
        Some(f) => Policy::load(f)?,
        None => Policy::default_policy(),
    })
}

fn sandbox() -> Result<Sandbox> {
    Ok(Sandbox::new(ArtifactCache::new(
        ArtifactCache::default_dir(),
    ))?)
}

fn signed_label(status: &SignatureStatus) -> &'static str {
    match status {
        SignatureStatus::Unsigned => "no",
        SignatureStatus::Trusted => "trusted",
        SignatureStatus::Untrusted => "untrusted",
    }
}

/// Prints the table of a loaded set; returns how many entries were rejected.
fn print_set(set: &PluginSet) -> usize {
    println!(
        "{:<22} {:<8} {:<14} {:<42} {:<14} {:<9} STATUS",
        "NAME", "VERSION", "SCOPES", "WORLD", "DIGEST", "SIGNED"
    );
    for p in set.loaded.values() {
        let m = &p.entry.manifest;
        println!(
            "{:<22} {:<8} {:<14} {:<42} {:<14} {:<9} loaded",
            m.name,
            m.version.to_string(),
            m.scopes.join(","),
            m.world,
            format!("{}…", &m.sha256[..12]),
            signed_label(&p.signature),
        );
    }
    let mut rejected = 0;
    for (entry, state) in set.states() {
        if let EntryState::Rejected { reason } = state {
            rejected += 1;
            println!("rejected {entry}: {reason}");
        }
    }
    rejected
}

/// Runs a `plugins` command; returns the exit code.
pub fn run(command: PluginsCommand) -> Result<i32> {
    match command {
        PluginsCommand::List {
            plugin_dir,
            policy: p,
        } => {
            let dir = plugin_dir.unwrap_or_else(Registry::default_dir);
            let set = PluginSet::load(&dir, &policy(p.as_deref())?.plugins, &sandbox()?, None)?;
            print_set(&set);
            Ok(0)
        }
        PluginsCommand::Verify {
            dir,
            plugin_dir,
            policy: p,
        } => {
            let dir = dir.or(plugin_dir).unwrap_or_else(Registry::default_dir);
            let set = PluginSet::load(&dir, &policy(p.as_deref())?.plugins, &sandbox()?, None)?;
            let rejected = print_set(&set);
            if rejected > 0 {
                eprintln!(
                    "{rejected} entr{} rejected",
                    if rejected == 1 { "y" } else { "ies" }
                );
                return Ok(1);
            }
            println!("ok: {} plugins verified", set.loaded.len());
            Ok(0)
        }
        PluginsCommand::Install {
            wasm,
            manifest,
            sign_key,
            plugin_dir,
        } => {
            let dir = plugin_dir.unwrap_or_else(Registry::default_dir);
            let key = sign_key
                .as_deref()
                .map(Key::load)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let sandbox = sandbox()?;
            let entry = install(&dir, &wasm, &manifest, key.as_ref(), |staged| {
                load_entry(staged, &sandbox)
                    .map(|_| ())
                    .map_err(|e| format!("the plugin does not load, nothing was installed: {e}"))
            })
            .map_err(anyhow::Error::msg)?;
            let signed = match &entry.manifest.signed_by {
                Some(k) => format!(", signed by {k}"),
                None => String::new(),
            };
            println!(
                "installed {} into {}{signed}",
                entry.id(),
                entry.dir.display()
            );
            Ok(0)
        }
        PluginsCommand::Keygen { out } => {
            let key = Key::generate(&out).map_err(anyhow::Error::msg)?;
            println!(
                "wrote {}; public key (for plugins.trusted_keys):",
                out.display()
            );
            println!("{}", key.public_hex());
            Ok(0)
        }
        PluginsCommand::New {
            name,
            dir,
            scope,
            sdk,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("plugins").join(&name));
            let sdk = sdk.unwrap_or_else(|| PathBuf::from("plugins/sdk"));
            let scope = scope.unwrap_or_else(|| name.trim_end_matches("-executor").to_string());
            super::scaffold::create(&name, &scope, &dir, &sdk)?;
            println!("created {} ({name}, scope `{scope}`); next:", dir.display());
            println!(
                "  cd {} && cargo test && cargo build --target wasm32-wasip2 --release",
                dir.display()
            );
            println!(
                "  leviathan-host plugins install target/wasm32-wasip2/release/{}.wasm --manifest plugin.toml",
                name.replace('-', "_")
            );
            Ok(0)
        }
    }
}

/// Checks a plugin name before it becomes a crate and directory name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!(
            "plugin name `{name}`: use 1 to 64 characters of a-z, 0-9 and `-`, starting with a letter"
        );
    }
    Ok(())
}
