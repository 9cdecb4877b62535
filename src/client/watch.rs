//! Client side of the watch protocol: a [`Watcher`] follows one watch RPC and keeps the
//! watched state (items by key), yields after each consistent point (the initial
//! `SYNCED`, then every `CHANGES`), and when the stream breaks reopens it from the last
//! index it holds, so a reconnect neither misses nor repeats a change; a `RESET` drops
//! the state and the snapshot that follows rebuilds it. Every watch RPC is a
//! [`WatchSpec`]: how to open it and how to split its responses into the protocol frame.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::Streaming;

use super::{Client, ClientError};
use crate::pb;

/// One response of any watch RPC, as the protocol sees it.
pub struct WatchFrame<K, V> {
    pub kind: pb::WatchKind,
    pub index: u64,
    /// SNAPSHOT: part of the state; CHANGES: new or changed items.
    pub upserted: Vec<(K, V)>,
    /// CHANGES: items gone.
    pub removed: Vec<K>,
}

/// A watch RPC and its request.
pub trait WatchSpec: Send + 'static {
    type Key: Ord + Clone + Send + 'static;
    type Item: Clone + Send + 'static;
    type Response: Send + 'static;
    /// Opens the stream; `start_index` 0 asks for the full state.
    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<Self::Response>, tonic::Status>>;
    fn frame(response: Self::Response) -> WatchFrame<Self::Key, Self::Item>;
}

/// Follows a watch and keeps the watched items by key.
pub struct Watcher<S: WatchSpec> {
    client: Client,
    spec: S,
    stream: Option<Streaming<S::Response>>,
    state: BTreeMap<S::Key, S::Item>,
    synced: bool,
    index: u64,
}

impl<S: WatchSpec> Watcher<S> {
    /// Opens the watch (an unreachable server or a refused request is reported here).
    pub async fn start(client: &Client, spec: S) -> Result<Self, ClientError> {
        let mut watcher = Watcher {
            client: client.clone(),
            spec,
            stream: None,
            state: BTreeMap::new(),
            synced: false,
            index: 0,
        };
        watcher.open().await?;
        Ok(watcher)
    }

    async fn open(&mut self) -> Result<(), ClientError> {
        // Resume after what we hold; 0 the first time and after a RESET.
        let start = if self.synced { self.index } else { 0 };
        if !self.synced {
            self.state.clear();
        }
        self.stream = Some(self.spec.open(&self.client, start).await?);
        Ok(())
    }

