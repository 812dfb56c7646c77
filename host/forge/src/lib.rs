//! The forges: the host's git clone of a target, the GitHub API client under the
//! host's own rate-limit policy, and pull requests on either forge (the local forge
//! keeps them as records in the event log). The only crate that depends on octocrab.

pub mod git;
pub mod github;
pub mod pull_requests;
