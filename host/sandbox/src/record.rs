//! What an attempt records so that it can be run again and its bytes compared
//! (`leviathan-host replay`): the commit the executor saw, the exact component, and
//! the effective rules it ran under.

use leviathan_domain::paths::RepoPath;
use leviathan_domain::policy::{ExecutorLimits, Policy, StagingLimits};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The inputs of one run besides the repository's files and the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The repository's HEAD when the executor ran (`None`: no commit yet); it seeds
    /// the guest's randomness too.
    pub base_commit: Option<String>,
    /// `name@version` of the executor.
    pub executor: String,
    /// SHA-256 of the component that ran (hex).
    pub component_sha256: String,
    /// The task's allowed paths as the host enforced them.
    pub allowed_paths: Vec<String>,
    /// What the run could read besides them (the plugin's `reads` as the policy
    /// narrowed it).
    #[serde(default)]
    pub read_paths: Vec<String>,
    pub fuel: u64,
    pub memory_bytes: u64,
    pub max_files_written: u64,
    pub max_bytes_written: u64,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
    pub timeout_ms: u64,
}

/// Why a record cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("recorded allowed path `{path}` is not a valid path: {message}")]
    Path { path: String, message: String },
}

impl RunRecord {
    /// The record of a run under `limits` (already the effective ones).
    pub fn new(
        base_commit: Option<String>,
        executor: String,
        component_sha256: String,
        allowed: &[RepoPath],
        reads: &[RepoPath],
        limits: &ExecutorLimits,
        policy: &Policy,
    ) -> RunRecord {
        // As written in a backlog: a directory keeps its trailing `/`.
        let written =
            |paths: &[RepoPath]| -> Vec<String> { paths.iter().map(ToString::to_string).collect() };
        RunRecord {
            base_commit,
            executor,
            component_sha256,
            allowed_paths: written(allowed),
            read_paths: written(reads),
            fuel: limits.fuel,
            memory_bytes: limits.memory_bytes,
            max_files_written: limits.max_files_written,
            max_bytes_written: limits.max_bytes_written,
            max_file_bytes: policy.staging.max_file_bytes,
            max_total_bytes: policy.staging.max_total_bytes,
            timeout_ms: policy.attempt_timeout.as_millis() as u64,
        }
    }

    /// A policy under which the task runs exactly as recorded: its allowed paths
    /// are the recorded ones, its limits the recorded effective ones.
    pub fn policy(&self) -> Result<Policy, RecordError> {
        let parsed = |paths: &[String]| -> Result<Vec<RepoPath>, RecordError> {
            paths
                .iter()
                .map(|p| {
                    RepoPath::parse_allowed(p).map_err(|e| RecordError::Path {
                        path: p.clone(),
                        message: e.to_string(),
                    })
                })
                .collect()
        };
        let mut policy = Policy::default_policy();
        policy.allowed_path_prefixes = parsed(&self.allowed_paths)?;
        // The plugin's `reads` narrowed to what the run could read.
        policy.plugins.read_paths = Some(parsed(&self.read_paths)?);
        policy.limits = ExecutorLimits {
            fuel: self.fuel,
            memory_bytes: self.memory_bytes,
            max_files_written: self.max_files_written,
            max_bytes_written: self.max_bytes_written,
        };
        policy.staging = StagingLimits {
            max_file_bytes: self.max_file_bytes,
            max_total_bytes: self.max_total_bytes,
        };
        policy.attempt_timeout = Duration::from_millis(self.timeout_ms);
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_back_the_rules_it_was_made_under() {
        let mut policy = Policy::default_policy();
        policy.attempt_timeout = Duration::from_millis(12_345);
        policy.staging.max_file_bytes = 777;
        let allowed = vec![
            RepoPath::parse_allowed("docs/").unwrap(),
            RepoPath::parse_allowed("README.md").unwrap(),
        ];
        let limits = ExecutorLimits {
            fuel: 11,
            memory_bytes: 22,
            max_files_written: 33,
            max_bytes_written: 44,
        };
        let record = RunRecord::new(
            Some("ab".repeat(20)),
            "x@1.0.0".into(),
            "cd".repeat(32),
            &allowed,
            &[RepoPath::parse_allowed("src/lib/").unwrap()],
            &limits,
            &policy,
        );
        let json = serde_json::to_value(&record).unwrap();
        let back: RunRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
        let replayed = back.policy().unwrap();
        assert_eq!(replayed.allowed_path_prefixes, allowed);
        assert_eq!(
            replayed.plugins.read_paths,
            Some(vec![RepoPath::parse_allowed("src/lib/").unwrap()])
        );
        assert_eq!(replayed.limits, limits);
        assert_eq!(replayed.staging.max_file_bytes, 777);
        assert_eq!(replayed.attempt_timeout, Duration::from_millis(12_345));
    }

    #[test]
    fn a_recorded_path_that_escapes_is_refused() {
        let mut record = RunRecord::new(
            None,
            "x@1".into(),
            String::new(),
            &[],
            &[],
            &Policy::default_policy().limits,
            &Policy::default_policy(),
        );
        record.allowed_paths = vec!["../etc/".into()];
        assert!(matches!(record.policy(), Err(RecordError::Path { .. })));
    }
}
