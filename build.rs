//! Generates the gRPC code for `proto/` with a vendored protoc, so building needs no
//! system protobuf compiler.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build finds protoc through this variable.
    std::env::set_var("PROTOC", protoc);
    let public = [
        "proto/rostra/v1/common.proto",
        "proto/rostra/v1/kv.proto",
        "proto/rostra/v1/status.proto",
        "proto/rostra/v1/catalog.proto",
        "proto/rostra/v1/session.proto",
        "proto/rostra/v1/lock.proto",
        "proto/rostra/v1/event.proto",
        "proto/rostra/v1/exec.proto",
        "proto/rostra/v1/snapshot.proto",
    ];
    let internal = [
        "proto/rostra/internal/v1/raft.proto",
        "proto/rostra/internal/v1/agent.proto",
    ];
    // The public contract's descriptors, for server reflection (internal services are
    // not served on the public port, so not described there).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Public services and clients use a codec with smaller per-call buffers
    // (src/grpc/codec.rs: an idle watch stream's memory).
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("rostra_v1_descriptor.bin"))
        .codec_path("crate::grpc::codec::SmallBufferCodec")
        .compile_protos(&public, &["proto"])?;
    tonic_prost_build::configure().compile_protos(&internal, &["proto"])?;
    // etcd's KV, Watch and Maintenance, client side only, for `rostractl bench compare`.
    let etcd = ["bench/etcd/etcdserverpb.proto"];
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&etcd, &["bench/etcd"])?;
    for p in public.iter().chain(&internal).chain(&etcd) {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
