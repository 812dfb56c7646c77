//! Conversions between the generated WIT types and the SDK's plain types.

use crate::bindings::leviathan::executor::types as wit;
use crate::{ExecError, Executor, PluginInfo, Report, Task, Workspace};

/// Converts plugin information to its WIT form.
pub fn info_to_wit(info: PluginInfo) -> wit::PluginInfo {
    wit::PluginInfo {
        name: info.name,
        version: info.version,
        scopes: info.scopes,
        summary: info.summary,
    }
}

/// Converts a WIT task to the SDK's task.
pub fn task_from_wit(task: wit::Task) -> Task {
    Task {
        id: task.id,
        title: task.title,
        description: task.description,
        scope: task.scope,
        priority: task.priority,
        estimated_size: task.estimated_size,
        allowed_paths: task.allowed_paths,
        acceptance_criteria: task.acceptance_criteria,
        labels: task.labels,
        dependencies: task.dependencies,
        parameters: task.parameters,
    }
}

fn report_to_wit(report: Report) -> wit::Report {
    wit::Report {
        files: report.files,
        summary: report.summary,
    }
}

fn error_to_wit(error: ExecError) -> wit::ExecError {
    match error {
        ExecError::InvalidTask(m) => wit::ExecError::InvalidTask(m),
        ExecError::Denied(m) => wit::ExecError::Denied(m),
        ExecError::Internal(m) => wit::ExecError::Internal(m),
    }
}

/// Runs `E` on a WIT task inside the sandbox layout.
pub fn execute<E: Executor>(task: wit::Task) -> Result<wit::Report, wit::ExecError> {
    let task = task_from_wit(task);
    E::execute(&task, &Workspace::sandbox())
        .map(report_to_wit)
        .map_err(error_to_wit)
}
