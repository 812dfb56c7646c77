//! The tests executor: writes a pytest module with one pending test stub per
//! acceptance criterion.

mod render;

pub use render::{output_path, python_string, render, test_names};

use leviathan_executor_sdk::{ExecError, Executor, PluginInfo, Report, Task, Workspace};

/// The tests executor plugin.
pub struct TestsExecutor;

/// Task scopes this executor handles.
pub const SCOPES: &[&str] = &["tests", "test"];

impl Executor for TestsExecutor {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
            summary: "Writes pending pytest stubs from acceptance criteria".into(),
        }
    }

    fn execute(task: &Task, workspace: &Workspace) -> Result<Report, ExecError> {
        if !SCOPES.contains(&task.scope.as_str()) {
            return Err(ExecError::InvalidTask(format!(
                "tests-executor handles scopes `tests` and `test`, not `{}`",
                task.scope
            )));
        }
        let path = output_path(task)?;
        let content = render(task);
        let written = workspace.write_if_changed(&path, content.as_bytes())?;
        let (files, summary) = if written {
            (vec![path.clone()], format!("wrote {path}"))
        } else {
            (Vec::new(), format!("{path} already up to date"))
        };
        leviathan_executor_sdk::log::info(&summary);
        Ok(Report { files, summary })
    }
}

#[cfg(target_arch = "wasm32")]
leviathan_executor_sdk::export_executor!(TestsExecutor);
