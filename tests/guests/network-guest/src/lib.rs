//! An executor that tries to reach the network. Because it imports `wasi:sockets`,
//! which the host never links, the component must fail to load with a clear error.
#![cfg(target_arch = "wasm32")]

use leviathan_executor_sdk::{ExecError, Executor, PluginInfo, Report, Task, Workspace};

/// The network-using executor.
pub struct NetworkGuest;

impl Executor for NetworkGuest {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "network-guest".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            scopes: vec!["network".into()],
            summary: "Opens a TCP connection (tests only)".into(),
        }
    }

    fn execute(_task: &Task, _workspace: &Workspace) -> Result<Report, ExecError> {
        match std::net::TcpStream::connect("93.184.215.14:80") {
            Ok(_) => Ok(Report {
                files: Vec::new(),
                summary: "CONNECTED".into(),
            }),
            Err(e) => Err(ExecError::Denied(format!("connect refused: {e}"))),
        }
    }
}

leviathan_executor_sdk::export_executor!(NetworkGuest);
