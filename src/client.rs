//! A small Rust client over the generated stubs, used by `rostractl` and the tests.
//! [`KvWatcher`] turns the watch protocol into a sequence of consistent views and
//! transparently resumes from the last index if the connection drops.

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use crate::pb;
use crate::pb::kv_client::KvClient;
use crate::pb::status_client::StatusClient;

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

    /// The underlying channel, for the other generated clients (Catalog, Health).
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
        let mut watcher = KvWatcher {
            client: self.clone(),
            key: key.to_string(),
            prefix,
            stream: None,
            state: BTreeMap::new(),
            synced: false,
            index: 0,
        };
        watcher.open().await?;
        Ok(watcher)
    }
}

/// Follows a watch stream and keeps the watched keys' current values.
pub struct KvWatcher {
    client: Client,
    key: String,
    prefix: bool,
    stream: Option<Streaming<pb::WatchResponse>>,
    state: BTreeMap<String, pb::KvPair>,
    synced: bool,
    index: u64,
}

impl KvWatcher {
    async fn open(&mut self) -> Result<(), ClientError> {
        let req = pb::WatchRequest {
            key: self.key.clone(),
            prefix: self.prefix,
            // Resume after what we hold; 0 the first time.
            start_index: if self.synced { self.index } else { 0 },
        };
        if !self.synced {
            self.state.clear();
        }
        self.stream = Some(self.client.kv().watch(req).await?.into_inner());
        Ok(())
    }

    /// The index of the view last returned.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The watched pairs by key.
    pub fn state(&self) -> &BTreeMap<String, pb::KvPair> {
        &self.state
    }

    /// Waits for the next consistent view: the initial state once synced, then the state
    /// after each change. Reconnects (resuming from the last index) when the stream
    /// breaks, retrying with backoff until the server is back.
    pub async fn next(&mut self) -> Result<u64, ClientError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let msg = match self.stream.as_mut() {
                Some(stream) => stream.message().await,
                None => Ok(None),
            };
            match msg {
                Ok(Some(msg)) => {
                    backoff = Duration::from_millis(100);
                    if let Some(index) = self.apply(msg) {
                        return Ok(index);
                    }
                }
                // A request the server rejects will be rejected again: give up.
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    return Err(status.into())
                }
                Ok(None) | Err(_) => {
                    self.stream = None;
                    loop {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        match self.open().await {
                            Ok(()) => break,
                            Err(e) => eprintln!("watch: reconnecting to {}: {e}", self.client.addr),
                        }
                    }
                }
            }
        }
    }

    /// Applies one protocol message; returns the index when the view is consistent.
    fn apply(&mut self, msg: pb::WatchResponse) -> Option<u64> {
        use pb::watch_response::Kind;
        match Kind::try_from(msg.kind).ok()? {
            Kind::Reset => {
                self.state.clear();
                self.synced = false;
                None
            }
            Kind::Snapshot => {
                for ev in msg.events {
                    if let Some(kv) = ev.kv {
                        self.state.insert(kv.key.clone(), kv);
                    }
                }
                None
            }
            Kind::Synced => {
                self.synced = true;
                self.index = msg.index;
                Some(msg.index)
            }
            Kind::Changes => {
                for ev in msg.events {
                    let Some(kv) = ev.kv else { continue };
                    match pb::kv_event::Type::try_from(ev.r#type) {
                        Ok(pb::kv_event::Type::Delete) => {
                            self.state.remove(&kv.key);
                        }
                        Ok(pb::kv_event::Type::Put) => {
                            self.state.insert(kv.key.clone(), kv);
                        }
                        _ => {}
                    }
                }
                self.index = msg.index;
                self.synced.then_some(msg.index)
            }
            // Not a message this protocol sends; ignore rather than misread it.
            Kind::Unspecified => None,
        }
    }
}
