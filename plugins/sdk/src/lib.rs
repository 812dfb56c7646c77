//! Guest SDK for leviathan executor plugins.
//!
//! An executor is a type implementing [`Executor`]; `export_executor!(MyExecutor)` turns
//! it into a WebAssembly component that implements `leviathan:executor/executor@0.1.0`.
//! The executor logic only sees the plain Rust types of this crate, so it can also be
//! compiled and tested natively.

pub mod arena;
pub mod fs;
pub mod glue;
pub mod log;
pub mod paths;

/// Generated bindings for the `executor-plugin` world (used by [`export_executor!`]).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "executor-plugin",
        path: "../../wit/leviathan-executor@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_executor_bindings",
        default_bindings_module: "leviathan_executor_sdk::bindings",
    });
}

/// The version of the WIT contract this SDK implements.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// One backlog task, as handed to the executor by the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub description: String,
    pub scope: String,
    pub priority: Option<String>,
    pub estimated_size: Option<String>,
    pub allowed_paths: Vec<String>,
    pub acceptance_criteria: Vec<String>,
    pub labels: Vec<String>,
    pub dependencies: Vec<String>,
    /// Other scalar backlog fields, sorted by key.
    pub parameters: Vec<(String, String)>,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub scopes: Vec<String>,
    pub summary: String,
}

/// What an execution did: repository-relative paths written, and a one-line summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub files: Vec<String>,
    pub summary: String,
}

/// Why an execution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The task cannot be executed as written.
    InvalidTask(String),
    /// Refused on policy grounds, or the sandbox refused an operation.
    Denied(String),
    /// Unexpected failure inside the plugin.
    Internal(String),
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecError::InvalidTask(m) => write!(f, "invalid task: {m}"),
            ExecError::Denied(m) => write!(f, "denied: {m}"),
            ExecError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for ExecError {}

/// Where the executor reads the repository and writes its outputs.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Read-only snapshot of the repository.
    pub repo: std::path::PathBuf,
    /// Root under which outputs are written by repository-relative path.
    pub out: std::path::PathBuf,
}

impl Workspace {
    /// The layout the host mounts inside the sandbox: `/repo` and `/out`.
    pub fn sandbox() -> Self {
        Workspace {
            repo: "/repo".into(),
            out: "/out".into(),
        }
    }

    /// Writes `bytes` to the repository-relative `path` unless it already holds exactly
    /// those bytes. Returns whether the file was written.
    pub fn write_if_changed(&self, path: &str, bytes: &[u8]) -> Result<bool, ExecError> {
        fs::write_if_changed(&self.out, path, bytes)
    }
}

/// An executor plugin's logic.
pub trait Executor {
    /// Name, version and the task scopes handled.
    fn describe() -> PluginInfo;
    /// Executes `task`, writing outputs through `workspace`.
    fn execute(task: &Task, workspace: &Workspace) -> Result<Report, ExecError>;
}

/// Exports an [`Executor`] implementation as the component's `executor` interface.
#[macro_export]
macro_rules! export_executor {
    ($executor:ty) => {
        struct __LeviathanExecutorExport;

        impl $crate::bindings::exports::leviathan::executor::executor::Guest
            for __LeviathanExecutorExport
        {
            fn describe() -> $crate::bindings::leviathan::executor::types::PluginInfo {
                $crate::glue::info_to_wit(<$executor as $crate::Executor>::describe())
            }

            fn execute(
                task: $crate::bindings::leviathan::executor::types::Task,
            ) -> ::core::result::Result<
                $crate::bindings::leviathan::executor::types::Report,
                $crate::bindings::leviathan::executor::types::ExecError,
            > {
                $crate::glue::execute::<$executor>(task)
            }
        }

        $crate::bindings::export_executor_bindings!(__LeviathanExecutorExport);
    };
}
