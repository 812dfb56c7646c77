//! The directory operations through `std::fs`, below a root directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// A directory the paths are relative to.
pub(super) struct Under<'p>(pub &'p Path);

impl super::Dir for Under<'_> {
    fn create_new(&self, path: &str, bytes: &[u8]) -> io::Result<bool> {
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.0.join(path));
        match opened {
            Ok(mut file) => file.write_all(bytes).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.0.join(path))
    }

    fn overwrite(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        File::create(self.0.join(path))?.write_all(bytes)
    }

    /// Also creates the root when it is missing.
    fn create_parents(&self, path: &str) -> io::Result<()> {
        match self.0.join(path).parent() {
            Some(parent) => std::fs::create_dir_all(parent),
            None => Ok(()),
        }
    }
}
