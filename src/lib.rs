//! Rostra: a gRPC-native service-discovery and control-plane server with a
//! Consul-compatible face.
//!
//! A tour, in the order a request travels:
//! - [`grpc`] decodes `rostra.v1` requests (generated into [`pb`] from `proto/`),
//!   [`http`] decodes Consul's HTTP API and [`dns`] answers `.consul` names; all call the
//!   control plane through one seam, [`service::ControlPlane`] (an [`service::Api`]),
//!   which [`service::Service`] implements on a server. [`limit`] bounds the requests
//!   in flight on both ports.
//! - [`service`] is the only layer that knows what a request means: it validates,
//!   applies defaults, picks the read consistency, and proposes writes through [`raft`]
//!   (openraft on RocksDB, peers over gRPC in [`pb_internal`], writes forwarded to the
//!   leader). Leader-only duties run under one supervisor (`service::leader`): tombstone
//!   reaping, session TTLs (`service::session_ttl`), event retention. Sessions and KV
//!   locks are `service::session`, stream-held locks `service::lock`, user events
//!   `service::event`; each proposal carries the leader's clock, so apply reads none.
//! - Committed entries are applied by [`state`]: each command yields an
//!   [`state::Applied`] with typed [`state::Change`]s (a variant per table), published
//!   on the change feed, which retains a byte-bounded history of every table. Every
//!   watch (KV, catalog, health) is one protocol in `service::watch`: a view says what
//!   it looks at and turns feed events into deltas; snapshot, `SYNCED`, resume and
//!   `RESET` are the runner's. HTTP blocking queries wait on the same feed targets.
//! - [`db`] opens the single RocksDB holding the raft log and the tables, and tells its
//!   owner when it has closed.
//! - [`agent`] owns the node's local services and checks, runs the checks, and keeps the
//!   catalog in step (anti-entropy), and runs the `watches` of its config, following
//!   service-layer watches (`service::follow`) with cursors kept in its data dir;
//!   [`config`] reads Consul-format config files. [`watch`] is Consul's watches as both
//!   the agent and `rostractl watch` run them: plans, handler payloads and firing rules,
//!   script and HTTP handlers.
//! - A client agent ([`client_agent`]) has no raft and no tables: its front ends and its
//!   agent use `service::remote`, the seam over the network (`service::call` messages to
//!   `grpc::agent_transport` on a server). Membership (`service::membership`: heartbeats
//!   to the leader, which owns every node's `serfHealth`) and remote exec
//!   (`service::exec`, `agent::exec`) are built from seam calls, so they work the same
//!   on servers and client agents.
//! - [`server`] wires one process together and shuts it down in order; [`client`] is
//!   the Rust client used by `rostractl` ([`cli`]) and the tests, whose `Watcher`
//!   follows any watch RPC and resumes it after a disconnect.

pub mod agent;
pub mod cli;
pub mod client;
pub mod client_agent;
pub mod config;
pub mod db;
pub mod dns;
pub mod grpc;
pub mod http;
pub mod json;
pub mod limit;
pub mod logs;
pub mod raft;
pub mod server;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod version;
pub mod watch;

/// Code generated from `proto/rostra/v1`: the public contract.
pub mod pb {
    tonic::include_proto!("rostra.v1");

    /// The public contract's file descriptors, served by gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("rostra_v1_descriptor");
}

/// etcd's v3 API, client side (`bench/etcd`), for `rostractl bench compare`.
pub mod etcdpb {
    tonic::include_proto!("etcdserverpb");
}

/// Code generated from `proto/rostra/internal/v1`: the server-to-server raft transport,
/// kept out of the public package so no client is generated against it.
pub mod pb_internal {
    tonic::include_proto!("rostra.internal.v1");
}
