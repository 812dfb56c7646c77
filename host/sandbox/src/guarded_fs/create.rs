//! The common case of an executor's write, a new file (`open-at` with `create` and
//! `exclusive`), opened with one `openat2` beneath its mount. wasmtime-wasi's generic
//! open makes the same `openat2` (same resolve flags) and then a `statx` to tell a
//! file from a directory, which an exclusive create never needs: it only ever makes
//! a new regular file. A file that already exists is `exist` at once (what
//! wasmtime-wasi reports for it, without opening a second time: the SDK's write of an
//! existing file starts with this create). Anything else, and any other failure, takes
//! wasmtime-wasi's own path, so its checks and its error codes stay the only ones.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::CString;
use std::os::fd::AsFd;
use wasmtime::component::{Resource, ResourceTable};
#[cfg(test)]
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::OpenMode;
use wasmtime_wasi::filesystem::{Descriptor, File};
use wasmtime_wasi::p2::FsResult;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    self as fs, DescriptorFlags, OpenFlags,
};

/// Creates `path` below the directory `dir` when the call is an exclusive create of a
/// file: the new descriptor, or `exist` when the path is already there; `None` to hand
/// the call to wasmtime-wasi (another kind of open, a read-only mount, or any other
/// error, which wasmtime-wasi then reports).
pub fn new_file(
    table: &mut ResourceTable,
    dir: &Resource<fs::Descriptor>,
    path: &str,
    oflags: OpenFlags,
    flags: DescriptorFlags,
) -> Option<FsResult<Resource<fs::Descriptor>>> {
    if oflags != OpenFlags::CREATE | OpenFlags::EXCLUSIVE
        || !(DescriptorFlags::READ | DescriptorFlags::WRITE).contains(flags)
    {
        return None;
    }
    let Ok(Descriptor::Dir(parent)) = table.get(dir) else {
        return None;
    };
    if parent.perms.write_not_permitted() {
        return None;
    }
    // As wasmtime-wasi opens: a create is for writing, and for reading too when asked
    // or when writing was not asked for.
    let read = flags.contains(DescriptorFlags::READ) || !flags.contains(DescriptorFlags::WRITE);
    let (access, mode) = if read {
        (OFlags::RDWR, OpenMode::READ | OpenMode::WRITE)
    } else {
        (OFlags::WRONLY, OpenMode::WRITE)
    };
    let c_path = CString::new(path).ok()?;
    let opened = rustix::fs::openat2(
        parent.dir.as_fd(),
        c_path.as_c_str(),
        access | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    );
    let file = match opened {
        Ok(file) => file,
        Err(Errno::EXIST) => return Some(Err(ErrorCode::Exist.into())),
        Err(_) => return None,
    };
    // Runs are set up with `allow_blocking_current_thread` (run.rs), and so is this file.
    let file = File::new(std::fs::File::from(file), parent.perms, mode, true);
    table.push(Descriptor::File(file)).ok().map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn mount(table: &mut ResourceTable, dir: &Path, perms: FsPerms) -> Resource<fs::Descriptor> {
        let handle = std::fs::File::open(dir).unwrap();
        let mode = OpenMode::READ | OpenMode::WRITE;
        table
            .push(Descriptor::Dir(wasmtime_wasi::filesystem::Dir::new(
                handle, perms, mode, true,
            )))
            .unwrap()
    }

    fn new_flags() -> OpenFlags {
        OpenFlags::CREATE | OpenFlags::EXCLUSIVE
    }

    #[test]
    fn creates_a_new_file_for_writing() {
        let root = tempfile::tempdir().unwrap();
        let mut table = ResourceTable::new();
        let dir = mount(&mut table, root.path(), FsPerms::ReadWrite);
        let file = new_file(
            &mut table,
            &dir,
            "new.md",
            new_flags(),
            DescriptorFlags::WRITE,
        )
        .expect("an exclusive create of a new file takes the short path")
        .expect("and succeeds");
        let Ok(Descriptor::File(f)) = table.get(&file) else {
            panic!("a file descriptor");
        };
        assert_eq!(f.open_mode, OpenMode::WRITE);
        assert!(root.path().join("new.md").is_file());
    }

    #[test]
    fn everything_else_goes_to_wasmtime_wasi() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("old.md"), "old").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let mut table = ResourceTable::new();
        let dir = mount(&mut table, root.path(), FsPerms::ReadWrite);
        let write = DescriptorFlags::WRITE;
        let new = new_flags();
        let exists = new_file(&mut table, &dir, "old.md", new, write)
            .expect("an existing file is reported at once")
            .expect_err("it exists");
        assert!(matches!(exists.downcast(), Ok(ErrorCode::Exist)));
        for (path, oflags, flags) in [
            ("missing/x.md", new, write),                   // no parent
            ("../x.md", new, write),                        // leaves the mount
            ("link/x.md", new, write),                      // through a link out of it
            (outside.path().to_str().unwrap(), new, write), // absolute
            ("nul\0.md", new, write),                       // not a path
            ("plain.md", OpenFlags::CREATE, write),         // not exclusive
            ("sync.md", new, write | DescriptorFlags::DATA_INTEGRITY_SYNC),
        ] {
            assert!(
                new_file(&mut table, &dir, path, oflags, flags).is_none(),
                "{path:?} must take wasmtime-wasi's path"
            );
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_to_string(root.path().join("old.md")).unwrap(),
            "old"
        );
        assert!(!root.path().join("plain.md").exists());

        let read_only = mount(&mut table, root.path(), FsPerms::ReadOnly);
        assert!(new_file(&mut table, &read_only, "ro.md", new, write).is_none());
        assert!(!root.path().join("ro.md").exists());
    }
}
