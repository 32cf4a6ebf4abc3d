//! System and namespace RPCs through the real Temporal Rust SDK connection, against
//! an in-process Hourglass server: GetSystemInfo, DescribeNamespace,
//! RegisterNamespace, ListNamespaces, ShutdownWorker, and namespaces surviving a restart;
//! and the standard `grpc.health.v1.Health` service beside the WorkflowService.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use hourglass_tests::TestServer;
use prost::Message;
use temporalio_client::tonic::{Code, IntoRequest};
use temporalio_protos::protos::google::rpc::Status as RpcStatus;
use temporalio_protos::protos::temporal::api::enums::v1::NamespaceState;
use temporalio_protos::protos::temporal::api::workflowservice::v1::*;

fn describe(namespace: &str) -> DescribeNamespaceRequest {
    DescribeNamespaceRequest { namespace: namespace.into(), ..Default::default() }
}

fn register(namespace: &str, retention_secs: i64) -> RegisterNamespaceRequest {
    RegisterNamespaceRequest {
        namespace: namespace.into(),
        description: format!("{namespace} for tests"),
        owner_email: "tests@hourglass.invalid".into(),
        workflow_execution_retention_period: Some(prost_wkt_types::Duration { seconds: retention_secs, nanos: 0 }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_info_is_reported_and_its_id_survives_a_restart() {
    let mut server = TestServer::start().await.expect("server starts");
    async fn info(server: &TestServer) -> GetClusterInfoResponse {
        let mut svc = support::connect(server).await.workflow_service();
        svc.get_cluster_info(GetClusterInfoRequest::default().into_request()).await.expect("GetClusterInfo").into_inner()
    }
    let before = info(&server).await;
    assert_eq!(before.server_version, "1.32.0-hourglass");
    assert_eq!(before.cluster_name, "active", "Temporal's dev server names its one cluster so");
    assert_eq!(before.history_shard_count, hourglass_tests::TEST_SHARDS as i32);
    assert_eq!(before.supported_clients.get("temporal-cli").map(String::as_str), Some("<2.0.0"));
    assert!(uuid::Uuid::parse_str(&before.cluster_id).is_ok(), "a UUID: {}", before.cluster_id);
    server.restart().await.expect("restarts on the same data directory");
    assert_eq!(info(&server).await.cluster_id, before.cluster_id, "the cluster id is stable");
    server.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_service_reports_the_workflow_service_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let server = TestServer::start().await.expect("server starts");
    let channel = temporalio_client::tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    for service in ["temporal.api.workflowservice.v1.WorkflowService", ""] {
        let answer = health.check(HealthCheckRequest { service: service.into() }).await.expect("checked").into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "no.such.Service".into() }).await.expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound, "as grpc-go answers a service it does not know");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_connects_and_reads_system_info_and_the_default_namespace() {
    let server = TestServer::start().await.expect("server starts");
    let conn = support::connect(&server).await;

    // Core read these while connecting (gzip-compressed, like every core request).
    let caps = conn.capabilities().expect("GetSystemInfo answered during connect");
    assert!(caps.sdk_metadata, "we persist sdk_metadata, so we advertise it");
    assert!(caps.activity_failure_include_heartbeat && caps.signal_and_query_header);
    assert!(caps.internal_error_differentiation && caps.encoded_failure_attributes);
    assert!(!caps.build_id_based_versioning);
    assert!(caps.eager_workflow_start, "eager start is built (e2e_eager.rs)");

    let mut svc = conn.workflow_service();
    let info = svc.get_system_info(GetSystemInfoRequest::default().into_request()).await.expect("GetSystemInfo").into_inner();
    assert!(info.server_version.starts_with("1.32.0"), "{}", info.server_version);

    let d = svc.describe_namespace(describe("default").into_request()).await.expect("default exists").into_inner();
    let ns = d.namespace_info.expect("namespace_info");
    assert_eq!(ns.name, "default");
    assert_eq!(ns.state, NamespaceState::Registered as i32);
    assert!(!ns.id.is_empty());
    let caps = ns.capabilities.expect("capabilities");
    assert!(caps.worker_poll_complete_on_shutdown, "ShutdownWorker ends a worker's polls (sticky ones too), so workers wait for them");
    let ttl = d.config.expect("config").workflow_execution_retention_ttl.expect("retention");
    assert_eq!(ttl.seconds, 24 * 3600, "as Temporal's dev server reports it");

    // By id too.
    let by_id = DescribeNamespaceRequest { id: ns.id.clone(), ..Default::default() };
    let d2 = svc.describe_namespace(by_id.into_request()).await.expect("by id").into_inner();
    assert_eq!(d2.namespace_info.expect("info").name, "default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_namespace_is_not_found_with_its_failure_detail() {
    let server = TestServer::start().await.expect("server starts");
    let mut svc = support::connect(&server).await.workflow_service();
    let err = svc.describe_namespace(describe("missing").into_request()).await.expect_err("no such namespace");
    assert_eq!(err.code(), Code::NotFound);
    let status = RpcStatus::decode(err.details()).expect("grpc-status-details-bin is a google.rpc.Status");
    assert_eq!(status.details.len(), 1);
    assert_eq!(status.details[0].type_url, "type.googleapis.com/temporal.api.errordetails.v1.NamespaceNotFoundFailure");

    let err = svc.describe_namespace(describe("").into_request()).await.expect_err("empty name");
    assert_eq!(err.code(), Code::InvalidArgument);
    let hidden = svc.describe_namespace(describe("__hourglass_system").into_request()).await.expect_err("reserved");
    assert_eq!(hidden.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_register_once_and_list_in_pages() {
    let server = TestServer::start().await.expect("server starts");
    let mut svc = support::connect(&server).await.workflow_service();
    for name in ["alpha", "beta", "gamma"] {
        svc.register_namespace(register(name, 3 * 24 * 3600).into_request()).await.expect("registers");
    }
    let dup = svc.register_namespace(register("beta", 3600).into_request()).await.expect_err("taken");
    assert_eq!(dup.code(), Code::AlreadyExists);
    for bad in ["", "white space", "__hourglass_mine"] {
        let err = svc.register_namespace(register(bad, 3600).into_request()).await.expect_err(bad);
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
    }
    let err = svc.register_namespace(register("negative", -1).into_request()).await.expect_err("negative retention");
    assert_eq!(err.code(), Code::InvalidArgument);

    let d = svc.describe_namespace(describe("beta").into_request()).await.expect("beta").into_inner();
    let info = d.namespace_info.expect("info");
    assert_eq!(info.description, "beta for tests");
    assert_eq!(info.owner_email, "tests@hourglass.invalid");
    assert_eq!(d.config.expect("config").workflow_execution_retention_ttl.expect("ttl").seconds, 3 * 24 * 3600);

    // Two per page: alpha, beta | default, gamma.
    let mut names = Vec::new();
    let mut token = Vec::new();
    let mut pages = 0;
    loop {
        let req = ListNamespacesRequest { page_size: 2, next_page_token: token, ..Default::default() };
        let page = svc.list_namespaces(req.into_request()).await.expect("list").into_inner();
        pages += 1;
        assert!(page.namespaces.len() <= 2);
        names.extend(page.namespaces.into_iter().map(|n| n.namespace_info.expect("info").name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["alpha", "beta", "default", "gamma"]);
    assert_eq!(pages, 2);
    let bad_token = ListNamespacesRequest { next_page_token: vec![0xff, 0xfe], ..Default::default() };
    assert_eq!(svc.list_namespaces(bad_token.into_request()).await.expect_err("bad token").code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_survive_a_restart() {
    let mut server = TestServer::start().await.expect("server starts");
    let (default_id, team_id) = {
        let mut svc = support::connect(&server).await.workflow_service();
        svc.register_namespace(register("team", 48 * 3600).into_request()).await.expect("registers");
        let id = |d: DescribeNamespaceResponse| d.namespace_info.expect("info").id;
        let default = svc.describe_namespace(describe("default").into_request()).await.expect("default").into_inner();
        let team = svc.describe_namespace(describe("team").into_request()).await.expect("team").into_inner();
        (id(default), id(team))
    };

    server.restart().await.expect("restarts on the same data directory");

    let mut svc = support::connect(&server).await.workflow_service();
    let team = svc.describe_namespace(describe("team").into_request()).await.expect("team is still there").into_inner();
    assert_eq!(team.namespace_info.expect("info").id, team_id);
    assert_eq!(team.config.expect("config").workflow_execution_retention_ttl.expect("ttl").seconds, 48 * 3600);
    let default = svc.describe_namespace(describe("default").into_request()).await.expect("default").into_inner();
    assert_eq!(default.namespace_info.expect("info").id, default_id, "default is not re-created on restart");
    let dup = svc.register_namespace(register("team", 3600).into_request()).await.expect_err("still taken");
    assert_eq!(dup.code(), Code::AlreadyExists);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_worker_is_acknowledged() {
    let server = TestServer::start().await.expect("server starts");
    let mut svc = support::connect(&server).await.workflow_service();
    let req = ShutdownWorkerRequest {
        namespace: "default".into(),
        sticky_task_queue: "sticky".into(),
        identity: "e2e".into(),
        reason: "graceful shutdown".into(),
        ..Default::default()
    };
    svc.shutdown_worker(req.into_request()).await.expect("ShutdownWorker is OK");
    let unknown = ShutdownWorkerRequest { namespace: "missing".into(), ..Default::default() };
    assert_eq!(svc.shutdown_worker(unknown.into_request()).await.expect_err("unknown namespace").code(), Code::NotFound);
}
