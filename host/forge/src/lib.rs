//! The forges: the host's git clone of a target, the GitHub API client under the
//! host's own rate-limit policy, and pull requests on either forge (the local forge
//! keeps them as records in the event log). The only crate that depends on octocrab.

pub mod git;
pub mod github;
pub mod pull_requests;
pub mod serial;

/// The targets and where the host keeps their clones: what the local forge's
/// endpoints and the console's diffs read.
pub struct ForgeContext {
    /// The configuration in force (reloaded on SIGHUP or when its file changes).
    pub config: std::sync::Arc<leviathan_domain::live_config::LiveConfig>,
    pub work_dir: std::path::PathBuf,
}
