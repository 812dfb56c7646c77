//! A second, working executor for the `docs` scope, so tests can put two plugins that
//! both load on one scope (the policy must then name the one to use). It writes
//! nothing and says so. It only exists as a wasm32 component.
#![cfg(target_arch = "wasm32")]

use leviathan_executor_sdk::{ExecError, Executor, PluginInfo, Report, Task, Workspace};

/// The twin executor.
pub struct DocsTwin;

impl Executor for DocsTwin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "docs-twin".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            scopes: vec!["docs".into()],
            summary: "A second docs executor (tests only)".into(),
        }
    }

    fn execute(task: &Task, _workspace: &Workspace) -> Result<Report, ExecError> {
        Ok(Report {
            files: Vec::new(),
            summary: format!("docs-twin saw task {}", task.id),
        })
    }
}

leviathan_executor_sdk::export_executor!(DocsTwin);
