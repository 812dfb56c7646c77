//! The control-plane API (axum): versioned JSON under `/api/v1`, health and metrics,
//! bearer-token auth, request ids, graceful shutdown; the operator console (the
//! `leviathan-console` crate) mounted under `/console`.

pub use leviathan_console as console;
pub use leviathan_console::{ExplainWaits, TaskWait, Waits};
pub use leviathan_domain::tokens as auth;
pub use leviathan_forge::ForgeContext;

mod console_host;
mod error;
mod graph;
pub mod limits;
pub mod listener;
pub mod metrics;
mod observe;
mod plugins;
mod prs;
mod routes_events;

use auth::Tokens;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
pub use error::ApiError;
use leviathan_events::{Event, EventDraft, EventLog, Provenance};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How `serve` is configured.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to bind; port 0 picks a free one.
    pub listen: String,
    /// The event store directory (sled).
    pub data_dir: PathBuf,
    /// The bearer tokens file (YAML).
    pub tokens_file: PathBuf,
    /// How often the tokens file and the targets configuration are checked for a
    /// change (a mounted Secret's or ConfigMap's update, an edit); zero leaves
    /// reloading to SIGHUP alone.
    pub tokens_poll: Duration,
    /// The plugin registry directory (loaded at start, then watched).
    pub plugin_dir: PathBuf,
    /// Policy file for the `plugins:` settings; default: the built-in policy.
    pub policy: Option<PathBuf>,
    /// Quiet time after a registry change before it is reloaded.
    pub reload_debounce: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// The targets configuration: when given, scheduler passes run on its interval.
    pub config: Option<PathBuf>,
    /// Where the scheduler keeps its clones (default `<data-dir>-work`).
    pub work_dir: Option<PathBuf>,
    /// Connection bounds (count, header-read and idle timeout).
    pub connections: listener::ConnectionLimits,
    /// Request bounds (in flight, streams, time to respond).
    pub requests: limits::RequestLimits,
    /// How long console sessions live.
    pub sessions: console::session::SessionLimits,
}

/// What `serve` shares with the work it runs beside the API (the scheduler's passes,
/// which the binary wires in): the configuration, the server's event log, sandbox and
/// plugin set in force.
pub struct Shared {
    /// The configuration in force (reloaded on SIGHUP or when its file changes).
    pub config: Arc<leviathan_domain::live_config::LiveConfig>,
    pub log: Arc<EventLog>,
    pub sandbox: Arc<leviathan_sandbox::Sandbox>,
    /// The plugin registry directory.
    pub registry_dir: PathBuf,
    /// Where the clones of the targets live.
    pub work_dir: PathBuf,
    /// The hot-reloaded plugin set in force (`None` while it is still loading).
    pub plugins: Box<dyn Fn() -> Option<Arc<leviathan_sandbox::plugins::PluginSet>> + Send>,
}

/// How to stop the work `serve` runs beside the API at shutdown, letting it finish
/// within the grace period.
pub type StopBackground = Box<dyn FnOnce(Duration) + Send>;

/// What the work beside the API hands back: how to stop it, and how the scheduler
/// would decide for a target now (the console's "why it waits").
pub struct Background {
    pub stop: StopBackground,
    pub explain: Option<ExplainWaits>,
    /// How the work is doing, read at each scrape of `/metrics`.
    pub health: Option<HealthProbe>,
}

/// How the scheduler's passes are doing, as `/metrics` reports it.
#[derive(Debug, Clone, Default)]
pub struct BackgroundHealth {
    /// When a pass last ran to its end (ms since the epoch).
    pub last_pass_completed_ms: Option<u64>,
    /// Passes that ended in an error.
    pub passes_failed: u64,
    /// Each GitHub identity's budget and content requests.
    pub github: Vec<leviathan_forge::github::clients::Usage>,
    /// The targets discovered in GitHub App installations, under their
    /// repositories' policies as the passes last read them.
    pub discovered: Vec<leviathan_domain::config::Target>,
}

/// Reads the background work's health.
pub type HealthProbe = Arc<dyn Fn() -> BackgroundHealth + Send + Sync>;

/// Largest request body accepted by default (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Default connection bounds: 1024 open connections, 10 s to send a request head.
pub const DEFAULT_CONNECTIONS: listener::ConnectionLimits = listener::ConnectionLimits {
    max_connections: 1024,
    header_read_timeout: Duration::from_secs(10),
};

/// Default request bounds: 64 requests in flight, 128 event streams, 60 s per response.
pub const DEFAULT_REQUESTS: limits::RequestLimits = limits::RequestLimits {
    max_requests: 64,
    max_streams: 128,
    request_timeout: Duration::from_secs(60),
};

