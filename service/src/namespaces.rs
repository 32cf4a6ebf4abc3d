//! The namespace registry. (Being made durable: see the system RPCs.)

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{Result, ServiceError};

/// What the service keeps of a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceRecord {
    pub name: String,
    pub id: String,
    pub description: String,
    pub retention_ms: i64,
}

#[derive(Clone, Default)]
pub struct Namespaces {
    by_name: Arc<RwLock<BTreeMap<String, NamespaceRecord>>>,
}

impl Namespaces {
    pub fn get(&self, name: &str) -> Option<NamespaceRecord> {
        self.by_name.read().get(name).cloned()
    }

    /// The namespace, or `InvalidArgument` (empty name) / `NotFound`.
    pub fn require(&self, name: &str) -> Result<NamespaceRecord> {
        if name.is_empty() {
            return Err(ServiceError::InvalidArgument("namespace is required".into()));
        }
        self.get(name).ok_or_else(|| ServiceError::NamespaceNotFound(name.to_string()))
    }

    pub fn insert(&self, record: NamespaceRecord) {
        self.by_name.write().insert(record.name.clone(), record);
    }

    pub fn list(&self) -> Vec<NamespaceRecord> {
        self.by_name.read().values().cloned().collect()
    }
}
