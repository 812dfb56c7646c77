//! The scheduler (issue #4): one pass over every configured target, each under its
//! policy's guardrails, delivering the first runnable task as a pull request.

pub mod select;
