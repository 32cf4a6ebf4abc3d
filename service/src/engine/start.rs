//! StartWorkflowExecution: request-id idempotency (durable, via the shard's request
//! dedupe) and the workflow id reuse and conflict policies, around the rules of
//! [`crate::core::run`].

use bytes::Bytes;
use hourglass_storage::state::RunKey;
use temporalio_protos::protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse;

use super::eager::{retried_task, task_response};
use super::{Engine, ShardOwner};
use crate::core::eager;
use crate::core::lifecycle::terminate_for_conflict;
use crate::core::run::{
    begin_run, decide as decide_policies, dedupe, new_run, workflow_dedupe_id, Decision, Policies, RunSpec, StartOutcome,
};
use crate::error::Result;

/// A fresh run id: a UUIDv7 (48-bit Unix-millisecond prefix, then random bits), the
/// form Temporal's server issues for new runs. Its ids sort by creation time. Also the
/// engine's source of request ids it mints itself, where any unique id does.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Applies the policies to the workflow's current run. Call with the workflow's lock held.
pub fn decide(owner: &ShardOwner, namespace: &str, workflow_id: &str, request_id: &str, policies: Policies) -> Result<Decision> {
    let current = match owner.current_run(namespace, workflow_id)? {
        Some((run_id, open)) => {
            let key = RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id };
            owner.load(&key)?.map(|view| (view, open))
        }
        None => None,
    };
    Ok(decide_policies(current, request_id, policies)?)
}

/// The first answer recorded for a deduplicated request on the locked workflow's shard.
pub fn dedupe_result(owner: &ShardOwner, namespace: &str, dedupe_id: &str) -> Result<Option<Bytes>> {
    owner.dedupe_result(namespace, dedupe_id)
}

/// StartWorkflowExecution. `spec.request_id` must be set (the frontend fills one in).
pub async fn start_workflow(
    engine: &Engine,
    namespace: &str,
    workflow_id: &str,
    spec: RunSpec,
    policies: Policies,
) -> Result<StartOutcome> {
    Ok(start_workflow_eager(engine, namespace, workflow_id, spec, policies, false).await?.outcome)
}

/// A start's answer: the outcome, and the first workflow task when it was started
/// eagerly for the caller ([`crate::core::eager`]).
#[derive(Debug)]
pub struct StartAnswer {
    pub outcome: StartOutcome,
    pub eager_task: Option<Box<PollWorkflowTaskQueueResponse>>,
}

/// StartWorkflowExecution, with `request_eager_execution` as `eager`.
pub async fn start_workflow_eager(
    engine: &Engine,
    namespace: &str,
    workflow_id: &str,
    spec: RunSpec,
    policies: Policies,
    eager: bool,
) -> Result<StartAnswer> {
    let lock = engine.lock_workflow(namespace, workflow_id).await?;
    let key = |run_id: String| RunKey { namespace: namespace.to_string(), workflow_id: workflow_id.to_string(), run_id };
    let retried = |run_id: String| -> Result<StartAnswer> {
        let eager_task = if eager { retried_task(&lock, &key(run_id.clone()))? } else { None };
        Ok(StartAnswer { outcome: StartOutcome { run_id, started: true }, eager_task })
    };
    let dedupe_id = workflow_dedupe_id("start", workflow_id, &spec.request_id);
    if let Some(first) = dedupe_result(&lock, namespace, &dedupe_id)? {
        return retried(String::from_utf8_lossy(&first).into_owned());
    }
    let existing = match decide(&lock, namespace, workflow_id, &spec.request_id, policies)? {
        Decision::SameRequest(run) => return retried(run.key.run_id),
        Decision::UseExisting(run) => {
            return Ok(StartAnswer { outcome: StartOutcome { run_id: run.key.run_id, started: false }, eager_task: None })
        }
        Decision::Create => None,
        Decision::TerminateExisting(run) => Some(run),
    };
    let now_ms = engine.now_ms();
    let key = key(new_run_id());
    let eager = eager && eager::may_start_eagerly(engine.config(), &spec, now_ms);
    let mut txns = Vec::with_capacity(2);
    if let Some(run) = existing {
        txns.push(terminate_for_conflict(run, now_ms, &spec.identity));
    }
    let run_id = key.run_id.clone();
    let mut txn = new_run(key.clone(), now_ms, &spec);
    begin_run(&mut txn);
    let started = eager.then(|| {
        let poller = eager::start_poller(&spec.identity);
        eager::start_first_task(&mut txn, &poller, spec.request_id.clone(), engine.config());
        txn.state.clone()
    });
    txns.push(txn);
    let record = dedupe(namespace, dedupe_id, Bytes::from(run_id.clone()));
    let (_, duplicate) = lock.commit_many(txns, Some(record)).await?;
    if let Some(first) = duplicate {
        return retried(String::from_utf8_lossy(&first).into_owned());
    }
    let eager_task = match started {
        Some(state) => task_response(lock.owner(), &key, &state)?,
        None => None,
    };
    Ok(StartAnswer { outcome: StartOutcome { run_id, started: true }, eager_task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::external::signal_workflow;
    use crate::engine::workflow_task::testkit::*;

    /// A request id is the client's: the same one sent for two workflows (one shard:
    /// their dedupe records share a table) starts or signals each of them.
    #[tokio::test]
    async fn a_request_id_dedupes_within_its_workflow_only() {
        let kit = kit().await;
        let e = &kit.engine;
        let request_id = "same-request".to_string();
        let first = start_workflow(e, NS, "wf-a", RunSpec { request_id: request_id.clone(), ..spec(TQ) }, policies()).await.unwrap();
        let again = start_workflow(e, NS, "wf-a", RunSpec { request_id: request_id.clone(), ..spec(TQ) }, policies()).await.unwrap();
        assert_eq!(again, first, "a retried start answers the first run");
        let other = start_workflow(e, NS, "wf-b", RunSpec { request_id: request_id.clone(), ..spec(TQ) }, policies()).await.unwrap();
        assert_ne!(other.run_id, first.run_id, "another workflow with the same request id starts its own run");
        assert!(other.started);

        let signal = |workflow_id: &'static str| {
            let spec = crate::core::signals::SignalSpec { signal_name: "s".into(), request_id: request_id.clone(), ..Default::default() };
            signal_workflow(e, NS, workflow_id, "", spec)
        };
        signal("wf-a").await.unwrap();
        signal("wf-b").await.unwrap();
        for (workflow_id, run_id) in [("wf-a", &first.run_id), ("wf-b", &other.run_id)] {
            let run = RunKey { namespace: NS.into(), workflow_id: workflow_id.into(), run_id: run_id.clone() };
            let signals = history(e, &run)
                .iter()
                .filter(|ev| ev.event_type() == temporalio_protos::protos::temporal::api::enums::v1::EventType::WorkflowExecutionSignaled)
                .count();
            assert_eq!(signals, 1, "{workflow_id} got its signal");
        }
    }

    #[test]
    fn run_ids_are_uuid_v7_and_sort_by_creation() {
        let first = new_run_id();
        let id = uuid::Uuid::parse_str(&first).expect("a run id is a UUID");
        assert_eq!(id.get_version_num(), 7, "{first}");
        assert_eq!(first.as_bytes()[14], b'7', "the version nibble of {first}");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_run_id();
        assert!(second > first, "a later run id sorts after an earlier one: {first} then {second}");
    }
}
