//! Consul's watches, shared by `rostractl watch` and the agent's `watches` config so the
//! two can never disagree: what a watch asks for ([`plan`], validated with Consul's
//! messages), the JSON its handler gets and when ([`payload`]: Consul's firing rules,
//! and a [`Cursor`] of what was delivered), and the handlers themselves ([`handler`]:
//! script or HTTP). Where the state comes from is the caller's: the CLI follows a gRPC
//! watch (`client::Watcher`), the agent a service-layer one (`service::follow`), both
//! on the one resumable watch protocol.

pub mod handler;
pub mod payload;
pub mod plan;

pub use handler::{Handler, HttpHandler, Output};
pub use payload::{catalog_payload, kv_payload, Cursor, Firing};
pub use plan::{plan, Source, WatchParams, WatchPlan};
