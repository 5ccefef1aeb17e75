//! Inlet's gRPC API: the generated tonic/prost types for `proto/inlet/v1/inlet.proto`.

#[allow(unreachable_pub, clippy::all)]
pub mod v1 {
    tonic::include_proto!("inlet.v1");
}
