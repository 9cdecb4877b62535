//! One client interface over Rostra's `rostra.v1` gRPC API and etcd's v3 gRPC API, so
//! every scenario drives both with the same code: same connections, same loop, same
//! timing. Watches are raw streams on both sides (no client-side state), one watch per
//! stream.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use crate::etcdpb;
use crate::pb;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Rostra,
    Etcd,
}

/// One gRPC connection to a server of either kind.
#[derive(Clone)]
pub struct Conn {
    system: System,
    channel: Channel,
}

impl Conn {
    pub async fn open(system: System, addr: &str) -> anyhow::Result<Conn> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(Conn { system, channel })
    }

    /// Writes `key`; returns the write's index (Rostra's raft index, etcd's revision).
    pub async fn put(&self, key: &str, value: Vec<u8>) -> anyhow::Result<u64> {
        match self.system {
            System::Rostra => {
                let r = pb::kv_client::KvClient::new(self.channel.clone())
                    .put(pb::PutRequest {
                        key: key.into(),
                        value,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok(r.header.map(|h| h.index).unwrap_or(0))
            }
            System::Etcd => {
                let r = etcdpb::kv_client::KvClient::new(self.channel.clone())
                    .put(etcdpb::PutRequest {
                        key: key.into(),
                        value,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok(r.header.map(|h| h.revision as u64).unwrap_or(0))
            }
        }
    }

    /// Reads `key`: Rostra's default consistency (leader-served, Consul's default) and
    /// etcd's default, linearizable range.
    pub async fn get(&self, key: &str) -> anyhow::Result<()> {
        match self.system {
            System::Rostra => {
                pb::kv_client::KvClient::new(self.channel.clone())
                    .get(pb::GetRequest {
                        key: key.into(),
                        consistency: pb::Consistency::Default as i32,
                    })
                    .await?;
            }
            System::Etcd => {
                etcdpb::kv_client::KvClient::new(self.channel.clone())
                    .range(etcdpb::RangeRequest {
                        key: key.into(),
                        ..Default::default()
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Rostra's open subscriptions (watch streams and parked blocking queries).
    pub async fn watchers(&self) -> anyhow::Result<u64> {
        Ok(pb::status_client::StatusClient::new(self.channel.clone())
            .metrics(pb::MetricsRequest {})
            .await?
            .into_inner()
            .watchers)
    }

    /// Whether this server is its cluster's leader.
    pub async fn is_leader(&self) -> anyhow::Result<bool> {
        match self.system {
            System::Rostra => {
                let r = pb::status_client::StatusClient::new(self.channel.clone())
                    .leader(pb::LeaderRequest {})
                    .await?
                    .into_inner();
                let me = r.header.map(|h| h.node_id).unwrap_or(0);
                Ok(r.leader_id != 0 && r.leader_id == me)
            }
            System::Etcd => {
                let r = etcdpb::maintenance_client::MaintenanceClient::new(self.channel.clone())
                    .status(etcdpb::StatusRequest {})
                    .await?
                    .into_inner();
                let me = r.header.map(|h| h.member_id).unwrap_or(0);
                Ok(r.leader != 0 && r.leader == me)
            }
        }
    }

    /// Opens one watch stream on `key` and forwards, for every change it delivers, the
    /// change's index and the moment it arrived. Returns once the watch is established
    /// (Rostra: SYNCED; etcd: created), with the task that reads it.
    pub async fn watch(
        &self,
        key: &str,
        seen: mpsc::Sender<(u64, Instant)>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        match self.system {
            System::Rostra => {
                let mut stream = pb::kv_client::KvClient::new(self.channel.clone())
                    .watch(pb::WatchRequest {
                        key: key.into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                loop {
                    let m = stream
                        .message()
                        .await?
                        .ok_or_else(|| anyhow!("watch ended"))?;
                    if m.kind == pb::WatchKind::Synced as i32 {
                        break;
                    }
                }
                Ok(tokio::spawn(async move {
                    while let Ok(Some(m)) = stream.message().await {
                        if m.kind == pb::WatchKind::Changes as i32
                            && seen.send((m.index, Instant::now())).await.is_err()
                        {
                            return;
                        }
                    }
                }))
            }
            System::Etcd => {
                let (tx, rx) = mpsc::channel(1);
                tx.send(etcdpb::WatchRequest {
                    request_union: Some(etcdpb::watch_request::RequestUnion::CreateRequest(
                        etcdpb::WatchCreateRequest {
                            key: key.into(),
                            ..Default::default()
                        },
                    )),
                })
                .await
                .map_err(|_| anyhow!("watch request not sent"))?;
                let mut stream = etcdpb::watch_client::WatchClient::new(self.channel.clone())
                    .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                let first = stream
                    .message()
                    .await?
                    .ok_or_else(|| anyhow!("watch ended"))?;
                if !first.created {
                    bail!("etcd did not create the watch: {}", first.cancel_reason);
                }
                Ok(tokio::spawn(async move {
                    // Holding the request side open keeps the stream alive.
                    let _requests = tx;
                    while let Ok(Some(m)) = stream.message().await {
                        let Some(rev) = m
                            .events
                            .iter()
                            .filter_map(|e| e.kv.as_ref())
                            .map(|kv| kv.mod_revision)
                            .max()
                        else {
                            continue;
                        };
                        if seen.send((rev as u64, Instant::now())).await.is_err() {
                            return;
                        }
                    }
                }))
            }
        }
    }
}