/// Descriptors kept back from the connection cap for the store, the registry
/// watcher, git and the sandbox.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft descriptor limit to the hard one and returns the connection cap
/// that fits under it.
fn fit_connections(wanted: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let fits = limit
        .current
        .map(|soft| soft.saturating_sub(RESERVED_DESCRIPTORS).max(16))
        .unwrap_or(u64::MAX);
    let cap = wanted.min(usize::try_from(fits).unwrap_or(usize::MAX));
    if cap < wanted {
        tracing::warn!(
            wanted,
            cap,
            "the descriptor limit lowers the connection cap"
        );
    }
    cap
}

/// What every handler shares.
pub struct AppState {
    pub log: Arc<EventLog>,
    pub metrics: metrics::Metrics,
    tokens: RwLock<Arc<Tokens>>,
    tokens_file: PathBuf,
    pub plugins: plugins::PluginStatus,
    /// Becomes true when shutdown begins; long-lived streams end on it.
    shutdown: watch::Receiver<bool>,
    /// The targets and clone directory, when `serve` runs with `--config`.
    pub forge: Option<Arc<ForgeContext>>,
    /// The request limits.
    pub gate: limits::Gate,
    /// The console's sessions and login limit.
    pub console: console::ConsoleState,
    /// The scheduler's decision rule, once the passes have started.
    pub explain: std::sync::OnceLock<ExplainWaits>,
    /// The passes' health, once they have started.
    pub health: std::sync::OnceLock<HealthProbe>,
    /// The event store's directory (its volume's free space is a metric).
    pub data_dir: PathBuf,
}

/// Errors that stop `serve` from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Input(#[from] leviathan_domain::yaml::InputError),
    #[error(transparent)]
    Store(#[from] leviathan_events::StoreError),
    #[error("--listen {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sandbox(#[from] leviathan_sandbox::SandboxError),
}

impl AppState {
    /// Whether any configured target has `autonomy_enabled` (true without a config).
    pub fn autonomy_enabled(&self) -> bool {
        self.forge.as_ref().is_none_or(|f| {
            f.config
                .current()
                .targets
                .iter()
                .any(|t| t.policy.autonomy_enabled)
        })
    }

    /// The GitHub identities the passes use and their budgets (empty without a
    /// scheduler).
    pub fn github_usage(&self) -> Vec<leviathan_forge::github::clients::Usage> {
        self.health
            .get()
            .map(|probe| probe().github)
            .unwrap_or_default()
    }

    /// The targets the passes discovered in App installations (empty without a
    /// scheduler).
    pub fn discovered_targets(&self) -> Vec<leviathan_domain::config::Target> {
        self.health
            .get()
            .map(|probe| probe().discovered)
            .unwrap_or_default()
    }

    /// Appends durably as `by` (off the async threads) and counts it in the metrics.
    pub async fn append(
        &self,
        by: Provenance,
        drafts: Vec<EventDraft>,
    ) -> Result<Vec<Event>, ApiError> {
        let log = self.log.clone();
        let started = Instant::now();
        let events = tokio::task::spawn_blocking(move || log.append_as(by, drafts))
            .await
            .map_err(ApiError::internal)??;
        self.metrics.observe_append(started.elapsed());
        Ok(events)
    }

    /// The current tokens.
    fn tokens(&self) -> Arc<Tokens> {
        match self.tokens.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the tokens file; on error the loaded tokens stay in force.
    pub fn reload_tokens(&self) -> Result<usize, leviathan_domain::yaml::InputError> {
        let tokens = Tokens::load(&self.tokens_file)?;
        let count = tokens.len();
        let ended = self.console.sessions.retain_valid(&tokens);
        if ended > 0 {
            tracing::info!(sessions = ended, "console sessions of removed tokens ended");
        }
        match self.tokens.write() {
            Ok(mut t) => *t = Arc::new(tokens),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(tokens),
        }
        Ok(count)
    }
}

/// Counts every event that becomes durable in the metrics (the scheduler's passes,
/// the registry watcher and the API append to one log), from the newest at start on.
async fn count_events(state: Arc<AppState>, mut durable: watch::Receiver<u64>, mut cursor: u64) {
    let mut stop = state.shutdown.clone();
    let page = leviathan_events::Page {
        count: 1000,
        bytes: 4 << 20,
    };
    loop {
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            let log = state.log.clone();
            let read = tokio::task::spawn_blocking(move || log.after_page(cursor, page)).await;
            let Ok(Ok(paged)) = read else {
                tracing::warn!("metrics could not read the newest events");
                break;
            };
            let Some(last) = paged.events.last().map(|e| e.seq) else {
                break;
            };
            state.metrics.observe_events(&paged.events);
            cursor = last;
            if !paged.more {
                break;
            }
        }
    }
}

