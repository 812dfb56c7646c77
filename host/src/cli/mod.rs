//! Command-line interface: the command tree, and `serve` wired to the server and
//! the scheduler's passes. Every other command lives in `leviathan-cli`.

use clap::{Parser, Subcommand};
use leviathan_cli::{events, exit_code, init_tracing, plugins, sched};
use leviathan_domain::registry::Registry;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "leviathan-host",
    version,
    about = "Runs backlog tasks in sandboxed WebAssembly executors under policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `leviathan-host backlog …`
#[derive(Subcommand)]
enum BacklogCommand {
    /// Check `.leviathan/backlog.yaml` as the scheduler reads it: task ids, dependencies
    /// that exist and do not cycle, allowed paths inside the policy, an executor for
    /// every task (exit 0 when there is no problem, 1 otherwise).
    Validate {
        /// The target repository's worktree.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The target's policy file (the `dev.yaml` format); default: the embedded policies/dev.yaml.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Plugin registry directory; default: $LEVIATHAN_PLUGIN_DIR or plugins/registry.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run one task of a worktree's `.leviathan/backlog.yaml` and write its files (no commit).
    Exec {
        /// The target worktree.
        #[arg(long)]
        repo: PathBuf,
        /// The task id.
        #[arg(long)]
        task: String,
        /// Policy file (the `dev.yaml` format); default: the embedded policies/dev.yaml.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Plugin registry directory; default: $LEVIATHAN_PLUGIN_DIR or plugins/registry.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Record the attempt in the event log in this directory (sled).
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Run a recorded attempt again and compare its bytes with the event log's record
    /// (exit 0 identical, 1 different, 2 cannot replay).
    Replay {
        /// The attempt id (8 hex digits, as in the event log and the console).
        attempt: String,
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        /// The targets file: a scheduler attempt replays on the host's clone of its target.
        #[arg(long, env = "LEVIATHAN_CONFIG")]
        config: Option<PathBuf>,
        /// Where the host keeps its clones of the targets (default: `<data-dir>-work`).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// A repository holding the attempt's base commit, instead of the host's clone.
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Plugin registry directory; default: $LEVIATHAN_PLUGIN_DIR or plugins/registry.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check a target's backlog.
    #[command(subcommand)]
    Backlog(BacklogCommand),
    /// Inspect and manage the plugin registry.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Read, verify, export and append to the event log.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// One scheduler pass over every configured target, then exit.
    Tick {
        /// The configuration (targets) file; the original dev.yaml is a one-target config.
        #[arg(long, env = "LEVIATHAN_CONFIG")]
        config: PathBuf,
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        /// Where the host keeps its clones of the targets (default: `<data-dir>-work`).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// This process's shard when the configuration has `shards` (default: the
        /// number ending the hostname, a StatefulSet pod's ordinal).
        #[arg(long, env = "LEVIATHAN_SHARD_INDEX")]
        shard_index: Option<u32>,
    },
    /// Shards: which targets each serves, and moving a data directory to a new count.
    #[command(subcommand)]
    Shards(leviathan_cli::shards::ShardsCommand),
    /// The local forge's pull requests.
    #[command(subcommand)]
    Prs(sched::PrsCommand),
    /// Check the deployment's and the project's invariants (docs/DEPLOYMENT.md).
    Check {
        /// Rendered manifests (`kubectl kustomize` output): files, or directories of `*.yaml`.
        #[arg(long, default_value = "target/ops/rendered")]
        rendered: Vec<PathBuf>,
        /// Plugin registry directory; default: $LEVIATHAN_PLUGIN_DIR or plugins/registry.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// A targets configuration to load.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A policy file to load.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print one JSON object per check.
        #[arg(long)]
        json: bool,
    },
    /// Run the control-plane API (HTTP) over the event log.
    Serve {
        /// Address to bind; a port of 0 picks a free one (printed on start).
        #[arg(long, default_value = "127.0.0.1:8000", env = "LEVIATHAN_LISTEN")]
        listen: String,
        /// The event store directory (sled).
        #[arg(long, env = "LEVIATHAN_DATA_DIR")]
        data_dir: PathBuf,
        /// Bearer tokens (YAML: `tokens:` list of {name, role, token | sha256}); re-read on SIGHUP and when the file changes.
        #[arg(long, env = "LEVIATHAN_TOKENS_FILE")]
        tokens_file: PathBuf,
        /// Plugin registry directory (watched; changes load without a restart);
        /// default: $LEVIATHAN_PLUGIN_DIR or plugins/registry.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Policy file for the `plugins:` settings (trusted keys, signatures, routes).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Milliseconds a registry change must be quiet before it is reloaded.
        #[arg(long, default_value_t = 300)]
        reload_debounce_ms: u64,
        /// Milliseconds between checks of the tokens file and the `--config` file for a
        /// change (a mounted Secret's or ConfigMap's update, an edit); 0 reloads on
        /// SIGHUP only.
        #[arg(long, default_value_t = 2000, env = "LEVIATHAN_TOKENS_POLL_MS")]
        tokens_poll_ms: u64,
        /// Largest request body in bytes.
        #[arg(long, default_value_t = leviathan_server::DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// Seconds shutdown waits for in-flight requests.
        #[arg(long, default_value_t = 10)]
        shutdown_grace_secs: u64,
        /// The targets configuration: run scheduler passes on its `interval_seconds`.
        #[arg(long, env = "LEVIATHAN_CONFIG")]
        config: Option<PathBuf>,
        /// Where the scheduler keeps its clones (default: `<data-dir>-work`).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Most connections open at once; at the cap a new connection evicts the
        /// oldest one that has not sent a request.
        #[arg(long, default_value_t = leviathan_server::DEFAULT_CONNECTIONS.max_connections)]
        max_connections: usize,
        /// Seconds a connection has to send a request head; also the keep-alive idle time.
        #[arg(long, default_value_t = leviathan_server::DEFAULT_CONNECTIONS.header_read_timeout.as_secs())]
        header_timeout_secs: u64,
        /// Most API requests in flight; more are answered 503 with Retry-After.
        #[arg(long, default_value_t = leviathan_server::DEFAULT_REQUESTS.max_requests)]
        max_requests: usize,
        /// Most event streams (SSE) open at once.
        #[arg(long, default_value_t = leviathan_server::DEFAULT_REQUESTS.max_streams)]
        max_streams: usize,
        /// Seconds to produce a response before it is answered 503.
        #[arg(long, default_value_t = leviathan_server::DEFAULT_REQUESTS.request_timeout.as_secs())]
        request_timeout_secs: u64,
        /// Minutes a console session may go unused before it ends.
        #[arg(long, default_value_t = leviathan_server::console::session::DEFAULT_SESSIONS.idle.as_secs() / 60)]
        session_idle_mins: u64,
        /// Hours after login a console session ends, used or not.
        #[arg(long, default_value_t = leviathan_server::console::session::DEFAULT_SESSIONS.absolute.as_secs() / 3600)]
        session_max_hours: u64,
        /// This process's shard when the configuration has `shards` (default: the
        /// number ending the hostname, a StatefulSet pod's ordinal).
        #[arg(long, env = "LEVIATHAN_SHARD_INDEX")]
        shard_index: Option<u32>,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let serving = matches!(cli.command, Command::Serve { .. });
    init_tracing(if serving { "info" } else { "warn" });
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            tokens_file,
            plugin_dir,
            policy,
            reload_debounce_ms,
            tokens_poll_ms,
            body_limit,
            shutdown_grace_secs,
            config,
            work_dir,
            max_connections,
            header_timeout_secs,
            max_requests,
            max_streams,
            request_timeout_secs,
            session_idle_mins,
            session_max_hours,
            shard_index,
        } => {
            use std::time::Duration;
            let options = leviathan_server::ServeOptions {
                connections: leviathan_server::listener::ConnectionLimits {
                    max_connections: max_connections.max(1),
                    header_read_timeout: Duration::from_secs(header_timeout_secs.max(1)),
                },
                requests: leviathan_server::limits::RequestLimits {
                    max_requests: max_requests.max(1),
                    max_streams,
                    request_timeout: Duration::from_secs(request_timeout_secs.max(1)),
                },
                listen,
                data_dir,
                tokens_file,
                tokens_poll: Duration::from_millis(tokens_poll_ms),
                plugin_dir: plugin_dir.unwrap_or_else(Registry::default_dir),
                policy,
                reload_debounce: std::time::Duration::from_millis(reload_debounce_ms),
                body_limit,
                shutdown_grace: std::time::Duration::from_secs(shutdown_grace_secs),
                config,
                work_dir,
                sessions: leviathan_server::console::session::SessionLimits {
                    idle: Duration::from_secs(session_idle_mins.max(1) * 60),
                    absolute: Duration::from_secs(session_max_hours.max(1) * 3600),
                },
            };
            let result = leviathan_server::serve(
                options,
                |addr| {
                    use std::io::Write;
                    println!("listening on http://{addr}");
                    let _ = std::io::stdout().flush();
                },
                |shared| start_passes(shared, shard_index),
            );
            match result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Exec {
            repo,
            task,
            policy,
            plugin_dir,
            json,
            data_dir,
        } => leviathan_cli::exec_task(repo, task, policy, plugin_dir, json, data_dir),
        Command::Backlog(BacklogCommand::Validate {
            repo,
            policy,
            plugin_dir,
            json,
        }) => leviathan_cli::backlog::validate(&leviathan_cli::backlog::ValidateArgs {
            repo,
            policy,
            plugin_dir,
            json,
        }),
        Command::Replay {
            attempt,
            data_dir,
            config,
            work_dir,
            repo,
            plugin_dir,
            json,
        } => leviathan_cli::replay::run(&leviathan_cli::replay::ReplayArgs {
            attempt,
            data_dir,
            config,
            work_dir,
            repo,
            plugin_dir,
            json,
        }),
        Command::Tick {
            config,
            data_dir,
            work_dir,
            plugin_dir,
            shard_index,
        } => exit_code(sched::tick(
            &config,
            &data_dir,
            work_dir,
            plugin_dir,
            shard_index,
        )),
        Command::Shards(command) => exit_code(leviathan_cli::shards::run(command)),
        Command::Prs(command) => exit_code(sched::prs(command)),
        Command::Events(command) => exit_code(events::run(command)),
        Command::Plugins(command) => exit_code(plugins::run(command)),
        Command::Check {
            rendered,
            plugin_dir,
            config,
            policy,
            json,
        } => exit_code(leviathan_cli::check::run(
            &leviathan_cli::check::Inputs {
                rendered,
                plugin_dir,
                config,
                policy,
            },
            json,
        )),
    }
}

/// The scheduler's passes beside the API, on the server's log, sandbox and plugins,
/// and its decision rule for the console's "why it waits".
fn start_passes(
    shared: leviathan_server::Shared,
    shard_index: Option<u32>,
) -> std::io::Result<leviathan_server::Background> {
    // A shard that does not match its log's record refuses to start.
    let config = shared.config.current();
    let shard = sched::claim_shard(&config, &shared.log, shard_index)
        .map_err(|e| std::io::Error::other(leviathan_cli::error_text(&e)))?;
    eprintln!(
        "scheduler: shard {} of {}, {} worker(s)",
        shard.index, shard.count, config.workers
    );
    let passes = leviathan_scheduler::passes::Passes::start(
        shared.config,
        shared.log,
        shared.sandbox,
        shared.registry_dir,
        shared.work_dir,
        shared.plugins,
        shard,
    )?;
    let status = passes.status();
    Ok(leviathan_server::Background {
        stop: Box::new(move |grace| passes.stop(grace)),
        explain: Some(std::sync::Arc::new(explain_waits)),
        health: Some(std::sync::Arc::new(move || {
            leviathan_server::BackgroundHealth {
                last_pass_completed_ms: status.last_completed_ms(),
                passes_failed: status.failed(),
                github: status.github(),
                discovered: status.discovered(),
            }
        })),
    })
}

/// [`leviathan_scheduler::select::explain`] in the server's terms.
fn explain_waits(
    backlog: &leviathan_domain::backlog::Backlog,
    policy: &leviathan_domain::policy::Policy,
    view: Option<&leviathan_events::projection::TargetView>,
    open_branches: &[String],
    paused: bool,
) -> leviathan_server::Waits {
    use leviathan_scheduler::select::{Standing, TargetState, explain};
    let state = TargetState {
        view,
        open_branches,
    };
    let (stop, tasks) = explain(backlog, policy, &state, paused);
    leviathan_server::Waits {
        stop: stop.map(|(s, detail)| (s.as_str().to_string(), detail)),
        tasks: tasks
            .into_iter()
            .map(|(task, standing)| {
                let mut wait = leviathan_server::TaskWait {
                    task,
                    ..Default::default()
                };
                match standing {
                    Standing::Runs => {}
                    Standing::Behind(first) => wait.behind = Some(first),
                    Standing::Skipped(reason, detail) => {
                        wait.skipped = Some(reason.as_str().to_string());
                        wait.detail = detail;
                    }
                }
                wait
            })
            .collect(),
    }
}
