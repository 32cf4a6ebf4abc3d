//! Generates the tonic *servers* for `temporal.api.workflowservice.v1.WorkflowService`
//! and `temporal.api.operatorservice.v1.OperatorService` from the descriptor set
//! `temporalio-protos` exports, pointing every message type at that crate
//! (`extern_path`), so no message is generated twice and no protoc runs.
//!
//! Methods Hourglass does not implement fall back to generated default stubs; their
//! message is rewritten to name the method, so a client sees exactly what is missing.
//! The client is generated too: a cluster node forwards calls to a shard's leader.
//!
//! Also compiles `hourglass/peer.proto` (node-to-node traffic) with protox.

use std::path::PathBuf;

use prost::Message;

/// The services served, as (descriptor file, service name, generated file).
const SERVICES: [(&str, &str, &str); 2] = [
    ("temporal/api/workflowservice/v1/service.proto", "WorkflowService", "temporal.api.workflowservice.v1.rs"),
    ("temporal/api/operatorservice/v1/service.proto", "OperatorService", "temporal.api.operatorservice.v1.rs"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptor_path = std::env::var("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH")
        .map_err(|_| "temporalio-protos did not export DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH")?;
    println!("cargo:rerun-if-changed={descriptor_path}");
    println!("cargo:rerun-if-changed=build.rs");
    let all = prost_types::FileDescriptorSet::decode(std::fs::read(&descriptor_path)?.as_slice())?;
    let services_only =
        prost_types::FileDescriptorSet { file: all.file.into_iter().filter(|f| SERVICES.iter().any(|s| s.0 == f.name())).collect() };
    if services_only.file.len() != SERVICES.len() {
        return Err(format!("the service files {SERVICES:?} are not all in {descriptor_path}").into());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .generate_default_stubs(true)
        .extern_path(".temporal", "::temporalio_protos::protos::temporal")
        .out_dir(&out_dir)
        .compile_fds(services_only)?;
    for (_, service, generated) in SERVICES {
        name_unimplemented_methods(&out_dir.join(generated), service)?;
    }
    compile_peer(&out_dir)
}

/// The node-to-node service (`hourglass.peer.v1.Peer`).
fn compile_peer(out_dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=hourglass/peer.proto");
    let fds = protox::compile(["hourglass/peer.proto"], ["."])?;
    tonic_prost_build::configure().build_client(true).build_server(true).build_transport(true).out_dir(out_dir).compile_fds(fds)?;
    Ok(())
}

/// Replaces tonic's generic "Not yet implemented" with a message naming the method.
fn name_unimplemented_methods(path: &std::path::Path, service: &str) -> Result<(), Box<dyn std::error::Error>> {
    const STUB: &str = "\"Not yet implemented\"";
    let code = std::fs::read_to_string(path)?;
    let mut out = String::with_capacity(code.len() + 16 * 1024);
    let mut rest = code.as_str();
    while let Some(at) = rest.find(STUB) {
        let before = &rest[..at];
        let method = before
            .rfind("async fn ")
            .map(|i| before[i + 9..].split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or(""))
            .unwrap_or("");
        out.push_str(before);
        out.push_str(&format!("\"Hourglass does not implement {service}/{} (method {method} is unimplemented)\"", to_pascal(method)));
        rest = &rest[at + STUB.len()..];
    }
    out.push_str(rest);
    std::fs::write(path, out)?;
    Ok(())
}

fn to_pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}
