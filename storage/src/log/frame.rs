//! Record frames: the pure encoding of one record inside a segment.
//!
//! ```text
//! offset size field
//!  0     4    crc32 (IEEE, crc32fast) of bytes 4..16 and the payload
//!  4     4    payload length, u32 LE
//!  8     4    write-batch sequence number, u32 LE
//! 12     1    record kind (RecordKind, never 0)
//! 13     1    flags: bit 0 = last frame of its write batch; other bits 0
//! 14     2    reserved, 0
//! 16     len  payload
//! ```
//!
//! A header of sixteen zero bytes is never a frame (kind 0): it marks the end of the
//! data in the zero-filled, preallocated tail of a segment. Decoding never panics.

use bytes::Bytes;

use crate::records::RecordKind;

/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 16;
/// Largest payload a frame can describe.
pub const FRAME_PAYLOAD_MAX: u32 = u32::MAX - FRAME_HEADER_BYTES as u32;
/// `flags` bit: this frame is the last of its write batch.
pub const FLAG_BATCH_END: u8 = 1;
const KNOWN_FLAGS: u8 = FLAG_BATCH_END;

/// A decoded frame. `payload` is a zero-copy slice of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: RecordKind,
    pub batch_seq: u32,
    /// Last frame of its write batch.
    pub batch_end: bool,
    pub payload: Bytes,
}

impl Frame {
    /// Bytes the frame occupies (header + payload).
    pub fn encoded_len(&self) -> usize {
        frame_len(self.payload.len())
    }
}

/// Why bytes at an offset are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("zeroed frame header (end of data)")]
    Zero,
    #[error("frame truncated: needs {needed} bytes, {available} available")]
    Truncated { needed: u64, available: u64 },
    #[error("reserved header bits set ({flags:#04x} {reserved:#06x})")]
    Reserved { flags: u8, reserved: u16 },
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("unknown record kind {0}")]
    Kind(u8),
}

/// Bytes a frame with a `payload_len`-byte payload occupies.
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_BYTES + payload_len
}

/// Appends one frame to `out`.
///
/// Panics if `payload` is longer than [`FRAME_PAYLOAD_MAX`]; the log rejects such
/// records (`RecordTooLarge`) long before encoding.
pub fn encode_frame(out: &mut Vec<u8>, batch_seq: u32, kind: RecordKind, batch_end: bool, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| *len <= FRAME_PAYLOAD_MAX)
        .expect("payload length checked against record_bytes_max before encoding");
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&batch_seq.to_le_bytes());
    out.extend_from_slice(&[kind as u8, if batch_end { FLAG_BATCH_END } else { 0 }, 0, 0]);
    out.extend_from_slice(payload);
    let crc = frame_crc(&out[start + 4..start + FRAME_HEADER_BYTES], payload);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len() - start, frame_len(payload.len()), "frame length matches frame_len");
}

fn frame_crc(header_tail: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header_tail);
    hasher.update(payload);
    hasher.finalize()
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The payload length a frame header claims, if `header` holds a full header.
pub fn payload_len(header: &[u8]) -> Option<u32> {
    (header.len() >= FRAME_HEADER_BYTES).then(|| le_u32(header, 4))
}

