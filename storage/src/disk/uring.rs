//! The io_uring disk (Linux): `write_at` and `sync_data` are submitted to one ring
//! per disk; reads (and releasing their mapped pages), creation and directory
//! operations are the same as [`super::std_disk::StdDisk`] (shared code).
//!
//! Only the log writer thread writes, so one ring behind a mutex is enough: the win
//! over `pwrite` is not concurrency but fewer syscalls and wake-ups per batch — a
//! batch's write and its fdatasync are submitted linked (`IO_LINK`) and reaped
//! with one `io_uring_enter` ([`DiskFile::write_and_sync`]).
//!
//! Soundness: an entry points at caller memory (buffers, iovecs). [`Ring::run`]
//! returns only once the entry's completion has been reaped, except when the
//! kernel refuses `io_uring_enter` in a way that leaves the entry's fate unknown;
//! then the ring is poisoned and never touched again. Entries only *read* our
//! memory (writes), and the kernel copies iovecs at submission, so a poisoned ring
//! cannot scribble on freed memory.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use io_uring::{opcode, squeue, types, IoUring, Probe};
use parking_lot::Mutex;

use super::std_disk::MappedFile;
use super::{Disk, DiskFile};

const RING_ENTRIES: u32 = 8;
/// Largest single `Write` length we submit (the kernel caps one write near 2 GiB).
const WRITE_CHUNK_MAX: usize = 1 << 30;
/// Most iovecs per `Writev` (Linux `UIO_MAXIOV`).
const IOVECS_MAX: usize = 1024;

/// io_uring disk.
pub struct UringDisk {
    ring: Arc<Ring>,
}

impl UringDisk {
    /// Creates a ring and checks that the kernel runs write, writev and fsync
    /// through it; fails if io_uring is unavailable or restricted.
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::new(RING_ENTRIES)?;
        check_opcodes(&ring)?;
        let ring = Ring { state: Mutex::new(RingState { ring, next_user_data: 1, poisoned: None }) };
        let nop = ring.run(opcode::Nop::new().build())?;
        if nop != 0 {
            return Err(io::Error::other(format!("io_uring nop probe completed with {nop}")));
        }
        Ok(Self { ring: Arc::new(ring) })
    }
}

fn check_opcodes(ring: &IoUring) -> io::Result<()> {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let needed = [(opcode::Write::CODE, "write"), (opcode::Writev::CODE, "writev"), (opcode::Fsync::CODE, "fsync")];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("io_uring lacks {name}")));
        }
    }
    Ok(())
}

impl Disk for UringDisk {
    fn create(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn DiskFile>> {
        Ok(Arc::new(UringFile { inner: MappedFile::create(path, len_bytes)?, ring: self.ring.clone() }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        Ok(Arc::new(UringFile { inner: MappedFile::open(path)?, ring: self.ring.clone() }))
    }
    super::std_disk::std_dir_ops!();
    fn kind(&self) -> &'static str {
        "io_uring"
    }
}

struct UringFile {
    inner: MappedFile,
    ring: Arc<Ring>,
}

impl UringFile {
    fn fd(&self) -> types::Fd {
        types::Fd(self.inner.file().as_raw_fd())
    }
}

impl DiskFile for UringFile {
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        let mut iovecs: Vec<libc::iovec> = bufs
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() })
            .collect();
        let mut first = 0;
        let mut at = offset;
        while first < iovecs.len() {
            let written = self.write_once(at, &iovecs[first..])?;
            first += advance(&mut iovecs[first..], written);
            at += written as u64;
        }
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let entry = opcode::Fsync::new(self.fd()).flags(types::FsyncFlags::DATASYNC).build();
        // Never retried, whatever the result: see the crate's failed-state rule.
        check_result(self.ring.run(entry)?).map(|_| ())
    }
    /// One contiguous buffer: a `Write` linked to an `Fsync(DATASYNC)`, submitted and
    /// reaped together (one `io_uring_enter`). If the write comes up short the kernel
    /// cancels the linked sync; the rest is then written and synced separately — the
    /// sync was never run, so that is no retry of a failed sync.
    fn write_and_sync(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), (&'static str, io::Error)> {
        let [buf] = bufs else {
            return self.write_at(offset, bufs).map_err(|e| ("write", e)).and_then(|()| self.sync_data().map_err(|e| ("fdatasync", e)));
        };
        if buf.is_empty() || buf.len() > WRITE_CHUNK_MAX {
            return self.write_at(offset, bufs).map_err(|e| ("write", e)).and_then(|()| self.sync_data().map_err(|e| ("fdatasync", e)));
        }
        let write = opcode::Write::new(self.fd(), buf.as_ptr(), buf.len() as u32).offset(offset).build().flags(squeue::Flags::IO_LINK);
        let sync = opcode::Fsync::new(self.fd()).flags(types::FsyncFlags::DATASYNC).build();
        let [written, synced] = self.ring.run_linked_pair(write, sync).map_err(|e| ("write", e))?;
        let written = check_result(written).map_err(|e| ("write", e))? as usize;
        if written < buf.len() {
            self.write_at(offset + written as u64, &[&buf[written..]]).map_err(|e| ("write", e))?;
            return self.sync_data().map_err(|e| ("fdatasync", e));
        }
        match synced {
            res if res >= 0 => Ok(()),
            res if res == -libc::ECANCELED => self.sync_data().map_err(|e| ("fdatasync", e)),
            res => Err(("fdatasync", io::Error::from_raw_os_error(-res))),
        }
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

impl UringFile {
    /// One write or writev; returns how many bytes the kernel wrote (> 0).
    fn write_once(&self, offset: u64, iovecs: &[libc::iovec]) -> io::Result<usize> {
        loop {
            let entry = match iovecs {
                [one] => {
                    let len = one.iov_len.min(WRITE_CHUNK_MAX) as u32;
                    opcode::Write::new(self.fd(), one.iov_base as *const u8, len).offset(offset).build()
                }
                many => {
                    let count = many.len().min(IOVECS_MAX) as u32;
                    opcode::Writev::new(self.fd(), many.as_ptr(), count).offset(offset).build()
                }
            };
            let res = self.ring.run(entry)?;
            if res == -libc::EINTR || res == -libc::EAGAIN {
                continue;
            }
            let written = check_result(res)? as usize;
            if written == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "io_uring write wrote 0 bytes"));
            }
            return Ok(written);
        }
    }
}

