//! Segment files: naming, the header, and creation.
//!
//! ```text
//! offset size field
//!  0     8    magic b"HGLASSEG"
//!  8     4    format version, u32 LE (1)
//! 12     4    batch sequence number of the segment's first write batch, u32 LE
//! 16     8    segment id, u64 LE (equals the id in the file name)
//! 24     8    end of the data of segment id-1 when this one was created, u64 LE
//!             (0 = no previous segment known)
//! 32    28    reserved, 0
//! 60     4    crc32 of bytes 0..60, u32 LE
//! 64          first frame
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::{Disk, DiskFile};

pub const SEGMENT_MAGIC: [u8; 8] = *b"HGLASSEG";
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Bytes of the segment header; the first frame starts here.
pub const SEGMENT_HEADER_BYTES: usize = 64;
const CRC_AT: usize = SEGMENT_HEADER_BYTES - 4;
const NAME_DIGITS: usize = 20;
const NAME_SUFFIX: &str = ".seg";

/// The decoded header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment_id: u64,
    pub first_batch_seq: u32,
    /// End offset of the previous segment's data when this one was created (0 = none).
    pub prev_segment_end: u64,
}

/// Why the first bytes of a segment are not a valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    Short(usize),
    Magic,
    Crc { stored: u32, computed: u32 },
    Version(u32),
    Reserved,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short(n) => write!(f, "segment header truncated ({n} of {SEGMENT_HEADER_BYTES} bytes)"),
            Self::Magic => write!(f, "bad segment magic"),
            Self::Crc { stored, computed } => {
                write!(f, "segment header crc mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            Self::Version(v) => write!(f, "unsupported segment format version {v}"),
            Self::Reserved => write!(f, "reserved segment header bytes are not zero"),
        }
    }
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.first_batch_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.prev_segment_end.to_le_bytes());
        let crc = crc32fast::hash(&b[..CRC_AT]);
        b[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the header at the start of `bytes`. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        let b = bytes.get(..SEGMENT_HEADER_BYTES).ok_or(HeaderError::Short(bytes.len()))?;
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4-byte slice"));
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8-byte slice"));
        if b[..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Magic);
        }
        let (stored, computed) = (u32_at(CRC_AT), crc32fast::hash(&b[..CRC_AT]));
        if stored != computed {
            return Err(HeaderError::Crc { stored, computed });
        }
        match u32_at(8) {
            SEGMENT_FORMAT_VERSION => {}
            other => return Err(HeaderError::Version(other)),
        }
        if b[32..CRC_AT].iter().any(|x| *x != 0) {
            return Err(HeaderError::Reserved);
        }
        Ok(Self { first_batch_seq: u32_at(12), segment_id: u64_at(16), prev_segment_end: u64_at(24) })
    }
}

/// `00000000000000000001.seg` for segment 1.
pub fn segment_file_name(segment_id: u64) -> String {
    format!("{segment_id:0NAME_DIGITS$}{NAME_SUFFIX}")
}

/// The segment id a file name denotes, if it is a segment name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(NAME_SUFFIX)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn segment_path(dir: &Path, segment_id: u64) -> PathBuf {
    dir.join(segment_file_name(segment_id))
}

/// Creates segment `header.segment_id` in `dir`, preallocated to `segment_bytes`,
/// writes its header, syncs the file, then syncs the directory. Only after this
/// returns may frames be written to it.
pub(crate) fn create_segment(
    disk: &dyn Disk,
    dir: &Path,
    header: SegmentHeader,
    segment_bytes: u64,
) -> crate::Result<Arc<dyn DiskFile>> {
    assert!(segment_bytes >= SEGMENT_HEADER_BYTES as u64, "segment_bytes {segment_bytes} below header size");
    let path = segment_path(dir, header.segment_id);
    let io = |op| move |e| crate::StorageError::io(op, segment_path(dir, header.segment_id), e);
    let file = disk.create(&path, segment_bytes).map_err(io("create segment"))?;
    file.write_at(0, &[&header.encode()]).map_err(io("write segment header"))?;
    file.sync_data().map_err(io("sync segment header"))?;
    disk.sync_dir(dir).map_err(|e| crate::StorageError::io("sync log directory", dir, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader { segment_id: 9, first_batch_seq: u32::MAX, prev_segment_end: 4096 };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for cut in 0..SEGMENT_HEADER_BYTES {
            assert!(SegmentHeader::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for bit in 0..SEGMENT_HEADER_BYTES * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&b).is_err(), "flip {bit}");
        }
        assert_eq!(SegmentHeader::decode(&[0u8; 64]), Err(HeaderError::Magic));
    }

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        for bad in ["1.seg", "0000000000000000000a.seg", "00000000000000000001.tmp", "99999999999999999999.seg"] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }
}
