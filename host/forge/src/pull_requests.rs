//! Opening the pull request of an attempt. The local forge (the embedded default)
//! keeps PRs as records in the event log next to the pushed branch; `prs merge` and
//! `prs close` act on them. The GitHub forge opens real PRs through the API client in
//! [`crate::github`].

use crate::git::Clone;
use crate::github::clients::GitHubClients;
use crate::github::{GitHub, GitHubError, RepoRef, urls};
use leviathan_domain::branches::BRANCH_PREFIX;
use leviathan_domain::config::{Config, Forge, Target};
use leviathan_events::EventLog;
use leviathan_events::projection::{PrState, PrView};
use std::path::Path;
use std::sync::Arc;

/// A pull request as opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The forge's id: a number.
    pub id: String,
    pub url: Option<String>,
    pub title: String,
    pub body: String,
    /// GitHub already had this PR open for the branch (an attempt resumed after a
    /// restart).
    pub existed: bool,
    /// What became of auto-merge, for a target with `auto_merge: true`.
    pub auto_merge: Option<String>,
}

/// The URL git uses for a target's repository: a path relative to the configuration
/// file is made absolute.
pub fn remote_url(config: &Config, target: &Target) -> String {
    let repo = &target.repository;
    if repo.contains("://") || Path::new(repo).is_absolute() {
        return repo.clone();
    }
    let base = config.source.parent().unwrap_or(Path::new(""));
    let joined = base.join(repo);
    // git runs in other directories: the path must not depend on ours.
    std::path::absolute(&joined)
        .unwrap_or(joined)
        .to_string_lossy()
        .into_owned()
}

