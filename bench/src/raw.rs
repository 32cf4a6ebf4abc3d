//! The disk's own limits, with plain syscalls and no log: the denominators of every
//! ratio in `docs/benchmarks.md`. Run in the same process and on the same file
//! system as the log benches.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Histogram;

/// How the file under a small-write loop was prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prep {
    /// `fallocate`d (unwritten extents), as the node log prepares its segments: the
    /// first write into each block also makes the file system log an extent change.
    Fallocated,
    /// Written with zeros and synced beforehand: a pure data overwrite, the device's
    /// best case for a durable small write.
    Overwrite,
    /// Empty file that grows with every write (size change on each `fdatasync`).
    Append,
}

impl Prep {
    pub fn name(self) -> &'static str {
        match self {
            Prep::Fallocated => "fallocated",
            Prep::Overwrite => "overwrite",
            Prep::Append => "append",
        }
    }
}

/// Result of a loop of durable writes.
#[derive(Debug, Clone)]
pub struct SmallWrites {
    pub ops: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub latency: Histogram,
}

impl SmallWrites {
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn fallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on an fd we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn prepare(path: &Path, prep: Prep, len: u64) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    match prep {
        Prep::Fallocated => fallocate(&file, len)?,
        Prep::Overwrite => {
            let zeros = vec![0u8; 1 << 20];
            let mut off = 0;
            while off < len {
                let n = (len - off).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], off)?;
                off += n as u64;
            }
            file.sync_all()?;
        }
        Prep::Append => {}
    }
    Ok(file)
}

/// One `pwrite` of `record_bytes` at the next offset and one `fdatasync` per
/// operation, back to back on one thread, for `duration` (at most `max_ops`).
pub fn small_write_fsync(dir: &Path, prep: Prep, record_bytes: usize, duration: Duration, max_ops: u64) -> io::Result<SmallWrites> {
    // Prepared region; the loop wraps to its start when it gets there (never for
    // `Append`, whose point is growth).
    let region = (record_bytes as u64).saturating_mul(max_ops).clamp(1 << 20, 64 << 20);
    let path = dir.join(format!("raw-small-{}", prep.name()));
    let file = prepare(&path, prep, region)?;
    let buf = vec![0xA5u8; record_bytes];
    let mut latency = Histogram::with_capacity(1 << 16);
    let mut off = 0u64;
    let mut ops = 0u64;
    let start = Instant::now();
    while ops < max_ops && start.elapsed() < duration {
        let t = Instant::now();
        file.write_all_at(&buf, off)?;
        file.sync_data()?;
        latency.record(t.elapsed());
        off += record_bytes as u64;
        if prep != Prep::Append && off + record_bytes as u64 > region {
            off = 0;
        }
        ops += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(SmallWrites { ops, bytes: ops * record_bytes as u64, elapsed, latency })
}

/// Result of a sequential write test.
#[derive(Debug, Clone, Copy)]
pub struct Sequential {
    pub bytes: u64,
    /// From the first write to the return of the last `fdatasync`.
    pub elapsed: Duration,
    pub syncs: u64,
}

impl Sequential {
    pub fn mb_per_s(&self) -> f64 {
        crate::mb_per_s(self.bytes, self.elapsed)
    }
}

/// Writes `total_bytes` in `chunk_bytes` writes to a fresh file (`fallocate`d first
/// if `fallocated`), with an `fdatasync` after every `sync_every_bytes` and at the end.
/// `sync_every_bytes >= total_bytes` is "write everything, then one fdatasync".
pub fn sequential_write(
    dir: &Path,
    fallocated: bool,
    chunk_bytes: usize,
    total_bytes: u64,
    sync_every_bytes: u64,
) -> io::Result<Sequential> {
    let path = dir.join("raw-seq");
    let file = prepare(&path, if fallocated { Prep::Fallocated } else { Prep::Append }, total_bytes)?;
    let buf: Vec<u8> = (0..chunk_bytes).map(|i| (i * 31 + 7) as u8).collect();
    let mut off = 0u64;
    let mut since_sync = 0u64;
    let mut syncs = 0;
    let start = Instant::now();
    while off < total_bytes {
        let n = (total_bytes - off).min(chunk_bytes as u64) as usize;
        file.write_all_at(&buf[..n], off)?;
        off += n as u64;
        since_sync += n as u64;
        if since_sync >= sync_every_bytes && off < total_bytes {
            file.sync_data()?;
            syncs += 1;
            since_sync = 0;
        }
    }
    file.sync_data()?;
    syncs += 1;
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(Sequential { bytes: total_bytes, elapsed, syncs })
}

/// Drops the page cache of one file (so a read test reads the device) — best effort.
pub fn drop_file_cache(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = File::open(path)?;
    // SAFETY: plain syscall on an fd we own.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_loops_run_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        for prep in [Prep::Fallocated, Prep::Overwrite, Prep::Append] {
            let r = small_write_fsync(dir.path(), prep, 100, Duration::from_secs(5), 3).unwrap();
            assert_eq!(r.ops, 3);
            assert_eq!(r.bytes, 300);
            assert_eq!(r.latency.len(), 3);
        }
        let s = sequential_write(dir.path(), true, 4096, 10_000, 8192).unwrap();
        assert_eq!(s.bytes, 10_000);
        assert_eq!(s.syncs, 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "bench files are removed");
    }
}
