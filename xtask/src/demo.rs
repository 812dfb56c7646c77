//! `cargo xtask demo`: the main job on the embedded default. Builds everything,
//! creates a local target repository with a realistic backlog under `target/demo/`,
//! and runs the loop with the local forge: `tick` opens a pull request for the next
//! runnable task, `prs merge` merges it, until nothing is left to run. Then it shows
//! the merged files, the backlog write-back and the event log.

use crate::build::{Scope, build, host_binary, registry_dir};
use crate::run::{cmd, output, root, run};
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;
use std::process::Command;

const BACKLOG: &str = r#"# Backlog of the demo target. Humans write it; Leviathan runs the ready tasks.
tasks:
  - id: docs-oncall-runbook
    title: On-call runbook for the ingestion service
    description: |
      Operators need one page that says what to check first when ingestion stalls,
      how to drain a node and whom to page.
    scope: docs
    priority: high
    estimated_size: S
    ready: true
    status: pending
    dependencies: []
    allowed_paths:
      - docs/runbooks/
    acceptance_criteria:
      - Lists the first three checks when ingestion stalls
      - Explains how to drain a node safely
      - Names the escalation path
    labels: [docs, operations]
  - id: tests-backlog-parser
    title: Pending tests for the "backlog" parser
    description: Stubs that pin down how malformed backlog files are reported.
    scope: tests
    priority: medium
    ready: true
    status: pending
    allowed_paths:
      - tests/
    acceptance_criteria:
      - Rejects a task without an id
      - Rejects a task without an id
      - Reports the line of a YAML syntax error ("unexpected ':'")
      - Keeps unknown fields such as `owner`
    labels: [tests]
  - id: pr-template
    title: Pull request template
    description: The checklist every agent pull request carries.
    scope: docs
    ready: true
    allowed_paths:
      - .leviathan/templates/PULL_REQUEST_TEMPLATE.md
    acceptance_criteria:
      - PR states the task id
      - PR lists the acceptance criteria
      - PR names the executor and its version
  - id: changelog-runbook
    title: Add the on-call runbook for ingestion
    description: Records the runbook in the changelog of the release it ships in.
    scope: changelog
    ready: true
    date: 2026-11-24
    allowed_paths:
      - docs/
    acceptance_criteria:
      - The changelog lists the runbook under its release date
  - id: docs-architecture
    title: Architecture overview
    description: Not ready yet; the owner is still collecting notes.
    scope: docs
    ready: false
    allowed_paths: [docs/]
    acceptance_criteria: [Explains the data flow]
  - id: ops-rotate-keys
    title: Rotate deploy keys
    description: Outside the policy's allowed prefixes; the host must refuse it.
    scope: docs
    ready: true
    allowed_paths: [ops/keys/]
    acceptance_criteria: [Keys rotated]
"#;

fn git(repo: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(repo).args(args);
    c
}

fn create_repo(repo: &Path) -> Result<()> {
    if repo.exists() {
        fs::remove_dir_all(repo).with_context(|| format!("removing {}", repo.display()))?;
    }
    fs::create_dir_all(repo.join(".leviathan"))?;
    fs::create_dir_all(repo.join("docs"))?;
    fs::write(repo.join(".leviathan/backlog.yaml"), BACKLOG)?;
    fs::write(
        repo.join("README.md"),
        "# Ingestion service\n\nDemo target repository for Leviathan.\n",
    )?;
    fs::write(repo.join("docs/index.md"), "# Documentation\n")?;
    run(Command::new("git")
        .args(["init", "--quiet", "--initial-branch=main"])
        .arg(repo))?;
    run(&mut git(repo, &["add", "-A"]))?;
    run(&mut git(
        repo,
        &[
            "-c",
            "user.name=Demo",
            "-c",
            "user.email=demo@example.invalid",
            "commit",
            "--quiet",
            "-m",
            "Initial commit",
        ],
    ))?;
    Ok(())
}

/// Runs `leviathan-host ARGS --data-dir DATA` with the demo's configuration; returns
/// its stdout.
fn host(demo: &Path, args: &[&str]) -> Result<String> {
    output(
        cmd(&host_binary().to_string_lossy(), args)
            .arg("--data-dir")
            .arg(demo.join("data"))
            .env("LEVIATHAN_CONFIG", demo.join("leviathan.yaml"))
            .env("LEVIATHAN_PLUGIN_DIR", registry_dir()),
    )
}

