//! Simulated disk: an in-memory file system that models what a crash may leave.
//!
//! Each file (inode) has `durable` bytes (what survives a crash for sure) and
//! `current` bytes (what reads see), plus the list of writes and length changes
//! since the last `sync_data`. Directory changes (create, remove, rename) go to an
//! ordered journal: `sync_dir` makes the journal durable up to the directory's last
//! change, and a crash keeps a random prefix of the rest (metadata can reach the
//! disk before it is asked to, but in order, as on a journaling file system).
//!
//! [`SimDisk::crash`] halts this disk (every later call fails, like a machine that
//! lost power) and returns a new disk holding what a restart could find: the
//! durable directory entries plus a prefix of the journal; each file's durable
//! bytes plus — chosen by the seeded generator — none, all, a prefix (with the next
//! write torn at 512-byte sector granularity), or a random subset of sectors of the
//! unsynced writes, applied in any order. Faults can be armed: fail a future write (partially applied) or sync
//! (data stays unsynced), flip a bit, or hold syncs until released. Deterministic
//! for a seed; no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::{Disk, DiskFile};

mod model;
pub use model::SECTOR_BYTES;
use model::{some_sectors, DirOp, Inode, Op, SplitMix64};

/// Counters of what the disk was asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub writes: u64,
    pub failed_writes: u64,
    /// `sync_data` calls, including failed ones.
    pub syncs: u64,
    pub failed_syncs: u64,
    pub dir_syncs: u64,
    /// `release_pages` calls. The sim has no memory map, so they change nothing;
    /// the count lets tests check that the log's real code path issues them.
    pub page_releases: u64,
}

/// In-memory crash-simulating disk. Clones share the same state.
#[derive(Clone)]
pub struct SimDisk {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    sync_released: Condvar,
}

#[derive(Default)]
struct State {
    rng: SplitMix64,
    inodes: BTreeMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    /// Directory changes since they were last made durable, oldest first.
    dir_journal: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    next_inode: u64,
    /// Fail the write (sync) after this many more succeed.
    fail_write_in: Option<u64>,
    fail_sync_in: Option<u64>,
    hold_syncs: bool,
    halted: bool,
    stats: SimStats,
}

fn err(kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

fn eio(msg: &str) -> io::Error {
    let os = io::Error::from_raw_os_error(libc::EIO);
    io::Error::new(os.kind(), format!("{msg}: {os}"))
}

impl SimDisk {
    pub fn new(seed: u64) -> Self {
        let state = State { rng: SplitMix64(seed), next_inode: 1, ..State::default() };
        Self { shared: Arc::new(Shared { state: Mutex::new(state), sync_released: Condvar::new() }) }
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = self.shared.state.lock();
        if st.halted {
            return Err(err(io::ErrorKind::Other, "simulated disk halted by a crash".into()));
        }
        Ok(st)
    }

    /// Halts this disk and returns what a restart after a power loss could find.
    pub fn crash(&self) -> SimDisk {
        let mut st = self.shared.state.lock();
        st.halted = true;
        st.hold_syncs = false;
        self.shared.sync_released.notify_all();
        let mut rng = SplitMix64(st.rng.next());
        let mut next = State { rng: SplitMix64(rng.next()), next_inode: 1, dirs: st.dirs.clone(), ..State::default() };
        let mut names = st.durable_names.clone();
        let kept = rng.below(st.dir_journal.len() as u64 + 1) as usize;
        st.dir_journal[..kept].iter().for_each(|op| op.apply(&mut names));
        let mut renumbered = BTreeMap::new();
        for (name, ino) in &names {
            let new_ino = *renumbered.entry(*ino).or_insert_with(|| {
                let image = st.inodes.get(ino).map(|i| i.crash_image(&mut rng)).unwrap_or_default();
                let id = next.next_inode;
                next.next_inode += 1;
                next.inodes.insert(id, Inode { durable: image.clone(), current: image, pending: Vec::new() });
                id
            });
            next.names.insert(name.clone(), new_ino);
        }
        next.durable_names = next.names.clone();
        SimDisk { shared: Arc::new(Shared { state: Mutex::new(next), sync_released: Condvar::new() }) }
    }

    /// The `n`+1-th `write_at` from now fails (after applying a random part of its data).
    pub fn fail_write_after(&self, n: u64) {
        self.shared.state.lock().fail_write_in = Some(n);
    }
    /// The `n`+1-th `sync_data` from now fails; its data stays unsynced.
    pub fn fail_sync_after(&self, n: u64) {
        self.shared.state.lock().fail_sync_in = Some(n);
    }
    pub fn fail_next_write(&self) {
        self.fail_write_after(0)
    }
    pub fn fail_next_sync(&self) {
        self.fail_sync_after(0)
    }

    /// While held, `sync_data` blocks (until released or the disk crashes).
    pub fn hold_syncs(&self, hold: bool) {
        self.shared.state.lock().hold_syncs = hold;
        self.shared.sync_released.notify_all();
    }

    /// Flips bit `bit` (0..8) of the byte at `offset` in `path`, in both its durable
    /// and current bytes (media corruption). A later write over the byte replaces it.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        let mut st = self.lock()?;
        let ino = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let inode = st.inodes.get_mut(&ino).expect("every name refers to a live inode");
        let mask = 1u8 << (bit % 8);
        let at = offset as usize;
        for bytes in [&mut inode.durable, &mut inode.current] {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= mask;
            }
        }
        Ok(())
    }

    /// Creates (or replaces) a file whose bytes and directory entry are already
    /// durable; for tests and fuzz targets that start from arbitrary bytes.
    pub fn put_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        let mut st = self.lock()?;
        if let Some(dir) = path.parent() {
            add_dirs(&mut st, dir);
        }
        commit_journal(&mut st, usize::MAX);
        let ino = new_inode(&mut st, Inode { durable: contents.to_vec(), current: contents.to_vec(), pending: vec![] });
        st.names.insert(path.to_path_buf(), ino);
        st.durable_names.insert(path.to_path_buf(), ino);
        Ok(())
    }

    /// The bytes a read of `path` would see now.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.shared.state.lock();
        st.names.get(path).map(|ino| st.inodes[ino].current.clone())
    }

    pub fn stats(&self) -> SimStats {
        self.shared.state.lock().stats
    }
}

