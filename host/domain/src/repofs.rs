//! Capability-scoped I/O inside a directory the host does not trust: a target's
//! clone or worktree, the staged outputs of a run, the plugin registry.
//!
//! A [`RepoDir`] is an open directory handle. Every path below it is a
//! [`RepoPath`] (no `..`, no absolute paths), resolved one component at a time with
//! `openat(O_NOFOLLOW)`, so a symbolic link anywhere on the way is refused, never
//! followed, and nothing outside the handle is reachable. Reads accept regular files
//! only: the type is checked with `fstatat(AT_SYMLINK_NOFOLLOW)` before the file is
//! opened (a FIFO, device or socket is never opened), checked again on the open
//! descriptor, and the read stops at a byte limit. Writes go to a temporary sibling
//! and are renamed into place, so they never write through a link.

use crate::paths::RepoPath;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What a directory entry is, without following links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    Unknown,
}

impl Kind {
    fn of(file_type: FileType) -> Kind {
        match file_type {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            FileType::Socket => Kind::Socket,
            _ => Kind::Unknown,
        }
    }

    /// The kind in an error message: "a FIFO", "a directory", ….
    pub fn described(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Fifo => "a FIFO",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Socket => "a socket",
            Kind::Unknown => "a special file",
        }
    }
}

/// The metadata of an entry, read without following links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Logical size in bytes (a sparse file's holes count).
    pub len: u64,
    pub nlink: u64,
    /// Permission bits.
    pub mode: u32,
}

/// Why an operation inside a [`RepoDir`] was refused or failed. `path` is relative to
/// the handle; nothing here quotes a file's contents.
#[derive(Debug, thiserror::Error)]
pub enum RepoFsError {
    #[error("`{path}` is a symbolic link; the host never follows links inside {area}")]
    Link { path: String, area: &'static str },
    #[error("`{path}` is {}, not a regular file", kind.described())]
    NotRegular { path: String, kind: Kind },
    #[error("`{path}` is {}, not a directory", kind.described())]
    NotDir { path: String, kind: Kind },
    #[error("`{path}` is {size} bytes, over the limit of {limit} bytes ({limit_name})")]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        limit_name: &'static str,
    },
    #[error("`{path}` has {nlink} hard links; refusing to write through it")]
    HardLinked { path: String, nlink: u64 },
    #[error("`{path}`: {source}")]
    Io { path: String, source: io::Error },
}

/// The error for a file or directory that is not there, worded as the OS words it
/// (an error made from the kind alone reads "entity not found").
pub fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file or directory")
}

impl RepoFsError {
    fn io(path: impl Into<String>, source: impl Into<io::Error>) -> RepoFsError {
        RepoFsError::Io {
            path: path.into(),
            source: source.into(),
        }
    }
}

/// A byte limit and the name it is documented under (used in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub name: &'static str,
}

impl Limit {
    /// `bytes` known as `name`.
    pub const fn new(bytes: u64, name: &'static str) -> Limit {
        Limit { bytes, name }
    }
}

/// An open directory handle that only reaches what lies below it.
pub struct RepoDir {
    fd: OwnedFd,
    /// Where the handle is, relative to the root it was opened from (for errors).
    prefix: String,
    /// What the handle is ("a repository", "the plugin registry"), for errors.
    area: &'static str,
}

fn nofollow_dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn stat_meta(stat: &rustix::fs::Stat) -> Meta {
    Meta {
        kind: Kind::of(FileType::from_raw_mode(stat.st_mode)),
        len: u64::try_from(stat.st_size).unwrap_or(0),
        nlink: stat.st_nlink,
        mode: stat.st_mode & 0o7777,
    }
}

fn is_not_found(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::NOENT
}