/// Runs the demo.
pub fn demo() -> Result<()> {
    build(Scope::Host)?;
    let demo = root().join("target/demo");
    if demo.exists() {
        fs::remove_dir_all(&demo).with_context(|| format!("removing {}", demo.display()))?;
    }
    let seed = demo.join("seed");
    create_repo(&seed)?;
    // The local forge pushes branches and merges into `main`: the target is bare.
    let origin = demo.join("ingestion.git");
    run(Command::new("git")
        .args(["clone", "--quiet", "--bare"])
        .arg(&seed)
        .arg(&origin))?;
    fs::write(
        demo.join("leviathan.yaml"),
        "# The demo's one target, on the local forge with the built-in policy.\ntargets:\n  - id: ingestion\n    repository: ingestion.git\n    base_branch: main\n    labels: [leviathan]\n",
    )?;
    println!("\n== target: {} (local forge)", origin.display());
    println!(
        "== policy: the embedded policies/dev.yaml (allowed prefixes .leviathan/, docs/, tests/; max 1 open PR)\n"
    );
    for pass in 1..=8 {
        println!("-- leviathan-host tick   (pass {pass})");
        let out = host(&demo, &["tick"])?;
        print!("   {}", out.replace('\n', "\n   ").trim_end_matches(' '));
        println!();
        if !out.contains("opened") {
            break;
        }
        println!("-- leviathan-host prs list");
        let listing = host(&demo, &["prs", "list"])?;
        for line in listing.lines() {
            println!("   {line}");
        }
        let pr = listing
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(1))
            .context("an open PR after a pass that opened one")?
            .to_string();
        println!("-- leviathan-host prs merge ingestion {pr}");
        let merged = host(&demo, &["prs", "merge", "ingestion", &pr])?;
        println!("   {}\n", merged.trim());
    }
    println!("\n== main after the merges:");
    print!(
        "{}",
        output(&mut git(&origin, &["log", "--format=   %h %s", "main"]))?
    );
    for file in [
        "docs/runbooks/DOCS_ONCALL_RUNBOOK.md",
        "tests/test_tests_backlog_parser.py",
        ".leviathan/templates/PULL_REQUEST_TEMPLATE.md",
        "docs/CHANGELOG.md",
    ] {
        if let Ok(text) = output(&mut git(&origin, &["show", &format!("main:{file}")])) {
            println!("\n== {file} (first 12 lines)");
            for line in text.lines().take(12) {
                println!("   {line}");
            }
        }
    }
    println!("\n== .leviathan/backlog.yaml on main: the write-back of the first task");
    let backlog = output(&mut git(&origin, &["show", "main:.leviathan/backlog.yaml"]))?;
    for line in backlog.lines().skip(1).take(23) {
        println!("   {line}");
    }
    let data = demo.join("data");
    println!("\n== event log ({}):", data.display());
    let binary = host_binary().to_string_lossy().into_owned();
    let tail = output(cmd(&binary, &["events", "tail", "--last", "200", "--data-dir"]).arg(&data))?;
    for line in tail.lines() {
        let event: serde_json::Value = serde_json::from_str(line)?;
        let detail = event["payload"]["reason"]
            .as_str()
            .or(event["payload"]["pr"].as_str())
            .unwrap_or("");
        println!(
            "   #{:<3} {:<22} {:<10} {:<24} {}",
            event["seq"],
            event["type"].as_str().unwrap_or(""),
            event["target"].as_str().unwrap_or(""),
            event["task"].as_str().unwrap_or(""),
            detail
        );
    }
    print!(
        "   {}",
        output(cmd(&binary, &["events", "verify", "--data-dir"]).arg(&data))?
    );
    let tokens = demo.join("tokens.yaml");
    fs::write(
        &tokens,
        format!(
            "# The demo's console login (an operator) and a read-only viewer.\ntokens:\n  - {{name: demo-operator, role: operator, token: {DEMO_TOKEN}}}\n  - {{name: demo-viewer, role: viewer, token: demo-viewer-token-0001}}\n"
        ),
    )?;
    println!("\n== the operator console on the demo's data: run this, open the address it prints");
    println!("   and log in with the token {DEMO_TOKEN}\n");
    println!(
        "   {binary} serve --listen 127.0.0.1:8080 --data-dir {} --tokens-file {} --config {} --plugin-dir {}",
        data.display(),
        tokens.display(),
        demo.join("leviathan.yaml").display(),
        registry_dir().display()
    );
    println!("   # then open http://127.0.0.1:8080/console");
    Ok(())
}

/// The operator token the demo's tokens file holds, for logging in to the console.
const DEMO_TOKEN: &str = "demo-operator-token-0001";