fn not_found(path: &Path) -> io::Error {
    err(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))
}

fn add_dirs(st: &mut State, dir: &Path) {
    for d in dir.ancestors() {
        st.dirs.insert(d.to_path_buf());
    }
}

/// Makes the first `upto` journaled directory changes durable.
fn commit_journal(st: &mut State, upto: usize) {
    let upto = upto.min(st.dir_journal.len());
    let State { dir_journal, durable_names, .. } = st;
    for op in dir_journal.drain(..upto) {
        op.apply(durable_names);
    }
}

fn link(st: &mut State, op: DirOp) {
    op.apply(&mut st.names);
    st.dir_journal.push(op);
}

fn new_inode(st: &mut State, inode: Inode) -> u64 {
    let ino = st.next_inode;
    st.next_inode += 1;
    st.inodes.insert(ino, inode);
    ino
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

impl Disk for SimDisk {
    fn create(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn DiskFile>> {
        let mut st = self.lock()?;
        if !st.dirs.contains(parent_of(path)) {
            return Err(err(io::ErrorKind::NotFound, format!("{}: no such directory", parent_of(path).display())));
        }
        if st.names.contains_key(path) {
            return Err(err(io::ErrorKind::AlreadyExists, format!("{}: exists", path.display())));
        }
        let len = usize::try_from(len_bytes).map_err(|_| err(io::ErrorKind::InvalidInput, "too long".into()))?;
        let inode = Inode { durable: vec![], current: vec![0; len], pending: vec![Op::SetLen(len_bytes)] };
        let ino = new_inode(&mut st, inode);
        link(&mut st, DirOp::Link { path: path.to_path_buf(), ino });
        Ok(Arc::new(SimFile { disk: self.clone(), ino, path: path.to_path_buf() }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let st = self.lock()?;
        let ino = *st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Arc::new(SimFile { disk: self.clone(), ino, path: path.to_path_buf() }))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock()?;
        if !st.dirs.contains(dir) {
            return Err(err(io::ErrorKind::NotFound, format!("{}: no such directory", dir.display())));
        }
        let mut names: Vec<String> = st
            .names
            .keys()
            .filter(|p| parent_of(p) == dir)
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock()?;
        if !st.names.contains_key(path) {
            return Err(not_found(path));
        }
        link(&mut st, DirOp::Unlink { path: path.to_path_buf() });
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock()?;
        if !st.names.contains_key(from) {
            return Err(not_found(from));
        }
        link(&mut st, DirOp::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock()?;
        st.stats.dir_syncs += 1;
        // Like a journaling file system: everything journaled up to the last change
        // in `dir` becomes durable with it.
        let last = st.dir_journal.iter().rposition(|op| op.touches(dir));
        commit_journal(&mut st, last.map_or(0, |i| i + 1));
        debug_assert!(
            st.names.iter().filter(|(p, _)| parent_of(p) == dir).eq(st.durable_names.iter().filter(|(p, _)| parent_of(p) == dir)),
            "after sync_dir the durable entries of {} equal the current ones",
            dir.display()
        );
        Ok(())
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        add_dirs(&mut *self.lock()?, dir);
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "sim"
    }
}

struct SimFile {
    disk: SimDisk,
    ino: u64,
    path: PathBuf,
}

impl SimFile {
    fn with_inode<T>(&self, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut st = self.disk.lock()?;
        let inode = st.inodes.get_mut(&self.ino).expect("open files keep their inode");
        Ok(f(inode))
    }
}

/// Counts down an armed fault; true when it fires now.
fn fires(slot: &mut Option<u64>) -> bool {
    match slot {
        Some(0) => {
            *slot = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

impl DiskFile for SimFile {
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        let data = bufs.concat();
        let mut guard = self.disk.lock()?;
        let st = &mut *guard;
        st.stats.writes += 1;
        let fail = fires(&mut st.fail_write_in);
        let inode = st.inodes.get_mut(&self.ino).expect("open files keep their inode");
        let op = Op::Write { offset, data };
        if fail {
            st.stats.failed_writes += 1;
            for piece in some_sectors(&op, &mut st.rng) {
                piece.apply(&mut inode.current);
                inode.pending.push(piece);
            }
            return Err(eio(&format!("simulated write failure on {}", self.path.display())));
        }
        op.apply(&mut inode.current);
        inode.pending.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.disk.lock()?;
        st.stats.syncs += 1;
        while st.hold_syncs && !st.halted {
            self.disk.shared.sync_released.wait(&mut st);
        }
        if st.halted {
            return Err(err(io::ErrorKind::Other, "simulated disk halted by a crash".into()));
        }
        if fires(&mut st.fail_sync_in) {
            st.stats.failed_syncs += 1;
            return Err(eio(&format!("simulated sync failure on {}", self.path.display())));
        }
        let inode = st.inodes.get_mut(&self.ino).expect("open files keep their inode");
        for op in inode.pending.drain(..) {
            op.apply(&mut inode.durable);
        }
        debug_assert!(inode.durable.len() == inode.current.len(), "a synced file's durable bytes equal its current bytes");
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.with_inode(|inode| inode.current.len() as u64)
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.with_inode(|inode| {
            let op = Op::SetLen(len_bytes);
            op.apply(&mut inode.current);
            inode.pending.push(op);
        })
    }

    /// A no-op (reads copy out of memory; there is no map to shrink), counted in
    /// [`SimStats::page_releases`]. Fails like every call once the disk crashed.
    fn release_pages(&self, _offset: u64, _len: u64) -> io::Result<()> {
        self.disk.lock()?.stats.page_releases += 1;
        Ok(())
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        self.with_inode(|inode| {
            let end = offset.checked_add(len as u64).filter(|end| *end <= inode.current.len() as u64);
            match end {
                Some(end) => Ok(Bytes::copy_from_slice(&inode.current[offset as usize..end as usize])),
                None => Err(err(
                    io::ErrorKind::UnexpectedEof,
                    format!("read of {len} bytes at {offset} past the end of {}", self.path.display()),
                )),
            }
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(seed: u64) -> (SimDisk, PathBuf) {
        let disk = SimDisk::new(seed);
        disk.create_dir_all(Path::new("/d")).unwrap();
        (disk, PathBuf::from("/d/f"))
    }

    #[test]
    fn synced_data_and_entries_survive_every_crash() {
        for seed in 0..64 {
            let (disk, path) = setup(seed);
            let f = disk.create(&path, 1024).unwrap();
            f.write_at(0, &[b"durable"]).unwrap();
            f.sync_data().unwrap();
            disk.sync_dir(Path::new("/d")).unwrap();
            f.write_at(2000, &[&[9u8; 700]]).unwrap();
            let after = disk.crash();
            assert!(f.write_at(0, &[b"x"]).is_err(), "a crashed disk is halted");
            let image = after.contents(&path).expect("synced entry survives");
            assert_eq!(&image[..7], b"durable", "seed {seed}");
            assert!(image.len() == 1024 || image.len() >= 2000, "seed {seed}: unsynced growth all or nothing");
        }
    }

    #[test]
    fn unsynced_entries_and_writes_may_vanish() {
        let (mut lost_file, mut kept_file) = (false, false);
        let mut torn = false;
        for seed in 0..64 {
            let (disk, path) = setup(seed);
            let f = disk.create(&path, 0).unwrap();
            f.sync_data().unwrap();
            disk.sync_dir(Path::new("/d")).unwrap();
            f.write_at(0, &[&[1u8; 2048]]).unwrap();
            disk.create(Path::new("/d/g"), 10).unwrap();
            let after = disk.crash();
            lost_file |= after.contents(Path::new("/d/g")).is_none();
            kept_file |= after.contents(Path::new("/d/g")).is_some();
            let image = after.contents(&path).unwrap();
            assert!(image.iter().all(|b| *b <= 1));
            torn |= image.len() == 2048 && image.contains(&0) && image.contains(&1);
        }
        assert!(lost_file && kept_file, "an unsynced directory entry may be lost or kept");
        assert!(torn, "some crash tears the unsynced write at sector granularity");
    }

    #[test]
    fn faults_fire_once_and_count() {
        let (disk, path) = setup(1);
        let f = disk.create(&path, 16).unwrap();
        disk.fail_next_sync();
        assert!(f.sync_data().is_err());
        assert!(f.sync_data().is_ok());
        disk.fail_write_after(1);
        f.write_at(0, &[b"ok"]).unwrap();
        assert!(f.write_at(0, &[b"no"]).is_err());
        disk.flip_bit(&path, 0, 0).unwrap();
        let stats = disk.stats();
        assert_eq!((stats.syncs, stats.failed_syncs, stats.writes, stats.failed_writes), (2, 1, 2, 1));
        assert!(f.read(10, 7).is_err(), "read past the end is an error");
    }
}
