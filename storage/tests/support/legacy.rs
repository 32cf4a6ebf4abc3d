//! Version-1 transition bytes for the state tests (shared by `state_codec` and
//! `state_model`, each of which includes this file).

use bytes::Bytes;
use hourglass_storage::state::{Op, RunKey, Transition, TRANSITION_VERSION_V1};

/// A version-1 `SetState` (tag 3). It cannot be built, only decoded: this decodes
/// the version-1 transition holding just that op.
pub fn legacy_set_state(run: &RunKey, state: &[u8]) -> Op {
    let mut v = vec![TRANSITION_VERSION_V1];
    v.extend_from_slice(&0i64.to_le_bytes());
    v.push(0);
    v.extend_from_slice(&1u32.to_le_bytes());
    v.push(3);
    for s in [&run.namespace, &run.workflow_id, &run.run_id] {
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
    }
    v.extend_from_slice(&(state.len() as u32).to_le_bytes());
    v.extend_from_slice(state);
    Transition::decode(Bytes::from(v)).unwrap().ops.remove(0)
}
