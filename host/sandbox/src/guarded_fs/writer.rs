//! The output stream of a file a guest writes: each `write` is a positioned write on
//! the calling thread. wasmtime-wasi's own file stream hands every write to a blocking
//! thread pool and waits for it (two thread switches per write), which cost more than
//! the write itself on the executors' small files.

use bytes::Bytes;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode as Code;
use wasmtime_wasi::p2::bindings::sync::filesystem::types as fs;
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{DynOutputStream, FsResult, OutputStream, Pollable, StreamError};

/// Most bytes one `write` may carry (what `check-write` grants), as wasmtime-wasi's.
const WRITE_PERMIT: usize = 64 * 1024;

/// Where a stream writes.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// From this offset on.
    At(u64),
    /// At the end of the file, whatever its length.
    Append,
}

/// Opens a stream on the file behind `fd` (a directory or a read-only mount is refused
/// as wasmtime-wasi refuses it).
pub fn open(
    view: &mut WasiFilesystemCtxView<'_>,
    fd: Resource<fs::Descriptor>,
    mode: Mode,
) -> FsResult<Resource<streams::OutputStream>> {
    let file = match view.table.get(&fd)? {
        Descriptor::File(f) => f,
        Descriptor::Dir(_) => return Err(Code::BadDescriptor.into()),
    };
    if file.perms.write_not_permitted() {
        return Err(Code::NotPermitted.into());
    }
    let stream: DynOutputStream = Box::new(FileWriter {
        file: file.file.clone(),
        mode,
        closed: false,
    });
    Ok(view.table.push(stream)?)
}

struct FileWriter {
    file: Arc<std::fs::File>,
    mode: Mode,
    closed: bool,
}

impl FileWriter {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut at = match self.mode {
            Mode::At(offset) => offset,
            Mode::Append => self.file.metadata()?.len(),
        };
        self.file.write_all_at(bytes, at)?;
        at += bytes.len() as u64;
        if let Mode::At(offset) = &mut self.mode {
            *offset = at;
        }
        Ok(())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for FileWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for FileWriter {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        if bytes.len() > WRITE_PERMIT {
            return Err(StreamError::trap("write larger than check-write allowed"));
        }
        self.write_all(&bytes).map_err(|e| {
            self.closed = true;
            StreamError::LastOperationFailed(e.into())
        })
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        Ok(WRITE_PERMIT)
    }
}
