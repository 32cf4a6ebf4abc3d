//! A tiny, checked little-endian codec shared by every on-disk payload.
//!
//! Encoding never fails; decoding never panics: every read is bounds-checked and
//! returns [`DecodeError`] on short or malformed input. Byte strings decode as
//! zero-copy slices of the input [`Bytes`], so a history event read from a
//! memory-mapped segment is handed out without copying.

use bytes::{BufMut, Bytes, BytesMut};

/// Why a payload could not be decoded. Always means "the bytes are not what we wrote".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload truncated: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated { offset: usize, needed: usize, available: usize },
    #[error("invalid {what} at offset {offset}: {detail}")]
    Invalid { what: &'static str, offset: usize, detail: String },
    #[error("{trailing} trailing bytes after payload")]
    Trailing { trailing: usize },
}

/// Appends primitive values to a growable buffer.
#[derive(Default)]
pub struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(bytes: usize) -> Self {
        Self { buf: BytesMut::with_capacity(bytes) }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.put_u8(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.put_u32_le(v);
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.put_u64_le(v);
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.put_i64_le(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    /// Length-prefixed (u32) byte string.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("byte string longer than u32::MAX cannot be encoded");
        self.buf.put_u32_le(len);
        self.buf.put_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Reads primitive values from a [`Bytes`], checking every bound.
pub struct Decoder {
    buf: Bytes,
    offset: usize,
}

impl Decoder {
    pub fn new(buf: Bytes) -> Self {
        Self { buf, offset: 0 }
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.offset
    }
    fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { offset: self.offset, needed: n, available: self.remaining() });
        }
        let out = self.buf.slice(self.offset..self.offset + n);
        self.offset += n;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b);
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.offset;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.invalid_at(at, "bool", format!("byte {other}"))),
        }
    }
    /// A length-prefixed byte string, as a zero-copy slice of the input.
    pub fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.offset;
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|e| self.invalid_at(at, "utf-8 string", e.to_string()))
    }
    /// A collection length that must be plausible: each element takes at least
    /// `min_element_bytes`, so a forged count cannot make us allocate unboundedly.
    pub fn count(&mut self, min_element_bytes: usize) -> Result<usize, DecodeError> {
        let at = self.offset;
        let n = self.u32()? as usize;
        if n.saturating_mul(min_element_bytes.max(1)) > self.remaining() {
            return Err(self.invalid_at(at, "count", format!("{n} elements cannot fit in {} bytes", self.remaining())));
        }
        Ok(n)
    }
    pub fn invalid(&self, what: &'static str, detail: impl Into<String>) -> DecodeError {
        self.invalid_at(self.offset, what, detail.into())
    }
    fn invalid_at(&self, offset: usize, what: &'static str, detail: String) -> DecodeError {
        DecodeError::Invalid { what, offset, detail }
    }
    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(DecodeError::Trailing { trailing }),
        }
    }
}

impl Encoder {
    /// Collection length prefix (u32).
    pub fn count(&mut self, n: usize) -> &mut Self {
        let n = u32::try_from(n).expect("collection longer than u32::MAX cannot be encoded");
        self.u32(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_primitive() {
        let mut e = Encoder::new();
        e.u8(7).u32(0xdead_beef).u64(u64::MAX).i64(-5).bool(true).str("héllo").bytes(b"").count(2);
        let mut d = Decoder::new(e.finish());
        assert_eq!(d.u8().unwrap(), 7);
        assert_eq!(d.u32().unwrap(), 0xdead_beef);
        assert_eq!(d.u64().unwrap(), u64::MAX);
        assert_eq!(d.i64().unwrap(), -5);
        assert!(d.bool().unwrap());
        assert_eq!(d.string().unwrap(), "héllo");
        assert_eq!(d.bytes().unwrap(), Bytes::new());
        assert!(d.count(1).is_err(), "a count of 2 cannot fit in 0 remaining bytes");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut d = Decoder::new(Bytes::from_static(&[1, 2, 3]));
        assert!(matches!(d.u64(), Err(DecodeError::Truncated { needed: 8, available: 3, .. })));
        let mut d = Decoder::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert!(d.bytes().is_err());
    }

    #[test]
    fn invalid_bool_and_utf8_are_rejected() {
        assert!(Decoder::new(Bytes::from_static(&[2])).bool().is_err());
        let mut e = Encoder::new();
        e.bytes(&[0xff, 0xfe]);
        assert!(Decoder::new(e.finish()).string().is_err());
    }

    #[test]
    fn finish_rejects_trailing_bytes() {
        let d = Decoder::new(Bytes::from_static(&[0]));
        assert_eq!(d.finish(), Err(DecodeError::Trailing { trailing: 1 }));
    }
}
