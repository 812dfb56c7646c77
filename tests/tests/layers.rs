//! The host's crates keep to their layers (docs/ARCHITECTURE.md): a crate depends only on
//! crates of lower layers, and each heavy dependency is reached through one crate.

use std::collections::BTreeMap;

/// Each host crate, its layer, and the external crates only it may name.
const CRATES: &[(&str, u32, &[&str])] = &[
    ("leviathan-domain", 0, &[]),
    (
        "leviathan-sandbox",
        1,
        &["wasmtime", "wasmtime-wasi", "notify"],
    ),
    ("leviathan-events", 1, &["sled"]),
    (
        "leviathan-forge",
        2,
        &["octocrab", "hyper-rustls", "rustls"],
    ),
    ("leviathan-scheduler", 3, &[]),
    ("leviathan-console", 3, &["maud"]),
    (
        "leviathan-server",
        4,
        &["axum", "hyper", "prometheus-client"],
    ),
    ("leviathan-cli", 4, &["ureq"]),
    ("leviathan-host", 5, &[]),
];

/// Heavy dependencies two crates name, each for its own side of HTTP: `hyper-util`
/// runs the server's connections (`leviathan-server`) and is the client under octocrab
/// that the GitHub forge assembles so each request header goes out once
/// (`forge::github::transport`). No other crate may name them.
const SHARED: &[(&str, &[&str])] = &[("hyper-util", &["leviathan-server", "leviathan-forge"])];

/// Every workspace package's normal dependencies, by name.
fn dependencies() -> BTreeMap<String, Vec<String>> {
    let out = leviathan_tests::cargo_command()
        .current_dir(leviathan_tests::root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap_or_default().to_string())
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

#[test]
fn each_crate_depends_only_on_lower_layers_and_owns_its_heavy_dependencies() {
    let deps = dependencies();
    let layer: BTreeMap<&str, u32> = CRATES.iter().map(|(n, l, _)| (*n, *l)).collect();
    for (name, own_layer, _) in CRATES {
        let Some(list) = deps.get(*name) else {
            panic!("{name} is not a workspace package");
        };
        for dep in list {
            if let Some(dep_layer) = layer.get(dep.as_str()) {
                assert!(
                    dep_layer < own_layer,
                    "{name} (layer {own_layer}) depends on {dep} (layer {dep_layer})"
                );
            }
            let shared_by = SHARED
                .iter()
                .find(|(d, _)| *d == dep.as_str())
                .map(|(_, owners)| *owners);
            if let Some(owners) = shared_by {
                assert!(
                    owners.contains(name),
                    "{name} depends on {dep}, which only {owners:?} may"
                );
                continue;
            }
            for (owner, _, heavy) in CRATES {
                if owner != name && heavy.contains(&dep.as_str()) {
                    panic!("{name} depends on {dep}, which only {owner} may");
                }
            }
        }
    }
    // The layers are not vacuous: the graph is the one the architecture describes.
    assert!(deps["leviathan-scheduler"].contains(&"leviathan-sandbox".to_string()));
    assert!(!deps["leviathan-server"].contains(&"leviathan-scheduler".to_string()));
    assert!(deps["leviathan-forge"].contains(&"leviathan-events".to_string()));
    // The commands other than `serve` sit below the binary and never see the server.
    assert!(!deps["leviathan-cli"].contains(&"leviathan-server".to_string()));
    assert!(deps["leviathan-host"].contains(&"leviathan-cli".to_string()));
    // The console sits below the server and knows neither it nor the scheduler.
    assert!(deps["leviathan-server"].contains(&"leviathan-console".to_string()));
    assert!(!deps["leviathan-console"].contains(&"leviathan-scheduler".to_string()));
}
