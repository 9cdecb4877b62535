//! Generates the gRPC code for `proto/` with a vendored protoc, so building needs no
//! system protobuf compiler.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build finds protoc through this variable.
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "proto/rostra/v1/common.proto",
        "proto/rostra/v1/kv.proto",
        "proto/rostra/v1/status.proto",
        "proto/rostra/v1/catalog.proto",
        "proto/rostra/v1/session.proto",
        "proto/rostra/v1/lock.proto",
        "proto/rostra/v1/event.proto",
        "proto/rostra/v1/exec.proto",
        "proto/rostra/internal/v1/raft.proto",
        "proto/rostra/internal/v1/agent.proto",
    ];
    tonic_prost_build::configure().compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