impl RepoDir {
    /// Opens `root` (the operator's or the host's own path, which may itself be a
    /// link) as the handle everything else is resolved from.
    pub fn open(root: &Path, area: &'static str) -> io::Result<RepoDir> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RepoDir {
            fd,
            prefix: String::new(),
            area,
        })
    }

    fn shown(&self, rel: &str) -> String {
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        }
    }

    fn meta_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        shown: &str,
    ) -> Result<Option<Meta>, RepoFsError> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(stat_meta(&stat))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(RepoFsError::io(shown, e)),
        }
    }

    /// Opens directory `name` inside `dir` without following a link, naming what it
    /// is when it is not a directory. `None` when it does not exist.
    fn open_child_dir(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        shown: &str,
    ) -> Result<Option<OwnedFd>, RepoFsError> {
        match rustix::fs::openat(dir, name, nofollow_dir_flags(), Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => match self.meta_at(dir, name, shown)? {
                Some(Meta {
                    kind: Kind::Symlink,
                    ..
                }) => Err(RepoFsError::Link {
                    path: shown.into(),
                    area: self.area,
                }),
                Some(meta) if meta.kind != Kind::Dir => Err(RepoFsError::NotDir {
                    path: shown.into(),
                    kind: meta.kind,
                }),
                _ => Err(RepoFsError::io(shown, e)),
            },
        }
    }

    /// The directory holding `rel`'s last component, walked without following links;
    /// `None` when a directory on the way does not exist (and `create` is false).
    fn parent_of(&self, rel: &RepoPath, create: bool) -> Result<Option<OwnedFd>, RepoFsError> {
        let components = rel.components();
        let mut current =
            rustix::io::dup(&self.fd).map_err(|e| RepoFsError::io(self.shown(""), e))?;
        for (i, component) in components[..components.len() - 1].iter().enumerate() {
            let shown = self.shown(&components[..=i].join("/"));
            let name = OsStr::new(component);
            let next = match self.open_child_dir(current.as_fd(), name, &shown)? {
                Some(fd) => fd,
                None if create => {
                    match rustix::fs::mkdirat(current.as_fd(), name, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(e) if e == rustix::io::Errno::EXIST => {}
                        Err(e) => return Err(RepoFsError::io(shown, e)),
                    }
                    self.open_child_dir(current.as_fd(), name, &shown)?
                        .ok_or_else(|| RepoFsError::io(shown.clone(), not_found()))?
                }
                None => return Ok(None),
            };
            current = next;
        }
        Ok(Some(current))
    }

    fn last(rel: &RepoPath) -> &OsStr {
        OsStr::new(rel.components().last().map(String::as_str).unwrap_or("."))
    }

    /// The metadata of `rel` without following links; `None` when it does not exist.
    /// A link on the way to it is refused.
    pub fn stat(&self, rel: &RepoPath) -> Result<Option<Meta>, RepoFsError> {
        let Some(parent) = self.parent_of(rel, false)? else {
            return Ok(None);
        };
        self.meta_at(
            parent.as_fd(),
            Self::last(rel),
            &self.shown(&rel.as_string()),
        )
    }

    /// A subdirectory as a handle of its own; `None` when it does not exist.
    pub fn open_dir(&self, rel: &RepoPath) -> Result<Option<RepoDir>, RepoFsError> {
        let Some(parent) = self.parent_of(rel, false)? else {
            return Ok(None);
        };
        let shown = self.shown(&rel.as_string());
        Ok(self
            .open_child_dir(parent.as_fd(), Self::last(rel), &shown)?
            .map(|fd| RepoDir {
                fd,
                prefix: shown,
                area: self.area,
            }))
    }

    /// The entries of this directory (without `.` and `..`), sorted by name, each
    /// with its kind as `lstat` sees it.
    pub fn entries(&self) -> Result<Vec<(OsString, Kind)>, RepoFsError> {
        let shown = self.shown("");
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| RepoFsError::io(&shown, e))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| RepoFsError::io(&shown, e))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
            if name == "." || name == ".." {
                continue;
            }
            let kind = match Kind::of(entry.file_type()) {
                Kind::Unknown => self
                    .meta_at(self.fd.as_fd(), &name, &shown)?
                    .map(|m| m.kind)
                    .unwrap_or(Kind::Unknown),
                kind => kind,
            };
            out.push((name, kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Opens regular file `rel` for reading, refusing links and special files by type
    /// before opening, and files over `limit`. `None` when it does not exist.
    pub fn open_file(
        &self,
        rel: &RepoPath,
        limit: Limit,
    ) -> Result<Option<(File, Meta)>, RepoFsError> {
        let shown = self.shown(&rel.as_string());
        let Some(parent) = self.parent_of(rel, false)? else {
            return Ok(None);
        };
        let name = Self::last(rel);
        let Some(before) = self.meta_at(parent.as_fd(), name, &shown)? else {
            return Ok(None);
        };
        self.check_regular(&shown, before, limit)?;
        let fd = rustix::fs::openat(
            parent.as_fd(),
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RepoFsError::io(&shown, e))?;
        let after = stat_meta(&rustix::fs::fstat(&fd).map_err(|e| RepoFsError::io(&shown, e))?);
        // Swapped between the check and the open: judged again on what was opened.
        self.check_regular(&shown, after, limit)?;
        Ok(Some((File::from(fd), after)))
    }

    fn check_regular(&self, shown: &str, meta: Meta, limit: Limit) -> Result<(), RepoFsError> {
        if meta.kind == Kind::Symlink {
            return Err(RepoFsError::Link {
                path: shown.into(),
                area: self.area,
            });
        }
        check_regular_within(shown, meta, limit)
    }

    /// The whole content of regular file `rel`, at most `limit` bytes; `None` when it
    /// does not exist.
    pub fn read(&self, rel: &RepoPath, limit: Limit) -> Result<Option<Vec<u8>>, RepoFsError> {
        let Some((file, meta)) = self.open_file(rel, limit)? else {
            return Ok(None);
        };
        read_bounded(file, meta, &self.shown(&rel.as_string()), limit).map(Some)
    }

    /// Checks that `rel` can be written without going through a link: no component on
    /// the way is a symbolic link or a non-directory, and an existing entry is a
    /// directory or a regular file with a single hard link.
    pub fn check_writable(&self, rel: &RepoPath) -> Result<(), RepoFsError> {
        let Some(parent) = self.parent_of(rel, false)? else {
            return Ok(());
        };
        let shown = self.shown(&rel.as_string());
        match self.meta_at(parent.as_fd(), Self::last(rel), &shown)? {
            None => Ok(()),
            Some(meta) => match meta.kind {
                Kind::File if meta.nlink > 1 => Err(RepoFsError::HardLinked {
                    path: shown,
                    nlink: meta.nlink,
                }),
                Kind::File | Kind::Dir => Ok(()),
                Kind::Symlink => Err(RepoFsError::Link {
                    path: shown,
                    area: self.area,
                }),
                kind => Err(RepoFsError::NotRegular { path: shown, kind }),
            },
        }
    }

    /// Writes `bytes` to a temporary file beside `rel` (creating missing directories,
    /// never through a link) and returns it, to be renamed into place with
    /// [`PendingWrite::commit`]. An existing file's permissions are kept.
    pub fn prepare_write(&self, rel: &RepoPath, bytes: &[u8]) -> Result<PendingWrite, RepoFsError> {
        self.check_writable(rel)?;
        let shown = self.shown(&rel.as_string());
        let parent = self
            .parent_of(rel, true)?
            .ok_or_else(|| RepoFsError::io(shown.clone(), not_found()))?;
        let name = Self::last(rel).to_os_string();
        let mode = self
            .meta_at(parent.as_fd(), &name, &shown)?
            .map(|m| m.mode)
            .unwrap_or(0o644);
        let (fd, tmp) =
            create_temp(parent.as_fd(), &name, mode).map_err(|e| RepoFsError::io(&shown, e))?;
        let pending = PendingWrite {
            parent,
            tmp,
            name,
            shown: shown.clone(),
            committed: false,
        };
        let mut file = File::from(fd);
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| RepoFsError::io(&shown, e))?;
        Ok(pending)
    }

    /// Writes `rel` at once (see [`RepoDir::prepare_write`]).
    pub fn write(&self, rel: &RepoPath, bytes: &[u8]) -> Result<(), RepoFsError> {
        self.prepare_write(rel, bytes)?.commit()
    }
}

