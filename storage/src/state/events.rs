//! Reading one run's events out of an encoded transition without decoding the
//! rest: the read path of history (`GetWorkflowExecutionHistory`).

use bytes::Bytes;

use super::codec::{get_queue_kind, get_tag, get_version_and_time, tag, OP_BYTES_MIN};
use super::RunKey;
use crate::codec::{DecodeError, Decoder};

/// The events the encoded transition `data` appends to `run`, as
/// `(event id, payload)` in id order; payloads are slices of `data`.
///
/// It walks the whole transition and accepts exactly what
/// [`super::Transition::decode`] accepts, except that it also rejects an
/// `AppendEvents` of `run` whose event ids would overflow `u64` (such an op can
/// never have been applied).
pub fn events_of(data: Bytes, run: &RunKey) -> Result<Vec<(u64, Bytes)>, DecodeError> {
    let mut d = Decoder::new(data);
    let (version, _) = get_version_and_time(&mut d)?;
    if d.bool()? {
        skip_str(&mut d)?;
        skip_str(&mut d)?;
        d.bytes()?;
    }
    let n = d.count(OP_BYTES_MIN)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let at = d.offset();
        match get_tag(&mut d, version)? {
            tag::APPEND_EVENTS => append_events_of(&mut d, run, &mut out)?,
            other => skip_op(&mut d, other, at)?,
        }
    }
    d.finish()?;
    Ok(out)
}

fn append_events_of(d: &mut Decoder, run: &RunKey, out: &mut Vec<(u64, Bytes)>) -> Result<(), DecodeError> {
    let ours = run_is(d, run)?;
    let first_event_id = d.u64()?;
    let n = d.count(4)?;
    for i in 0..n {
        let event = d.bytes()?;
        if ours {
            let id = first_event_id.checked_add(i as u64).ok_or_else(|| d.invalid("event id", "overflows u64"))?;
            out.push((id, event));
        }
    }
    Ok(())
}

/// Reads a run key, telling whether it is `run`.
fn run_is(d: &mut Decoder, run: &RunKey) -> Result<bool, DecodeError> {
    let namespace = skip_str(d)?;
    let workflow_id = skip_str(d)?;
    let run_id = skip_str(d)?;
    Ok(namespace == run.namespace.as_bytes() && workflow_id == run.workflow_id.as_bytes() && run_id == run.run_id.as_bytes())
}

/// Skips the body of any op but `AppendEvents`, validating it like `decode`.
fn skip_op(d: &mut Decoder, op_tag: u8, at: usize) -> Result<(), DecodeError> {
    match op_tag {
        tag::CREATE_RUN | tag::LEGACY_SET_STATE => {
            skip_run(d)?;
            d.bytes()?;
        }
        tag::SET_STATE => {
            skip_run(d)?;
            d.u64()?;
            d.bytes()?;
        }
        tag::CLOSE_RUN | tag::DELETE_RUN => skip_run(d)?,
        tag::ENQUEUE => {
            skip_queue(d)?;
            skip_run(d)?;
            d.bytes()?;
        }
        tag::ACK => {
            skip_queue(d)?;
            d.u64()?;
        }
        tag::ADD_TIMER => {
            skip_run(d)?;
            d.i64()?;
            d.bytes()?;
        }
        tag::REMOVE_TIMER => {
            d.u64()?;
        }
        other => return Err(DecodeError::Invalid { what: "op tag", offset: at, detail: format!("{other}") }),
    }
    Ok(())
}

fn skip_run(d: &mut Decoder) -> Result<(), DecodeError> {
    for _ in 0..3 {
        skip_str(d)?;
    }
    Ok(())
}

fn skip_queue(d: &mut Decoder) -> Result<(), DecodeError> {
    skip_str(d)?;
    skip_str(d)?;
    get_queue_kind(d)?;
    Ok(())
}

/// A string, checked to be UTF-8 like [`Decoder::string`] but not copied.
fn skip_str(d: &mut Decoder) -> Result<Bytes, DecodeError> {
    let at = d.offset();
    let b = d.bytes()?;
    match std::str::from_utf8(&b) {
        Ok(_) => Ok(b),
        Err(e) => Err(DecodeError::Invalid { what: "utf-8 string", offset: at, detail: e.to_string() }),
    }
}