/// The PR records of the target the projection keeps (every open one and the
/// newest others of each task), with their tasks.
pub fn logged_prs(
    log: &EventLog,
    target: &str,
) -> Result<Vec<(String, PrView)>, leviathan_events::StoreError> {
    log.with_projection(|p| {
        p.targets
            .get(target)
            .map(|t| {
                t.tasks
                    .iter()
                    .flat_map(|(task, k)| k.prs.iter().map(move |x| (task.clone(), x.clone())))
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// How many PR records the target's log holds, over its whole history.
pub fn pr_count(log: &EventLog, target: &str) -> Result<u64, leviathan_events::StoreError> {
    log.with_projection(|p| {
        p.targets
            .get(target)
            .map(|t| t.tasks.values().map(|k| k.prs_total).sum())
            .unwrap_or(0)
    })
}

/// The number of the target's next local PR: they count up per target, from the log.
fn next_local_number(log: &EventLog, target: &str) -> Result<u64, leviathan_events::StoreError> {
    Ok(pr_count(log, target)? + 1)
}

/// A target's forge, connected for one pass.
pub enum TargetForge {
    /// PRs are records in the event log beside the pushed branch.
    Local,
    /// PRs on GitHub (or GitHub Enterprise).
    GitHub {
        client: Arc<GitHub>,
        repo: RepoRef,
        api_url: String,
        token: String,
        /// The App's bot user, who authors the commits when acting as an App.
        author: Option<crate::github::app::BotIdentity>,
    },
}

/// Why a PR could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    pub message: String,
    /// The forge may well answer later (rate limit, 5xx, no connection): worth
    /// trying again rather than giving the attempt up.
    pub transient: bool,
}

impl OpenError {
    fn from_github(e: &GitHubError, prefix: String) -> OpenError {
        let transient = match e {
            GitHubError::RateLimited { .. } | GitHubError::Transport { .. } => true,
            GitHubError::Status { status, .. } => *status >= 500,
            GitHubError::Decode { .. } | GitHubError::Setup { .. } => false,
        };
        OpenError {
            message: format!("{prefix}{e}"),
            transient,
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An open PR of the host's as the forge reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPr {
    pub branch: String,
    /// The forge's number, when the forge has one (GitHub).
    pub number: Option<String>,
    pub url: Option<String>,
}

/// What became of a PR the log holds as open but the forge no longer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    StillOpen,
    Merged,
    Closed,
}

impl TargetForge {
    /// Connects to the target's forge: for GitHub, reads the token and takes the
    /// shared client for its API URL.
    pub fn connect(target: &Target, clients: &GitHubClients) -> Result<TargetForge, String> {
        match &target.forge {
            Forge::Local => Ok(TargetForge::Local),
            Forge::GitHub { api_url, token } => {
                let repo = RepoRef::parse(&target.repository).ok_or_else(|| {
                    format!("repository `{}` is not owner/name", target.repository)
                })?;
                let credentials = clients
                    .credentials(api_url, token)
                    .map_err(|e| e.to_string())?;
                let client = clients
                    .client_for(Some(&target.id), token, api_url, &credentials.token)
                    .map_err(|e| e.to_string())?;
                let token = credentials.token;
                let author = credentials.author;
                Ok(TargetForge::GitHub {
                    client,
                    repo,
                    api_url: api_url.clone(),
                    token,
                    author,
                })
            }
        }
    }

    /// The URL git clones and pushes: the configured repository for the local forge,
    /// the HTTPS URL derived from the API URL for GitHub.
    pub fn clone_url(&self, config: &Config, target: &Target) -> String {
        match self {
            TargetForge::Local => remote_url(config, target),
            TargetForge::GitHub { api_url, repo, .. } => urls::clone_url(api_url, repo),
        }
    }

    /// The token git sends (out of band) when pushing.
    pub fn git_token(&self) -> Option<&str> {
        match self {
            TargetForge::Local => None,
            TargetForge::GitHub { token, .. } => Some(token),
        }
    }

    /// Who the commits are by, when not the host itself (an App's bot user).
    pub fn author(&self) -> Option<&crate::github::app::BotIdentity> {
        match self {
            TargetForge::Local => None,
            TargetForge::GitHub { author, .. } => author.as_ref(),
        }
    }

    /// How long until the forge's request budget resets, when it is too low to
    /// start a target's pass.
    pub fn low_budget(&self) -> Option<(u64, std::time::Duration)> {
        match self {
            TargetForge::Local => None,
            TargetForge::GitHub { client, .. } => client.low_budget(),
        }
    }

    /// Reserves what one pass of `target` may need from its GitHub identity: for an
    /// attempt, opening the PR, labelling it and turning on auto-merge
    /// (content-creating), and the reads around it (listing, settling, a lookup).
    /// `Ok(None)` for the local forge, which has no budget.
    pub fn reserve(
        &self,
        target: &Target,
    ) -> Result<Option<crate::github::identity::Reservation>, crate::github::identity::Refused>
    {
        match self {
            TargetForge::Local => Ok(None),
            TargetForge::GitHub { client, .. } => {
                let content =
                    1 + u32::from(!target.labels.is_empty()) + u32::from(target.auto_merge);
                let need = crate::github::identity::Need {
                    content,
                    total: content + 3,
                };
                client.reserve(&target.id, need).map(Some)
            }
        }
    }

    /// The host's open PRs: for the local forge every `agent/` branch on the remote;
    /// for GitHub every open PR into the base whose head is an `agent/` branch and
    /// that carries one of the target's labels (any, when it has none).
    pub fn open_prs(&self, target: &Target, clone: &Clone) -> Result<Vec<OpenPr>, String> {
        match self {
            TargetForge::Local => Ok(clone
                .remote_branches(BRANCH_PREFIX)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|branch| OpenPr {
                    branch,
                    number: None,
                    url: None,
                })
                .collect()),
            TargetForge::GitHub { client, repo, .. } => Ok(client
                .open_pulls(repo, &target.base_branch)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|p| p.head_ref.starts_with(BRANCH_PREFIX))
                .filter(|p| {
                    target.labels.is_empty() || p.labels.iter().any(|l| target.labels.contains(l))
                })
                .map(|p| OpenPr {
                    branch: p.head_ref,
                    number: Some(p.number.to_string()),
                    url: p.url,
                })
                .collect()),
        }
    }

    /// Where a PR the forge no longer lists as the host's went (GitHub only; a local
    /// PR changes only through `prs merge|close`).
    pub fn settle(&self, number: &str) -> Result<Settled, String> {
        match self {
            TargetForge::Local => Ok(Settled::StillOpen),
            TargetForge::GitHub { client, repo, .. } => {
                let n: u64 = number
                    .parse()
                    .map_err(|_| format!("PR `{number}` is not a GitHub number"))?;
                let pull = client.pull(repo, n).map_err(|e| e.to_string())?;
                Ok(if pull.merged {
                    Settled::Merged
                } else if pull.state == "open" {
                    Settled::StillOpen
                } else {
                    Settled::Closed
                })
            }
        }
    }

    /// Opens the PR of a pushed branch. On GitHub: create it (an existing open PR for
    /// the branch counts, and gets a comment saying the attempt was resumed), add the
    /// target's labels, and turn on auto-merge only when the target opts in.
    pub fn open(
        &self,
        target: &Target,
        log: &EventLog,
        branch: &str,
        title: &str,
        body: &str,
        attempt: &str,
    ) -> Result<PullRequest, OpenError> {
        match self {
            TargetForge::Local => {
                let number = next_local_number(log, &target.id).map_err(|e| OpenError {
                    message: e.to_string(),
                    transient: false,
                })?;
                Ok(PullRequest {
                    id: number.to_string(),
                    url: None,
                    title: title.into(),
                    body: body.into(),
                    existed: false,
                    auto_merge: None,
                })
            }
            TargetForge::GitHub { client, repo, .. } => {
                let opened = client
                    .create_pull(repo, branch, &target.base_branch, title, body)
                    .map_err(|e| OpenError::from_github(&e, String::new()))?;
                let number = opened.pull.number;
                client
                    .add_labels(repo, number, &target.labels)
                    .map_err(|e| {
                        OpenError::from_github(
                            &e,
                            format!("PR #{number} opened, but labelling failed: "),
                        )
                    })?;
                if opened.existed {
                    let note = format!(
                        "Leviathan found this pull request already open for `{branch}` and resumed attempt {attempt} with it."
                    );
                    if let Err(e) = client.comment(repo, number, &note) {
                        tracing::warn!(error = %e, number, "could not comment on a resumed PR");
                    }
                }
                let auto_merge = match (&opened.pull.node_id, target.auto_merge) {
                    (_, false) => None,
                    (None, true) => Some("not enabled: GitHub gave no node id".to_string()),
                    (Some(node), true) => Some(match client.enable_auto_merge(node) {
                        Ok(()) => "enabled".to_string(),
                        // The PR stands either way; a human merges it.
                        Err(e) => format!("not enabled: {e}"),
                    }),
                };
                Ok(PullRequest {
                    id: number.to_string(),
                    url: opened.pull.url,
                    title: title.into(),
                    body: body.into(),
                    existed: opened.existed,
                    auto_merge,
                })
            }
        }
    }
}

/// Why a local PR could not be merged or closed.
#[derive(Debug, thiserror::Error)]
pub enum LocalPrError {
    #[error("no target `{0}` in the configuration")]
    NoTarget(String),
    #[error("no open PR {pr} of target `{target}` in the event log")]
    NoPr { target: String, pr: String },
    #[error(
        "PR {pr} of target `{target}` is not on one of the host's agent branches; refusing to touch it"
    )]
    NotAgentBranch { target: String, pr: String },
    #[error(
        "target `{0}` uses the GitHub forge: its PRs are merged or closed on GitHub, and the next pass records it"
    )]
    NotLocal(String),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Store(#[from] leviathan_events::StoreError),
}

