//! The agent: what runs on every node besides the server. It owns the node's local
//! services and checks (from config files and `/v1/agent/*`), runs the checks, and keeps
//! the catalog in step with them (anti-entropy: only changes are written to raft).

pub mod definition;
