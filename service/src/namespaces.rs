//! The namespace registry, durable in the shard state machine.
//!
//! **Where the records live.** All namespace records are one registry: the mutable
//! state of a single run, `(SYSTEM_NAMESPACE, "namespaces", "registry")`, encoded
//! as [`StoredRegistry`]. It lives in the shard the router ([`crate::shard::Router::shard_for`]) assigns it, so it
//! is replicated, snapshotted and recovered like any run. The run is never closed (so
//! retention never drops it) and has no history events. Namespaces are few and change
//! rarely, so a change rewrites the whole registry: one transition, one durable write,
//! and a restart reads one key instead of scanning every run.
//!
//! **Invariants.**
//! - The in-memory map always equals the last committed registry: a change is
//!   applied to the map only after its transition is committed.
//! - Changes are serialized by an async mutex, so no committed change is lost by a
//!   concurrent read-modify-write.
//! - [`SYSTEM_NAMESPACE`] is reserved: it can't be registered, described or used.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use prost::Message;

use crate::engine::Engine;
use crate::error::{Result, ServiceError};
use crate::system_record::SystemRecord;

/// The reserved namespace holding Hourglass's own records (never visible through the API).
pub const SYSTEM_NAMESPACE: &str = "__hourglass_system";
/// Names starting with this are reserved for Hourglass.
pub const RESERVED_PREFIX: &str = "__hourglass";
/// The namespace created on a fresh data directory.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Retention of the `default` namespace: 24 h, as Temporal's dev server reports it
/// (`workflow_execution_retention_ttl: 86400s`), and the storage's closed-run retention.
pub const DEFAULT_NAMESPACE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Retention of a namespace registered without one (the `temporal` CLI's default).
pub const REGISTER_DEFAULT_RETENTION_MS: i64 = 72 * 60 * 60 * 1000;

/// Longest namespace name, bytes.
pub const NAME_BYTES_MAX: usize = 255;
/// Longest description or owner email, bytes.
pub const TEXT_BYTES_MAX: usize = 1024;
/// Most namespaces a registry holds (it is rewritten whole on every change).
pub const NAMESPACES_MAX: usize = 1000;

const REGISTRY_WORKFLOW_ID: &str = "namespaces";
const REGISTRY_RUN_ID: &str = "registry";

/// What the service keeps of a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceRecord {
    pub name: String,
    pub id: String,
    pub description: String,
    pub owner_email: String,
    /// Retention of closed runs the namespace asks for, ms (reported by
    /// DescribeNamespace; storage currently applies one shard-wide retention).
    pub retention_ms: i64,
    /// When it was registered, ms since the epoch.
    pub created_ms: i64,
}

impl NamespaceRecord {
    /// A new namespace with a fresh id.
    pub fn new(name: impl Into<String>, retention_ms: i64, created_ms: i64) -> Self {
        Self {
            name: name.into(),
            id: uuid::Uuid::new_v4().to_string(),
            description: String::new(),
            owner_email: String::new(),
            retention_ms,
            created_ms,
        }
    }
}

/// The encoded form of one record (the registry run's state is a [`StoredRegistry`]).
#[derive(Clone, PartialEq, Message)]
pub struct StoredNamespace {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub owner_email: String,
    #[prost(int64, tag = "5")]
    pub retention_ms: i64,
    #[prost(int64, tag = "6")]
    pub created_ms: i64,
}

/// Every namespace record: the mutable state of the registry run.
#[derive(Clone, PartialEq, Message)]
pub struct StoredRegistry {
    #[prost(message, repeated, tag = "1")]
    pub namespaces: Vec<StoredNamespace>,
}

impl From<&NamespaceRecord> for StoredNamespace {
    fn from(r: &NamespaceRecord) -> Self {
        Self {
            name: r.name.clone(),
            id: r.id.clone(),
            description: r.description.clone(),
            owner_email: r.owner_email.clone(),
            retention_ms: r.retention_ms,
            created_ms: r.created_ms,
        }
    }
}

impl From<StoredNamespace> for NamespaceRecord {
    fn from(s: StoredNamespace) -> Self {
        Self {
            name: s.name,
            id: s.id,
            description: s.description,
            owner_email: s.owner_email,
            retention_ms: s.retention_ms,
            created_ms: s.created_ms,
        }
    }
}

/// Where the registry is stored.
struct Store {
    record: SystemRecord,
}

#[derive(Default)]
struct Inner {
    by_name: RwLock<BTreeMap<String, NamespaceRecord>>,
    /// `None` for an in-memory registry (unit tests of other areas).
    store: Option<Store>,
    /// Serializes this node's changes (read-modify-write of the registry).
    write: tokio::sync::Mutex<()>,
}

/// The namespace registry. Cheap to clone.
///
/// [`Namespaces::open`] gives the durable registry the server uses;
/// `Namespaces::default()` an in-memory one for tests (its changes are not stored).
/// On a node of a cluster the map is this node's replica of the registry, refreshed
/// every [`REFRESH_INTERVAL`] and whenever a name is missing; changes are made on
/// the registry shard's leader (the frontend forwards them there).
#[derive(Clone, Default)]
pub struct Namespaces {
    inner: Arc<Inner>,
}

