//! The portable real disk: positional `pwrite` + `fdatasync`, reads through `mmap`.
//!
//! [`MappedFile`] and the directory helpers here are shared with the io_uring disk,
//! which differs only in how `write_at` and `sync_data` reach the kernel.
//!
//! Reads map the whole file once and hand out [`Bytes`] slices of that map (zero
//! copy); when a read reaches past the current map but not past the end of the file
//! (the file grew), the file is mapped again. Old slices keep the old map alive.
//!
//! Every page a read touches stays in the process's page tables (and in its RSS as
//! `RssFile`) until the map goes away. [`DiskFile::release_pages`] drops ranges that
//! will not be read soon with `madvise(MADV_DONTNEED)`. Why that advice:
//! - On a shared file mapping `MADV_DONTNEED` only removes our page-table entries.
//!   The pages stay in the page cache (clean, reclaimable, shared with every other
//!   reader), and touching them again is a minor fault, not a disk read. Contents
//!   cannot change, so outstanding slices stay valid.
//! - `MADV_COLD` only moves the pages to the inactive LRU list: they stay mapped and
//!   keep counting in RSS, which is what we want to stop.
//! - `MADV_PAGEOUT` reclaims the pages, evicting them from the page cache when no one
//!   else maps them: the next history read of a parked workflow would go to disk. The
//!   kernel's LRU decides that better than we can.

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
    fn release_pages(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.release_pages(offset, len)
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
        let end = offset
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("read range overflows at offset {offset}")))?;
        if len == 0 && end <= self.len()? {
            return Ok(Bytes::new());
        }
        let map = self.map_covering(offset, end)?;
        debug_assert!(map.len() as u64 >= end, "map of {} bytes must cover read end {end}", map.len());
        Ok(map.slice(offset as usize..end as usize))
    }

    /// Drops the pages of `[offset, offset + len)`, widened to whole pages and
    /// clipped to the current map, from this process's page tables (see the module
    /// docs). Nothing to do when the file was never mapped.
    pub(crate) fn release_pages(&self, offset: u64, len: u64) -> io::Result<()> {
        // Holding the read lock keeps this map alive (and current) during the call.
        let map = self.map.read();
        let Some((start, bytes)) = page_range(map.len() as u64, offset, len) else { return Ok(()) };
        dont_need(&map[start..start + bytes])
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

/// Bytes of a page of memory (4 KiB unless the kernel says otherwise).
fn page_bytes() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf reads a constant of the running system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(page).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096)
    })
}

/// `[offset, offset + len)` with its start rounded down to a page and its end
/// clipped to a map of `map_len` bytes, as (start, length); `None` if empty. The
/// kernel rounds the length up to whole pages.
fn page_range(map_len: u64, offset: u64, len: u64) -> Option<(usize, usize)> {
    let end = offset.saturating_add(len).min(map_len);
    if end <= offset {
        return None;
    }
    let start = offset - offset % page_bytes();
    Some((usize::try_from(start).ok()?, usize::try_from(end - start).ok()?))
}

/// `madvise(MADV_DONTNEED)` over `range`, which starts on a page of a shared,
/// read-only file mapping (the kernel extends its end to a whole page).
#[cfg(target_os = "linux")]
fn dont_need(range: &[u8]) -> io::Result<()> {
    let ptr = range.as_ptr();
    if ptr as u64 & (page_bytes() - 1) != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "release_pages: range is not page-aligned"));
    }
    // SAFETY: `range` lies within a live mapping created by `Mmap::map` (MAP_SHARED,
    // PROT_READ), kept alive by the caller. On a shared file mapping MADV_DONTNEED
    // only drops page-table entries: later accesses fault the same file contents
    // back in, so no reference into the mapping can observe a change.
    let rc = unsafe { libc::madvise(ptr as *mut libc::c_void, range.len(), libc::MADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere the advice is skipped: pages stay mapped until the map is dropped.
#[cfg(not(target_os = "linux"))]
fn dont_need(_range: &[u8]) -> io::Result<()> {
    Ok(())
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
    fn released_pages_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let file = StdDisk::new().create(&dir.path().join("r"), 64 * 1024).unwrap();
        file.release_pages(0, 64 * 1024).expect("nothing mapped yet: nothing to do");
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        file.write_at(100, &[&data]).unwrap();
        let before = file.read(100, data.len()).unwrap();
        assert_eq!(&before[..], &data[..]);
        // Unaligned ranges, ranges past the end and empty ranges are all fine.
        file.release_pages(4097, 10_000).unwrap();
        file.release_pages(60_000, u64::MAX).unwrap();
        file.release_pages(5, 0).unwrap();
        file.release_pages(1 << 40, 1).unwrap();
        file.release_pages(0, 64 * 1024).unwrap();
        assert_eq!(&before[..], &data[..], "a slice taken before the release reads the same bytes");
        assert_eq!(&file.read(100, data.len()).unwrap()[..], &data[..], "and so does a fresh read");
        file.write_at(0, &[b"new"]).unwrap();
        assert_eq!(&file.read(0, 3).unwrap()[..], b"new", "writes after a release are seen");
    }

    #[test]
    fn page_ranges_start_on_a_page_and_stop_at_the_map() {
        let page = page_bytes();
        assert_eq!(page_range(10 * page, page + 1, 10), Some((page as usize, 11)));
        assert_eq!(page_range(10 * page, 0, u64::MAX), Some((0, 10 * page as usize)));
        assert_eq!(page_range(10 * page, 10 * page, 5), None);
        assert_eq!(page_range(0, 0, 5), None);
        assert_eq!(page_range(10 * page, 3, 0), None);
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
