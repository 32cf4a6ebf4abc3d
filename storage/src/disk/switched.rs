//! A real disk whose syncs can be made to fail while the process runs: the fault of
//! a failing device (an `fdatasync` that returns `EIO`), for tests that run real
//! server processes. Everything else passes through to the wrapped disk.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::{Disk, DiskFile};

/// Wraps `inner`; while `fail_syncs` is set, every `sync_data` (and the sync of
/// `write_and_sync`) and `sync_dir` fails with an I/O error.
pub struct SyncFaultDisk {
    inner: Arc<dyn Disk>,
    fail_syncs: Arc<AtomicBool>,
}

impl SyncFaultDisk {
    pub fn new(inner: Arc<dyn Disk>, fail_syncs: Arc<AtomicBool>) -> Self {
        Self { inner, fail_syncs }
    }

    fn wrap(&self, file: Arc<dyn DiskFile>) -> Arc<dyn DiskFile> {
        Arc::new(SyncFaultFile { inner: file, fail_syncs: self.fail_syncs.clone() })
    }
}

fn check(fail_syncs: &AtomicBool) -> io::Result<()> {
    if fail_syncs.load(Ordering::Acquire) {
        return Err(io::Error::other("injected fault: the device failed the sync"));
    }
    Ok(())
}

impl Disk for SyncFaultDisk {
    fn create(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn DiskFile>> {
        Ok(self.wrap(self.inner.create(path, len_bytes)?))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        Ok(self.wrap(self.inner.open(path)?))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        check(&self.fail_syncs)?;
        self.inner.sync_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

struct SyncFaultFile {
    inner: Arc<dyn DiskFile>,
    fail_syncs: Arc<AtomicBool>,
}

impl DiskFile for SyncFaultFile {
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        self.inner.write_at(offset, bufs)
    }
    fn sync_data(&self) -> io::Result<()> {
        check(&self.fail_syncs)?;
        self.inner.sync_data()
    }
    fn write_and_sync(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), (&'static str, io::Error)> {
        self.inner.write_at(offset, bufs).map_err(|e| ("write", e))?;
        check(&self.fail_syncs).map_err(|e| ("fdatasync", e))?;
        self.inner.sync_data().map_err(|e| ("fdatasync", e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_fail_only_while_the_switch_is_on() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let switch = Arc::new(AtomicBool::new(false));
        let disk = SyncFaultDisk::new(Arc::new(super::super::std_disk::StdDisk::new()), switch.clone());
        let file = disk.create(&dir.path().join("f"), 4096).expect("created");
        file.write_and_sync(0, &[b"before"]).expect("the switch is off");
        switch.store(true, Ordering::Release);
        assert_eq!(file.write_and_sync(6, &[b"after"]).map_err(|(step, _)| step), Err("fdatasync"));
        assert!(file.sync_data().is_err());
        assert!(disk.sync_dir(dir.path()).is_err());
        assert_eq!(&file.read(0, 6).expect("reads pass through")[..], b"before");
    }
}