/// Decodes the frame starting at `offset` in `buf`, checking every field and the CRC.
pub fn decode_frame_at(buf: &Bytes, offset: usize) -> Result<Frame, FrameError> {
    let available = buf.len().saturating_sub(offset);
    if available < FRAME_HEADER_BYTES {
        return Err(FrameError::Truncated { needed: FRAME_HEADER_BYTES as u64, available: available as u64 });
    }
    let header = &buf[offset..offset + FRAME_HEADER_BYTES];
    if header.iter().all(|b| *b == 0) {
        return Err(FrameError::Zero);
    }
    let (flags, reserved) = (header[13], u16::from_le_bytes([header[14], header[15]]));
    if flags & !KNOWN_FLAGS != 0 || reserved != 0 {
        return Err(FrameError::Reserved { flags, reserved });
    }
    let len = le_u32(header, 4) as u64;
    let needed = FRAME_HEADER_BYTES as u64 + len;
    if needed > available as u64 {
        return Err(FrameError::Truncated { needed, available: available as u64 });
    }
    let payload_start = offset + FRAME_HEADER_BYTES;
    let payload = buf.slice(payload_start..payload_start + len as usize);
    let (stored, computed) = (le_u32(header, 0), frame_crc(&header[4..], &payload));
    if stored != computed {
        return Err(FrameError::Crc { stored, computed });
    }
    let kind = RecordKind::from_u8(header[12]).ok_or(FrameError::Kind(header[12]))?;
    Ok(Frame { kind, batch_seq: le_u32(header, 8), batch_end: flags & FLAG_BATCH_END != 0, payload })
}

/// Whether the byte at `header_offset + 12` could be a frame's kind: a cheap filter
/// for searching damaged regions for frames.
pub(crate) fn plausible_kind(byte: u8) -> bool {
    RecordKind::from_u8(byte).is_some()
}

/// Offset of the kind byte within a frame header.
pub(crate) const KIND_OFFSET: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    fn one(payload: &[u8], end: bool) -> Bytes {
        let mut out = Vec::new();
        encode_frame(&mut out, 7, RecordKind::HardState, end, payload);
        Bytes::from(out)
    }

    #[test]
    fn round_trip_at_an_offset() {
        let mut out = vec![0xAA; 3];
        encode_frame(&mut out, 41, RecordKind::RaftEntry, false, b"hello");
        encode_frame(&mut out, 41, RecordKind::ConfState, true, b"");
        let buf = Bytes::from(out);
        let a = decode_frame_at(&buf, 3).unwrap();
        assert_eq!((a.kind, a.batch_seq, a.batch_end, &a.payload[..]), (RecordKind::RaftEntry, 41, false, &b"hello"[..]));
        let b = decode_frame_at(&buf, 3 + a.encoded_len()).unwrap();
        assert_eq!((b.kind, b.batch_end, b.payload.len()), (RecordKind::ConfState, true, 0));
        assert_eq!(3 + a.encoded_len() + b.encoded_len(), buf.len());
    }

    #[test]
    fn every_truncation_is_rejected() {
        let full = one(b"some payload bytes", true);
        for cut in 0..full.len() {
            let err = decode_frame_at(&full.slice(..cut), 0).unwrap_err();
            assert!(matches!(err, FrameError::Truncated { .. }), "cut {cut}: {err}");
        }
        assert!(decode_frame_at(&full, full.len() + 10).is_err(), "offset past the end");
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let full = one(b"payload!", true);
        for bit in 0..full.len() * 8 {
            let mut bytes = full.to_vec();
            bytes[bit / 8] ^= 1 << (bit % 8);
            let res = decode_frame_at(&Bytes::from(bytes), 0);
            assert!(res.is_err(), "flip of bit {bit} went unnoticed: {res:?}");
        }
    }

    #[test]
    fn zero_header_marks_the_end() {
        let zeros = Bytes::from(vec![0u8; 64]);
        assert_eq!(decode_frame_at(&zeros, 0), Err(FrameError::Zero));
    }

    #[test]
    fn reserved_bits_and_unknown_kinds_are_rejected() {
        let mut bytes = one(b"x", false).to_vec();
        bytes[14] = 1;
        assert!(matches!(decode_frame_at(&Bytes::from(bytes), 0), Err(FrameError::Reserved { .. })));
        let mut bytes = one(b"x", false).to_vec();
        bytes[12] = 9;
        let crc = frame_crc(&bytes[4..16], &bytes[16..]);
        bytes[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_frame_at(&Bytes::from(bytes), 0), Err(FrameError::Kind(9)));
    }
}
