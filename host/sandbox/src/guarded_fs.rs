//! The `wasi:filesystem` host executors are linked against: wasmtime-wasi's own
//! implementation, with the run's [`WriteGuard`] asked first at every call that
//! creates, writes, renames, links or removes a path. A refused call fails with
//! `not-permitted` and is recorded (and logged as the plugin's own log line).
//! File writes go straight to the file on the calling thread instead of through a
//! blocking-thread hand-off, and an exclusive create is one `openat2` ([`create`]).

use crate::guard::{Action, Rule, WriteGuard};
use crate::state::LogBook;
use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode as Code;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    self as fs, DescriptorFlags, ErrorCode, OpenFlags,
};
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{FsError, FsResult};

mod create;
mod writer;

/// The filesystem view of one call: wasmtime-wasi's, the guard and the plugin's log.
pub struct GuardedFs<'a> {
    pub fs: WasiFilesystemCtxView<'a>,
    pub guard: &'a mut WriteGuard,
    pub logs: &'a mut LogBook,
}

/// Marker for linking [`GuardedFs`].
pub struct Guarded;

impl HasData for Guarded {
    type Data<'a> = GuardedFs<'a>;
}

impl GuardedFs<'_> {
    fn check(&mut self, dir: u32, path: &str, action: Action) -> FsResult<()> {
        self.guard.check(dir, path, action).map_err(|denial| {
            self.logs.push("warn", format!("sandbox: {denial}"));
            tracing::info!(target: "plugin", "{denial}");
            FsError::from(Code::NotPermitted)
        })
    }

    fn refuse(&mut self, dir: u32, path: &str, action: Action) -> FsError {
        let denial = self.guard.refuse(dir, path, action, Rule::NoLinks);
        self.logs.push("warn", format!("sandbox: {denial}"));
        FsError::from(Code::NotPermitted)
    }
}

impl preopens::Host for GuardedFs<'_> {
    fn get_directories(
        &mut self,
    ) -> wasmtime::Result<Vec<(Resource<preopens::Descriptor>, String)>> {
        let dirs = preopens::Host::get_directories(&mut self.fs)?;
        for (dir, guest) in &dirs {
            self.guard.opened_mount(dir.rep(), guest);
        }
        Ok(dirs)
    }
}

impl fs::Host for GuardedFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        fs::Host::convert_error_code(&mut self.fs, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<streams::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        fs::Host::filesystem_error_code(&mut self.fs, err)
    }
}

impl fs::HostDirectoryEntryStream for GuardedFs<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<fs::DirectoryEntryStream>,
    ) -> FsResult<Option<fs::DirectoryEntry>> {
        fs::HostDirectoryEntryStream::read_directory_entry(&mut self.fs, stream)
    }

    fn drop(&mut self, stream: Resource<fs::DirectoryEntryStream>) -> wasmtime::Result<()> {
        fs::HostDirectoryEntryStream::drop(&mut self.fs, stream)
    }
}

/// True when an open may create, truncate or write the file it opens.
fn opens_for_writing(oflags: OpenFlags, flags: DescriptorFlags) -> bool {
    oflags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE)
        || flags.contains(DescriptorFlags::WRITE)
}

