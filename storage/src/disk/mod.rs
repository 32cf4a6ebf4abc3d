//! The disk seam: everything the node log and snapshot files do to a file system.
//!
//! Three implementations run the same log code:
//! - [`std_disk::StdDisk`]: positional `pwrite` + `fdatasync`, reads through `mmap`.
//! - [`uring::UringDisk`] (Linux): writes and `fdatasync` submitted through io_uring,
//!   reads through `mmap`. Chosen at run time by [`open_disk`] when the kernel allows.
//! - [`sim::SimDisk`]: in memory, for crash tests. It forgets writes that were not
//!   synced, can tear the last write, flip bits and fail `sync` on demand. It has no
//!   memory map, so [`DiskFile::release_pages`] is a no-op there (it only counts calls).
//! - [`switched::SyncFaultDisk`]: a real disk whose syncs fail while a switch is on
//!   (a failing device, for tests that run real server processes).
//!
//! Contract (what the log relies on):
//! - `write_at` writes all bytes or returns an error; after an error the file's
//!   contents in the written range are unspecified.
//! - Data written before a successful `sync_data` survives a crash; data written
//!   after the last successful `sync_data` may be lost, torn or partially present.
//! - A created or renamed file survives a crash only after `sync_dir` of its directory.
//! - `read` returns the bytes currently in the file (written, synced or not).
//! - `release_pages` never changes what any read (earlier or later) returns.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

pub mod sim;
pub mod std_disk;
pub mod switched;
#[cfg(target_os = "linux")]
pub mod uring;

/// A file system as the log sees it.
pub trait Disk: Send + Sync + 'static {
    /// Creates a new file (failing if it exists) of `len_bytes`, preallocated and
    /// zero-filled where the platform supports it.
    fn create(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn DiskFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>>;
    /// The names (not paths) of the files directly inside `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals inside `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// A short name for logs and benchmark reports ("pwrite", "io_uring", "sim").
    fn kind(&self) -> &'static str;
}

/// An open file.
#[allow(clippy::len_without_is_empty)] // a file's length, not a collection's
pub trait DiskFile: Send + Sync {
    /// Writes every byte of `bufs`, back to back, starting at `offset`, as one write.
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<()>;
    /// `fdatasync`. After a failure the file must not be written again.
    fn sync_data(&self) -> io::Result<()>;
    /// `write_at` then `sync_data`, as one operation where the disk can do better
    /// (io_uring submits the write and the fdatasync linked, in one system call).
    /// The error names the step that failed; a failed sync is never retried.
    fn write_and_sync(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), (&'static str, io::Error)> {
        self.write_at(offset, bufs).map_err(|e| ("write", e))?;
        self.sync_data().map_err(|e| ("fdatasync", e))
    }
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) to `len_bytes`.
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;
    /// `len` bytes at `offset`. Real disks return a zero-copy slice of a memory map;
    /// reading past the end of the file is an error.
    fn read(&self, offset: u64, len: usize) -> io::Result<Bytes>;
    /// Says that `[offset, offset + len)` will not be read again soon. Real disks
    /// drop those pages from this process's memory map (`madvise(MADV_DONTNEED)` on
    /// the shared, read-only file mapping): the process's resident set shrinks, the
    /// data stays in the kernel's page cache, and the next read of a page faults it
    /// back in (from the cache, or from disk if the kernel evicted it meanwhile).
    /// Contents never change, so slices handed out earlier stay valid and equal.
    /// Purely advisory: an error only means the pages stay mapped. The range is
    /// widened to whole pages and clipped to what is mapped; a file not mapped yet
    /// has nothing to release. The sim disk has no map: a no-op that counts calls.
    fn release_pages(&self, offset: u64, len: u64) -> io::Result<()>;
}

/// Which write path a real disk uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// io_uring when the kernel allows it, else `pwrite`.
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// Portable `pwrite` + `fdatasync`.
    Pwrite,
}

/// Opens the real disk for `mode`, probing io_uring at run time for [`IoMode::Auto`].
pub fn open_disk(mode: IoMode) -> io::Result<Arc<dyn Disk>> {
    match mode {
        IoMode::Pwrite => Ok(Arc::new(std_disk::StdDisk::new())),
        #[cfg(target_os = "linux")]
        IoMode::Uring => Ok(Arc::new(uring::UringDisk::new()?)),
        #[cfg(not(target_os = "linux"))]
        IoMode::Uring => Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring needs Linux")),
        IoMode::Auto => {
            #[cfg(target_os = "linux")]
            if let Ok(disk) = uring::UringDisk::new() {
                return Ok(Arc::new(disk));
            }
            Ok(Arc::new(std_disk::StdDisk::new()))
        }
    }
}

/// `dir/name` helper used by every implementation.
pub fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
