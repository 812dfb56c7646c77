//! The host's domain, shared by every other crate and free of heavy dependencies:
//! repository paths and capability-scoped file access in untrusted trees, bounded YAML,
//! the backlog and its write-back, policies, the targets configuration, the plugin
//! registry's manifests, signatures, scan and routing, branch names, the clock and cron
//! schedules, percent-encoding, the API's bearer tokens file.

pub mod backlog;
pub mod branches;
pub mod clock;
pub mod config;
pub mod cron;
pub mod digest;
pub mod git_env;
pub mod in_force;
pub mod live_config;
pub mod paths;
pub mod percent;
pub mod policy;
pub mod registry;
pub mod repofs;
pub mod shards;
pub mod tokens;
pub mod writeback;
pub mod yaml;
