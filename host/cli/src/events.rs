//! `leviathan-host events …`: append to, read, verify and export the event log.

use super::custody;
use super::sched::CLI_ACTOR;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use leviathan_events::{EventDraft, EventLog, EventReader, Provenance, catalog, import};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Page size when streaming the whole log.
const PAGE: usize = 1000;

/// The largest journal `events import` reads.
const IMPORT_LIMIT: leviathan_domain::repofs::Limit =
    leviathan_domain::repofs::Limit::new(1 << 30, "import file limit");

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Print the last events as NDJSON (or every event after `--after`); with
    /// `--follow`, keep printing new ones.
    Tail {
        /// The store directory (sled); not needed with `--api`.
        #[arg(long, env = "LEVIATHAN_DATA_DIR", required_unless_present = "api")]
        data_dir: Option<PathBuf>,
        /// Read from a running `serve` instead (e.g. http://127.0.0.1:8000); the
        /// token comes from $LEVIATHAN_TOKEN or --token-file, never the command line.
        #[arg(long, env = "LEVIATHAN_API")]
        api: Option<String>,
        /// A file holding the bearer token for `--api`.
        #[arg(long, env = "LEVIATHAN_TOKEN_FILE")]
        token_file: Option<PathBuf>,
        /// How many of the newest events to print.
        #[arg(long, default_value_t = 20)]
        last: u64,
        /// Print every event with a sequence above this instead.
        #[arg(long)]
        after: Option<u64>,
        /// Keep printing events as they are appended.
        #[arg(long, short = 'f')]
        follow: bool,
        /// How often a followed store directory is polled, in milliseconds.
        #[arg(long, default_value_t = 500)]
        poll_ms: u64,
    },
    /// Import an NDJSON log of the original Leviathan's store, mapping its types.
    Import {
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        /// The NDJSON file (`-` for stdin).
        file: PathBuf,
        /// Allow importing into a log that already holds events.
        #[arg(long)]
        into_nonempty: bool,
        /// Import a journal whose hash chain is known to be broken; the log records
        /// where it broke. Without it, the first break refuses the whole file.
        #[arg(long)]
        allow_broken_chain: bool,
    },
    /// Check the whole hash chain; exit 1 naming the first bad sequence. Imported
    /// segments are listed with how far the original's own chain vouches for them.
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
    /// Append one event (durably) and print it: a note or any other type the host
    /// does not act on (origin `client`), or an operator action (`autonomy.paused`,
    /// `autonomy.resumed`, `circuit_breaker.closed`; origin `operator`), both with
    /// actor `cli`. The host's own types are refused.
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

/// Opens a store for reading, explaining the usual reason it is refused.
fn open_reader(dir: &Path) -> Result<EventReader> {
    EventReader::open(dir).with_context(|| {
        format!(
            "cannot open {}; if a `serve` holds it, read through the API with --api URL",
            dir.display()
        )
    })
}

/// Prints every event after `after` as NDJSON; returns the last sequence printed.
fn print_after(reader: &EventReader, mut after: u64) -> Result<u64> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let page = reader.after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in &page {
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(after)
}

/// `tail` on a store directory. Following reopens the store on every poll, so
/// processes that append (`exec --data-dir`) can take it in between.
fn tail_dir(dir: &Path, last: u64, after: Option<u64>, follow: bool, poll_ms: u64) -> Result<()> {
    let reader = open_reader(dir)?;
    let start = after.unwrap_or(reader.last_seq()?.saturating_sub(last));
    let mut seen = print_after(&reader, start)?;
    drop(reader);
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(poll_ms));
        seen = print_after(&open_reader(dir)?, seen)?;
    }
}

/// Runs an `events` command; returns the exit code.
pub fn run(command: EventsCommand) -> Result<i32> {
    match command {
        EventsCommand::Tail {
            data_dir,
            api,
            token_file,
            last,
            after,
            follow,
            poll_ms,
        } => {
            match (api, data_dir) {
                (Some(api), _) => {
                    let token = super::api::token(token_file.as_deref())?;
                    super::api::tail(&api, &token, last, after, follow)?
                }
                (None, Some(dir)) => tail_dir(&dir, last, after, follow, poll_ms)?,
                (None, None) => bail!("give --data-dir or --api"),
            }
            Ok(0)
        }
        EventsCommand::Import {
            data_dir,
            file,
            into_nonempty,
            allow_broken_chain,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                String::from_utf8(
                    leviathan_domain::repofs::read_operator_file(&file, IMPORT_LIMIT)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                )
                .with_context(|| format!("{} is not UTF-8", file.display()))?
            };
            let mut journal =
                import::read_journal(&file.display().to_string(), &text, allow_broken_chain)?;
            let log = open(&data_dir)?;
            if log.last_seq() > 0 && !into_nonempty {
                bail!(
                    "{} already holds {} events; pass --into-nonempty to import anyway",
                    data_dir.display(),
                    log.last_seq()
                );
            }
            if journal.drafts.is_empty() {
                println!("nothing to import: {} holds no events", file.display());
                return Ok(0);
            }
            // The drafts go to the log; the chain check and the report stay to print.
            let drafts = std::mem::take(&mut journal.drafts);
            let appended = log.append_as(Provenance::import(), drafts)?;
            custody::print_import(&journal, &appended);
            Ok(0)
        }
        EventsCommand::Verify { data_dir } => {
            let log = open(&data_dir)?;
            let mut segments = Vec::new();
            match log.verify_each(|e| segments.extend(custody::Segment::of(e))) {
                Ok(count) => {
                    println!("ok: {count} events, hash chain intact");
                    for segment in &segments {
                        println!("{}", segment.describe());
                    }
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
            print_after(&open_reader(&data_dir)?, 0)?;
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
            let by = match catalog::writer_of(&kind) {
                Some(catalog::Writer::Operator) => Provenance::operator(CLI_ACTOR),
                _ => Provenance::client(CLI_ACTOR),
            };
            let draft = EventDraft {
                kind,
                target,
                task,
                attempt,
                payload,
            };
            let events = open(&data_dir)?.append_as(by, vec![draft])?;
            for e in events {
                println!("{}", serde_json::to_string(&e)?);
            }
            Ok(0)
        }
    }
}