/// How often a cluster node reloads the registry from its replica.
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Namespaces {
    /// Loads the registry from storage. A single node creates it on a fresh data
    /// directory with the `default` namespace (one committed transition); in a
    /// cluster, whichever node leads the registry's shard does, and every node keeps
    /// its map in step with its replica (a background task, stopped with the engine).
    pub async fn open(engine: &Engine) -> Result<Namespaces> {
        let store = Store { record: SystemRecord::new(engine, REGISTRY_WORKFLOW_ID, REGISTRY_RUN_ID) };
        let namespaces = Namespaces { inner: Arc::new(Inner { store: Some(store), ..Default::default() }) };
        if engine.node().is_single_member() {
            namespaces.ensure_default().await?;
        } else {
            namespaces.refresh()?;
            engine.spawn_background(namespaces.clone().follow_replica());
        }
        Ok(namespaces)
    }

    /// Creates the registry with the `default` namespace if it does not exist yet
    /// (on the registry shard's leader; elsewhere `NotLeader`), then loads it.
    async fn ensure_default(&self) -> Result<()> {
        let Some(store) = &self.inner.store else { return Ok(()) };
        let _write = self.inner.write.lock().await;
        let now = store.record.engine().now_ms();
        let records = store
            .update(now, |current| match current {
                Some(_) => Ok(None),
                None => Ok(Some(vec![NamespaceRecord::new(DEFAULT_NAMESPACE, DEFAULT_NAMESPACE_RETENTION_MS, now)])),
            })
            .await?;
        tracing::info!(namespaces = records.len(), "namespace registry loaded");
        self.replace(records);
        Ok(())
    }

    /// Keeps a cluster node's map in step with its replica, and creates the registry
    /// as soon as this node leads its shard and finds none.
    async fn follow_replica(self) {
        let Some(store) = &self.inner.store else { return };
        let Ok(mut leadership) = store.record.engine().node().watch_leadership(store.shard()) else { return };
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = leadership.changed() => if changed.is_err() { return },
            }
            if let Err(e) = self.refresh() {
                tracing::warn!(error = %e, "cannot reload the namespace registry from this node's replica");
            }
            if self.inner.by_name.read().is_empty() && leadership.borrow().leader_id == store.record.engine().node().node_id() {
                // The owner starts once the leader serves; wait for it here.
                if let Err(e) = self.ensure_default().await {
                    tracing::debug!(error = %e, "namespace registry not created yet");
                }
            }
        }
    }

    /// Reloads the map from this node's replica of the registry.
    fn refresh(&self) -> Result<()> {
        if let Some(store) = &self.inner.store {
            if let Some((records, _)) = store.load()? {
                self.replace(records);
            }
        }
        Ok(())
    }

    fn replace(&self, records: Vec<NamespaceRecord>) {
        *self.inner.by_name.write() = records.into_iter().map(|r| (r.name.clone(), r)).collect();
    }

    /// The namespace named `name`, if registered (reloaded from the replica once
    /// when missing: another node may have registered it).
    pub fn get(&self, name: &str) -> Option<NamespaceRecord> {
        if let Some(found) = self.inner.by_name.read().get(name) {
            return Some(found.clone());
        }
        let _ = self.refresh();
        self.inner.by_name.read().get(name).cloned()
    }

    /// The namespace whose id is `id`, if registered.
    pub fn get_by_id(&self, id: &str) -> Option<NamespaceRecord> {
        self.inner.by_name.read().values().find(|r| r.id == id).cloned()
    }

    /// The namespace, or `InvalidArgument` (empty name) / `NotFound` with a
    /// `NamespaceNotFoundFailure` detail.
    pub fn require(&self, name: &str) -> Result<NamespaceRecord> {
        if name.is_empty() {
            return Err(ServiceError::InvalidArgument("namespace is required".into()));
        }
        self.get(name).ok_or_else(|| ServiceError::NamespaceNotFound(name.to_string()))
    }

    /// Adds a record to the in-memory map only (tests). The durable path is
    /// [`Namespaces::register`].
    pub fn insert(&self, record: NamespaceRecord) {
        self.inner.by_name.write().insert(record.name.clone(), record);
    }

    /// Registers a new namespace durably. `AlreadyExists` if the name is taken,
    /// `InvalidArgument` for a bad name or fields, `NotLeader` on a node that does not
    /// lead the registry's shard.
    pub async fn register(&self, record: NamespaceRecord) -> Result<NamespaceRecord> {
        validate(&record)?;
        let _write = self.inner.write.lock().await;
        let add = |current: Vec<NamespaceRecord>| {
            if current.iter().any(|r| r.name == record.name) {
                return Err(ServiceError::AlreadyExists(format!("namespace {} already exists", record.name)));
            }
            if current.len() >= NAMESPACES_MAX {
                return Err(ServiceError::ResourceExhausted(format!("at most {NAMESPACES_MAX} namespaces can be registered")));
            }
            let mut records = current;
            records.push(record.clone());
            Ok(records)
        };
        let records = match &self.inner.store {
            Some(store) => store.update(store.record.engine().now_ms(), |current| add(current.unwrap_or_default()).map(Some)).await?,
            None => add(self.list())?,
        };
        self.replace(records);
        tracing::info!(namespace = %record.name, id = %record.id, retention_ms = record.retention_ms, "namespace registered");
        Ok(record)
    }

    /// Every namespace, ordered by name.
    pub fn list(&self) -> Vec<NamespaceRecord> {
        self.inner.by_name.read().values().cloned().collect()
    }
}

