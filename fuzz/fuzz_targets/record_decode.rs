//! Arbitrary bytes through every pure decoder of the storage engine: frames, the
//! segment header, the segment scanner (recovery's core), every record payload of
//! `records.rs` and `Transition`. None may panic; whatever decodes must re-encode to
//! the same bytes (the encodings are canonical) and decode again to the same value.
//! (A version-1 transition, decoded for old logs, re-encodes as version 2: only the
//! version byte differs.)
#![no_main]

use bytes::Bytes;
use hourglass_storage::log::frame::{decode_frame_at, encode_frame, FRAME_HEADER_BYTES};
use hourglass_storage::log::scan::scan_segment;
use hourglass_storage::log::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use hourglass_storage::records::{ConfStateRecord, HardStateRecord, RaftEntryRecord, RecordKind, RelocatedRecord};
use hourglass_storage::state::{Transition, TRANSITION_VERSION, TRANSITION_VERSION_V1};
use libfuzzer_sys::fuzz_target;

/// Decodes `payload` as every payload type; checks canonical round trips.
fn payloads(payload: &Bytes) {
    if let Ok(r) = RaftEntryRecord::decode(payload.clone()) {
        assert_eq!(&r.encode(), payload, "RaftEntryRecord encoding is canonical");
        // Normal entries carry a transition.
        transition(&r.data);
    }
    if let Ok(r) = HardStateRecord::decode(payload.clone()) {
        assert_eq!(&r.encode(), payload, "HardStateRecord encoding is canonical");
    }
    if let Ok(r) = ConfStateRecord::decode(payload.clone()) {
        assert_eq!(&r.encode(), payload, "ConfStateRecord encoding is canonical");
    }
    if let Ok(r) = RelocatedRecord::decode(payload.clone()) {
        assert_eq!(&r.encode(), payload, "RelocatedRecord encoding is canonical");
        payload_of_kind(r.kind, &r.payload);
    }
    transition(payload);
}

fn payload_of_kind(kind: RecordKind, payload: &Bytes) {
    match kind {
        RecordKind::RaftEntry => {
            if let Ok(r) = RaftEntryRecord::decode(payload.clone()) {
                transition(&r.data);
            }
        }
        RecordKind::HardState => {
            let _ = HardStateRecord::decode(payload.clone());
        }
        RecordKind::ConfState => {
            let _ = ConfStateRecord::decode(payload.clone());
        }
        RecordKind::Relocated => {
            if let Ok(r) = RelocatedRecord::decode(payload.clone()) {
                assert_ne!(r.kind, RecordKind::Relocated, "nested relocation is rejected");
            }
        }
    }
}

fn transition(bytes: &Bytes) {
    if let Ok(t) = Transition::decode(bytes.clone()) {
        let again = t.encode();
        assert_eq!(Transition::decode(again.clone()).as_ref(), Ok(&t), "Transition round trip");
        if bytes[0] == TRANSITION_VERSION_V1 {
            assert_eq!(again[0], TRANSITION_VERSION, "a version-1 transition re-encodes as version 2");
            assert_eq!(again[1..], bytes[1..], "Transition encoding is canonical but for the version");
        } else {
            assert_eq!(&again, bytes, "Transition encoding is canonical");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);

    // 1. Every payload decoder on the raw input.
    payloads(&buf);

    // 2. Frames: walk the chain from offset 0, and try the first few offsets.
    let mut at = 0;
    while let Ok(frame) = decode_frame_at(&buf, at) {
        assert!(frame.encoded_len() >= FRAME_HEADER_BYTES && at + frame.encoded_len() <= buf.len());
        payload_of_kind(frame.kind, &frame.payload);
        at += frame.encoded_len();
    }
    for at in 1..buf.len().min(8) {
        let _ = decode_frame_at(&buf, at);
    }
    let _ = decode_frame_at(&buf, usize::MAX);

    // 3. A valid frame around the input (the CRC is out of a mutator's reach):
    //    byte 0 picks the kind and batch end, the rest is the payload.
    if let Some((&head, payload)) = data.split_first() {
        let kind = RecordKind::from_u8(head % 4 + 1).expect("kinds 1..=4 exist");
        let mut out = Vec::new();
        encode_frame(&mut out, u32::from(head).wrapping_mul(0x0101_0101), kind, head & 0x80 != 0, payload);
        let framed = Bytes::from(out);
        let frame = decode_frame_at(&framed, 0).expect("a frame we encoded decodes");
        assert_eq!((frame.kind, &frame.payload[..]), (kind, payload));
        assert_eq!(frame.encoded_len(), framed.len());
        payload_of_kind(kind, &frame.payload);
    }

    // 4. The segment header and the scanner, from just past a header-sized prefix.
    if let Ok(h) = SegmentHeader::decode(data) {
        assert_eq!(&h.encode()[..], &data[..SEGMENT_HEADER_BYTES]);
    }
    let start = SEGMENT_HEADER_BYTES.min(buf.len());
    let first_seq = data.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
    let mut records = 0u64;
    let scan = scan_segment::<()>(&buf, start, first_seq, &mut |offset, frame| {
        assert!(offset as usize >= start && offset as usize + frame.encoded_len() <= buf.len());
        records += 1;
        Ok(())
    })
    .expect("visitor never fails");
    assert_eq!(scan.records, records);
    assert!(scan.end as usize >= start && scan.end as usize <= buf.len().max(start));
    let _ = scan.verdict(true);
    let _ = scan.verdict(false);
});
