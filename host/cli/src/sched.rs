//! `leviathan-host tick` (one scheduler pass) and `leviathan-host prs …` (the local
//! forge's pull requests).

use anyhow::Result;
use clap::Subcommand;
use leviathan_domain::config::Config;
use leviathan_domain::registry::Registry;
use leviathan_events::EventLog;
use leviathan_events::Provenance;
use leviathan_events::projection::PrState;
use leviathan_forge::pull_requests::merge_or_close_local;
use leviathan_sandbox::{ArtifactCache, Sandbox};

/// The actor of what an operator does on the command line.
pub const CLI_ACTOR: &str = "cli";
use leviathan_domain::config::work_dir_for as work_dir;
use leviathan_scheduler::Scheduler;
use std::path::{Path, PathBuf};

/// This process's shard of `config` (the flag, else the pod's ordinal), checked
/// against the shard `log` belongs to.
pub fn claim_shard(
    config: &Config,
    log: &EventLog,
    shard_index: Option<u32>,
) -> Result<leviathan_domain::shards::Shard> {
    let shard = leviathan_domain::shards::choose(
        shard_index,
        &leviathan_domain::shards::hostname(),
        config.shards,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", config.source.display()))?;
    leviathan_scheduler::shard_claim::claim(log, shard)?;
    Ok(shard)
}

/// One pass over every target this shard owns; prints a line per target.
pub fn tick(
    config: &Path,
    data_dir: &Path,
    work: Option<PathBuf>,
    plugin_dir: Option<PathBuf>,
    shard_index: Option<u32>,
) -> Result<i32> {
    let config = Config::load(config)?;
    let log = EventLog::open(data_dir)?;
    let shard = claim_shard(&config, &log, shard_index)?;
    stop_git_on_signal();
    let sandbox = Sandbox::new(ArtifactCache::new(ArtifactCache::default_dir()))?;
    let github = leviathan_forge::github::clients::GitHubClients::for_config(&config);
    let scheduler = Scheduler {
        config: &config,
        log: &log,
        sandbox: &sandbox,
        registry_dir: plugin_dir.unwrap_or_else(Registry::default_dir),
        work_dir: work_dir(data_dir, work),
        plugins: None,
        github: &github,
        shard,
    };
    for report in scheduler.tick()? {
        println!("{}: {}", report.target, report.outcome);
    }
    Ok(0)
}

/// Makes Ctrl-C and SIGTERM stop `tick` or `prs merge|close` as they did (exit
/// status 130 and 143), after killing the git commands it has running: in process
/// groups of their own (for their deadline), they do not get the terminal's signal,
/// and would go on in a clone the next run takes as free.
fn stop_git_on_signal() {
    if let Err(e) = watch_signals() {
        eprintln!("no signal watcher ({e}): Ctrl-C leaves running git commands to finish");
    }
}

/// Takes over SIGINT and SIGTERM (before returning, so none is missed) and waits for
/// them on a thread of its own.
fn watch_signals() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    std::thread::Builder::new()
        .name("tick-signals".into())
        .spawn(move || {
            let code = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => 130,
                    _ = terminate.recv() => 143,
                }
            });
            let stopped = leviathan_forge::git::stop_remote_commands();
            eprintln!("stopped by a signal ({stopped} git command(s) stopped with it)");
            std::process::exit(code);
        })?;
    Ok(())
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
    let log = EventLog::open(data_dir)?;
    stop_git_on_signal();
    let done = merge_or_close_local(
        &config,
        &log,
        &work_dir(data_dir, work),
        target_id,
        pr,
        merge,
        Provenance::host_for(CLI_ACTOR),
        None,
    )?;
    match &done.commit {
        Some(commit) => {
            let base = config
                .targets
                .iter()
                .find(|t| t.id == target_id)
                .map(|t| t.base_branch.as_str())
                .unwrap_or("the base");
            println!("merged PR {pr} ({}) into {base} at {commit}", done.branch);
        }
        None => println!("closed PR {pr} ({})", done.branch),
    }
    Ok(0)
}