impl Store {
    fn shard(&self) -> hourglass_storage::records::ShardId {
        self.record.shard()
    }

    /// The registry as this node's replica has applied it; `None` if it was never
    /// created.
    fn load(&self) -> Result<Option<(Vec<NamespaceRecord>, u64)>> {
        let Some((bytes, version)) = self.record.load()? else { return Ok(None) };
        Ok(Some((decode(&bytes)?, version)))
    }

    /// Read-modify-write of the registry ([`SystemRecord::update`]): `change` gets the
    /// committed registry (`None`: never created) and returns the new one (`None`: no
    /// change). Returns the registry after.
    async fn update(
        &self,
        now_ms: i64,
        change: impl FnOnce(Option<Vec<NamespaceRecord>>) -> Result<Option<Vec<NamespaceRecord>>>,
    ) -> Result<Vec<NamespaceRecord>> {
        let after = self
            .record
            .update(now_ms, |current| {
                let current = current.map(|bytes| decode(&bytes)).transpose()?;
                let Some(records) = change(current)? else { return Ok(None) };
                let registry = StoredRegistry { namespaces: records.iter().map(StoredNamespace::from).collect() };
                Ok(Some(Bytes::from(registry.encode_to_vec())))
            })
            .await?;
        after.map(|bytes| decode(&bytes)).transpose().map(Option::unwrap_or_default)
    }
}

fn decode(bytes: &[u8]) -> Result<Vec<NamespaceRecord>> {
    let registry =
        StoredRegistry::decode(bytes).map_err(|e| ServiceError::Internal(format!("the namespace registry does not decode: {e}")))?;
    Ok(registry.namespaces.into_iter().map(NamespaceRecord::from).collect())
}

/// Checks a record about to be registered.
fn validate(record: &NamespaceRecord) -> Result<()> {
    let name = &record.name;
    let bad = |m: String| Err(ServiceError::InvalidArgument(m));
    if name.is_empty() {
        return bad("namespace name is required".into());
    }
    if name.len() > NAME_BYTES_MAX {
        return bad(format!("namespace name is longer than {NAME_BYTES_MAX} bytes"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return bad(format!("namespace name {name:?} may contain only ASCII letters, digits, '-', '_' and '.'"));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return bad(format!("namespace names starting with {RESERVED_PREFIX:?} are reserved"));
    }
    if record.description.len() > TEXT_BYTES_MAX || record.owner_email.len() > TEXT_BYTES_MAX {
        return bad(format!("namespace description and owner email are limited to {TEXT_BYTES_MAX} bytes"));
    }
    if record.retention_ms < 0 {
        return bad("workflow_execution_retention_period must not be negative".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_registry_rejects_duplicates_and_bad_names() {
        let ns = Namespaces::default();
        ns.register(NamespaceRecord::new("a", 1, 0)).await.unwrap();
        assert!(matches!(ns.register(NamespaceRecord::new("a", 1, 0)).await, Err(ServiceError::AlreadyExists(_))));
        for bad in ["", "has space", "__hourglass_x", &"x".repeat(300)] {
            assert!(matches!(ns.register(NamespaceRecord::new(bad, 1, 0)).await, Err(ServiceError::InvalidArgument(_))), "{bad}");
        }
        assert!(matches!(ns.register(NamespaceRecord::new("neg", -1, 0)).await, Err(ServiceError::InvalidArgument(_))));
        assert_eq!(ns.list().len(), 1);
        let a = ns.require("a").unwrap();
        assert_eq!(ns.get_by_id(&a.id), Some(a));
        assert!(matches!(ns.require("zzz"), Err(ServiceError::NamespaceNotFound(_))));
        assert!(matches!(ns.require(""), Err(ServiceError::InvalidArgument(_))));
        assert!(matches!(ns.require(SYSTEM_NAMESPACE), Err(ServiceError::NamespaceNotFound(_))));
    }

    #[test]
    fn records_round_trip_through_the_stored_form() {
        let r = NamespaceRecord { owner_email: "o@x".into(), description: "d".into(), ..NamespaceRecord::new("n", 5, 7) };
        let reg = StoredRegistry { namespaces: vec![StoredNamespace::from(&r)] };
        let back = StoredRegistry::decode(reg.encode_to_vec().as_slice()).unwrap();
        assert_eq!(NamespaceRecord::from(back.namespaces[0].clone()), r);
    }
}