impl fs::HostDescriptor for GuardedFs<'_> {
    fn open_at(
        &mut self,
        dir: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<fs::Descriptor>> {
        let parent = dir.rep();
        if opens_for_writing(oflags, flags) {
            self.check(parent, &path, Action::Write)?;
        }
        if let Some(created) = create::new_file(self.fs.table, &dir, &path, oflags, flags) {
            return created;
        }
        let opened = fs::HostDescriptor::open_at(
            &mut self.fs,
            dir,
            path_flags,
            path.clone(),
            oflags,
            flags,
        )?;
        if matches!(self.fs.table.get(&opened)?, Descriptor::Dir(_)) {
            self.guard.opened_dir(opened.rep(), parent, &path);
        }
        Ok(opened)
    }

    fn create_directory_at(&mut self, dir: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        self.check(dir.rep(), &path, Action::CreateDirectory)?;
        fs::HostDescriptor::create_directory_at(&mut self.fs, dir, path)
    }

    fn remove_directory_at(&mut self, dir: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        self.check(dir.rep(), &path, Action::RemoveDirectory)?;
        fs::HostDescriptor::remove_directory_at(&mut self.fs, dir, path)
    }

    fn unlink_file_at(&mut self, dir: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        self.check(dir.rep(), &path, Action::Unlink)?;
        fs::HostDescriptor::unlink_file_at(&mut self.fs, dir, path)
    }

    fn rename_at(
        &mut self,
        dir: Resource<fs::Descriptor>,
        old_path: String,
        new_dir: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.check(dir.rep(), &old_path, Action::RenameFrom)?;
        self.check(new_dir.rep(), &new_path, Action::RenameTo)?;
        fs::HostDescriptor::rename_at(&mut self.fs, dir, old_path, new_dir, new_path)
    }

    fn set_times_at(
        &mut self,
        dir: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        self.check(dir.rep(), &path, Action::SetTimes)?;
        fs::HostDescriptor::set_times_at(&mut self.fs, dir, path_flags, path, atim, mtim)
    }

    fn symlink_at(
        &mut self,
        dir: Resource<fs::Descriptor>,
        _target: String,
        path: String,
    ) -> FsResult<()> {
        Err(self.refuse(dir.rep(), &path, Action::Symlink))
    }

    fn link_at(
        &mut self,
        _dir: Resource<fs::Descriptor>,
        _old_path_flags: fs::PathFlags,
        _old_path: String,
        new_dir: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        Err(self.refuse(new_dir.rep(), &new_path, Action::HardLink))
    }

    fn drop(&mut self, fd: Resource<fs::Descriptor>) -> wasmtime::Result<()> {
        self.guard.closed(fd.rep());
        fs::HostDescriptor::drop(&mut self.fs, fd)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
    ) -> FsResult<Resource<streams::OutputStream>> {
        writer::open(&mut self.fs, fd, writer::Mode::At(offset))
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
    ) -> FsResult<Resource<streams::OutputStream>> {
        writer::open(&mut self.fs, fd, writer::Mode::Append)
    }

    // Everything below reads, or changes only a file already opened for writing
    // (which the guard checked when it was opened): wasmtime-wasi's own code.

    fn advise(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
        len: fs::Filesize,
        advice: fs::Advice,
    ) -> FsResult<()> {
        fs::HostDescriptor::advise(&mut self.fs, fd, offset, len, advice)
    }

    fn sync_data(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        fs::HostDescriptor::sync_data(&mut self.fs, fd)
    }

    fn get_flags(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<DescriptorFlags> {
        fs::HostDescriptor::get_flags(&mut self.fs, fd)
    }

    fn get_type(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorType> {
        fs::HostDescriptor::get_type(&mut self.fs, fd)
    }

    fn set_size(&mut self, fd: Resource<fs::Descriptor>, size: fs::Filesize) -> FsResult<()> {
        fs::HostDescriptor::set_size(&mut self.fs, fd, size)
    }

    fn set_times(
        &mut self,
        fd: Resource<fs::Descriptor>,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        fs::HostDescriptor::set_times(&mut self.fs, fd, atim, mtim)
    }

    fn read(
        &mut self,
        fd: Resource<fs::Descriptor>,
        len: fs::Filesize,
        offset: fs::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        fs::HostDescriptor::read(&mut self.fs, fd, len, offset)
    }

    fn write(
        &mut self,
        fd: Resource<fs::Descriptor>,
        buf: Vec<u8>,
        offset: fs::Filesize,
    ) -> FsResult<fs::Filesize> {
        fs::HostDescriptor::write(&mut self.fs, fd, buf, offset)
    }

    fn read_directory(
        &mut self,
        fd: Resource<fs::Descriptor>,
    ) -> FsResult<Resource<fs::DirectoryEntryStream>> {
        fs::HostDescriptor::read_directory(&mut self.fs, fd)
    }

    fn sync(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        fs::HostDescriptor::sync(&mut self.fs, fd)
    }

    fn stat(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorStat> {
        fs::HostDescriptor::stat(&mut self.fs, fd)
    }

    fn stat_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::DescriptorStat> {
        fs::HostDescriptor::stat_at(&mut self.fs, fd, path_flags, path)
    }

    fn readlink_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<String> {
        fs::HostDescriptor::readlink_at(&mut self.fs, fd, path)
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
    ) -> FsResult<Resource<streams::InputStream>> {
        fs::HostDescriptor::read_via_stream(&mut self.fs, fd, offset)
    }

    fn is_same_object(
        &mut self,
        a: Resource<fs::Descriptor>,
        b: Resource<fs::Descriptor>,
    ) -> wasmtime::Result<bool> {
        fs::HostDescriptor::is_same_object(&mut self.fs, a, b)
    }

    fn metadata_hash(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::MetadataHashValue> {
        fs::HostDescriptor::metadata_hash(&mut self.fs, fd)
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::MetadataHashValue> {
        fs::HostDescriptor::metadata_hash_at(&mut self.fs, fd, path_flags, path)
    }
}
