//! A small Rust client over the generated stubs, used by `rostractl` and the tests.
//! [`Watcher`] (`watch`) turns any watch RPC into a sequence of consistent views and
//! transparently resumes from the last index if the connection drops.

pub mod watch;

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::pb;
use crate::pb::catalog_client::CatalogClient;
use crate::pb::health_client::HealthClient;
use crate::pb::kv_client::KvClient;
use crate::pb::status_client::StatusClient;
pub use watch::{
    CatalogServiceWatch, EventsWatch, HealthServiceWatch, KvWatch, NodesWatch, ServiceChecksWatch,
    ServicesWatch, StateChecksWatch, WatchFrame, WatchSpec, Watcher,
};

/// Largest message the client accepts (a large prefix listing or snapshot chunk).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Error connecting to Rostra agent at {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("{}{}", .0.message(), wrong_port_hint(.0))]
    Rpc(#[from] tonic::Status),
}

/// gRPC against the HTTP (8500) or DNS (8600) port fails with protocol noise; say what
/// is probably wrong.
fn wrong_port_hint(status: &tonic::Status) -> &'static str {
    let m = status.message();
    if m.contains("compression flag") || m.contains("404 Not Found") || m == "transport error" {
        " (is -addr/ROSTRA_ADDR the agent's gRPC port? It is 8502 by default; 8500 is Consul's HTTP API)"
    } else {
        ""
    }
}

/// A connection to one Rostra server's public gRPC API.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    addr: String,
}

impl Client {
    /// Connects eagerly, so an unreachable server is reported here.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        let uri = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let connect_err = |message: String| ClientError::Connect {
            addr: addr.to_string(),
            message,
        };
        let channel = Endpoint::from_shared(uri)
            .map_err(|e| connect_err(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| {
                // Each layer tends to repeat the one below; keep each text once.
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    let text = s.to_string();
                    if !msg.contains(&text) {
                        msg = format!("{msg}: {text}");
                    }
                    src = s.source();
                }
                connect_err(msg)
            })?;
        Ok(Client {
            channel,
            addr: addr.to_string(),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn catalog(&self) -> CatalogClient<Channel> {
        CatalogClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The underlying channel, for the other generated clients.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn status(&self) -> StatusClient<Channel> {
        StatusClient::new(self.channel.clone())
    }

    pub async fn get(
        &self,
        key: &str,
        consistency: pb::Consistency,
    ) -> Result<pb::GetResponse, ClientError> {
        let req = pb::GetRequest {
            key: key.to_string(),
            consistency: consistency as i32,
        };
        Ok(self.kv().get(req).await?.into_inner())
    }

    pub async fn list(&self, req: pb::ListRequest) -> Result<pb::ListResponse, ClientError> {
        Ok(self.kv().list(req).await?.into_inner())
    }

    pub async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        flags: u64,
        cas: Option<u64>,
    ) -> Result<pb::PutResponse, ClientError> {
        let req = pb::PutRequest {
            key: key.to_string(),
            value,
            flags,
            cas,
            lock: None,
        };
        Ok(self.kv().put(req).await?.into_inner())
    }

    pub async fn delete(
        &self,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
    ) -> Result<pb::DeleteResponse, ClientError> {
        let req = pb::DeleteRequest {
            key: key.to_string(),
            recurse,
            cas,
        };
        Ok(self.kv().delete(req).await?.into_inner())
    }

    pub async fn leader(&self) -> Result<pb::LeaderResponse, ClientError> {
        Ok(self
            .status()
            .leader(pb::LeaderRequest {})
            .await?
            .into_inner())
    }

    /// Watches a key (or a prefix) and yields a consistent view after every change.
    pub async fn watch(&self, key: &str, prefix: bool) -> Result<KvWatcher, ClientError> {
        let spec = KvWatch {
            key: key.to_string(),
            prefix,
        };
        Watcher::start(self, spec).await
    }

    /// Follows any watch RPC (catalog and health watches included).
    pub async fn follow<S: WatchSpec>(&self, spec: S) -> Result<Watcher<S>, ClientError> {
        Watcher::start(self, spec).await
    }
}

/// A KV watch: pairs by key.
pub type KvWatcher = Watcher<KvWatch>;