    /// The index of the view last returned.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The watched items by key.
    pub fn state(&self) -> &BTreeMap<S::Key, S::Item> {
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
                    if let Some(index) = self.apply(S::frame(msg)) {
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
    fn apply(&mut self, frame: WatchFrame<S::Key, S::Item>) -> Option<u64> {
        match frame.kind {
            pb::WatchKind::Reset => {
                self.state.clear();
                self.synced = false;
                None
            }
            pb::WatchKind::Snapshot => {
                self.state.extend(frame.upserted);
                None
            }
            pb::WatchKind::Synced => {
                self.synced = true;
                self.index = frame.index;
                Some(frame.index)
            }
            pb::WatchKind::Changes => {
                for key in frame.removed {
                    self.state.remove(&key);
                }
                self.state.extend(frame.upserted);
                self.index = frame.index;
                self.synced.then_some(frame.index)
            }
            // Not a message this protocol sends; ignore rather than misread it.
            pb::WatchKind::Unspecified => None,
        }
    }
}

fn kind(value: i32) -> pb::WatchKind {
    pb::WatchKind::try_from(value).unwrap_or(pb::WatchKind::Unspecified)
}

/// A KV key, or a prefix.
#[derive(Debug, Clone)]
pub struct KvWatch {
    pub key: String,
    pub prefix: bool,
}

impl WatchSpec for KvWatch {
    type Key = String;
    type Item = pb::KvPair;
    type Response = pb::WatchResponse;

    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<pb::WatchResponse>, tonic::Status>> {
        let req = pb::WatchRequest {
            key: self.key.clone(),
            prefix: self.prefix,
            start_index,
        };
        let mut kv = client.kv();
        Box::pin(async move { Ok(kv.watch(req).await?.into_inner()) })
    }

    fn frame(r: pb::WatchResponse) -> WatchFrame<String, pb::KvPair> {
        let mut frame = WatchFrame {
            kind: kind(r.kind),
            index: r.index,
            upserted: Vec::new(),
            removed: Vec::new(),
        };
        for ev in r.events {
            let Some(kv) = ev.kv else { continue };
            match pb::kv_event::Type::try_from(ev.r#type) {
                Ok(pb::kv_event::Type::Delete) => frame.removed.push(kv.key),
                Ok(pb::kv_event::Type::Put) => frame.upserted.push((kv.key.clone(), kv)),
                _ => {}
            }
        }
        frame
    }
}

/// Splits a catalog watch response (they all have the same fields) into a frame.
macro_rules! catalog_frame {
    ($r:expr, $key:expr, $removed:expr) => {{
        let r = $r;
        WatchFrame {
            kind: kind(r.kind),
            index: r.index,
            upserted: r.upserted.into_iter().map(|i| ($key(&i), i)).collect(),
            removed: r.removed.into_iter().map($removed).collect(),
        }
    }};
}

/// (node, id) of an instance or a check.
pub type ItemRef = (String, String);

fn entry_key(node: &Option<pb::Node>, service: &Option<pb::ServiceInstance>) -> ItemRef {
    (
        node.as_ref().map(|n| n.name.clone()).unwrap_or_default(),
        service.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
    )
}

fn instance_ref(r: pb::InstanceRef) -> ItemRef {
    (r.node, r.service_id)
}

fn check_key(c: &pb::HealthCheck) -> ItemRef {
    (c.node.clone(), c.check_id.clone())
}

fn check_ref(r: pb::CheckRef) -> ItemRef {
    (r.node, r.check_id)
}

/// The nodes list, by name.
#[derive(Debug, Clone)]
pub struct NodesWatch;

impl WatchSpec for NodesWatch {
    type Key = String;
    type Item = pb::Node;
    type Response = pb::WatchNodesResponse;

    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<Self::Response>, tonic::Status>> {
        let mut c = client.catalog();
        let req = pb::WatchNodesRequest { start_index };
        Box::pin(async move { Ok(c.watch_nodes(req).await?.into_inner()) })
    }

    fn frame(r: Self::Response) -> WatchFrame<String, pb::Node> {
        catalog_frame!(r, |n: &pb::Node| n.name.clone(), |n| n)
    }
}

/// The services list: name to tags.
#[derive(Debug, Clone)]
pub struct ServicesWatch;

impl WatchSpec for ServicesWatch {
    type Key = String;
    type Item = pb::ServiceSummary;
    type Response = pb::WatchServicesResponse;

    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<Self::Response>, tonic::Status>> {
        let mut c = client.catalog();
        let req = pb::WatchServicesRequest { start_index };
        Box::pin(async move { Ok(c.watch_services(req).await?.into_inner()) })
    }

    fn frame(r: Self::Response) -> WatchFrame<String, pb::ServiceSummary> {
        catalog_frame!(r, |s: &pb::ServiceSummary| s.name.clone(), |n| n)
    }
}

/// One service's instances with their nodes (the catalog's view).
#[derive(Debug, Clone)]
pub struct CatalogServiceWatch {
    pub name: String,
    pub tags: Vec<String>,
}

impl WatchSpec for CatalogServiceWatch {
    type Key = ItemRef;
    type Item = pb::CatalogServiceEntry;
    type Response = pb::WatchServiceResponse;

    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<Self::Response>, tonic::Status>> {
        let mut c = client.catalog();
        let req = pb::WatchServiceRequest {
            name: self.name.clone(),
            tags: self.tags.clone(),
            start_index,
        };
        Box::pin(async move { Ok(c.watch_service(req).await?.into_inner()) })
    }

    fn frame(r: Self::Response) -> WatchFrame<ItemRef, pb::CatalogServiceEntry> {
        catalog_frame!(
            r,
            |e: &pb::CatalogServiceEntry| entry_key(&e.node, &e.service),
            instance_ref
        )
    }
}

/// One service's instances with their node and checks (the health view).
#[derive(Debug, Clone)]
pub struct HealthServiceWatch {
    pub service: String,
    pub tags: Vec<String>,
    pub passing_only: bool,
}

impl WatchSpec for HealthServiceWatch {
    type Key = ItemRef;
    type Item = pb::ServiceEntry;
    type Response = pb::HealthWatchServiceResponse;

    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<Self::Response>, tonic::Status>> {
        let mut c = client.health();
        let req = pb::HealthWatchServiceRequest {
            service: self.service.clone(),
            tags: self.tags.clone(),
            passing_only: self.passing_only,
            start_index,
        };
        Box::pin(async move { Ok(c.watch_service(req).await?.into_inner()) })
    }

    fn frame(r: Self::Response) -> WatchFrame<ItemRef, pb::ServiceEntry> {
        catalog_frame!(
            r,
            |e: &pb::ServiceEntry| entry_key(&e.node, &e.service),
            instance_ref
        )
    }
}

/// The service-level checks of one service.
#[derive(Debug, Clone)]
pub struct ServiceChecksWatch {
    pub service: String,
}

impl WatchSpec for ServiceChecksWatch {
    type Key = ItemRef;
    type Item = pb::HealthCheck;
    type Response = pb::HealthWatchChecksResponse;

    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<Self::Response>, tonic::Status>> {
        let mut c = client.health();
        let req = pb::HealthWatchChecksRequest {
            service: self.service.clone(),
            start_index,
        };
        Box::pin(async move { Ok(c.watch_checks(req).await?.into_inner()) })
    }

    fn frame(r: Self::Response) -> WatchFrame<ItemRef, pb::HealthCheck> {
        catalog_frame!(r, check_key, check_ref)
    }
}

/// The checks in one state (`Unspecified`: any).
#[derive(Debug, Clone)]
pub struct StateChecksWatch {
    pub state: pb::HealthStatus,
}

impl WatchSpec for StateChecksWatch {
    type Key = ItemRef;
    type Item = pb::HealthCheck;
    type Response = pb::HealthWatchStateResponse;

    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<Self::Response>, tonic::Status>> {
        let mut c = client.health();
        let req = pb::HealthWatchStateRequest {
            state: self.state as i32,
            start_index,
        };
        Box::pin(async move { Ok(c.watch_state(req).await?.into_inner()) })
    }

    fn frame(r: Self::Response) -> WatchFrame<ItemRef, pb::HealthCheck> {
        catalog_frame!(r, check_key, check_ref)
    }
}

/// User events (optionally of one name), by Lamport time.
#[derive(Debug, Clone)]
pub struct EventsWatch {
    pub name: String,
}

impl WatchSpec for EventsWatch {
    type Key = u64;
    type Item = pb::UserEvent;
    type Response = pb::EventWatchResponse;

    fn open(
        &self,
        client: &Client,
        start_index: u64,
    ) -> BoxFuture<'static, Result<Streaming<Self::Response>, tonic::Status>> {
        let mut c = pb::event_client::EventClient::new(client.channel());
        let req = pb::EventWatchRequest {
            name: self.name.clone(),
            start_index,
        };
        Box::pin(async move { Ok(c.watch(req).await?.into_inner()) })
    }

    fn frame(r: Self::Response) -> WatchFrame<u64, pb::UserEvent> {
        catalog_frame!(r, |e: &pb::UserEvent| e.ltime, |l| l)
    }
}
