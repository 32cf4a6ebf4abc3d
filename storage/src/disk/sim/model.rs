//! The crash model of the simulated disk: a file's durable bytes, its unsynced
//! operations, and what of them a crash may leave. Pure; randomness comes from a
//! seeded [`SplitMix64`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Size of the unit a torn write tears at.
pub const SECTOR_BYTES: u64 = 512;

#[derive(Default, Clone)]
pub(super) struct Inode {
    pub(super) durable: Vec<u8>,
    pub(super) current: Vec<u8>,
    pub(super) pending: Vec<Op>,
}

#[derive(Clone)]
pub(super) enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl Op {
    pub(super) fn apply(&self, image: &mut Vec<u8>) {
        match self {
            Op::Write { offset, data } => write_into(image, *offset, data),
            Op::SetLen(len) => image.resize(*len as usize, 0),
        }
    }
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

/// A directory change not yet made durable by `sync_dir`. Unsynced changes form an
/// ordered journal: a crash keeps a prefix of it (metadata may reach the disk
/// before anyone asks, but in order).
#[derive(Clone, Debug)]
pub(super) enum DirOp {
    Link { path: PathBuf, ino: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirOp {
    pub(super) fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Link { path, ino } => {
                names.insert(path.clone(), *ino);
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
            DirOp::Rename { from, to } => {
                if let Some(ino) = names.remove(from) {
                    names.insert(to.clone(), ino);
                }
            }
        }
    }

    /// Whether the change alters an entry of `dir`.
    pub(super) fn touches(&self, dir: &Path) -> bool {
        let in_dir = |p: &Path| p.parent() == Some(dir);
        match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path } => in_dir(path),
            DirOp::Rename { from, to } => in_dir(from) || in_dir(to),
        }
    }
}

/// `[start, end)` pieces of a write at `offset`, split at absolute sector boundaries.
fn sectors(offset: u64, len: usize) -> impl Iterator<Item = (usize, usize)> {
    let end = offset + len as u64;
    let mut at = offset;
    std::iter::from_fn(move || {
        (at < end).then(|| {
            let next = ((at / SECTOR_BYTES) + 1) * SECTOR_BYTES;
            let piece = ((at - offset) as usize, (next.min(end) - offset) as usize);
            at = next.min(end);
            piece
        })
    })
}

/// Small deterministic generator (SplitMix64).
#[derive(Default, Clone)]
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub(super) fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

impl Inode {
    /// What a crash may leave of this file (see the module docs for the model).
    pub(super) fn crash_image(&self, rng: &mut SplitMix64) -> Vec<u8> {
        let mut image = self.durable.clone();
        let ops = &self.pending;
        match rng.below(4) {
            0 => {}
            1 => ops.iter().for_each(|op| op.apply(&mut image)),
            2 => {
                let torn = rng.below(ops.len() as u64) as usize;
                ops[..torn].iter().for_each(|op| op.apply(&mut image));
                if let Some(op) = ops.get(torn) {
                    apply_some_sectors(op, &mut image, rng);
                }
            }
            _ => {
                let mut order: Vec<&Op> = ops.iter().collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
                order.into_iter().for_each(|op| apply_some_sectors(op, &mut image, rng));
            }
        }
        image
    }
}

/// Applies each sector of a write with probability 1/2 (a length change: all or nothing).
fn apply_some_sectors(op: &Op, image: &mut Vec<u8>, rng: &mut SplitMix64) {
    for piece in some_sectors(op, rng) {
        piece.apply(image);
    }
}

/// A random part of `op`: each sector of a write kept with probability 1/2.
pub(super) fn some_sectors(op: &Op, rng: &mut SplitMix64) -> Vec<Op> {
    match op {
        Op::SetLen(_) => {
            if rng.coin() {
                vec![op.clone()]
            } else {
                vec![]
            }
        }
        Op::Write { offset, data } => sectors(*offset, data.len())
            .filter(|_| rng.coin())
            .map(|(start, end)| Op::Write { offset: offset + start as u64, data: data[start..end].to_vec() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_split_at_absolute_boundaries() {
        let pieces: Vec<_> = sectors(500, 600).collect();
        assert_eq!(pieces, vec![(0, 12), (12, 524), (524, 600)]);
    }
}