/// What a merge or close did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPrOutcome {
    pub task: String,
    pub branch: String,
    /// The merge commit, for a merge.
    pub commit: Option<String>,
}

/// Merges (`merge`) or closes PR `pr` of a local-forge target: the branch is merged
/// into the base with a merge commit and the base pushed, or just deleted; then
/// `pr.merged` / `pr.closed`, recorded as the host's on behalf of `by`. Only a PR the
/// host opened from its own agent branch of the task is touched. Works in
/// `<work_dir>/<target>-forge`, a clone of its own, so it never disturbs a scheduler
/// pass working in `<work_dir>/<target>`. An operator's `reason` goes into the event.
#[allow(clippy::too_many_arguments)]
pub fn merge_or_close_local(
    config: &leviathan_domain::config::Config,
    log: &EventLog,
    work_dir: &std::path::Path,
    target_id: &str,
    pr: &str,
    merge: bool,
    by: leviathan_events::Provenance,
    reason: Option<&str>,
) -> Result<LocalPrOutcome, LocalPrError> {
    let target = config
        .targets
        .iter()
        .find(|t| t.id == target_id)
        .ok_or_else(|| LocalPrError::NoTarget(target_id.into()))?;
    if target.forge != Forge::Local {
        return Err(LocalPrError::NotLocal(target_id.into()));
    }
    // A pass on the target sees this PR before or after, never half settled.
    let _serial = crate::serial::lock(target_id);
    let found = logged_prs(log, target_id)?
        .into_iter()
        .find(|(_, x)| x.pr == pr && x.state == PrState::Open)
        .map(|(task, x)| (task, x.branch.unwrap_or_default()));
    let (task, branch) = found.ok_or_else(|| LocalPrError::NoPr {
        target: target_id.into(),
        pr: pr.into(),
    })?;
    if !leviathan_domain::branches::is_branch_of(&branch, &task) {
        return Err(LocalPrError::NotAgentBranch {
            target: target_id.into(),
            pr: pr.into(),
        });
    }
    let url = remote_url(config, target);
    let remote = crate::git::Remote::configured(&url, None, config);
    let clone = crate::git::Clone::prepare(
        &remote,
        &work_dir.join(leviathan_domain::config::merge_clone_name(target_id)),
        &target.base_branch,
    )?;
    let commit = if merge {
        Some(clone.merge_to_base(
            &branch,
            &target.base_branch,
            &format!("Merge PR {pr}: {branch}"),
        )?)
    } else {
        None
    };
    clone.delete_remote(&branch)?;
    let mut d = leviathan_events::EventDraft::new(if merge { "pr.merged" } else { "pr.closed" });
    d.target = Some(target_id.into());
    d.task = Some(task.clone());
    d.payload = serde_json::json!({"pr": pr, "branch": branch, "commit": commit});
    if let Some(reason) = reason {
        d.payload["reason"] = serde_json::json!(reason);
    }
    log.append_as(by, vec![d])?;
    Ok(LocalPrOutcome {
        task,
        branch,
        commit,
    })
}
