//! The current-run index: workflow → its most recently created run.
//!
//! It holds only the run's `Arc<RunKey>` (shared with the run table), ordered by the
//! run's namespace and workflow id, and is searched by anything that names a
//! workflow ([`WorkflowIdent`]: a [`WorkflowKey`] or a [`RunKey`]). A map keyed by
//! `WorkflowKey` would hold a second copy of both strings for every workflow.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::{RunKey, WorkflowKey};

/// Something that names a workflow.
pub(super) trait WorkflowIdent {
    fn namespace(&self) -> &str;
    fn workflow_id(&self) -> &str;
}

impl WorkflowIdent for WorkflowKey {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn workflow_id(&self) -> &str {
        &self.workflow_id
    }
}

impl WorkflowIdent for RunKey {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn workflow_id(&self) -> &str {
        &self.workflow_id
    }
}

fn cmp_workflows(a: &dyn WorkflowIdent, b: &dyn WorkflowIdent) -> Ordering {
    (a.namespace(), a.workflow_id()).cmp(&(b.namespace(), b.workflow_id()))
}

impl PartialEq for dyn WorkflowIdent + '_ {
    fn eq(&self, other: &Self) -> bool {
        cmp_workflows(self, other).is_eq()
    }
}
impl Eq for dyn WorkflowIdent + '_ {}
impl PartialOrd for dyn WorkflowIdent + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for dyn WorkflowIdent + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_workflows(self, other)
    }
}

/// An index entry: a run, compared (equality included) by its workflow only. Two
/// entries of one workflow are the same slot.
#[derive(Debug, Clone)]
struct Entry(Arc<RunKey>);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        cmp_workflows(&*self.0, &*other.0).is_eq()
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_workflows(&*self.0, &*other.0)
    }
}
impl<'a> Borrow<dyn WorkflowIdent + 'a> for Entry {
    fn borrow(&self) -> &(dyn WorkflowIdent + 'a) {
        &*self.0
    }
}

/// Workflow → current run. Equal when every workflow has the same current run.
#[derive(Debug, Clone, Default)]
pub(super) struct CurrentIndex(BTreeSet<Entry>);

impl PartialEq for CurrentIndex {
    fn eq(&self, other: &Self) -> bool {
        self.runs().eq(other.runs())
    }
}
impl Eq for CurrentIndex {}

impl CurrentIndex {
    /// The current run of the workflow `wf` names.
    pub fn get(&self, wf: &dyn WorkflowIdent) -> Option<&Arc<RunKey>> {
        self.0.get(wf).map(|e| &e.0)
    }

    /// Makes `run` its workflow's current run; returns the one it replaces.
    pub fn set(&mut self, run: Arc<RunKey>) -> Option<Arc<RunKey>> {
        self.0.replace(Entry(run)).map(|e| e.0)
    }

    /// Removes the workflow's entry; returns the run it pointed at.
    pub fn remove(&mut self, wf: &dyn WorkflowIdent) -> Option<Arc<RunKey>> {
        self.0.take(wf).map(|e| e.0)
    }

    /// Every current run, in workflow order.
    pub fn runs(&self) -> impl Iterator<Item = &Arc<RunKey>> + '_ {
        self.0.iter().map(|e| &e.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ns: &str, wf: &str, run: &str) -> Arc<RunKey> {
        Arc::new(RunKey { namespace: ns.into(), workflow_id: wf.into(), run_id: run.into() })
    }

    #[test]
    fn one_slot_per_workflow_found_by_either_key() {
        let mut index = CurrentIndex::default();
        assert_eq!(index.set(run("n", "w", "r1")), None);
        assert_eq!(index.set(run("n", "w2", "r1")), None);
        assert_eq!(index.set(run("n", "w", "r2")), Some(run("n", "w", "r1")), "same workflow, same slot");
        assert_eq!(index.len(), 2);
        let wf = WorkflowKey { namespace: "n".into(), workflow_id: "w".into() };
        assert_eq!(index.get(&wf), Some(&run("n", "w", "r2")));
        assert_eq!(index.get(&*run("n", "w", "other")), Some(&run("n", "w", "r2")), "a run key names its workflow");
        assert_eq!(index.get(&WorkflowKey { namespace: "m".into(), workflow_id: "w".into() }), None);
        assert_eq!(index.remove(&wf), Some(run("n", "w", "r2")));
        assert_eq!(index.runs().cloned().collect::<Vec<_>>(), vec![run("n", "w2", "r1")]);
    }

    #[test]
    fn equality_compares_the_runs() {
        let (mut a, mut b) = (CurrentIndex::default(), CurrentIndex::default());
        a.set(run("n", "w", "r1"));
        b.set(run("n", "w", "r2"));
        assert_ne!(a, b, "same workflow, different current run");
        b.set(run("n", "w", "r1"));
        assert_eq!(a, b);
    }
}
