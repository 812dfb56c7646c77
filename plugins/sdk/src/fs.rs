//! Writing outputs idempotently.

use crate::ExecError;
use std::path::Path;

/// Writes `bytes` to `root/rel` unless the file already holds exactly those bytes.
/// Creates missing parent directories. Returns whether anything was written.
pub fn write_if_changed(root: &Path, rel: &str, bytes: &[u8]) -> Result<bool, ExecError> {
    crate::paths::check_relative(rel)?;
    let path = root.join(rel);
    match std::fs::read(&path) {
        Ok(existing) if existing == bytes => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("read", rel, e)),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error("create parent of", rel, e))?;
    }
    std::fs::write(&path, bytes).map_err(|e| io_error("write", rel, e))?;
    Ok(true)
}

fn io_error(action: &str, rel: &str, e: std::io::Error) -> ExecError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            ExecError::Denied(format!("sandbox refused to {action} `{rel}`: {e}"))
        }
        _ => ExecError::Internal(format!("cannot {action} `{rel}`: {e}")),
    }
}
