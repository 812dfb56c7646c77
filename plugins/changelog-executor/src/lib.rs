//! The changelog executor: adds one entry per task to a Markdown changelog
//! (`CHANGELOG.md` in the task's allowed directory, or the one `.md` file it names).
//!
//! The entry goes under `## <date>` when the task has a `date: YYYY-MM-DD` field,
//! else under `## Unreleased`; sections are kept newest first with `Unreleased` on
//! top. An entry is `- <title> (<task id>)`; a changelog that already has the task's
//! entry is left alone, so the executor is idempotent. Everything else in the file is
//! kept byte for byte.

mod changelog;

pub use changelog::{add_entry, section_for};

use leviathan_executor_sdk::{ExecError, Executor, PluginInfo, Report, Task, Workspace, paths};

/// The changelog executor plugin.
pub struct ChangelogExecutor;

/// Task scopes this executor handles.
pub const SCOPES: &[&str] = &["changelog"];

impl Executor for ChangelogExecutor {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
            summary: "Adds an entry per task to a Markdown changelog, under the task's date or Unreleased".into(),
        }
    }

    fn execute(task: &Task, workspace: &Workspace) -> Result<Report, ExecError> {
        if !SCOPES.contains(&task.scope.as_str()) {
            return Err(ExecError::InvalidTask(format!(
                "changelog-executor handles scope `changelog`, not `{}`",
                task.scope
            )));
        }
        if task.title.trim().is_empty() {
            return Err(ExecError::InvalidTask(
                "the task needs a `title` for its changelog entry".into(),
            ));
        }
        let path = paths::choose_output(&task.allowed_paths, "md", "CHANGELOG.md")?;
        paths::check_relative(&path)?;
        let section = section_for(task)?;
        // The writable copy under /out holds the file's current content, if any.
        let current = match std::fs::read_to_string(workspace.out.join(&path)) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ExecError::Internal(format!("cannot read {path}: {e}"))),
        };
        let updated = add_entry(current.as_deref(), &section, task.title.trim(), &task.id);
        let written = match updated {
            Some(text) => workspace.write_if_changed(&path, text.as_bytes())?,
            None => false,
        };
        let summary = if written {
            format!("added `{}` to {path} under {section}", task.id)
        } else {
            format!("{path} already lists `{}`", task.id)
        };
        leviathan_executor_sdk::log::info(&summary);
        Ok(Report {
            files: if written { vec![path] } else { Vec::new() },
            summary,
        })
    }
}

#[cfg(target_arch = "wasm32")]
leviathan_executor_sdk::export_executor!(ChangelogExecutor);