/// The whole router over `state`.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/events",
            get(routes_events::list).post(routes_events::append),
        )
        .route("/api/v1/events/stream", get(routes_events::stream))
        .route("/api/v1/graph", get(graph::graph))
        .route("/api/v1/targets", get(graph::targets))
        .route("/api/v1/targets/{id}", get(graph::target))
        .route(
            "/api/v1/targets/{id}/circuit-breaker/reset",
            post(graph::reset_breaker),
        )
        .route("/api/v1/targets/{id}/prs/{pr}/merge", post(prs::merge))
        .route("/api/v1/targets/{id}/prs/{pr}/close", post(prs::close))
        .route("/api/v1/tasks/{target}/{task}", get(graph::task))
        .route("/api/v1/autonomy", get(graph::autonomy))
        .route("/api/v1/plugins", get(observe::plugins))
        .route("/api/v1/autonomy/pause", post(graph::pause))
        .route("/api/v1/autonomy/resume", post(graph::resume))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::authorize,
        ));
    Router::new()
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics))
        .merge(api)
        .merge(console_host::routes())
        .fallback(observe::not_found)
        .method_not_allowed_fallback(observe::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// Runs the server until SIGTERM or SIGINT; `on_listening` gets the bound address.
/// With a configuration, `background` is started once the plugins are loading (the
/// binary starts the scheduler's passes there) and stopped at shutdown. On shutdown
/// in-flight requests finish (up to the grace period) and the log is flushed.
pub fn serve(
    options: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
    background: impl FnOnce(Shared) -> std::io::Result<Background>,
) -> Result<(), ServeError> {
    let tokens = Tokens::load(&options.tokens_file)?;
    let policy = match &options.policy {
        Some(file) => leviathan_domain::policy::Policy::load(file)?,
        None => leviathan_domain::policy::Policy::default_policy(),
    };
    let config = options
        .config
        .as_deref()
        .map(leviathan_domain::config::Config::load)
        .transpose()?
        .map(|c| Arc::new(leviathan_domain::live_config::LiveConfig::new(c)));
    let log = Arc::new(EventLog::open(&options.data_dir)?);
    let work_dir =
        leviathan_domain::config::work_dir_for(&options.data_dir, options.work_dir.clone());
    // One engine for the plugin set and the attempts that run its components.
    let sandbox = Arc::new(leviathan_sandbox::Sandbox::new(
        leviathan_sandbox::ArtifactCache::new(leviathan_sandbox::ArtifactCache::default_dir()),
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            log: log.clone(),
            metrics: metrics::Metrics::new(),
            tokens: RwLock::new(Arc::new(tokens)),
            tokens_file: options.tokens_file.clone(),
            plugins: plugins::PluginStatus::default(),
            shutdown: stop_rx,
            forge: config.as_ref().map(|c| {
                Arc::new(ForgeContext {
                    config: c.clone(),
                    work_dir: work_dir.clone(),
                })
            }),
            gate: limits::Gate::new(options.requests),
            console: console::ConsoleState::new(options.sessions),
            explain: std::sync::OnceLock::new(),
            health: std::sync::OnceLock::new(),
            data_dir: options.data_dir.clone(),
        });
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: options.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr()?;
        // Handlers go in before the address is announced, so a signal sent as soon
        // as the server is up is never the default (fatal) one.
        let signals = Signals::install()?;
        log.with_projection(|p| state.metrics.start_from(p))?;
        // The cursor before the subscription: an event in between is read at the
        // next change rather than missed.
        let counted = log.last_seq();
        tokio::spawn(count_events(state.clone(), log.subscribe(), counted));
        tracing::info!(%addr, events = log.last_seq(), "listening");
        on_listening(addr);
        plugins::start(
            state.clone(),
            sandbox.clone(),
            options.plugin_dir.clone(),
            policy.plugins.clone(),
            options.reload_debounce,
        );
        tokio::spawn(reload_on_sighup(state.clone(), signals.hangup));
        if !options.tokens_poll.is_zero() {
            tokio::spawn(reload_on_change(state.clone(), options.tokens_poll));
        }
        let passes = match config {
            Some(config) => {
                let plugin_state = state.clone();
                let started = background(Shared {
                    config,
                    log: log.clone(),
                    sandbox: sandbox.clone(),
                    registry_dir: options.plugin_dir.clone(),
                    work_dir,
                    plugins: Box::new(move || plugin_state.plugins.current()),
                })?;
                if let Some(explain) = started.explain {
                    let _ = state.explain.set(explain);
                }
                if let Some(health) = started.health {
                    let _ = state.health.set(health);
                }
                Some(started.stop)
            }
            None => None,
        };
        let app = router(state.clone(), options.body_limit);
        let grace = options.shutdown_grace;
        let (mut term, mut int) = (signals.terminate, signals.interrupt);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
        });
        let connections = listener::ConnectionLimits {
            max_connections: fit_connections(options.connections.max_connections),
            ..options.connections
        };
        let server = listener::serve(
            listener,
            app,
            connections,
            state.metrics.connection_stats(),
            state.shutdown.clone(),
        );
        let mut stopping = state.shutdown.clone();
        tokio::select! {
            () = server => {},
            _ = async {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("shutdown grace period over; dropping open connections"),
        }
        let flushed = tokio::task::spawn_blocking(move || {
            if let Some(stop) = passes {
                stop(grace);
            }
            log.flush()
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        flushed?;
        tracing::info!("stopped; event log flushed");
        Ok(())
    })
}

