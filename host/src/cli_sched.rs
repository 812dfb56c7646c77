//! `leviathan-host tick` (one scheduler pass) and `leviathan-host prs …` (the local
//! forge's pull requests).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use leviathan_host::config::Config;
use leviathan_host::events::projection::PrState;
use leviathan_host::events::{EventDraft, EventLog};
use leviathan_host::git::Clone;
use leviathan_host::registry::Registry;
use leviathan_host::sandbox::{ArtifactCache, Sandbox};
use leviathan_host::scheduler::{Scheduler, remote_url};
use std::path::{Path, PathBuf};

/// The clones' directory: `--work-dir`, else `<data-dir>-work` beside the store.
fn work_dir(data_dir: &Path, work_dir: Option<PathBuf>) -> PathBuf {
    work_dir.unwrap_or_else(|| {
        let mut name = data_dir.as_os_str().to_owned();
        name.push("-work");
        PathBuf::from(name)
    })
}

/// One pass over every target; prints a line per target.
pub fn tick(
    config: &Path,
    data_dir: &Path,
    work: Option<PathBuf>,
    plugin_dir: Option<PathBuf>,
) -> Result<i32> {
    let config = Config::load(config)?;
    let log = EventLog::open(data_dir)?;
    let sandbox = Sandbox::new(ArtifactCache::new(ArtifactCache::default_dir()))?;
    let scheduler = Scheduler {
        config: &config,
        log: &log,
        sandbox: &sandbox,
        registry_dir: plugin_dir.unwrap_or_else(Registry::default_dir),
        work_dir: work_dir(data_dir, work),
        plugins: None,
    };
    for report in scheduler.tick()? {
        println!("{}: {}", report.target, report.outcome);
    }
    Ok(0)
}

#[derive(Subcommand)]
pub enum PrsCommand {
    /// The open pull requests of the local forge.
    List {
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Merge a local PR into its target's base branch.
    Merge {
        #[arg(long, env = "LEVIATHAN_CONFIG")]
        config: PathBuf,
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        work_dir: Option<PathBuf>,
        target: String,
        pr: String,
    },
    /// Close a local PR without merging (its branch is deleted).
    Close {
        #[arg(long, env = "LEVIATHAN_CONFIG")]
        config: PathBuf,
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        work_dir: Option<PathBuf>,
        target: String,
        pr: String,
    },
}

/// The open PR `pr` of `target`: (task, branch).
fn open_pr(log: &EventLog, target: &str, pr: &str) -> Result<(String, String)> {
    let found = log.with_projection(|p| {
        p.targets.get(target).and_then(|t| {
            t.tasks.iter().find_map(|(task, view)| {
                view.prs
                    .iter()
                    .find(|x| x.pr == pr && x.state == PrState::Open)
                    .map(|x| (task.clone(), x.branch.clone().unwrap_or_default()))
            })
        })
    })?;
    found.with_context(|| format!("no open PR {pr} of target `{target}` in the event log"))
}

/// Runs a `prs` command.
pub fn prs(command: PrsCommand) -> Result<i32> {
    match command {
        PrsCommand::List { data_dir } => {
            let log = EventLog::open(&data_dir)?;
            let rows = log.with_projection(|p| {
                let mut rows = Vec::new();
                for (target, t) in &p.targets {
                    for (task, view) in &t.tasks {
                        for pr in view.prs.iter().filter(|x| x.state == PrState::Open) {
                            rows.push(format!(
                                "{target:<16} {:<6} {task:<24} {}",
                                pr.pr,
                                pr.branch.as_deref().unwrap_or("")
                            ));
                        }
                    }
                }
                rows
            })?;
            println!("{:<16} {:<6} {:<24} BRANCH", "TARGET", "PR", "TASK");
            for row in rows {
                println!("{row}");
            }
            Ok(0)
        }
        PrsCommand::Merge {
            config,
            data_dir,
            work_dir: work,
            target,
            pr,
        } => act(&config, &data_dir, work, &target, &pr, true),
        PrsCommand::Close {
            config,
            data_dir,
            work_dir: work,
            target,
            pr,
        } => act(&config, &data_dir, work, &target, &pr, false),
    }
}

fn act(
    config: &Path,
    data_dir: &Path,
    work: Option<PathBuf>,
    target_id: &str,
    pr: &str,
    merge: bool,
) -> Result<i32> {
    let config = Config::load(config)?;
    let Some(target) = config.targets.iter().find(|t| t.id == target_id) else {
        bail!("{}: no target `{target_id}`", config.source.display());
    };
    let log = EventLog::open(data_dir)?;
    let (task, branch) = open_pr(&log, target_id, pr)?;
    let clone = Clone::prepare(
        &remote_url(&config, target),
        &work_dir(data_dir, work).join(target_id),
        &target.base_branch,
        None,
    )?;
    let kind = if merge {
        let commit = clone.merge_to_base(
            &branch,
            &target.base_branch,
            &format!("Merge PR {pr}: {branch}"),
        )?;
        println!(
            "merged PR {pr} ({branch}) into {} at {commit}",
            target.base_branch
        );
        "pr.merged"
    } else {
        println!("closed PR {pr} ({branch})");
        "pr.closed"
    };
    clone.delete_remote(&branch)?;
    let mut d = EventDraft::new(kind);
    d.target = Some(target_id.into());
    d.task = Some(task);
    d.payload = serde_json::json!({"pr": pr, "branch": branch});
    log.append(vec![d])?;
    Ok(0)
}
