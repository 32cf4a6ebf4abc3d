//! The portable real disk: positional `pwrite` + `fdatasync`, reads through `mmap`.
//!
//! [`MappedFile`] and the directory helpers here are shared with the io_uring disk,
//! which differs only in how `write_at` and `sync_data` reach the kernel.
//!
//! Reads map the whole file once and hand out [`Bytes`] slices of that map (zero
//! copy); when a read reaches past the current map but not past the end of the file
//! (the file grew), the file is mapped again. Old slices keep the old map alive.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::Mmap;
use parking_lot::RwLock;

use super::{Disk, DiskFile};

/// `pwrite` + `fdatasync` disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdDisk;

impl StdDisk {
    pub fn new() -> Self {
        Self
    }
}

/// The directory half of [`Disk`] for disks on the real file system (`std::fs`).
macro_rules! std_dir_ops {
    () => {
        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            $crate::disk::std_disk::list_dir(dir)
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            std::fs::remove_file(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            std::fs::rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            $crate::disk::std_disk::sync_dir(dir)
        }
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            std::fs::create_dir_all(dir)
        }
    };
}
pub(crate) use std_dir_ops;

impl Disk for StdDisk {
    fn create(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn DiskFile>> {
        Ok(Arc::new(StdFile { inner: MappedFile::create(path, len_bytes)? }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        Ok(Arc::new(StdFile { inner: MappedFile::open(path)? }))
    }
    std_dir_ops!();
    fn kind(&self) -> &'static str {
        "pwrite"
    }
}

struct StdFile {
    inner: MappedFile,
}

impl DiskFile for StdFile {
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        match bufs {
            [] => Ok(()),
            [one] => self.inner.file().write_all_at(one, offset),
            many => self.inner.file().write_all_at(&many.concat(), offset),
        }
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.file().sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.inner.set_len(len_bytes)
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        self.inner.read(offset, len)
    }
}

/// An open file read through a shared memory map of all of it.
pub(crate) struct MappedFile {
    file: File,
    path: PathBuf,
    /// The whole file as last mapped (empty until the first read).
    map: RwLock<Bytes>,
}

impl MappedFile {
    /// Creates `path` (failing if it exists), preallocated to `len_bytes`.
    pub(crate) fn create(path: &Path, len_bytes: u64) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        preallocate(&file, len_bytes)?;
        Ok(Self::wrap(file, path))
    }

    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self::wrap(file, path))
    }

    fn wrap(file: File, path: &Path) -> Self {
        Self { file, path: path.to_path_buf(), map: RwLock::new(Bytes::new()) }
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub(crate) fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        // Drop our map first: a map longer than a truncated file faults on access.
        // Slices handed out earlier keep their own map; callers must not shrink a
        // file below bytes they still read.
        let mut map = self.map.write();
        *map = Bytes::new();
        self.file.set_len(len_bytes)
    }

    pub(crate) fn read(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let end = offset.checked_add(len as u64).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("read range overflows at offset {offset}"))
        })?;
        if len == 0 && end <= self.len()? {
            return Ok(Bytes::new());
        }
        let map = self.map_covering(offset, end)?;
        debug_assert!(map.len() as u64 >= end, "map of {} bytes must cover read end {end}", map.len());
        Ok(map.slice(offset as usize..end as usize))
    }

    /// The current map if it covers `end`, else a fresh map of the whole file.
    fn map_covering(&self, offset: u64, end: u64) -> io::Result<Bytes> {
        {
            let map = self.map.read();
            if map.len() as u64 >= end {
                return Ok(map.clone());
            }
        }
        let mut map = self.map.write();
        if map.len() as u64 >= end {
            return Ok(map.clone());
        }
        let file_len = self.len()?;
        if end > file_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read of [{offset}, {end}) past the end of {} ({file_len} bytes)", self.path.display()),
            ));
        }
        // SAFETY: the map is read-only and shared. The log only writes bytes past
        // everything it has handed out, and never shrinks a mapped file (see
        // `set_len`), so no slice observes a truncation. Concurrent writes to the
        // same file by other processes are outside the contract.
        let mmap = unsafe { Mmap::map(&self.file)? };
        *map = Bytes::from_owner(mmap);
        Ok(map.clone())
    }
}

/// Reserves `len_bytes` of zeros for `file` (extent allocation where the file system
/// supports it, a sparse extension otherwise).
fn preallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    if len_bytes == 0 {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(len_bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("file length {len_bytes} too large")))?;
        loop {
            // SAFETY: plain syscall on an fd we own; no memory is passed.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
            if rc == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => break,
                _ => return Err(err),
            }
        }
    }
    file.set_len(len_bytes)
}

/// Names of the regular files directly inside `dir`, sorted.
pub(crate) fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) => names.push(name),
            Err(raw) => tracing::warn!(dir = %dir.display(), name = ?raw, "ignoring non-UTF-8 file name"),
        }
    }
    names.sort();
    Ok(names)
}

/// Makes entry changes inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_growth_remap() {
        let dir = tempfile::tempdir().unwrap();
        let disk = StdDisk::new();
        let path = dir.path().join("f");
        let file = disk.create(&path, 4096).unwrap();
        assert_eq!(file.len().unwrap(), 4096);
        assert_eq!(&file.read(0, 8).unwrap()[..], &[0u8; 8], "preallocated space reads as zeros");
        file.write_at(10, &[b"abc", b"def"]).unwrap();
        file.sync_data().unwrap();
        assert_eq!(&file.read(10, 6).unwrap()[..], b"abcdef");
        assert!(file.read(4090, 7).is_err(), "reading past the end is an error");
        file.write_at(4096, &[b"tail"]).unwrap();
        assert_eq!(&file.read(4096, 4).unwrap()[..], b"tail", "growth is remapped");
        assert!(disk.create(&path, 1).is_err(), "create refuses an existing file");
        assert_eq!(disk.list(dir.path()).unwrap(), vec!["f".to_string()]);
        disk.sync_dir(dir.path()).unwrap();
    }

    #[test]
    fn set_len_then_read_sees_new_length() {
        let dir = tempfile::tempdir().unwrap();
        let file = StdDisk::new().create(&dir.path().join("g"), 100).unwrap();
        file.write_at(0, &[b"xy"]).unwrap();
        assert_eq!(&file.read(0, 2).unwrap()[..], b"xy");
        file.set_len(1).unwrap();
        assert!(file.read(0, 2).is_err());
        assert_eq!(&file.read(0, 1).unwrap()[..], b"x");
        assert_eq!(file.read(1, 0).unwrap().len(), 0);
    }
}
