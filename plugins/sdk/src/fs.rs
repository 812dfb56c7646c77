//! Writing outputs idempotently.
//!
//! One algorithm on every target, over a small set of directory operations: inside
//! the sandbox they are direct `wasi:filesystem` calls on the mount that holds the
//! path ([`wasi`]; a path no mount holds is refused, as wasi-libc would refuse it, and
//! keeping `std::fs` out of the guest keeps wasi-libc's filesystem imports out of
//! every executor that does not use it), natively they are `std::fs` calls
//! ([`native`]). The common case, a file that does
//! not exist yet in a directory that does, is one create-and-write; the read that
//! makes the write idempotent happens only when the file is already there.

use crate::ExecError;
use std::io;
use std::path::Path;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
mod wasi;

/// The operations [`write_if_changed`] needs, on paths relative to one directory.
trait Dir {
    /// Creates `path` and writes `bytes` to it; `Ok(false)` when it already exists
    /// (nothing written), `NotFound` when its parent directory does not exist.
    fn create_new(&self, path: &str, bytes: &[u8]) -> io::Result<bool>;
    /// The whole content of the file at `path`.
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// Replaces the content of the existing file at `path` with `bytes`.
    fn overwrite(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Creates every missing directory above `path`.
    fn create_parents(&self, path: &str) -> io::Result<()>;
}

/// Writes `bytes` to `root/rel` unless the file already holds exactly those bytes.
/// Creates missing parent directories. Returns whether anything was written.
pub fn write_if_changed(root: &Path, rel: &str, bytes: &[u8]) -> Result<bool, ExecError> {
    crate::paths::check_relative(rel)?;
    write_under(root, rel, bytes)
}

/// Inside the sandbox: on the mount holding `root/rel` (mounts are named by guest
/// path, so the file's is built as a string).
#[cfg(target_arch = "wasm32")]
fn write_under(root: &Path, rel: &str, bytes: &[u8]) -> Result<bool, ExecError> {
    let written = root.to_str().and_then(|root| {
        let path = [root.trim_end_matches('/'), "/", rel].concat();
        wasi::with_mount(&path, |dir, below| write_in(dir, below, rel, bytes))
    });
    written.unwrap_or_else(|| Err(no_mount_holds(root, rel)))
}

/// Natively: through `std::fs` below `root`.
#[cfg(not(target_arch = "wasm32"))]
fn write_under(root: &Path, rel: &str, bytes: &[u8]) -> Result<bool, ExecError> {
    write_in(&native::Under(root), rel, rel, bytes)
}

/// What a write outside every mount fails with (as wasi-libc would refuse it).
#[cfg(target_arch = "wasm32")]
fn no_mount_holds(root: &Path, rel: &str) -> ExecError {
    ExecError::Denied(format!(
        "no directory the sandbox mounted holds `{rel}` (below {}): the task's allowed_paths do not include it",
        root.display()
    ))
}

/// The algorithm: create, else compare and overwrite, else make the parents and create.
/// `path` is relative to `dir`; `rel` (the repository path) names the file in errors.
fn write_in(dir: &impl Dir, path: &str, rel: &str, bytes: &[u8]) -> Result<bool, ExecError> {
    let created = match dir.create_new(path, bytes) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            dir.create_parents(path)
                .map_err(|e| io_error("create parent of", rel, e))?;
            dir.create_new(path, bytes)
        }
        other => other,
    }
    .map_err(|e| io_error("write", rel, e))?;
    if created {
        return Ok(true);
    }
    let existing = dir.read(path).map_err(|e| io_error("read", rel, e))?;
    if existing == bytes {
        return Ok(false);
    }
    dir.overwrite(path, bytes)
        .map_err(|e| io_error("write", rel, e))?;
    Ok(true)
}

fn io_error(action: &str, rel: &str, e: io::Error) -> ExecError {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            ExecError::Denied(format!("sandbox refused to {action} `{rel}`: {e}"))
        }
        _ => ExecError::Internal(format!("cannot {action} `{rel}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::write_if_changed;

    #[test]
    fn creates_compares_and_overwrites() {
        let dir = std::env::temp_dir().join(format!("sdk-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(write_if_changed(&dir, "a/b/c.md", b"one").unwrap());
        assert_eq!(std::fs::read(dir.join("a/b/c.md")).unwrap(), b"one");
        assert!(!write_if_changed(&dir, "a/b/c.md", b"one").unwrap());
        assert!(write_if_changed(&dir, "a/b/c.md", b"longer two").unwrap());
        assert!(write_if_changed(&dir, "a/b/c.md", b"3").unwrap());
        assert_eq!(std::fs::read(dir.join("a/b/c.md")).unwrap(), b"3");
        assert!(write_if_changed(&dir, "top.md", b"x").unwrap());
        std::fs::create_dir_all(dir.join("a/dir.md")).unwrap();
        assert!(write_if_changed(&dir, "a/dir.md", b"x").is_err());
        assert!(write_if_changed(&dir, "../up.md", b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        // A missing root is created, as for a nested file.
        assert!(write_if_changed(&dir, "top.md", b"x").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
