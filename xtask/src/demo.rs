//! `cargo xtask demo`: the main job on the embedded default. Builds everything,
//! creates a local git repository with a realistic backlog under `target/demo/`,
//! runs each ready task through `leviathan-host exec`, and shows what was written.

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

/// The ready tasks, in backlog order.
const READY: &[&str] = &[
    "docs-oncall-runbook",
    "tests-backlog-parser",
    "pr-template",
    "changelog-runbook",
    "ops-rotate-keys",
];

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

fn exec(repo: &Path, data: &Path, task: &str) -> Result<i32> {
    let status = cmd(&host_binary().to_string_lossy(), &["exec", "--task", task])
        .arg("--repo")
        .arg(repo)
        .arg("--plugin-dir")
        .arg(registry_dir())
        .arg("--data-dir")
        .arg(data)
        .status()?;
    Ok(status.code().unwrap_or(-1))
}

/// Runs the demo.
pub fn demo() -> Result<()> {
    build(Scope::Host)?;
    let repo = root().join("target/demo/repo");
    let data = root().join("target/demo/data");
    create_repo(&repo)?;
    if data.exists() {
        fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
    }
    println!("\n== demo repository: {}", repo.display());
    println!(
        "== policy: the embedded policies/dev.yaml (allowed prefixes .leviathan/, docs/, tests/)\n"
    );
    for task in READY {
        println!("-- leviathan-host exec --task {task}");
        let code = exec(&repo, &data, task)?;
        println!("   exit code {code}\n");
    }
    println!("-- running the first task again (idempotent: nothing changes)");
    exec(&repo, &data, READY[0])?;
    println!("\n== worktree changes (not committed; committing and PRs are the scheduler's job):");
    print!(
        "{}",
        output(&mut git(
            &repo,
            &["status", "--short", "--untracked-files=all"]
        ))?
    );
    for file in [
        "docs/runbooks/DOCS_ONCALL_RUNBOOK.md",
        "tests/test_tests_backlog_parser.py",
        ".leviathan/templates/PULL_REQUEST_TEMPLATE.md",
        "docs/CHANGELOG.md",
    ] {
        let path = repo.join(file);
        if let Ok(text) = fs::read_to_string(&path) {
            println!("\n== {file} (first 12 lines)");
            for line in text.lines().take(12) {
                println!("   {line}");
            }
        }
    }
    println!("\n== event log ({}):", data.display());
    let host = host_binary().to_string_lossy().into_owned();
    let tail = output(cmd(&host, &["events", "tail", "--last", "100", "--data-dir"]).arg(&data))?;
    for line in tail.lines() {
        let event: serde_json::Value = serde_json::from_str(line)?;
        println!(
            "   #{} {:<18} {}",
            event["seq"],
            event["type"].as_str().unwrap_or(""),
            event["task"].as_str().unwrap_or("")
        );
    }
    print!(
        "   {}",
        output(cmd(&host, &["events", "verify", "--data-dir"]).arg(&data))?
    );
    Ok(())
}
