//! A [`SimDisk`] wrapper that counts what is in flight, so the simulation's clock
//! can wait for the node log's writer thread (a real OS thread the tokio clock does
//! not know about) before it moves time on.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hourglass_storage::disk::sim::SimDisk;
use hourglass_storage::disk::{Disk, DiskFile};

/// Counters the clock watches: any change means the system is still moving.
#[derive(Default)]
pub struct Activity {
    events: AtomicU64,
    disk_calls_in_flight: AtomicU64,
}

impl Activity {
    pub fn bump(&self) {
        self.events.fetch_add(1, Ordering::SeqCst);
    }
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::SeqCst)
    }
    pub fn disk_busy(&self) -> bool {
        self.disk_calls_in_flight.load(Ordering::SeqCst) > 0
    }
    fn disk_call<T>(&self, call: impl FnOnce() -> T) -> T {
        self.disk_calls_in_flight.fetch_add(1, Ordering::SeqCst);
        self.bump();
        let out = call();
        self.bump();
        self.disk_calls_in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

/// A [`SimDisk`] whose writes and syncs are counted in [`Activity`].
pub struct TrackedDisk {
    sim: SimDisk,
    activity: Arc<Activity>,
    /// Syncs are held (a stalled disk): a sync waiting on the hold is not counted
    /// as in flight, or the clock would wait for it forever.
    stalled: Arc<AtomicBool>,
}

impl TrackedDisk {
    pub fn new(sim: SimDisk, activity: Arc<Activity>, stalled: Arc<AtomicBool>) -> Self {
        Self { sim, activity, stalled }
    }

    fn wrap(&self, file: Arc<dyn DiskFile>) -> Arc<dyn DiskFile> {
        Arc::new(TrackedFile { file, activity: self.activity.clone(), stalled: self.stalled.clone() })
    }
}

impl Disk for TrackedDisk {
    fn create(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn DiskFile>> {
        let file = self.activity.disk_call(|| self.sim.create(path, len_bytes))?;
        Ok(self.wrap(file))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let file = self.sim.open(path)?;
        Ok(self.wrap(file))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.sim.list(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.activity.disk_call(|| self.sim.remove(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.activity.disk_call(|| self.sim.rename(from, to))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.activity.disk_call(|| self.sim.sync_dir(dir))
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.sim.create_dir_all(dir)
    }
    fn kind(&self) -> &'static str {
        "sim"
    }
}

struct TrackedFile {
    file: Arc<dyn DiskFile>,
    activity: Arc<Activity>,
    stalled: Arc<AtomicBool>,
}

impl DiskFile for TrackedFile {
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        self.activity.disk_call(|| self.file.write_at(offset, bufs))
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.stalled.load(Ordering::SeqCst) {
            return self.file.sync_data();
        }
        self.activity.disk_call(|| self.file.sync_data())
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.activity.disk_call(|| self.file.set_len(len_bytes))
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        self.file.read(offset, len)
    }
    fn release_pages(&self, offset: u64, len: u64) -> io::Result<()> {
        self.file.release_pages(offset, len)
    }
}
