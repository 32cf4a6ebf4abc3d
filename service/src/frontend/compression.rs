//! Which responses are sent gzip-compressed.
//!
//! SDK clients send gzip requests and accept gzip responses (`grpc-accept-encoding:
//! gzip,identity`), and the server is built with `send_compressed(Gzip)`. But tonic
//! builds a fresh deflate compressor for every message it compresses: miniz_oxide
//! allocates and zeroes ~300 KB of tables each time, which cost a third of the server's
//! CPU in a one-activity load test (perf, docs/benchmarks.md) while saving a few hundred
//! bytes per reply. So a response is compressed only when its encoded size is at least
//! [`COMPRESS_MIN_BYTES`]: big histories and poll responses still go out gzipped, acks and
//! small tasks go out as they are (a client that accepts gzip must accept identity too).

use prost::Message;

use super::RpcResult;

/// Encoded responses smaller than this are sent uncompressed.
pub const COMPRESS_MIN_BYTES: usize = 8 * 1024;

/// Marks a successful response below [`COMPRESS_MIN_BYTES`] as not to be compressed.
pub fn compress_if_large<T: Message>(result: RpcResult<T>) -> RpcResult<T> {
    result.map(|mut response| {
        if response.get_ref().encoded_len() < COMPRESS_MIN_BYTES {
            response.disable_compression();
        }
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_protos::protos::temporal::api::workflowservice::v1::GetSystemInfoResponse;
    use tonic::codec::SingleMessageCompressionOverride;

    fn override_of<T>(r: &tonic::Response<T>) -> Option<SingleMessageCompressionOverride> {
        r.extensions().get::<SingleMessageCompressionOverride>().copied()
    }

    #[test]
    fn small_responses_are_sent_uncompressed_large_ones_compressed() {
        let small = compress_if_large(Ok(tonic::Response::new(GetSystemInfoResponse::default()))).expect("ok");
        assert_eq!(override_of(&small), Some(SingleMessageCompressionOverride::Disable));
        let large = GetSystemInfoResponse { server_version: "x".repeat(COMPRESS_MIN_BYTES), ..Default::default() };
        let large = compress_if_large(Ok(tonic::Response::new(large))).expect("ok");
        assert_eq!(override_of(&large), None, "left to the server's setting (gzip)");
        let err: RpcResult<GetSystemInfoResponse> = Err(tonic::Status::not_found("x"));
        assert_eq!(compress_if_large(err).expect_err("error passes through").code(), tonic::Code::NotFound);
    }
}
