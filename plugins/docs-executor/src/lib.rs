//! The docs executor: writes a Markdown document from a task's title, description and
//! acceptance criteria.

mod render;

pub use render::{DocKind, output_path, render};

use leviathan_executor_sdk::{ExecError, Executor, PluginInfo, Report, Task, Workspace};

/// The docs executor plugin.
pub struct DocsExecutor;

/// Task scopes this executor handles.
pub const SCOPES: &[&str] = &["docs"];

impl Executor for DocsExecutor {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
            summary: "Writes a Markdown document from a task spec".into(),
        }
    }

    fn execute(task: &Task, workspace: &Workspace) -> Result<Report, ExecError> {
        if !SCOPES.contains(&task.scope.as_str()) {
            return Err(ExecError::InvalidTask(format!(
                "docs-executor handles scope `docs`, not `{}`",
                task.scope
            )));
        }
        let path = output_path(task)?;
        let content = render(task, &path);
        let written = workspace.write_if_changed(&path, content.as_bytes())?;
        let (files, summary) = if written {
            (vec![path.clone()], ["wrote ", &path].concat())
        } else {
            (Vec::new(), [&path, " already up to date"].concat())
        };
        leviathan_executor_sdk::log::info(&summary);
        Ok(Report { files, summary })
    }
}

#[cfg(target_arch = "wasm32")]
leviathan_executor_sdk::export_executor!(DocsExecutor);

/// Inside the sandbox the executor allocates from a run-long arena: its allocations
/// follow the task's size, and the instance lives for one task.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: leviathan_executor_sdk::arena::Arena =
    leviathan_executor_sdk::arena::Arena::new();
