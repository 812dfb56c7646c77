//! The scheduler (issue #4): one pass over every configured target, each under its
//! policy's guardrails, delivering the first runnable task as a pull request.

pub mod attempt;
pub mod attempt_events;
pub mod discover;
pub mod passes;
pub mod pool;
pub mod pr_text;
pub mod resume;
pub mod select;
pub mod shard_claim;

use leviathan_domain::backlog::Backlog;
use leviathan_domain::config::{Config, Target};
use leviathan_events::projection::{PrState, PrView};
use leviathan_events::{EventDraft, EventLog, StoreError};
use leviathan_forge::git::{Clone, Remote};
use leviathan_forge::github::clients::GitHubClients;
use leviathan_forge::pull_requests::{self as forge, OpenPr, Settled, TargetForge};
use leviathan_sandbox::Sandbox;
use select::{Decision, TargetState, TargetStop};
use serde_json::json;
use std::path::PathBuf;

/// What a pass did for one target, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetReport {
    pub target: String,
    pub outcome: String,
}

/// Everything a pass needs.
pub struct Scheduler<'a> {
    pub config: &'a Config,
    pub log: &'a EventLog,
    pub sandbox: &'a Sandbox,
    pub registry_dir: PathBuf,
    /// The host's clones of the targets live in `<work_dir>/<target id>`.
    pub work_dir: PathBuf,
    /// A loaded plugin set to run attempts with (`serve`'s hot-reloaded one, taken at
    /// the start of the pass); `None` scans `registry_dir` per attempt.
    pub plugins: Option<std::sync::Arc<leviathan_sandbox::plugins::set::PluginSet>>,
    /// GitHub clients, kept across passes so each API's rate-limit budget is known.
    pub github: &'a GitHubClients,
    /// The targets this process serves (all of them unless the configuration has
    /// shards).
    pub shard: leviathan_domain::shards::Shard,
}

/// Where, in the work directory, the GitHub identities' recent content-creating
/// requests are kept between processes (`@` is in no target id, so no clone can
/// be named so).
pub const GITHUB_MEMORY_FILE: &str = "@github-identities.json";

fn target_draft(kind: &str, target: &str, payload: serde_json::Value) -> EventDraft {
    let mut d = EventDraft::new(kind);
    d.target = Some(target.into());
    d.payload = payload;
    d
}

