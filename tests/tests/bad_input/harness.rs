//! The bad-input harness: a raw (generated, no-retry) `WorkflowService` client on an
//! in-process [`TestServer`], a case recorder that checks each answer's exact status
//! code and that the server is still healthy after it, fixtures (runs with a started
//! workflow task or activity, closed runs) and task-token forging.
//!
//! Healthy after a case means: no panic on any server thread since the test started
//! (a panic hook counts them; the server runs in this process), the same channel
//! still answers GetSystemInfo, and at the end a fresh connection does too and the
//! server shuts down cleanly.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use hourglass_service::core::token::TaskToken;
use hourglass_service::engine::EngineConfig;
use hourglass_tests::TestServer;
use temporalio_client::tonic::transport::Channel;
use temporalio_client::tonic::{Code, Request, Response, Status};
use temporalio_protos::protos::temporal::api::command::v1::{command, Command, ScheduleActivityTaskCommandAttributes};
use temporalio_protos::protos::temporal::api::common::v1::{ActivityType, Payload, Payloads, WorkflowExecution, WorkflowType};
use temporalio_protos::protos::temporal::api::enums::v1::{CommandType, EventType};
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_protos::protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;
use tokio::task::JoinHandle;

pub type Svc = WorkflowServiceClient<Channel>;

pub const NS: &str = "default";
pub const UNKNOWN_NS: &str = "no-such-namespace";
/// The activity id the activity fixtures schedule.
pub const ACTIVITY_ID: &str = "act-1";
/// Deadline of every call (polls and queries answer before it).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine's payload limit (2 MiB).
pub fn blob_max() -> usize {
    EngineConfig::default().blob_bytes_max
}

/// Payloads whose encoding is just over the blob limit.
pub fn oversized() -> Payloads {
    Payloads { payloads: vec![Payload { metadata: Default::default(), data: vec![b'x'; blob_max() + 1], ..Default::default() }] }
}

pub fn small() -> Payloads {
    let metadata = [("encoding".to_string(), b"json/plain".to_vec())].into_iter().collect();
    Payloads { payloads: vec![Payload { metadata, data: b"\"hi\"".to_vec(), ..Default::default() }] }
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

pub fn exec(workflow_id: &str, run_id: &str) -> Option<WorkflowExecution> {
    Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: run_id.into() })
}

pub fn tq(name: &str) -> Option<TaskQueue> {
    Some(TaskQueue { name: name.into(), ..Default::default() })
}

pub fn start_request(workflow_id: &str, task_queue: &str) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: "BadInputWf".into() }),
        task_queue: tq(task_queue),
        identity: "bad-input".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

pub fn signal_with_start_request(workflow_id: &str, task_queue: &str) -> SignalWithStartWorkflowExecutionRequest {
    SignalWithStartWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: "BadInputWf".into() }),
        task_queue: tq(task_queue),
        signal_name: "sig".into(),
        identity: "bad-input".into(),
        ..Default::default()
    }
}

pub fn schedule_activity(task_queue: &str) -> Command {
    Command {
        command_type: CommandType::ScheduleActivityTask as i32,
        attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(ScheduleActivityTaskCommandAttributes {
            activity_id: ACTIVITY_ID.into(),
            activity_type: Some(ActivityType { name: "BadInputAct".into() }),
            task_queue: tq(task_queue),
            start_to_close_timeout: Some(prost_wkt_types::Duration { seconds: 600, nanos: 0 }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A request with the harness deadline (so a poll or query cannot hang a test).
pub fn req<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// A copy of a real task token with some fields changed: well-formed, but naming
/// something else.
pub fn forge(token: &[u8], change: impl FnOnce(&mut TaskToken)) -> Vec<u8> {
    let mut t = TaskToken::decode_token(token).expect("a token the server issued decodes");
    change(&mut t);
    t.encode_token()
}

/// Tokens no server issued: arbitrary bytes, empty, right magic but garbage, oversized.
pub fn garbled_tokens() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("random bytes", (0u8..48).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect()),
        ("empty", Vec::new()),
        ("one byte", vec![0xA7]),
        ("magic+version+garbage", vec![0xA7, 0x01, 0xff, 0xff, 0xff, 0x0f]),
        ("magic+unknown version", vec![0xA7, 0x09, 0x08, 0x01]),
        ("8 KiB of zeros", vec![0u8; 8192]),
    ]
}

// ---------------------------------------------------------------------------------
// Panic detection: the server runs in this process, so a panic on any thread that is
// not a test's own thread is a server panic.

static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);
static TEST_THREADS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("<unnamed>").to_string();
            let on_test_thread = TEST_THREADS.lock().map(|t| t.contains(&name)).unwrap_or(false);
            if !on_test_thread {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
                eprintln!("SERVER PANIC on thread {name}: {info}");
            }
            previous(info);
        }));
    });
    if let Some(name) = std::thread::current().name() {
        TEST_THREADS.lock().unwrap().push(name.to_string());
    }
}

