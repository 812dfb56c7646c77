//! `check`: the deployment's and the project's invariants, each with a stable id.
//! Over the rendered manifests (`kubectl kustomize` of every overlay, see
//! `manifests`) and over the project's own configuration (the plugin registry, a
//! targets configuration, a policy). A failure names the file, the object and the
//! field; the exit code is non-zero when any check fails.

pub mod manifests;
pub mod render;

use render::Render;
use serde_json::json;
use std::path::{Path, PathBuf};

/// One thing wrong, named by object and field (never quoting a value from a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `Kind/name`, or what else holds the field.
    pub object: String,
    pub field: String,
    pub message: String,
}

/// What `check` looks at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Rendered manifests: files, or directories whose `*.yaml` files are read.
    pub rendered: Vec<PathBuf>,
    /// The plugin registry directory.
    pub plugin_dir: Option<PathBuf>,
    /// A targets configuration to load.
    pub config: Option<PathBuf>,
    /// A policy file to load.
    pub policy: Option<PathBuf>,
}

/// A problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub problem: Problem,
}

/// One check's result over every file it looked at.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: &'static str,
    pub about: &'static str,
    /// The files it looked at.
    pub checked: Vec<String>,
    pub findings: Vec<Finding>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Runs every check of `renders` (already read).
pub fn check_renders(renders: &[Render]) -> Vec<Outcome> {
    manifests::CHECKS
        .iter()
        .map(|(id, about, check)| {
            let mut outcome = Outcome {
                id,
                about,
                checked: Vec::new(),
                findings: Vec::new(),
            };
            for r in renders {
                let file = r.file.display().to_string();
                outcome
                    .findings
                    .extend(check(r).into_iter().map(|problem| Finding {
                        file: file.clone(),
                        problem,
                    }));
                outcome.checked.push(file);
            }
            if renders.is_empty() {
                outcome.findings.push(Finding {
                    file: String::new(),
                    problem: Problem {
                        object: String::new(),
                        field: "--rendered".into(),
                        message: "no rendered manifests to check".into(),
                    },
                });
            }
            outcome
        })
        .collect()
}

/// The project's own checks: the registry, and the configuration and policy given.
fn check_project(inputs: &Inputs) -> Vec<Outcome> {
    let mut out = Vec::new();
    let dir = inputs
        .plugin_dir
        .clone()
        .unwrap_or_else(leviathan_domain::registry::Registry::default_dir);
    let file = dir.display().to_string();
    let mut registry = Outcome {
        id: "registry-valid",
        about: "the plugin registry scans with no rejected entry and holds an executor",
        checked: vec![file.clone()],
        findings: Vec::new(),
    };
    let finding = |object: String, field: &str, message: String| Finding {
        file: file.clone(),
        problem: Problem {
            object,
            field: field.into(),
            message,
        },
    };
    match leviathan_domain::registry::Registry::scan(&dir) {
        Err(e) => registry
            .findings
            .push(finding("registry".into(), "", e.to_string())),
        Ok(scan) => {
            for rejected in &scan.rejected {
                registry.findings.push(finding(
                    rejected.dir.display().to_string(),
                    "",
                    rejected.reason.clone(),
                ));
            }
            if scan.entries.is_empty() {
                registry.findings.push(finding(
                    "registry".into(),
                    "",
                    "no plugin is installed".into(),
                ));
            }
        }
    }
    out.push(registry);
    if let Some(config) = &inputs.config {
        out.push(load_outcome(
            "config-valid",
            "the targets configuration loads, with its policies",
            config,
            leviathan_domain::config::Config::load(config).map(|_| ()),
        ));
    }
    if let Some(policy) = &inputs.policy {
        out.push(load_outcome(
            "policy-valid",
            "the policy file loads",
            policy,
            leviathan_domain::policy::Policy::load(policy).map(|_| ()),
        ));
    }
    out
}

fn load_outcome(
    id: &'static str,
    about: &'static str,
    file: &Path,
    result: Result<(), leviathan_domain::yaml::InputError>,
) -> Outcome {
    let name = file.display().to_string();
    Outcome {
        id,
        about,
        checked: vec![name.clone()],
        findings: result
            .err()
            .map(|e| Finding {
                file: name,
                problem: Problem {
                    object: String::new(),
                    field: String::new(),
                    message: e.to_string(),
                },
            })
            .into_iter()
            .collect(),
    }
}

/// The rendered files named by `paths` (a directory stands for its `*.yaml`).
fn rendered_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| anyhow::anyhow!("--rendered {}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                anyhow::bail!("--rendered {}: no *.yaml files", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Runs every check; prints one line (or, with `json`, one JSON object) per check;
/// returns 0 when all pass, 1 when any fails.
pub fn run(inputs: &Inputs, json: bool) -> anyhow::Result<i32> {
    let renders = rendered_files(&inputs.rendered)?
        .iter()
        .map(|f| Render::read(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut outcomes = check_renders(&renders);
    outcomes.extend(check_project(inputs));
    let failed = outcomes.iter().filter(|o| !o.ok()).count();
    for o in &outcomes {
        if json {
            let findings: Vec<_> = o
                .findings
                .iter()
                .map(|f| json!({"file": f.file, "object": f.problem.object, "field": f.problem.field, "message": f.problem.message}))
                .collect();
            println!(
                "{}",
                json!({"id": o.id, "ok": o.ok(), "about": o.about, "checked": o.checked, "findings": findings})
            );
        } else {
            println!(
                "{} {:<28} {}",
                if o.ok() { "ok  " } else { "FAIL" },
                o.id,
                o.about
            );
            for f in &o.findings {
                let p = &f.problem;
                let at = [f.file.as_str(), p.object.as_str(), p.field.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(": ");
                println!("       {at}: {}", p.message);
            }
        }
    }
    if !json {
        println!("{} checks, {failed} failed", outcomes.len());
    }
    Ok(if failed == 0 { 0 } else { 1 })
}