/// Consumes `written` bytes from the front of `iovecs`; returns how many iovecs
/// were used up entirely (the next one may be partially advanced).
fn advance(iovecs: &mut [libc::iovec], mut written: usize) -> usize {
    let mut done = 0;
    for iov in iovecs.iter_mut() {
        if written < iov.iov_len {
            // SAFETY: `written < iov_len`, so the new base stays inside the buffer.
            iov.iov_base = unsafe { (iov.iov_base as *mut u8).add(written) } as *mut libc::c_void;
            iov.iov_len -= written;
            return done;
        }
        written -= iov.iov_len;
        done += 1;
    }
    assert_eq!(written, 0, "kernel reported more bytes written than submitted");
    done
}

fn check_result(res: i32) -> io::Result<i32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res)
    }
}

struct Ring {
    state: Mutex<RingState>,
}

struct RingState {
    ring: IoUring,
    next_user_data: u64,
    /// Set when an entry's fate became unknown; the ring is then unusable.
    poisoned: Option<String>,
}

impl Ring {
    /// Submits two entries (the first flagged `IO_LINK` by the caller) and waits for
    /// both completions; returns their raw results in submission order.
    fn run_linked_pair(&self, first: squeue::Entry, second: squeue::Entry) -> io::Result<[i32; 2]> {
        let mut st = self.state.lock();
        if let Some(why) = &st.poisoned {
            return Err(io::Error::other(format!("io_uring unusable: {why}")));
        }
        let ids = [st.next_user_data, st.next_user_data + 1];
        st.next_user_data += 2;
        let entries = [first.user_data(ids[0]), second.user_data(ids[1])];
        // SAFETY: both entries' buffers are borrowed by our caller for the whole call,
        // and we return only after reaping both completions (or poison the ring).
        unsafe { st.ring.submission().push_multiple(&entries) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        let mut results: [Option<i32>; 2] = [None, None];
        while results.iter().any(Option::is_none) {
            let missing = results.iter().filter(|r| r.is_none()).count();
            match st.ring.submit_and_wait(missing) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)) => {}
                Err(e) => {
                    st.poisoned = Some(format!("io_uring_enter failed: {e}"));
                    return Err(e);
                }
            }
            for cqe in st.ring.completion() {
                let slot = ids.iter().position(|id| *id == cqe.user_data());
                let slot = slot.expect("io_uring completion for an entry we did not submit");
                results[slot] = Some(cqe.result());
            }
        }
        Ok([results[0].expect("reaped"), results[1].expect("reaped")])
    }

    /// Submits one entry and waits for its completion; returns the raw result.
    fn run(&self, entry: squeue::Entry) -> io::Result<i32> {
        let mut st = self.state.lock();
        if let Some(why) = &st.poisoned {
            return Err(io::Error::other(format!("io_uring unusable: {why}")));
        }
        let user_data = st.next_user_data;
        st.next_user_data += 1;
        let entry = entry.user_data(user_data);
        // SAFETY: the entry's buffers are borrowed by our caller for the whole call,
        // and we return only after reaping its completion (or poison the ring).
        unsafe { st.ring.submission().push(&entry) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        loop {
            match st.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)) => {}
                Err(e) => {
                    st.poisoned = Some(format!("io_uring_enter failed: {e}"));
                    return Err(e);
                }
            }
            if let Some(cqe) = st.ring.completion().next() {
                assert_eq!(cqe.user_data(), user_data, "io_uring completion for an entry we did not submit");
                return Ok(cqe.result());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_walks_partial_iovecs() {
        let a = [1u8; 4];
        let b = [2u8; 4];
        let mut iovs =
            [libc::iovec { iov_base: a.as_ptr() as *mut _, iov_len: 4 }, libc::iovec { iov_base: b.as_ptr() as *mut _, iov_len: 4 }];
        assert_eq!(advance(&mut iovs, 5), 1);
        assert_eq!(iovs[1].iov_len, 3);
        assert_eq!(advance(&mut iovs[1..], 3), 1);
    }

    #[test]
    fn uring_write_sync_read() {
        let disk = match UringDisk::new() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("skipping: io_uring unavailable: {e}");
                return;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let file = disk.create(&dir.path().join("u"), 1 << 16).unwrap();
        let big = vec![7u8; 40_000];
        file.write_at(3, &[b"head", &big, b"tail"]).unwrap();
        file.sync_data().unwrap();
        file.write_and_sync(40_011, &[b"linked"]).unwrap();
        assert_eq!(&file.read(40_011, 6).unwrap()[..], b"linked");
        let back = file.read(3, 40_008).unwrap();
        assert_eq!(&back[..4], b"head");
        assert!(back[4..40_004].iter().all(|b| *b == 7));
        assert_eq!(&back[40_004..], b"tail");
        assert_eq!(disk.kind(), "io_uring");
    }
}
