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
//! 32     1    flags: bit 0 = hollow; other bits 0
//! 33     3    reserved, 0
//! 36     4    hollow only: batch number after the segment's last batch, u32 LE (else 0)
//! 40     8    hollow only: where the segment's data ended, u64 LE (else 0)
//! 48    12    reserved, 0
//! 60     4    crc32 of bytes 0..60, u32 LE
//! 64          first frame
//! ```
//!
//! A *hollow* segment is a deleted segment that is not the oldest: its file is
//! replaced by this header alone, so segment ids stay contiguous (a gap is
//! corruption) and the next segment's header can still be checked against it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::{Disk, DiskFile};

pub const SEGMENT_MAGIC: [u8; 8] = *b"HGLASSEG";
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Bytes of the segment header; the first frame starts here.
pub const SEGMENT_HEADER_BYTES: usize = 64;
const CRC_AT: usize = SEGMENT_HEADER_BYTES - 4;
const FLAGS_AT: usize = 32;
const FLAG_HOLLOW: u8 = 1;
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

/// What a hollow (deleted) segment still records about its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HollowEnd {
    /// Where the segment's data ended.
    pub data_end: u64,
    /// Batch number after the segment's last batch.
    pub next_batch_seq: u32,
}

/// Why the first bytes of a segment are not a valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    Short(usize),
    Magic,
    Crc {
        stored: u32,
        computed: u32,
    },
    Version(u32),
    Reserved,
    /// A valid header of a hollow segment where a live one is required.
    Hollow,
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
            Self::Hollow => write!(f, "the segment is hollow (deleted)"),
        }
    }
}

impl SegmentHeader {
    /// The header of a live segment.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        self.encode_with(None)
    }

    /// The whole content of the hollow file that replaces a deleted segment.
    pub fn encode_hollow(&self, end: HollowEnd) -> [u8; SEGMENT_HEADER_BYTES] {
        self.encode_with(Some(end))
    }

    fn encode_with(&self, hollow: Option<HollowEnd>) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.first_batch_seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.prev_segment_end.to_le_bytes());
        if let Some(end) = hollow {
            b[FLAGS_AT] = FLAG_HOLLOW;
            b[36..40].copy_from_slice(&end.next_batch_seq.to_le_bytes());
            b[40..48].copy_from_slice(&end.data_end.to_le_bytes());
        }
        let crc = crc32fast::hash(&b[..CRC_AT]);
        b[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the header of a live segment. Never panics; decoding is
    /// canonical (`encode` gives back the same bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        match Self::decode_any(bytes)? {
            (header, None) => Ok(header),
            (_, Some(_)) => Err(HeaderError::Hollow),
        }
    }

    /// Decodes the header of a live or hollow segment.
    pub fn decode_any(bytes: &[u8]) -> Result<(Self, Option<HollowEnd>), HeaderError> {
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
        let hollow = b[FLAGS_AT] == FLAG_HOLLOW;
        let end_fields_zero = b[36..48].iter().all(|x| *x == 0);
        let reserved_zero = b[33..36].iter().chain(&b[48..CRC_AT]).all(|x| *x == 0);
        if !reserved_zero || !(hollow || b[FLAGS_AT] == 0 && end_fields_zero) {
            return Err(HeaderError::Reserved);
        }
        let header = Self { first_batch_seq: u32_at(12), segment_id: u64_at(16), prev_segment_end: u64_at(24) };
        let end = hollow.then(|| HollowEnd { data_end: u64_at(40), next_batch_seq: u32_at(36) });
        Ok((header, end))
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

const HOLLOW_TEMP_SUFFIX: &str = ".hollow.tmp";

/// The temporary file a hollow segment is written to before it replaces the segment.
pub fn hollow_temp_name(segment_id: u64) -> String {
    format!("{segment_id:0NAME_DIGITS$}{HOLLOW_TEMP_SUFFIX}")
}

/// Whether `name` is a leftover of an interrupted hollowing.
pub fn is_hollow_temp_name(name: &str) -> bool {
    name.strip_suffix(HOLLOW_TEMP_SUFFIX).is_some_and(|d| d.len() == NAME_DIGITS && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Atomically replaces segment `header.segment_id` with its hollow form: the
/// header alone, written to a temporary file, synced, renamed over the segment,
/// then the directory synced. A crash leaves either the whole segment or the
/// hollow one (plus, perhaps, a temporary file that recovery removes).
pub(crate) fn hollow_out(disk: &dyn Disk, dir: &Path, header: SegmentHeader, end: HollowEnd) -> crate::Result<()> {
    let temp = dir.join(hollow_temp_name(header.segment_id));
    let io = |op| move |e| crate::StorageError::io(op, dir.join(hollow_temp_name(header.segment_id)), e);
    let _ = disk.remove(&temp);
    let file = disk.create(&temp, SEGMENT_HEADER_BYTES as u64).map_err(io("create hollow segment"))?;
    file.write_at(0, &[&header.encode_hollow(end)]).map_err(io("write hollow segment"))?;
    file.sync_data().map_err(io("sync hollow segment"))?;
    let path = segment_path(dir, header.segment_id);
    disk.rename(&temp, &path).map_err(|e| crate::StorageError::io("replace segment by its hollow form", &path, e))?;
    disk.sync_dir(dir).map_err(|e| crate::StorageError::io("sync log directory", dir, e))
}

/// Creates segment `header.segment_id` in `dir`, preallocated to `segment_bytes`,
/// writes its header, syncs the file, then syncs the directory. Only after this
/// returns may frames be written to it.
pub(crate) fn create_segment(disk: &dyn Disk, dir: &Path, header: SegmentHeader, segment_bytes: u64) -> crate::Result<Arc<dyn DiskFile>> {
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
    fn hollow_headers_are_distinct_and_canonical() {
        let h = SegmentHeader { segment_id: 3, first_batch_seq: 10, prev_segment_end: 500 };
        let end = HollowEnd { data_end: 1234, next_batch_seq: 17 };
        let bytes = h.encode_hollow(end);
        assert_eq!(SegmentHeader::decode_any(&bytes), Ok((h, Some(end))));
        assert_eq!(SegmentHeader::decode(&bytes), Err(HeaderError::Hollow), "a live header is required");
        assert_eq!(SegmentHeader::decode_any(&h.encode()), Ok((h, None)));
        let mut forged = h.encode();
        forged[40] = 1;
        let crc = crc32fast::hash(&forged[..CRC_AT]);
        forged[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(SegmentHeader::decode_any(&forged), Err(HeaderError::Reserved), "end fields only when hollow");
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