/// The signals `serve` handles: TERM and INT stop it, HUP reloads the tokens.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }
}

async fn reload_on_sighup(state: Arc<AppState>, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        reload_and_log(&state, "SIGHUP");
        reload_config_and_log(&state, "SIGHUP");
    }
}

/// Re-reads the targets configuration (and the policy files it names), logging the
/// outcome; one that does not load, or changes the shard count, leaves the
/// configuration in force (and `config_reload_failing` at 1 until a reload succeeds).
fn reload_config_and_log(state: &AppState, why: &str) {
    let Some(forge) = &state.forge else {
        return;
    };
    let reloaded = forge.config.reload();
    state.metrics.config_reloaded(reloaded.is_ok());
    match reloaded {
        Ok(r) => tracing::info!(
            targets = r.targets,
            added = ?r.added,
            removed = ?r.removed,
            why,
            "targets configuration reloaded; passes from the next one on use it"
        ),
        Err(e) => {
            tracing::error!(
                error = %e,
                why,
                "targets configuration not reloaded; the one in force stays"
            );
        }
    }
}

/// Re-reads the tokens file, logging the outcome; a broken file keeps the old tokens.
fn reload_and_log(state: &AppState, why: &str) {
    match state.reload_tokens() {
        Ok(count) => tracing::info!(tokens = count, why, "tokens file reloaded"),
        Err(e) => tracing::error!(
            error = %e,
            why,
            "tokens file not reloaded; the previous tokens stay in force"
        ),
    }
}

/// What identifies the tokens file's current content without reading it: device,
/// inode, size and modification time of what the path resolves to. A kubelet Secret
/// update (a new directory behind the `..data` symlink), a rename over the file and an
/// edit in place each change it.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Reloads the tokens, and the targets configuration, whenever its file's identity
/// changes, checked every `every` (nobody sends signals into a pod). A file that is
/// briefly missing during an update keeps what is in force and is reloaded once it is
/// back.
async fn reload_on_change(state: Arc<AppState>, every: Duration) {
    let mut tokens = WatchedFile::new(state.tokens_file.clone());
    let mut config = state
        .forge
        .as_ref()
        .map(|f| WatchedFile::new(f.config.current().source.clone()));
    let mut stop = state.shutdown.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        match config.as_mut().map(WatchedFile::poll) {
            Some(Change::Changed) => reload_config_and_log(&state, "file changed"),
            Some(Change::Missing) => tracing::warn!(
                "targets configuration file missing; the configuration in force stays"
            ),
            Some(Change::None) | None => {}
        }
        match tokens.poll() {
            Change::Changed => reload_and_log(&state, "file changed"),
            Change::Missing => {
                tracing::warn!("tokens file missing; the previous tokens stay in force")
            }
            Change::None => {}
        }
    }
}

/// A file checked for a change of its identity ([`file_identity`]).
struct WatchedFile {
    path: PathBuf,
    seen: Option<(u64, u64, u64, i64, i64)>,
}

/// What a check of a [`WatchedFile`] found.
enum Change {
    None,
    /// It changed and is there.
    Changed,
    /// It went away.
    Missing,
}

impl WatchedFile {
    fn new(path: PathBuf) -> WatchedFile {
        let seen = file_identity(&path);
        WatchedFile { path, seen }
    }

    fn poll(&mut self) -> Change {
        let now = file_identity(&self.path);
        if now == self.seen {
            return Change::None;
        }
        self.seen = now;
        if self.seen.is_some() {
            Change::Changed
        } else {
            Change::Missing
        }
    }
}
