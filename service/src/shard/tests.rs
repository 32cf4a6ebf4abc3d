//! Ownership moving under load: every shard's leader steps down again and again
//! (a real Raft term change on a one-member group) while clients start and signal
//! workflows through the router. Nothing acknowledged is lost or applied twice, and
//! every history stays dense.

use std::sync::Arc;
use std::time::Duration;

use hourglass_raft::{Node, NodeConfig};
use hourglass_storage::state::RunKey;
use prost::Message;
use temporalio_protos::protos::temporal::api::enums::v1::{EventType, WorkflowIdConflictPolicy};
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;

use crate::core::run::{Policies, RunSpec, Timeouts};
use crate::core::signals::SignalSpec;
use crate::engine::external;
use crate::engine::start;
use crate::engine::{Engine, EngineConfig, SystemClock};

const WORKFLOWS: usize = 24;
const SIGNALS: usize = 6;

async fn engine(dir: &tempfile::TempDir) -> Engine {
    let mut config = NodeConfig::new(dir.path(), 4);
    config.tick_ms = 5;
    let node = Node::open(config).await.expect("node opens");
    let engine = Engine::new(node, EngineConfig::default(), Arc::new(SystemClock));
    assert!(engine.wait_serving(Duration::from_secs(10)).await, "every shard gets an owner");
    engine
}

fn spec(request_id: String) -> RunSpec {
    RunSpec {
        workflow_type: "Wf".into(),
        task_queue: "tq".into(),
        timeouts: Timeouts::normalize(0, 0, 0, &EngineConfig::default()),
        request_id,
        ..Default::default()
    }
}

/// Runs `call` through the router's bounded retries, as the frontend does, and when
/// those run out (the storm moved the shard again and again under one call) repeats
/// it as an SDK client repeats an `Unavailable` answer, with the same request id.
/// Bounded too: a shard that never serves fails the test.
async fn as_sdk_client<T, F, Fut>(engine: &Engine, mut call: F) -> crate::error::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<T>>,
{
    let mut client_attempts = 0;
    loop {
        match engine.router().retry(&mut call).await {
            Err(crate::error::ServiceError::NotLeader { .. }) if client_attempts < 20 => {
                client_attempts += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

/// Starts `wf` and signals it [`SIGNALS`] times, each call retried until
/// acknowledged ([`as_sdk_client`]).
async fn client(engine: Engine, wf: String) {
    let policies = Policies::resolve(0, 0, WorkflowIdConflictPolicy::Fail).expect("policies");
    let request_id = format!("start-{wf}");
    let started = as_sdk_client(&engine, || start::start_workflow(&engine, "default", &wf, spec(request_id.clone()), policies))
        .await
        .expect("start acknowledged");
    assert!(started.started);
    for i in 0..SIGNALS {
        let signal = SignalSpec { signal_name: format!("s{i}"), request_id: format!("{wf}-sig-{i}"), ..Default::default() };
        as_sdk_client(&engine, || external::signal_workflow(&engine, "default", &wf, "", signal.clone()))
            .await
            .expect("signal acknowledged");
    }
}

fn history(engine: &Engine, wf: &str) -> Vec<HistoryEvent> {
    let (run_id, _) = engine.current_run_now("default", wf).expect("reads").expect("the workflow exists");
    let run = RunKey { namespace: "default".into(), workflow_id: wf.into(), run_id };
    let raw = engine.owner_now(&run).read_history(&run, 1, 10_000).expect("history reads");
    raw.into_iter().map(|(_, b)| HistoryEvent::decode(b.as_ref()).expect("event decodes")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_change_under_load_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = engine(&dir).await;
    let terms_before: Vec<u64> = (0..4).map(|s| engine.node().leadership(s).expect("shard").term).collect();

    let clients: Vec<_> = (0..WORKFLOWS).map(|i| tokio::spawn(client(engine.clone(), format!("wf-{i}")))).collect();
    let chaos_engine = engine.clone();
    let chaos = tokio::spawn(async move {
        let mut step_downs = 0u32;
        for round in 0u32.. {
            let shard = round % 4;
            chaos_engine.node().step_down(shard).await.expect("step down");
            step_downs += 1;
            // Each term gets an owner before the next step-down of any shard: the
            // router's retries are bounded (RETRIES_MAX within ROUTE_WAIT), and a storm
            // that never lets an owner serve would outrun them on a starved machine.
            assert!(chaos_engine.router().owners().wait(shard, Duration::from_secs(10)).await.is_some(), "shard {shard} gets an owner");
            tokio::time::sleep(Duration::from_millis(1 + u64::from(round % 3))).await;
            if round >= 400 {
                break;
            }
        }
        step_downs
    });
    for c in clients {
        c.await.expect("client finished");
    }
    let step_downs = chaos.await.expect("chaos finished");
    assert!(step_downs > 100);
    assert!(engine.wait_serving(Duration::from_secs(10)).await);

    for s in 0..4u32 {
        let term = engine.node().leadership(s).expect("shard").term;
        assert!(term > terms_before[s as usize], "shard {s} changed terms ({} -> {term})", terms_before[s as usize]);
    }
    for i in 0..WORKFLOWS {
        let events = history(&engine, &format!("wf-{i}"));
        let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, (1..=events.len() as i64).collect::<Vec<_>>(), "wf-{i}: event ids are dense");
        let started = events.iter().filter(|e| e.event_type == EventType::WorkflowExecutionStarted as i32).count();
        let signaled: Vec<&HistoryEvent> = events.iter().filter(|e| e.event_type == EventType::WorkflowExecutionSignaled as i32).collect();
        assert_eq!(started, 1, "wf-{i}: started exactly once");
        assert_eq!(signaled.len(), SIGNALS, "wf-{i}: every acknowledged signal exactly once");
    }
}
