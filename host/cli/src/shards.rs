//! `leviathan-host shards …`: which shard serves each target, and moving a data
//! directory to a new shard count.

use anyhow::Result;
use clap::Subcommand;
use leviathan_domain::config::Config;
use leviathan_domain::shards::{Shard, shard_of};
use leviathan_events::EventLog;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ShardsCommand {
    /// Which shard serves each configured target (`--count` to preview another count).
    Show {
        #[arg(long, env = "LEVIATHAN_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        count: Option<u32>,
    },
    /// Record that a (stopped) shard's data directory now belongs to shard `index`
    /// of `count`. Targets that move keep their history in the old shard's log; the
    /// new owner adopts their open PRs from the branches on the next pass.
    Migrate {
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        count: u32,
        #[arg(long)]
        index: u32,
    },
}

/// A shard count as the configuration's `shards` allows it.
fn check_count(count: u32) -> Result<()> {
    anyhow::ensure!(
        (1..=leviathan_domain::config::MAX_SHARDS).contains(&count),
        "--count must be 1 to {}",
        leviathan_domain::config::MAX_SHARDS
    );
    Ok(())
}

/// Runs a `shards` command.
pub fn run(command: ShardsCommand) -> Result<i32> {
    match command {
        ShardsCommand::Show { config, count } => {
            let config = Config::load(&config)?;
            let count = count.unwrap_or(config.shards);
            check_count(count)?;
            println!("{:<32} SHARD (of {count})", "TARGET");
            for t in &config.targets {
                println!("{:<32} {}", t.id, shard_of(&t.id, count));
            }
            Ok(0)
        }
        ShardsCommand::Migrate {
            data_dir,
            count,
            index,
        } => {
            check_count(count)?;
            anyhow::ensure!(
                index < count,
                "--index must be below --count ({index} of {count})"
            );
            let log = EventLog::open(&data_dir)?;
            let previous = leviathan_scheduler::shard_claim::migrate(&log, Shard { index, count })?;
            let (pi, pc) = previous.unwrap_or((0, 1));
            println!(
                "{}: shard {pi} of {pc} -> shard {index} of {count}",
                data_dir.display()
            );
            Ok(0)
        }
    }
}