/// The largest secret file read (a token file, a signing key).
pub const MAX_SECRET_FILE: Limit = Limit::new(64 << 10, "secret file limit");

/// Reads a small operator file as UTF-8 text (a token or a key; see
/// [`read_operator_file`]); the error never quotes the content.
pub fn read_secret_file(path: &Path) -> Result<String, RepoFsError> {
    let bytes = read_operator_file(path, MAX_SECRET_FILE)?;
    String::from_utf8(bytes).map_err(|_| {
        RepoFsError::io(
            path.display().to_string(),
            io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
        )
    })
}

/// Reads a file the operator named (configuration, policy, tokens, a token file, a
/// journal to import): a link to it is followed (Kubernetes mounts Secrets and
/// ConfigMaps through links), but it must be a regular file, checked on the open
/// descriptor before anything is read, and at most `limit` bytes.
pub fn read_operator_file(path: &Path, limit: Limit) -> Result<Vec<u8>, RepoFsError> {
    let shown = path.display().to_string();
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RepoFsError::io(&shown, e))?;
    let meta = stat_meta(&rustix::fs::fstat(&fd).map_err(|e| RepoFsError::io(&shown, e))?);
    check_regular_within(&shown, meta, limit)?;
    read_bounded(File::from(fd), meta, &shown, limit)
}

