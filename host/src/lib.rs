//! leviathan-host: runs backlog tasks in sandboxed WebAssembly executors under policy.

pub mod backlog;
pub mod branches;
pub mod changeset;
pub mod clock;
pub mod config;
pub mod cron;
pub mod digest;
pub mod events;
pub mod exec;
pub mod git;
pub mod github;
pub mod paths;
pub mod policy;
pub mod registry;
pub mod repofs;
pub mod sandbox;
pub mod scheduler;
pub mod server;
pub mod stage;
pub mod writeback;
pub mod yaml;
