//! Rostra: a gRPC-native service-discovery and control-plane server with a
//! Consul-compatible face.
//!
//! A tour, in the order a request travels:
//! - [`grpc`] decodes `rostra.v1` requests (generated into [`pb`] from `proto/`),
//!   [`http`] decodes Consul's HTTP API and [`dns`] answers `.consul` names; all call
//!   [`service`], the only layer that knows what a request means.
//! - [`service`] validates, picks the read consistency, and proposes writes through
//!   [`raft`] (openraft on RocksDB, peers over gRPC, writes forwarded to the leader).
//! - Committed entries are applied by [`state`], which also publishes every change on
//!   its change feed; watches are cursors over that feed.
//! - [`db`] opens the single RocksDB holding the raft log and the tables.
//! - [`agent`] owns the node's local services and checks, runs the checks, and keeps the
//!   catalog in step (anti-entropy); [`config`] reads Consul-format config files.
//! - [`server`] wires one process together; [`config`] says what to run;
//!   [`client`] is the Rust client used by `rostractl` ([`cli`]) and the tests.

pub mod agent;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod dns;
pub mod grpc;
pub mod http;
pub mod json;
pub mod limit;
pub mod raft;
pub mod server;
pub mod service;
pub mod state;

/// Code generated from `proto/rostra/v1`: the public contract.
pub mod pb {
    tonic::include_proto!("rostra.v1");
}

/// Code generated from `proto/rostra/internal/v1`: the server-to-server raft transport,
/// kept out of the public package so no client is generated against it.
pub mod pb_internal {
    tonic::include_proto!("rostra.internal.v1");
}