/// Refuses anything but a regular file of at most `limit` bytes.
fn check_regular_within(shown: &str, meta: Meta, limit: Limit) -> Result<(), RepoFsError> {
    if meta.kind != Kind::File {
        return Err(RepoFsError::NotRegular {
            path: shown.into(),
            kind: meta.kind,
        });
    }
    too_large(shown, meta.len, limit)
}

fn too_large(shown: &str, size: u64, limit: Limit) -> Result<(), RepoFsError> {
    if size > limit.bytes {
        return Err(RepoFsError::TooLarge {
            path: shown.into(),
            size,
            limit: limit.bytes,
            limit_name: limit.name,
        });
    }
    Ok(())
}

/// Reads an opened, checked file to its end, at most `limit` bytes: one byte more
/// than the limit tells a file that grew since it was checked.
fn read_bounded(file: File, meta: Meta, shown: &str, limit: Limit) -> Result<Vec<u8>, RepoFsError> {
    let mut bytes = Vec::with_capacity(meta.len.min(limit.bytes) as usize);
    file.take(limit.bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RepoFsError::io(shown, e))?;
    too_large(shown, bytes.len() as u64, limit)?;
    Ok(bytes)
}

/// Creates a fresh temporary file in `dir` beside `name`, with `mode`.
fn create_temp(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<(OwnedFd, OsString)> {
    for attempt in 0u32..64 {
        let nanos = crate::clock::now_nanos();
        let mut tmp = OsString::from(".leviathan-");
        tmp.push(name);
        tmp.push(format!(
            ".{:x}{attempt:02x}.tmp",
            nanos as u64 ^ u64::from(std::process::id())
        ));
        match rustix::fs::openat(
            dir,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        ) {
            Ok(fd) => {
                // The umask may have narrowed the mode; the file keeps the old one.
                let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o777));
                return Ok((fd, tmp));
            }
            Err(e) if e == rustix::io::Errno::EXIST => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

/// A written temporary file waiting to replace its target; dropped uncommitted, it is
/// removed.
pub struct PendingWrite {
    parent: OwnedFd,
    tmp: OsString,
    name: OsString,
    shown: String,
    committed: bool,
}

impl PendingWrite {
    /// Renames the temporary file over the target (a link at the target is replaced,
    /// never written through).
    pub fn commit(mut self) -> Result<(), RepoFsError> {
        rustix::fs::renameat(&self.parent, &self.tmp, &self.parent, &self.name)
            .map_err(|e| RepoFsError::io(&self.shown, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.parent, &self.tmp, AtFlags::empty());
        }
    }
}

/// Copies `from` into a new file at `to` (a host-owned path), keeping holes: blocks
/// of zeros are skipped with a seek instead of written, so a sparse file is never
/// inflated. Returns the bytes read.
pub fn copy_sparse(mut from: File, to: &Path, len: u64) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    const BLOCK: usize = 64 * 1024;
    let mut out = File::create(to)?;
    let mut buf = vec![0u8; BLOCK];
    let mut copied = 0u64;
    let mut pending_hole = false;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if chunk.iter().all(|b| *b == 0) {
            out.seek(SeekFrom::Current(n as i64))?;
            pending_hole = true;
        } else {
            out.write_all(chunk)?;
            pending_hole = false;
        }
        copied += n as u64;
        if copied > len {
            // Grew while being copied: stop at what was checked.
            return Err(io::Error::other("the file grew while it was copied"));
        }
    }
    if pending_hole || copied < len {
        out.set_len(copied)?;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn p(s: &str) -> RepoPath {
        RepoPath::parse(s).unwrap()
    }

    const LIMIT: Limit = Limit::new(1 << 20, "test limit");

    #[test]
    fn reads_regular_files_and_refuses_links_on_the_way() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret").unwrap();
        std::fs::create_dir(root.path().join("docs")).unwrap();
        std::fs::write(root.path().join("docs/a.md"), "A").unwrap();
        symlink(outside.path(), root.path().join("linked")).unwrap();
        symlink(outside.path().join("secret"), root.path().join("docs/s.md")).unwrap();
        let dir = RepoDir::open(root.path(), "a repository").unwrap();
        assert_eq!(dir.read(&p("docs/a.md"), LIMIT).unwrap().unwrap(), b"A");
        assert!(dir.read(&p("docs/none.md"), LIMIT).unwrap().is_none());
        assert!(dir.read(&p("nodir/none.md"), LIMIT).unwrap().is_none());
        for (path, shown) in [("linked/secret", "`linked`"), ("docs/s.md", "`docs/s.md`")] {
            let err = dir.read(&p(path), LIMIT).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, RepoFsError::Link { .. }), "{text}");
            assert!(
                text.contains(shown) && !text.contains("host secret"),
                "{text}"
            );
        }
        assert!(matches!(
            dir.stat(&p("linked/secret")),
            Err(RepoFsError::Link { .. })
        ));
    }

    #[test]
    fn special_files_are_refused_by_type_without_opening() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let dir = RepoDir::open(root.path(), "a repository").unwrap();
        // Opening a FIFO for reading would block until a writer came: this returns.
        let err = dir.read(&p("fifo"), LIMIT).unwrap_err();
        assert!(
            err.to_string().contains("is a FIFO, not a regular file"),
            "{err}"
        );
        assert!(matches!(
            dir.check_writable(&p("fifo")),
            Err(RepoFsError::NotRegular {
                kind: Kind::Fifo,
                ..
            })
        ));
    }

    #[test]
    fn reads_are_bounded() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("big"), vec![b'x'; 2000]).unwrap();
        let dir = RepoDir::open(root.path(), "a repository").unwrap();
        let err = dir
            .read(&p("big"), Limit::new(1000, "max_test_bytes"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`big` is 2000 bytes, over the limit of 1000 bytes (max_test_bytes)"
        );
    }

    #[test]
    fn writes_replace_atomically_and_never_through_links() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("host.txt"), "keep").unwrap();
        symlink(outside.path(), root.path().join("out")).unwrap();
        symlink(outside.path().join("host.txt"), root.path().join("f.txt")).unwrap();
        let dir = RepoDir::open(root.path(), "a repository").unwrap();
        assert!(matches!(
            dir.write(&p("out/host.txt"), b"changed"),
            Err(RepoFsError::Link { .. })
        ));
        assert!(matches!(
            dir.write(&p("f.txt"), b"changed"),
            Err(RepoFsError::Link { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(outside.path().join("host.txt")).unwrap(),
            "keep"
        );
        dir.write(&p("new/dir/x.md"), b"x").unwrap();
        assert_eq!(
            std::fs::read(root.path().join("new/dir/x.md")).unwrap(),
            b"x"
        );
        // An uncommitted write leaves nothing behind.
        drop(dir.prepare_write(&p("new/dir/y.md"), b"y").unwrap());
        let names: Vec<_> = std::fs::read_dir(root.path().join("new/dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.md"]);
    }

    #[test]
    fn sparse_copies_keep_their_holes() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("sparse");
        let f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        drop(f);
        let dst = root.path().join("copy");
        let copied = copy_sparse(File::open(&src).unwrap(), &dst, 64 << 20).unwrap();
        assert_eq!(copied, 64 << 20);
        let meta = std::fs::metadata(&dst).unwrap();
        assert_eq!(meta.len(), 64 << 20);
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
    }
}
