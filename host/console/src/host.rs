//! What the console asks of the server that mounts it. The console sits below the
//! server: it names none of the server's types, and the server answers through
//! [`ConsoleHost`], so a change in the API recompiles none of the console's views.

use crate::ConsoleState;
use http::StatusCode;
use leviathan_domain::backlog::Backlog;
use leviathan_domain::policy::Policy;
use leviathan_domain::tokens::{Principal, Tokens};
use leviathan_events::EventLog;
use leviathan_events::projection::TargetView;
use leviathan_forge::ForgeContext;
use leviathan_sandbox::plugins::PluginSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The server behind the console, as the console's handlers hold it.
pub type Host = Arc<dyn ConsoleHost>;

/// A boxed, sendable future (what [`ConsoleHost::act`] returns).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the console needs from the server: the log, the targets, the plugin set,
/// the tokens, the scheduler's decision rule, and the actions it performs.
pub trait ConsoleHost: Send + Sync + 'static {
    /// The console's sessions and failed-login limit.
    fn console(&self) -> &ConsoleState;
    /// The event log.
    fn log(&self) -> &EventLog;
    /// The targets and their clones, when `serve` runs with a configuration.
    fn forge(&self) -> Option<&ForgeContext>;
    /// Whether any configured target has `autonomy_enabled` (true without a config).
    fn autonomy_enabled(&self) -> bool;
    /// How the scheduler would decide for a target now, once its passes run.
    fn explain(&self) -> Option<&ExplainWaits>;
    /// The plugin set in force (`None` while it is still loading).
    fn plugins(&self) -> Option<Arc<PluginSet>>;
    /// The plugin set in force as the API's `GET /v1/plugins` reports it.
    fn plugin_summary(&self, set: &PluginSet) -> serde_json::Value;
    /// The API tokens in force.
    fn tokens(&self) -> Arc<Tokens>;
    /// What each GitHub identity the scheduler used has left (empty without passes).
    fn github_usage(&self) -> Vec<leviathan_forge::github::clients::Usage> {
        Vec::new()
    }
    /// The targets discovered in GitHub App installations, under their
    /// repositories' policies as the passes last read them (empty without passes).
    fn discovered_targets(&self) -> Vec<leviathan_domain::config::Target> {
        Vec::new()
    }
    /// Performs a confirmed console action as `caller`, recording it like the API does.
    fn act(
        self: Arc<Self>,
        caller: Principal,
        action: ActionRequest,
    ) -> BoxFuture<Result<(), Refusal>>;
}

/// A console action the server performs, with the operator's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRequest {
    /// Pause (`paused: true`) or resume a target, or the whole host without one.
    Pause {
        target: Option<String>,
        paused: bool,
        reason: String,
    },
    /// Close a target's open circuit breaker.
    ResetBreaker { target: String, reason: String },
    /// Merge (`merge: true`) or close a local-forge pull request.
    Settle {
        target: String,
        pr: String,
        merge: bool,
        reason: String,
    },
}

/// Why the server refused an action: the status and a message fit to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

/// Where each task of a backlog stands if a pass ran now, as the scheduler decides
/// it: `(backlog, policy, the target in the log, its open agent branches, paused)`.
pub type ExplainWaits =
    Arc<dyn Fn(&Backlog, &Policy, Option<&TargetView>, &[String], bool) -> Waits + Send + Sync>;

/// The scheduler's view of a target's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waits {
    /// The reason (and detail) that holds the whole target back, if one does.
    pub stop: Option<(String, String)>,
    /// Every task in backlog order.
    pub tasks: Vec<TaskWait>,
}

/// Where one task stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskWait {
    pub task: String,
    /// The skip reason (`deps`, `inflight`, …), when the pass would pass it over.
    pub skipped: Option<String>,
    pub detail: String,
    /// The earlier task that would run first, when this one could run too.
    pub behind: Option<String>,
}

/// The client's address, which the server's listener puts in each request's
/// extensions (the login limit counts failures per address).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);
