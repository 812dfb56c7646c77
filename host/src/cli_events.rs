//! `leviathan-host events …`: append to, read, verify and export the event log.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use leviathan_host::events::{EventDraft, EventLog};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Page size when streaming the whole log.
const PAGE: usize = 1000;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Print the last events as NDJSON (or every event after `--after`).
    Tail {
        /// The store directory (sled).
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        /// How many of the newest events to print.
        #[arg(long, default_value_t = 20)]
        last: u64,
        /// Print every event with a sequence above this instead.
        #[arg(long)]
        after: Option<u64>,
    },
    /// Check the whole hash chain; exit 1 naming the first bad sequence.
    Verify {
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Write every event to stdout.
    Export {
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        /// Output format (only `ndjson`).
        #[arg(long, default_value = "ndjson")]
        format: String,
    },
    /// Append one event (durably) and print it.
    Append {
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        /// Event type, e.g. `operator.note`.
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        task: Option<String>,
        #[arg(long)]
        attempt: Option<String>,
        /// JSON payload.
        #[arg(long)]
        payload: Option<String>,
    },
}

fn open(dir: &Path) -> Result<EventLog> {
    Ok(EventLog::open(dir)?)
}

fn print_after(log: &EventLog, mut after: u64) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let page = log.after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in &page {
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Runs an `events` command; returns the exit code.
pub fn run(command: EventsCommand) -> Result<i32> {
    match command {
        EventsCommand::Tail {
            data_dir,
            last,
            after,
        } => {
            let log = open(&data_dir)?;
            let after = after.unwrap_or_else(|| log.last_seq().saturating_sub(last));
            print_after(&log, after)?;
            Ok(0)
        }
        EventsCommand::Verify { data_dir } => {
            let log = open(&data_dir)?;
            match log.verify() {
                Ok(count) => {
                    println!("ok: {count} events, hash chain intact");
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("chain broken at {e}");
                    Ok(1)
                }
            }
        }
        EventsCommand::Export { data_dir, format } => {
            if format != "ndjson" {
                bail!("--format: `{format}` is not supported; use `ndjson`");
            }
            print_after(&open(&data_dir)?, 0)?;
            Ok(0)
        }
        EventsCommand::Append {
            data_dir,
            kind,
            target,
            task,
            attempt,
            payload,
        } => {
            let payload = match payload {
                Some(text) => serde_json::from_str(&text).context("--payload is not valid JSON")?,
                None => serde_json::Value::Null,
            };
            let draft = EventDraft {
                kind,
                target,
                task,
                attempt,
                payload,
            };
            let events = open(&data_dir)?.append(vec![draft])?;
            for e in events {
                println!("{}", serde_json::to_string(&e)?);
            }
            Ok(0)
        }
    }
}
