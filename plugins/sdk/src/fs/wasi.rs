//! The directory operations as direct `wasi:filesystem` calls on one of the
//! instance's mounts (preopens). A write of a new file is one `open-at` and one
//! `write`, where `std::fs` through wasi-libc makes about four times as many host
//! calls (a failed read, a `mkdir` and a `stat` of the parent, and a stream per
//! write). Every call still goes through the host's policy checks.

use std::io;
use wasip2::filesystem::preopens;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

/// Most bytes handed to one `write` call (the host's stream permit).
const CHUNK: usize = 64 * 1024;

thread_local! {
    /// The instance's mounts, asked for once.
    static MOUNTS: Vec<(Descriptor, String)> = preopens::get_directories();
}

/// Runs `f` on the mount holding `path` (the longest mount that is a prefix of it)
/// and the path below it; `None` when no mount holds it.
pub(super) fn with_mount<R>(path: &str, f: impl FnOnce(&Mount, &str) -> R) -> Option<R> {
    MOUNTS.with(|mounts| {
        let (dir, below) = mounts
            .iter()
            .filter_map(|(dir, guest)| Some((dir, below(path, guest)?)))
            .min_by_key(|(_, below)| below.len())?;
        Some(f(&Mount(dir), below))
    })
}

/// `path` below the mount `guest`, when it is a non-empty path inside it.
fn below<'p>(path: &'p str, guest: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(guest.trim_end_matches('/'))?;
    let rest = rest.strip_prefix('/')?;
    (!rest.is_empty()).then_some(rest)
}

/// One mount's directory descriptor.
pub(super) struct Mount<'d>(&'d Descriptor);

impl Mount<'_> {
    fn open(&self, path: &str, open: OpenFlags, flags: DescriptorFlags) -> io::Result<Descriptor> {
        self.0
            .open_at(PathFlags::empty(), path, open, flags)
            .map_err(to_io)
    }
}

fn write_all(file: &Descriptor, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        let end = bytes.len().min(done + CHUNK);
        let n = file.write(&bytes[done..end], done as u64).map_err(to_io)? as usize;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        done += n;
    }
    Ok(())
}

impl super::Dir for Mount<'_> {
    fn create_new(&self, path: &str, bytes: &[u8]) -> io::Result<bool> {
        let created = self.open(
            path,
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::WRITE,
        );
        match created {
            Ok(file) => write_all(&file, bytes).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let file = self.open(path, OpenFlags::empty(), DescriptorFlags::READ)?;
        let mut content = Vec::new();
        loop {
            let (chunk, end) = file
                .read(CHUNK as u64, content.len() as u64)
                .map_err(to_io)?;
            content.extend_from_slice(&chunk);
            if end || chunk.is_empty() {
                return Ok(content);
            }
        }
    }

    fn overwrite(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let file = self.open(path, OpenFlags::TRUNCATE, DescriptorFlags::WRITE)?;
        write_all(&file, bytes)
    }

    /// Outermost first, each `create-directory-at` below the mount.
    fn create_parents(&self, path: &str) -> io::Result<()> {
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        let ends = parent.match_indices('/').map(|(end, _)| end);
        for end in ends.chain([parent.len()]) {
            match self.0.create_directory_at(&parent[..end]) {
                Err(ErrorCode::Exist) | Ok(()) => {}
                Err(code) => return Err(to_io(code)),
            }
        }
        Ok(())
    }
}

/// The `std::io` error for a WASI error code (the kinds wasi-libc maps them to).
fn to_io(code: ErrorCode) -> io::Error {
    let kind = match code {
        ErrorCode::NoEntry => io::ErrorKind::NotFound,
        ErrorCode::Exist => io::ErrorKind::AlreadyExists,
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
            io::ErrorKind::PermissionDenied
        }
        ErrorCode::IsDirectory => io::ErrorKind::IsADirectory,
        ErrorCode::NotDirectory => io::ErrorKind::NotADirectory,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, code.message())
}
