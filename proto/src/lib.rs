//! # hourglass-proto
//!
//! The Temporal gRPC surface Hourglass serves: the tonic servers for
//! `temporal.api.workflowservice.v1.WorkflowService` and
//! `temporal.api.operatorservice.v1.OperatorService`, generated at build time from the
//! descriptor set of the `temporalio-protos` crate and reusing its message types (no
//! system `protoc`). Re-exports those types as [`temporal`].
//!
//! Not here: any behaviour. Methods the service does not override answer
//! `Unimplemented` with a message naming the method.

pub use temporalio_protos::protos::temporal;

/// Generated server for `WorkflowService`.
pub mod workflowservice {
    #![allow(clippy::all, missing_docs, rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/temporal.api.workflowservice.v1.rs"));
}

pub use workflowservice::workflow_service_client::WorkflowServiceClient;
pub use workflowservice::workflow_service_server::{WorkflowService, WorkflowServiceServer};

/// Generated server for `OperatorService` (what `temporal operator ...` calls).
pub mod operatorservice {
    #![allow(clippy::all, missing_docs, rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/temporal.api.operatorservice.v1.rs"));
}

pub use operatorservice::operator_service_server::{OperatorService, OperatorServiceServer};

/// Node-to-node service of a cluster: Raft message streams (`hourglass/peer.proto`).
pub mod peer {
    #![allow(clippy::all, missing_docs, rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/hourglass.peer.v1.rs"));
}