pub fn server_panics() -> usize {
    SERVER_PANICS.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------------

/// One checked call: what was sent, the code expected and the code answered.
pub struct Row {
    pub rpc: String,
    pub input: String,
    pub expected: Code,
    pub got: Code,
    pub message: String,
}

pub struct Env {
    pub server: TestServer,
    svc: Svc,
    pub rows: Vec<Row>,
    failures: Vec<String>,
}

/// "respond_workflow_task_completed" → "RespondWorkflowTaskCompleted".
fn camel(snake: &str) -> String {
    snake.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

pub async fn connect(url: String) -> Svc {
    let channel = Channel::from_shared(url).expect("valid url").connect().await.expect("connects");
    WorkflowServiceClient::new(channel).max_encoding_message_size(usize::MAX).max_decoding_message_size(usize::MAX)
}

impl Env {
    pub async fn start() -> Env {
        install_panic_hook();
        let server = TestServer::start().await.expect("server starts");
        let svc = connect(server.url()).await;
        Env { server, svc, rows: Vec::new(), failures: Vec::new() }
    }

    pub fn svc(&self) -> Svc {
        self.svc.clone()
    }

    /// Records a case: the answer must carry `expected` (`Code::Ok` for success), and
    /// the server must still be healthy after it. Returns the response when it was OK.
    pub async fn check<T>(&mut self, rpc: &str, input: &str, expected: Code, result: Result<Response<T>, Status>) -> Option<T> {
        let (got, message, out) = match result {
            Ok(r) => (Code::Ok, String::new(), Some(r.into_inner())),
            Err(s) => (s.code(), s.message().to_string(), None),
        };
        let rpc = camel(rpc);
        if got != expected {
            self.failures.push(format!("{rpc} [{input}]: expected {expected:?}, got {got:?} ({message})"));
        }
        self.rows.push(Row { rpc: rpc.clone(), input: input.to_string(), expected, got, message });
        self.assert_healthy(&format!("{rpc} [{input}]")).await;
        out
    }

    /// No server panic so far, and the connection still serves a normal request.
    pub async fn assert_healthy(&mut self, after: &str) {
        assert_eq!(server_panics(), 0, "a server thread panicked (after {after})");
        let mut svc = self.svc();
        svc.get_system_info(req(GetSystemInfoRequest::default()))
            .await
            .unwrap_or_else(|e| panic!("GetSystemInfo fails after {after}: {e}"));
    }

    /// Prints the case table, checks a fresh connection works and the server stops
    /// cleanly, then fails the test if any case answered the wrong code.
    pub async fn finish(mut self, title: &str) {
        let mut table = format!("\n== {title}\n| RPC | input | expected | result |\n|---|---|---|---|\n");
        for r in &self.rows {
            let verdict = if r.got == r.expected { "ok".to_string() } else { format!("**{:?}** ({})", r.got, r.message) };
            let _ = writeln!(table, "| {} | {} | {:?} | {} |", r.rpc, r.input, r.expected, verdict);
        }
        println!("{table}");
        let mut fresh = connect(self.server.url()).await;
        fresh.get_system_info(req(GetSystemInfoRequest::default())).await.expect("a new connection is served");
        assert_eq!(server_panics(), 0, "a server thread panicked");
        assert!(self.server.server().is_some(), "the server is running");
        self.server.stop().await.expect("the server shuts down cleanly");
        assert!(
            self.failures.is_empty(),
            "{} case(s) answered the wrong code or changed state:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }

    // ---- fixtures (not recorded as cases; they must succeed) ----

    pub async fn start_workflow(&mut self, workflow_id: &str, task_queue: &str) -> String {
        let r = self.svc().start_workflow_execution(req(start_request(workflow_id, task_queue))).await.expect("fixture start");
        r.into_inner().run_id
    }

    pub async fn poll_workflow_task(&mut self, task_queue: &str) -> PollWorkflowTaskQueueResponse {
        let poll = PollWorkflowTaskQueueRequest {
            namespace: NS.into(),
            task_queue: tq(task_queue),
            identity: "bad-input".into(),
            ..Default::default()
        };
        let r = self.svc().poll_workflow_task_queue(req(poll)).await.expect("fixture poll").into_inner();
        assert!(!r.task_token.is_empty(), "a workflow task was waiting on {task_queue}");
        r
    }

    pub async fn poll_activity_task(&mut self, task_queue: &str) -> PollActivityTaskQueueResponse {
        let poll = PollActivityTaskQueueRequest {
            namespace: NS.into(),
            task_queue: tq(task_queue),
            identity: "bad-input".into(),
            ..Default::default()
        };
        let r = self.svc().poll_activity_task_queue(req(poll)).await.expect("fixture poll").into_inner();
        assert!(!r.task_token.is_empty(), "an activity task was waiting on {task_queue}");
        r
    }

    pub async fn complete_workflow_task(&mut self, token: &[u8], commands: Vec<Command>) {
        let r = RespondWorkflowTaskCompletedRequest {
            namespace: NS.into(),
            task_token: token.to_vec(),
            commands,
            identity: "bad-input".into(),
            ..Default::default()
        };
        self.svc().respond_workflow_task_completed(req(r)).await.expect("fixture completion");
    }

    /// A running workflow whose first workflow task is started.
    pub async fn started_workflow_task(&mut self) -> Wft {
        let workflow_id = unique("wft");
        let task_queue = unique("wft-tq");
        let run_id = self.start_workflow(&workflow_id, &task_queue).await;
        let task = self.poll_workflow_task(&task_queue).await;
        Wft { workflow_id, run_id, task_queue, token: task.task_token }
    }

    /// A running workflow with one activity (`ACTIVITY_ID`) started on a worker.
    pub async fn started_activity(&mut self) -> Act {
        let wft = self.started_workflow_task().await;
        let activity_queue = unique("act-tq");
        self.complete_workflow_task(&wft.token, vec![schedule_activity(&activity_queue)]).await;
        let task = self.poll_activity_task(&activity_queue).await;
        Act { workflow_id: wft.workflow_id, run_id: wft.run_id, token: task.task_token }
    }

    /// A legacy query task: a query on a run with no workflow task outstanding, taken
    /// by a poll. Returns the run, the query task's token and the waiting QueryWorkflow
    /// call (it answers once the token is used, or at its deadline).
    pub async fn pending_query(&mut self) -> (Wft, Vec<u8>, JoinHandle<Result<Response<QueryWorkflowResponse>, Status>>) {
        let wft = self.started_workflow_task().await;
        self.complete_workflow_task(&wft.token, Vec::new()).await;
        let mut svc = self.svc();
        let q = QueryWorkflowRequest {
            namespace: NS.into(),
            execution: exec(&wft.workflow_id, &wft.run_id),
            query: Some(WorkflowQuery { query_type: "state".into(), ..Default::default() }),
            ..Default::default()
        };
        let waiting = tokio::spawn(async move { svc.query_workflow(req(q)).await });
        let task = self.poll_workflow_task(&wft.task_queue).await;
        assert!(task.query.is_some(), "the poll got the legacy query task");
        (wft, task.task_token, waiting)
    }

    pub async fn terminate(&mut self, workflow_id: &str) {
        let r = TerminateWorkflowExecutionRequest { namespace: NS.into(), workflow_execution: exec(workflow_id, ""), ..Default::default() };
        self.svc().terminate_workflow_execution(req(r)).await.expect("fixture terminate");
    }

    /// Full history of a run (all pages).
    pub async fn history(&mut self, workflow_id: &str, run_id: &str) -> Vec<HistoryEvent> {
        let mut events = Vec::new();
        let mut token = Vec::new();
        loop {
            let r = GetWorkflowExecutionHistoryRequest {
                namespace: NS.into(),
                execution: exec(workflow_id, run_id),
                next_page_token: token,
                ..Default::default()
            };
            let page = self.svc().get_workflow_execution_history(req(r)).await.expect("history").into_inner();
            events.extend(page.history.map(|h| h.events).unwrap_or_default());
            if page.next_page_token.is_empty() {
                return events;
            }
            token = page.next_page_token;
        }
    }

    /// Everything observable about a run: its history and its description.
    pub async fn snapshot(&mut self, workflow_id: &str, run_id: &str) -> Snapshot {
        let history = self.history(workflow_id, run_id).await;
        let d = DescribeWorkflowExecutionRequest { namespace: NS.into(), execution: exec(workflow_id, run_id) };
        let describe = self.svc().describe_workflow_execution(req(d)).await.expect("describe").into_inner();
        Snapshot { history, describe }
    }

    /// Records a failure (with a short account of the difference) unless the run looks
    /// exactly as in `before`.
    pub async fn assert_unchanged(&mut self, what: &str, workflow_id: &str, run_id: &str, before: &Snapshot) {
        let after = self.snapshot(workflow_id, run_id).await;
        if &after == before {
            return;
        }
        let types = |s: &Snapshot| -> Vec<String> {
            s.history.iter().map(|e| format!("{:?}", EventType::try_from(e.event_type).unwrap_or(EventType::Unspecified))).collect()
        };
        let mut why = format!("STATE CHANGED: {what}: history {:?} -> {:?}", types(before), types(&after));
        if after.describe != before.describe {
            let _ = write!(
                why,
                "; pending activities {:?} -> {:?}; pending workflow task {:?} -> {:?}",
                before.describe.pending_activities,
                after.describe.pending_activities,
                before.describe.pending_workflow_task,
                after.describe.pending_workflow_task
            );
        }
        self.failures.push(why);
    }

    /// The workflow does not exist (nothing was created).
    pub async fn assert_no_workflow(&mut self, workflow_id: &str) {
        let d = DescribeWorkflowExecutionRequest { namespace: NS.into(), execution: exec(workflow_id, "") };
        match self.svc().describe_workflow_execution(req(d)).await {
            Err(e) if e.code() == Code::NotFound => {}
            other => self
                .failures
                .push(format!("STATE CHANGED: workflow {workflow_id} must not exist, Describe answered {:?}", other.map(|_| ()))),
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub history: Vec<HistoryEvent>,
    pub describe: DescribeWorkflowExecutionResponse,
}

/// A run with a started workflow task.
pub struct Wft {
    pub workflow_id: String,
    pub run_id: String,
    pub task_queue: String,
    pub token: Vec<u8>,
}

/// A run with a started activity.
pub struct Act {
    pub workflow_id: String,
    pub run_id: String,
    pub token: Vec<u8>,
}

/// `call!(env, rpc, "input", Code::X, request)`: sends `request` with the raw client's
/// `rpc` method and records the case.
macro_rules! call {
    ($env:expr, $rpc:ident, $input:expr, $code:expr, $request:expr) => {{
        let mut svc = $env.svc();
        let result = svc.$rpc(crate::harness::req($request)).await;
        $env.check(stringify!($rpc), &$input, $code, result).await
    }};
}
