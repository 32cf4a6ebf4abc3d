//! Hourglass's own durable records (the namespace registry, the cluster's member
//! addresses): each is the mutable state of one run of the reserved
//! [`SYSTEM_NAMESPACE`](crate::namespaces::SYSTEM_NAMESPACE), so it is replicated,
//! snapshotted and recovered like any run. The run is never closed (retention never
//! drops it) and has no history events. A change rewrites the whole record: one
//! transition, one durable write, made under the run's workflow lock on its shard's
//! owner and fenced by the state version it read.

use bytes::Bytes;
use hourglass_storage::records::ShardId;
use hourglass_storage::state::{Op, RunKey, Transition};

use crate::engine::Engine;
use crate::error::Result;

/// Where one system record is stored.
pub struct SystemRecord {
    engine: Engine,
    key: RunKey,
}

impl SystemRecord {
    /// The record `(SYSTEM_NAMESPACE, workflow_id, run_id)`.
    pub fn new(engine: &Engine, workflow_id: &str, run_id: &str) -> Self {
        let key = RunKey {
            namespace: crate::namespaces::SYSTEM_NAMESPACE.to_string(),
            workflow_id: workflow_id.to_string(),
            run_id: run_id.to_string(),
        };
        Self { engine: engine.clone(), key }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The shard holding the record (its leader makes the changes).
    pub fn shard(&self) -> ShardId {
        self.engine.router().shard_for(&self.key.namespace, &self.key.workflow_id)
    }

    /// The record as this node's replica has applied it, with its state version;
    /// `None` if it was never written.
    pub fn load(&self) -> Result<Option<(Bytes, u64)>> {
        Ok(self.engine.node().read(self.shard(), |s| s.run(&self.key).map(|r| (r.state().clone(), r.state_version())))?)
    }

    /// Read-modify-write on the record shard's owner (`NotLeader` elsewhere):
    /// `change` gets the committed record (`None`: never written) and returns the new
    /// one (`None`: no change). The write names the version it read, so it fails
    /// rather than overwrite a record changed meanwhile. Returns the record after.
    pub async fn update(&self, now_ms: i64, change: impl FnOnce(Option<Bytes>) -> Result<Option<Bytes>>) -> Result<Option<Bytes>> {
        let lock = self.engine.lock_workflow(&self.key.namespace, &self.key.workflow_id).await?;
        // Under the lock on the owner, the replica holds every committed change.
        let current = self.load()?;
        let version = current.as_ref().map(|(_, v)| *v);
        let Some(state) = change(current.clone().map(|(r, _)| r))? else {
            return Ok(current.map(|(r, _)| r));
        };
        let op = match version {
            None => Op::CreateRun { run: self.key.clone(), state: state.clone() },
            Some(expected_version) => Op::SetState { run: self.key.clone(), expected_version, state: state.clone() },
        };
        lock.propose(&Transition { time_ms: now_ms, dedupe: None, ops: vec![op] }).await?;
        Ok(Some(state))
    }
}