impl Scheduler<'_> {
    /// One pass over the targets this shard owns, served by the configuration's
    /// pool of `workers`; the reports come in configuration order. A pass writes
    /// only what changed: its end is noted in the projection (liveness), not logged.
    pub fn tick(&self) -> Result<Vec<TargetReport>, StoreError> {
        // What a host killed outright left running in a clone is stopped now, not
        // when the pass reaches its target.
        leviathan_forge::git::stop_left_running_in(&self.work_dir);
        // The identities' recent requests outlive the process (a restart, the next
        // `tick`), so no hour of GitHub's secondary limits is spent twice.
        let memory = self.work_dir.join(GITHUB_MEMORY_FILE);
        self.github.remember_in(&memory);
        let discovered = discover::targets(self.config, self.github);
        let owned: Vec<&Target> = self
            .config
            .targets
            .iter()
            .chain(&discovered.targets)
            .filter(|t| self.shard.owns(&t.id))
            .collect();
        let reports = pool::serve_all(&owned, self.config.workers, |target| {
            let outcome = self.target(target)?;
            tracing::info!(target = %target.id, %outcome, "scheduler pass");
            Ok(TargetReport {
                target: target.id.clone(),
                outcome,
            })
        })?;
        self.github.end_pass();
        if let Err(e) = self.github.save() {
            tracing::warn!(file = %memory.display(), error = %e, "could not keep the GitHub identities' windows");
        }
        self.log.note_pass(
            leviathan_domain::clock::now_ms(),
            owned.iter().map(|t| t.id.as_str()),
        )?;
        if discovered.complete {
            self.prune_clones(&discovered.targets);
        }
        Ok(reports)
    }

    /// Removes the clones of targets neither configured nor discovered (all shards'
    /// targets are kept: shards may share a work directory).
    fn prune_clones(&self, discovered: &[Target]) {
        let keep: std::collections::HashSet<String> = self
            .config
            .targets
            .iter()
            .chain(discovered)
            .flat_map(|t| {
                [
                    t.id.clone(),
                    leviathan_domain::config::merge_clone_name(&t.id),
                ]
            })
            .collect();
        for dir in leviathan_forge::git::prune_clones(&self.work_dir, &keep) {
            tracing::info!(clone = %dir.display(), "removed the clone of a target no longer configured");
        }
    }

    /// Records a skip of the whole target, unless its latest pass was already a
    /// skip for the same reason (then only the report says it).
    fn skip(&self, target: &Target, reason: &str, message: String) -> Result<String, StoreError> {
        if self
            .log
            .with_projection(|p| p.target_skip_is_news(&target.id, reason))?
        {
            self.log.append(vec![target_draft(
                "target.skipped",
                &target.id,
                json!({"reason": reason, "message": message}),
            )])?;
        }
        Ok(format!("skipped: {reason} ({message})"))
    }

    /// Records a stop of the plan's as a skip of the target, with its detail.
    fn stop(
        &self,
        target: &Target,
        stop: TargetStop,
        branches: &[String],
    ) -> Result<String, StoreError> {
        let detail = match stop {
            TargetStop::MaxOpenPrs => format!(
                "{} open of at most {}",
                branches.len(),
                target.policy.max_open_prs
            ),
            _ => String::new(),
        };
        self.skip(target, stop.as_str(), detail)
    }

    fn target(&self, target: &Target) -> Result<String, StoreError> {
        let id = &target.id;
        let paused = self
            .log
            .with_projection(|p| p.paused || p.targets.get(id).is_some_and(|t| t.paused))?;
        if let Some(stop) = select::gate(&target.policy, paused) {
            return self.skip(target, stop.as_str(), String::new());
        }
        let forge = match TargetForge::connect(target, self.github) {
            Ok(f) => f,
            Err(message) => return self.skip(target, "forge_unavailable", message),
        };
        if let Some((left, wait)) = forge.low_budget() {
            return self.skip(
                target,
                "rate_limited",
                format!(
                    "{left} API requests left; the budget resets in {}s",
                    wait.as_secs()
                ),
            );
        }
        // What an attempt will ask of the target's GitHub identity, held for the
        // target's pass; a target refused sends nothing now and is served first
        // when budget frees up.
        let _held = match forge.reserve(target) {
            Ok(held) => held,
            Err(refused) => {
                let wait = refused
                    .wait
                    .map(|w| format!("; budget frees up in {}s", w.as_secs()))
                    .unwrap_or_default();
                return self.skip(
                    target,
                    "identity_budget",
                    format!(
                        "{}; place {} in the identity's queue{wait}",
                        refused.reason,
                        refused.place + 1
                    ),
                );
            }
        };
        // From the fetch to the decision the target's PRs hold still: a local merge
        // or close in progress finishes first (see `leviathan_forge::serial`).
        let serial = leviathan_forge::serial::lock(id);
        let url = forge.clone_url(self.config, target);
        let remote = Remote::configured(&url, forge.git_token(), self.config);
        let clone = match Clone::fetched(&remote, &self.work_dir.join(id)) {
            Ok(c) => match forge.author() {
                Some(bot) => c.authored_by(&bot.name, &bot.email),
                None => c,
            },
            Err(e) => return self.skip(target, "fetch_failed", e.to_string()),
        };
        // A discovered repository runs under its own policy, read after each fetch.
        let in_repo;
        let target = if target.policy_in_repo {
            if let Err(e) = clone.checkout_base(&target.base_branch) {
                return self.skip(target, "fetch_failed", e.to_string());
            }
            match discover::with_repo_policy(target, clone.dir()) {
                Ok(t) => {
                    in_repo = t;
                    self.github.note_discovered(&in_repo);
                    if let Some(stop) = select::gate(&in_repo.policy, paused) {
                        return self.skip(&in_repo, stop.as_str(), String::new());
                    }
                    &in_repo
                }
                Err((reason, message)) => return self.skip(target, reason, message),
            }
        } else {
            target
        };
        if let Err(message) = resume::resume(self.log, target, &forge, &clone)? {
            return self.skip(target, "forge_failed", message);
        }
        let open = match forge.open_prs(target, &clone) {
            Ok(open) => open,
            Err(message) => return self.skip(target, "forge_failed", message),
        };
        let still_open = self.settle(target, &forge, &open)?;
        self.adopt(target, &open)?;
        let mut branches: Vec<String> = open.into_iter().map(|o| o.branch).collect();
        branches.extend(still_open);
        branches.sort();
        branches.dedup();
        // At `max_open_prs` the plan stops before reading the backlog, so the
        // worktree is not checked out for it: a target waiting on its PRs costs a
        // fetch and a look at the branches.
        if select::at_max_open_prs(&target.policy, &branches) {
            self.cool_down(target)?;
            return self.stop(target, TargetStop::MaxOpenPrs, &branches);
        }
        if !target.policy_in_repo
            && let Err(e) = clone.checkout_base(&target.base_branch)
        {
            return self.skip(target, "fetch_failed", e.to_string());
        }
        let backlog = match Backlog::load_from_repo(clone.dir()) {
            Ok(b) => b,
            Err(e) => return self.skip(target, "backlog_invalid", e.to_string()),
        };
        self.cool_down(target)?;
        let view = self.log.with_projection(|p| p.targets.get(id).cloned())?;
        let plan = select::plan(
            &backlog,
            &target.policy,
            &TargetState {
                view: view.as_ref(),
                open_branches: &branches,
            },
        );
        let mut drafts = Vec::new();
        let news: Vec<bool> = self.log.with_projection(|p| {
            plan.skips
                .iter()
                .map(|(task, reason, _)| p.task_skip_is_news(id, task, reason.as_str()))
                .collect()
        })?;
        for ((task, reason, detail), _) in plan.skips.iter().zip(news).filter(|(_, new)| *new) {
            let mut d = target_draft(
                "task.skipped",
                id,
                json!({"reason": reason.as_str(), "detail": detail}),
            );
            d.task = Some(task.clone());
            drafts.push(d);
        }
        for task in &plan.newly_blocked {
            let mut d = target_draft(
                "task.blocked",
                id,
                json!({"max_attempts_per_task": target.policy.max_attempts_per_task}),
            );
            d.task = Some(task.clone());
            drafts.push(d);
        }
        self.log.append(drafts)?;
        let task_id = match plan.decision {
            Decision::Stop(stop) => return self.stop(target, stop, &branches),
            Decision::Nothing => return Ok("nothing to run".into()),
            Decision::Run(task) => task,
        };
        let Some(task) = backlog.task(&task_id) else {
            return Ok("nothing to run".into());
        };
        // The attempt's own branch is new; changes to the other PRs may go on.
        drop(serial);
        let outcome = attempt::run(
            &attempt::AttemptContext {
                target,
                clone: &clone,
                log: self.log,
                sandbox: self.sandbox,
                registry_dir: &self.registry_dir,
                // The shared set only serves targets under the rules it was loaded
                // with; any other target's attempts scan the registry under its own.
                plugins: self
                    .plugins
                    .as_deref()
                    .filter(|set| set.rules == target.policy.plugins),
                forge: &forge,
            },
            task,
        )?;
        if let attempt::Outcome::Failed { .. } = outcome {
            self.maybe_open_breaker(target)?;
        }
        Ok(match outcome {
            attempt::Outcome::Opened { pr, branch } => {
                format!("{task_id}: PR {pr} opened from {branch}")
            }
            attempt::Outcome::NoChange => {
                format!("{task_id}: already done, completed without a PR")
            }
            attempt::Outcome::Failed { kind, message } => {
                format!("{task_id}: attempt failed ({kind}): {message}")
            }
        })
    }

    /// Records the PRs the forge's answer settles: a PR the log holds as open that
    /// GitHub no longer lists as the host's was merged or closed there (or lost its
    /// label: then it is still open and still counts). Returns the branches of such
    /// still-open PRs. The local forge's PRs change only through `prs merge|close`.
    fn settle(
        &self,
        target: &Target,
        forge: &TargetForge,
        open: &[OpenPr],
    ) -> Result<Vec<String>, StoreError> {
        if matches!(forge, TargetForge::Local) {
            return Ok(Vec::new());
        }
        let logged = forge::logged_prs(self.log, &target.id)?;
        let mut still_open = Vec::new();
        let mut drafts = Vec::new();
        for (task, PrView { pr, branch, .. }) in
            logged.into_iter().filter(|(_, x)| x.state == PrState::Open)
        {
            if open
                .iter()
                .any(|o| o.number.as_deref() == Some(pr.as_str()))
            {
                continue;
            }
            let kind = match forge.settle(&pr) {
                Ok(Settled::Merged) => "pr.merged",
                Ok(Settled::Closed) => "pr.closed",
                Ok(Settled::StillOpen) => {
                    still_open.extend(branch);
                    continue;
                }
                Err(message) => {
                    // Unknown is treated as open: never a second PR for the task.
                    tracing::warn!(target_id = %target.id, %pr, %message, "could not settle a PR");
                    still_open.extend(branch);
                    continue;
                }
            };
            let mut d = target_draft(kind, &target.id, json!({"pr": pr, "branch": branch}));
            d.task = Some(task);
            drafts.push(d);
        }
        self.log.append(drafts)?;
        Ok(still_open)
    }

    /// Records a PR for every open PR of the host's that has none in the log: a
    /// branch the original Leviathan left open, an attempt interrupted between its
    /// push and its PR record, or a GitHub PR opened by another host. Such a PR already
    /// keeps its task `inflight`; with a record it can also be listed, merged or closed.
    fn adopt(&self, target: &Target, open: &[OpenPr]) -> Result<(), StoreError> {
        let logged = forge::logged_prs(self.log, &target.id)?;
        let mut next = forge::pr_count(self.log, &target.id)? + 1;
        let known: Vec<String> = logged
            .into_iter()
            .filter(|(_, x)| x.state == PrState::Open)
            .filter_map(|(_, x)| x.branch)
            .collect();
        let mut drafts = Vec::new();
        for pr in open.iter().filter(|o| !known.contains(&o.branch)) {
            let Some(task) = leviathan_domain::branches::branch_task(&pr.branch) else {
                continue;
            };
            let number = pr.number.clone().unwrap_or_else(|| {
                next += 1;
                (next - 1).to_string()
            });
            let mut d = target_draft(
                "pr.opened",
                &target.id,
                json!({"pr": number, "branch": pr.branch, "url": pr.url, "adopted": true,
                       "title": format!("leviathan: {task} (adopted branch)")}),
            );
            d.task = Some(task.to_string());
            // The branch's 8 hex digits are its attempt id.
            d.attempt = leviathan_domain::branches::branch_attempt(&pr.branch).map(String::from);
            drafts.push(d);
        }
        if !drafts.is_empty() {
            tracing::info!(target_id = %target.id, count = drafts.len(), "adopted open PRs without a record");
            self.log.append(drafts)?;
        }
        Ok(())
    }

    /// Closes an open breaker whose cool-down (`circuit_breaker_cooldown_seconds`) has
    /// passed; without a cool-down only an operator reset closes it.
    fn cool_down(&self, target: &Target) -> Result<(), StoreError> {
        let Some(cooldown) = target.policy.circuit_breaker_cooldown else {
            return Ok(());
        };
        let opened = self.log.with_projection(|p| {
            p.targets
                .get(&target.id)
                .filter(|t| t.circuit_breaker.open)
                .and_then(|t| t.circuit_breaker.opened_ms)
        })?;
        let now = leviathan_domain::clock::now_ms();
        if let Some(opened) = opened
            && now.saturating_sub(opened) >= cooldown.as_millis() as u64
        {
            self.log.append(vec![target_draft(
                "circuit_breaker.closed",
                &target.id,
                json!({"reason": "cooldown", "cooldown_seconds": cooldown.as_secs()}),
            )])?;
        }
        Ok(())
    }

    /// Opens the target's circuit breaker once its consecutive failures reach the
    /// policy's `circuit_breaker_failures`.
    fn maybe_open_breaker(&self, target: &Target) -> Result<(), StoreError> {
        let (failures, open) = self.log.with_projection(|p| {
            p.targets
                .get(&target.id)
                .map(|t| (t.consecutive_failures, t.circuit_breaker.open))
                .unwrap_or((0, false))
        })?;
        if !open && u64::from(failures) >= target.policy.circuit_breaker_failures {
            self.log.append(vec![target_draft(
                "circuit_breaker.opened",
                &target.id,
                json!({"failures": failures}),
            )])?;
        }
        Ok(())
    }
}
