//! The API seam over the network: what a client agent (no raft, no tables) hands its
//! front ends and its local agent. Every call goes to one server's `AgentTransport`
//! (`service::call`), which answers it with its own service layer, so validation,
//! defaults and blocking are the servers' alone.
//!
//! Failover: the agent knows the servers it was told to join and learns the rest from
//! each status answer. When its server stops answering it moves to the next one; a read
//! is retried there, a write is not (the old server may have applied it: the caller gets
//! `OutcomeUnknown`, as from a server that lost its leader mid-write). A watch follows
//! the same way and resumes on the new server from the last index it delivered, so its
//! subscriber sees neither a gap nor a repeat.
//!
//! The agent's own traffic (heartbeats, anti-entropy, the node's events and exec jobs)
//! travels on one long-lived stream, the attachment (`service::attach`). Its server
//! pushes its status every second; what the seam must answer without a round trip
//! (response headers, `/v1/status/*`) is served from the last one, and a server silent
//! for `SERVER_SILENT` is given up for the next. On the new server the agent says hello
//! (a heartbeat) and resumes its node's events from the last index it delivered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::{Channel, Endpoint};

use super::attach::{Down, NodeState, Request, StatusReply, Up};
use super::call::{self, Call, Reply, WatchCall, WireWatch};
use super::catalog::{CheckView, ServiceEntry};
use super::catalog_watch::CatalogWatch;
use super::event::FireArgs;
use super::kv::PutArgs;
use super::membership::{Heartbeat, Member};
use super::query::{QueryMeta, QueryOptions};
use super::session::{SessionArgs, SessionFilter};
use super::txn::TxnReply;
use super::{
    CatalogWatchMessage, CatalogWatchReceiver, Consistency, ControlPlane, KvWatchReceiver, Limits,
    Metrics, ResponseMeta, ServiceError, WatchMessage, WatchReceiver,
};
use crate::pb_internal::agent_transport_client::AgentTransportClient;
use crate::raft::{wire, ClusterStatus};
use crate::state::catalog::{CheckStatus, Deregistration, Node, Registration, ServiceInstance};
use crate::state::event::Event;
use crate::state::session::Session;
use crate::state::txn::KvTxnOp;
use crate::state::{KvEntry, WatchTarget};

/// A server that has pushed no status for this long (it pushes one every second) is
/// given up for the next.
const SERVER_SILENT: Duration = Duration::from_secs(5);
/// Messages queued towards the server on the attachment.
const UP_BUFFER: usize = 16;
/// How long a call may take beyond the blocking wait it carries.
const CALL_SLACK: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages buffered per watch between the server's stream and the subscriber.
const WATCH_BUFFER: usize = 16;
/// Largest message either way: a big catalog list, or a snapshot file
/// (`service::snapshot::MAX_SNAPSHOT_BYTES`).
const MAX_MESSAGE: usize = 160 * 1024 * 1024;
/// How long saving or restoring a snapshot through a server may take.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(120);

/// The servers this agent knows and the one it talks to.
#[derive(Default)]
struct Servers {
    /// Server-port addresses (host:port), in the order they were learned.
    known: Vec<String>,
    /// Index into `known` of the current server, and its channel once connected.
    current: usize,
    channel: Option<Channel>,
}

/// Where the node's events resume on a new attachment, if anyone follows them.
fn events_resume(a: &mut Attachment) -> Option<u64> {
    if a.events.as_ref().is_some_and(|s| s.tx.is_closed()) {
        a.events = None;
    }
    a.events
        .as_ref()
        .map(|s| if s.synced { s.index } else { 0 })
}

/// The client half of the attachment.
#[derive(Default)]
struct Attachment {
    /// The current stream's sender, while attached.
    up: Option<mpsc::Sender<Up>>,
    /// Requests sent and not answered yet; dropped (so failed) when the stream breaks.
    pending: HashMap<u64, oneshot::Sender<Result<(), ServiceError>>>,
    next_seq: u64,
    /// Whoever follows the node's events, and where it stands.
    events: Option<EventsSubscriber>,
}

struct EventsSubscriber {
    tx: mpsc::Sender<CatalogWatchMessage>,
    synced: bool,
    index: u64,
}

pub struct Remote {
    servers: Mutex<Servers>,
    /// This agent's node: the default node of its sessions, the filter of its events.
    node_name: String,
    /// What the agent says when it attaches.
    hello: Heartbeat,
    attachment: Mutex<Attachment>,
    datacenter: String,
    /// This agent's own limits (its listeners'); request limits are the servers'.
    limits: Limits,
    status: Mutex<Option<StatusReply>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Itself, for the watch tasks it spawns from `&self` trait methods.
    me: std::sync::Weak<Remote>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(what: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable(format!("no server reachable: {what}"))
}

impl Remote {
    /// A seam over the servers at `join` (server-port addresses), for the agent that
    /// `hello` names. Does not wait for them: calls fail with `Unavailable` until one
    /// answers.
    pub fn start(
        join: Vec<String>,
        hello: Heartbeat,
        datacenter: String,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> Arc<Remote> {
        let remote = Arc::new_cyclic(|me| Remote {
            servers: Mutex::new(Servers {
                known: join,
                ..Servers::default()
            }),
            node_name: hello.node.clone(),
            hello,
            attachment: Mutex::new(Attachment::default()),
            datacenter,
            limits,
            status: Mutex::new(None),
            shutdown,
            tasks: TaskTracker::new(),
            me: me.clone(),
        });
        let me = remote.clone();
        remote.tasks.spawn(async move {
            while !me.shutdown.is_cancelled() {
                if let Err(e) = me.attach().await {
                    tracing::debug!(error = %e, "attachment ended");
                }
                me.detached();
                tokio::select! {
                    _ = me.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        remote
    }

    /// Waits for every task this seam spawned (after the shutdown token fired).
    pub async fn join_tasks(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// True once some server has answered.
    pub fn joined(&self) -> bool {
        lock(&self.status).is_some()
    }

    /// What a server's status push teaches: the cluster as it sees it, and the servers
    /// to fail over to.
    fn learn(&self, s: StatusReply) {
        if s.datacenter != self.datacenter {
            tracing::error!(
                server = %s.datacenter, agent = %self.datacenter,
                "the servers are in another datacenter"
            );
        }
        let mut servers = lock(&self.servers);
        for (_, node, _) in &s.cluster.servers {
            if !servers.known.contains(&node.raft_addr) {
                tracing::info!(server = %node.raft_addr, "learned a server");
                servers.known.push(node.raft_addr.clone());
            }
        }
        drop(servers);
        *lock(&self.status) = Some(s);
    }

    /// One attachment to the current server, until it breaks or the agent stops.
    async fn attach(&self) -> Result<(), String> {
        let (addr, mut client) = self.client().await.map_err(|e| e.to_string())?;
        let (up, queued) = mpsc::channel::<Up>(UP_BUFFER);
        {
            // Under the lock, so that a subscriber arriving now either is in this hello
            // or sends its own follow on `up`. Room for both: the channel is new.
            let mut a = lock(&self.attachment);
            let _ = up.try_send(Up::Hello(self.hello.clone()));
            if let Some(from) = events_resume(&mut a) {
                let _ = up.try_send(Up::FollowEvents { from });
            }
            // Requests sent from here wait in the channel until the stream is open.
            a.up = Some(up);
        }
        let outbound = ReceiverStream::new(queued).map(|m| wire::encode(&m));
        let mut stream = match client.attach(outbound).await {
            Ok(s) => s.into_inner(),
            Err(e) => {
                self.fail_over(&addr);
                return Err(format!("{addr}: {}", e.message()));
            }
        };
        tracing::debug!(server = %addr, "attached");
        loop {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                m = tokio::time::timeout(SERVER_SILENT, stream.message()) => m,
            };
            let payload = match next {
                Ok(Ok(Some(p))) => Ok(p),
                Ok(Ok(None)) => Err(format!("{addr} ended the attachment")),
                Ok(Err(status)) => Err(format!("{addr}: {}", status.message())),
                Err(_) => Err(format!("{addr} silent for {SERVER_SILENT:?}")),
            }
            .inspect_err(|_| self.fail_over(&addr))?;
            let down: Result<Down, ServiceError> =
                wire::decode(&payload).map_err(|e| e.message().to_string())?;
            match down.map_err(|e| format!("{addr} refused the attachment: {e}"))? {
                Down::Status(s) => self.learn(*s),
                Down::Done { seq, result } => {
                    if let Some(waiter) = lock(&self.attachment).pending.remove(&seq) {
                        let _ = waiter.send(result);
                    }
                }
                Down::Events(m) => self.deliver_event(m).await,
            }
        }
    }

    /// The attachment broke: requests in flight fail (their callers retry), and an events
    /// subscriber caught mid-snapshot starts over.
    fn detached(&self) {
        let mut a = lock(&self.attachment);
        a.up = None;
        a.pending.clear();
        if let Some(sub) = a.events.as_mut().filter(|s| !s.synced) {
            let reset = WatchMessage::Reset {
                index: sub.index,
                reason: "lost the server".into(),
            };
            if sub.tx.try_send(reset).is_err() {
                a.events = None;
            }
        }
    }

    async fn deliver_event(&self, m: CatalogWatchMessage) {
        let Some(tx) = lock(&self.attachment).events.as_ref().map(|s| s.tx.clone()) else {
            return;
        };
        let (synced, index) = match &m {
            WatchMessage::Synced { index } => (Some(true), Some(*index)),
            WatchMessage::Changes { index, .. } => (None, Some(*index)),
            WatchMessage::Reset { .. } => (Some(false), None),
            WatchMessage::Snapshot { .. } => (None, None),
        };
        let sent = tx.send(m).await.is_ok();
        let mut a = lock(&self.attachment);
        match a.events.as_mut() {
            Some(sub) if sent => {
                sub.synced = synced.unwrap_or(sub.synced);
                sub.index = index.unwrap_or(sub.index);
            }
            _ => a.events = None,
        }
    }

    /// Sends `request` on the attachment and waits for its answer.
    async fn request(&self, request: Request) -> Result<(), ServiceError> {
        let (done, answer) = oneshot::channel();
        let (up, seq) = {
            let mut a = lock(&self.attachment);
            let Some(up) = a.up.clone() else {
                return Err(unavailable("not attached to a server yet"));
            };
            a.next_seq += 1;
            let seq = a.next_seq;
            a.pending.insert(seq, done);
            (up, seq)
        };
        let lost = || unavailable("lost the server before it answered");
        if up.send(Up::Request { seq, request }).await.is_err() {
            return Err(lost());
        }
        match tokio::time::timeout(CALL_SLACK, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(lost()),
            Err(_) => {
                lock(&self.attachment).pending.remove(&seq);
                Err(ServiceError::Unavailable(format!(
                    "the server did not answer within {CALL_SLACK:?}"
                )))
            }
        }
    }

    /// A client for the current server, connecting (to the next known server when the
    /// current one refuses) if there is none.
    async fn client(&self) -> Result<(String, AgentTransportClient<Channel>), ServiceError> {
        let (known, start, channel) = {
            let s = lock(&self.servers);
            (s.known.clone(), s.current, s.channel.clone())
        };
        if known.is_empty() {
            return Err(unavailable("no server to join (give -join or -retry-join)"));
        }
        let wrap = |ch: Channel| {
            AgentTransportClient::new(ch)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE)
        };
        if let Some(ch) = channel {
            return Ok((known[start % known.len()].clone(), wrap(ch)));
        }
        let mut last = String::new();
        for i in 0..known.len() {
            let at = (start + i) % known.len();
            let addr = &known[at];
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| unavailable(format!("bad server address {addr}: {e}")))?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true);
            match endpoint.connect().await {
                Ok(ch) => {
                    let mut s = lock(&self.servers);
                    s.current = at;
                    s.channel = Some(ch.clone());
                    tracing::info!(server = %addr, "connected to server");
                    return Ok((addr.clone(), wrap(ch)));
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(unavailable(last))
    }

    /// Drops the current server's channel (it failed) so the next call tries the next.
    fn fail_over(&self, addr: &str) {
        let mut s = lock(&self.servers);
        let at = s.current % s.known.len().max(1);
        if s.known.get(at).map(String::as_str) == Some(addr) {
            s.channel = None;
            s.current = at + 1;
            tracing::warn!(server = %addr, "lost the server; trying the next one");
        }
    }

    /// Sends `call`; `wait` is the blocking wait it carries. A read is retried on the
    /// next server if this one fails; a write that may have reached it is not.
    async fn call(&self, call: Call, wait: Duration) -> Result<Reply, ServiceError> {
        let read = call.is_read();
        let tries = lock(&self.servers).known.len().max(1);
        let mut last = None;
        for _ in 0..tries {
            let (addr, mut client) = self.client().await?;
            let mut request = tonic::Request::new(wire::encode(&call));
            request.set_timeout(wait + CALL_SLACK);
            match client.call(request).await {
                Ok(reply) => {
                    let answer: call::Answer = wire::decode(reply.get_ref())
                        .map_err(|e| ServiceError::Internal(e.message().to_string()))?;
                    return answer;
                }
                Err(status) => {
                    self.fail_over(&addr);
                    if !read {
                        return Err(ServiceError::OutcomeUnknown(format!(
                            "lost server {addr} during a write ({}); it may or may not have been applied",
                            status.message()
                        )));
                    }
                    last = Some(format!("{addr}: {}", status.message()));
                }
            }
        }
        Err(unavailable(last.unwrap_or_default()))
    }

    /// Follows `call` on the servers into a channel of seam messages, resuming on the
    /// next server after a failure.
    fn watch<I, D>(
        self: &Arc<Self>,
        call: WatchCall,
        unwrap: fn(WireWatch) -> Option<WatchMessage<I, D>>,
    ) -> WatchReceiver<I, D>
    where
        I: Send + 'static,
        D: Send + 'static,
    {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let me = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = me.shutdown.cancelled() => {}
                _ = tx.closed() => {}
                _ = me.follow(call, unwrap, &tx) => {}
            }
        });
        WatchReceiver::from_channel(rx)
    }

    async fn follow<I, D>(
        &self,
        mut call: WatchCall,
        unwrap: fn(WireWatch) -> Option<WatchMessage<I, D>>,
        tx: &mpsc::Sender<WatchMessage<I, D>>,
    ) {
        // Where the subscriber stands: resumable from `index` once synced.
        let (mut synced, mut index) = (false, 0u64);
        loop {
            let opened = match self.client().await {
                Ok((addr, mut client)) => match client.watch(wire::encode(&call)).await {
                    Ok(stream) => Ok((addr, stream.into_inner())),
                    Err(e) => {
                        self.fail_over(&addr);
                        Err(e.message().to_string())
                    }
                },
                Err(e) => Err(e.to_string()),
            };
            if let Ok((addr, mut stream)) = opened {
                loop {
                    let msg = match stream.message().await {
                        Ok(Some(payload)) => match wire::decode::<WireWatch>(&payload) {
                            Ok(WireWatch::Refused(e)) => {
                                tracing::warn!(error = %e, "a watch was refused");
                                return;
                            }
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(error = %e.message(), "undecodable watch message");
                                return;
                            }
                        },
                        Ok(None) | Err(_) => {
                            self.fail_over(&addr);
                            break;
                        }
                    };
                    let Some(msg) = unwrap(msg) else { continue };
                    match &msg {
                        WatchMessage::Synced { index: i } => (synced, index) = (true, *i),
                        WatchMessage::Changes { index: i, .. } => index = *i,
                        WatchMessage::Reset { .. } => synced = false,
                        WatchMessage::Snapshot { .. } => {}
                    }
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
            }
            // Resume where the subscriber stands; if it was mid-snapshot, start over.
            if !synced {
                let reset = WatchMessage::Reset {
                    index,
                    reason: "lost the server".into(),
                };
                if tx.send(reset).await.is_err() {
                    return;
                }
            }
            call.set_start(if synced { index } else { 0 });
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn arc(&self) -> Result<Arc<Remote>, ServiceError> {
        self.me
            .upgrade()
            .ok_or_else(|| ServiceError::Unavailable("the agent is stopping".into()))
    }

    fn cached<T>(&self, f: impl FnOnce(&StatusReply) -> T) -> Option<T> {
        lock(&self.status).as_ref().map(f)
    }
}

/// The reply variant a call expects; anything else is a protocol bug.
macro_rules! expect {
    ($reply:expr, $pat:pat => $out:expr) => {
        match $reply? {
            $pat => Ok($out),
            other => Err(ServiceError::Internal(format!(
                "unexpected reply from the server: {other:?}"
            ))),
        }
    };
}

#[async_trait::async_trait]
impl ControlPlane for Remote {
    async fn kv_get(
        &self,
        key: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Option<KvEntry>), ServiceError> {
        let r = self
            .call(Call::KvGet(key.into(), opts.clone()), opts.wait)
            .await;
        expect!(r, Reply::Pair(m, e) => (m, e))
    }
    async fn kv_list(
        &self,
        prefix: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<KvEntry>), ServiceError> {
        let r = self
            .call(Call::KvList(prefix.into(), opts.clone()), opts.wait)
            .await;
        expect!(r, Reply::Pairs(m, e) => (m, e))
    }
    async fn kv_keys(
        &self,
        prefix: &str,
        separator: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<String>), ServiceError> {
        let call = Call::KvKeys(prefix.into(), separator.into(), opts.clone());
        let r = self.call(call, opts.wait).await;
        expect!(r, Reply::Keys(m, k) => (m, k))
    }
    async fn kv_put(&self, args: PutArgs) -> Result<(ResponseMeta, bool), ServiceError> {
        let r = self.call(Call::KvPut(args), Duration::ZERO).await;
        expect!(r, Reply::Written(m, ok) => (m, ok))
    }
    async fn kv_delete(
        &self,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
    ) -> Result<(ResponseMeta, bool), ServiceError> {
        let r = self
            .call(Call::KvDelete(key.into(), recurse, cas), Duration::ZERO)
            .await;
        expect!(r, Reply::Written(m, ok) => (m, ok))
    }
    async fn kv_txn(
        &self,
        ops: Vec<KvTxnOp>,
        consistency: Consistency,
    ) -> Result<TxnReply, ServiceError> {
        let r = self
            .call(Call::KvTxn(ops, consistency), Duration::ZERO)
            .await;
        expect!(r, Reply::Txn(t) => t)
    }
    fn watch_kv(
        &self,
        target: WatchTarget,
        start_index: u64,
    ) -> Result<KvWatchReceiver, ServiceError> {
        let me = self.arc()?;
        let call = WatchCall::Kv {
            target,
            start: start_index,
        };
        Ok(me.watch(call, |m| match m {
            WireWatch::Kv(m) => Some(match m {
                WatchMessage::Changes { index, delta } => WatchMessage::Changes {
                    index,
                    delta: call::shared(delta),
                },
                WatchMessage::Snapshot { index, items } => WatchMessage::Snapshot { index, items },
                WatchMessage::Synced { index } => WatchMessage::Synced { index },
                WatchMessage::Reset { index, reason } => WatchMessage::Reset { index, reason },
            }),
            _ => None,
        }))
    }

    async fn catalog_register(&self, reg: Registration) -> Result<u64, ServiceError> {
        let r = self
            .call(Call::CatalogRegister(Box::new(reg)), Duration::ZERO)
            .await;
        expect!(r, Reply::Index(i) => i)
    }
    async fn catalog_deregister(&self, d: Deregistration) -> Result<u64, ServiceError> {
        let r = self.call(Call::CatalogDeregister(d), Duration::ZERO).await;
        expect!(r, Reply::Index(i) => i)
    }
    async fn catalog_nodes(
        &self,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<Node>), ServiceError> {
        let r = self.call(Call::CatalogNodes(opts.clone()), opts.wait).await;
        expect!(r, Reply::Nodes(m, n) => (m, n))
    }
    async fn catalog_services(
        &self,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, BTreeMap<String, BTreeSet<String>>), ServiceError> {
        let r = self
            .call(Call::CatalogServices(opts.clone()), opts.wait)
            .await;
        expect!(r, Reply::Services(m, s) => (m, s))
    }
    async fn catalog_service(
        &self,
        name: &str,
        tags: &[String],
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<(Node, ServiceInstance)>), ServiceError> {
        let call = Call::CatalogService(name.into(), tags.to_vec(), opts.clone());
        let r = self.call(call, opts.wait).await;
        expect!(r, Reply::ServiceNodes(m, s) => (m, s))
    }
    async fn catalog_node(
        &self,
        name: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Option<(Node, Vec<ServiceInstance>)>), ServiceError> {
        let r = self
            .call(Call::CatalogNode(name.into(), opts.clone()), opts.wait)
            .await;
        expect!(r, Reply::NodeServices(m, n) => (m, n))
    }
    async fn health_node(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        let r = self
            .call(Call::HealthNode(node.into(), opts.clone()), opts.wait)
            .await;
        expect!(r, Reply::Checks(m, c) => (m, c))
    }
    async fn health_checks(
        &self,
        service: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        let r = self
            .call(Call::HealthChecks(service.into(), opts.clone()), opts.wait)
            .await;
        expect!(r, Reply::Checks(m, c) => (m, c))
    }
    async fn health_service(
        &self,
        service: &str,
        tags: &[String],
        passing_only: bool,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<ServiceEntry>), ServiceError> {
        let call = Call::HealthService(service.into(), tags.to_vec(), passing_only, opts.clone());
        let r = self.call(call, opts.wait).await;
        expect!(r, Reply::Health(m, e) => (m, e))
    }
    async fn health_state(
        &self,
        state: Option<CheckStatus>,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        let r = self
            .call(Call::HealthState(state, opts.clone()), opts.wait)
            .await;
        expect!(r, Reply::Checks(m, c) => (m, c))
    }
    fn watch_catalog(
        &self,
        watch: CatalogWatch,
        start_index: u64,
    ) -> Result<CatalogWatchReceiver, ServiceError> {
        watch.validate()?;
        let me = self.arc()?;
        let call = WatchCall::Catalog {
            watch,
            start: start_index,
        };
        Ok(me.watch(call, |m| match m {
            WireWatch::Catalog(m) => Some(m),
            _ => None,
        }))
    }

    async fn session_create(&self, mut args: SessionArgs) -> Result<(u64, String), ServiceError> {
        // A session made through this agent is this agent's node's, as in Consul.
        args.node.get_or_insert_with(|| self.node_name.clone());
        let r = self.call(Call::SessionCreate(args), Duration::ZERO).await;
        expect!(r, Reply::SessionCreated(i, id) => (i, id))
    }
    async fn session_destroy(&self, id: &str) -> Result<u64, ServiceError> {
        let r = self
            .call(Call::SessionDestroy(id.into()), Duration::ZERO)
            .await;
        expect!(r, Reply::Index(i) => i)
    }
    async fn session_renew(&self, id: &str) -> Result<(u64, Session), ServiceError> {
        let r = self
            .call(Call::SessionRenew(id.into()), Duration::ZERO)
            .await;
        expect!(r, Reply::SessionRenewed(i, s) => (i, s))
    }
    async fn session_list(
        &self,
        filter: SessionFilter,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<Session>), ServiceError> {
        let r = self
            .call(Call::SessionList(filter, opts.clone()), opts.wait)
            .await;
        expect!(r, Reply::Sessions(m, s) => (m, s))
    }

    async fn event_fire(&self, args: FireArgs) -> Result<(ResponseMeta, Event), ServiceError> {
        let r = self.call(Call::EventFire(args), Duration::ZERO).await;
        expect!(r, Reply::Fired(m, e) => (m, e))
    }
    async fn event_list(
        &self,
        name: Option<String>,
        opts: &QueryOptions,
    ) -> Result<(u64, Vec<Event>), ServiceError> {
        let call = Call::EventList {
            name,
            node: self.node_name.clone(),
            opts: opts.clone(),
        };
        let r = self.call(call, opts.wait).await;
        expect!(r, Reply::Events(i, e) => (i, e))
    }

    async fn heartbeat(&self, hb: Heartbeat) -> Result<(), ServiceError> {
        self.request(Request::Heartbeat(hb)).await
    }
    async fn sync_node(&self, state: NodeState) -> Result<(), ServiceError> {
        self.request(Request::Sync(Box::new(state))).await
    }
    fn watch_node_events(
        &self,
        node: &str,
        start: u64,
    ) -> Result<CatalogWatchReceiver, ServiceError> {
        if node != self.node_name {
            return Err(ServiceError::InvalidArgument(format!(
                "a client agent follows its own node's events ({}), not {node}'s",
                self.node_name
            )));
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let mut a = lock(&self.attachment);
        if a.events.as_ref().is_some_and(|s| !s.tx.is_closed()) {
            return Err(ServiceError::InvalidArgument(
                "the node's events are already followed".into(),
            ));
        }
        a.events = Some(EventsSubscriber {
            tx,
            synced: start > 0,
            index: start,
        });
        if let Some(up) = &a.up {
            // A full queue means the attachment is stuck: it will break, and the next
            // hello carries the follow.
            let _ = up.try_send(Up::FollowEvents { from: start });
        }
        Ok(WatchReceiver::from_channel(rx))
    }
    async fn leave(&self, hb: Heartbeat) -> Result<(), ServiceError> {
        let r = self.call(Call::Leave(hb), Duration::ZERO).await;
        expect!(r, Reply::Done => ())
    }
    async fn members(&self) -> Result<Vec<Member>, ServiceError> {
        let r = self.call(Call::Members, Duration::ZERO).await;
        expect!(r, Reply::Members(m) => m)
    }
    async fn raft_remove_peer(
        &self,
        id: Option<u64>,
        address: Option<String>,
    ) -> Result<(), ServiceError> {
        let r = self
            .call(Call::RemovePeer(id, address), Duration::ZERO)
            .await;
        expect!(r, Reply::Done => ())
    }
    async fn force_leave(&self, node: &str, prune: bool) -> Result<(), ServiceError> {
        let r = self
            .call(Call::ForceLeave(node.into(), prune), Duration::ZERO)
            .await;
        expect!(r, Reply::Done => ())
    }

    async fn snapshot_save(
        &self,
        consistency: Consistency,
    ) -> Result<(ResponseMeta, Vec<u8>), ServiceError> {
        // Building and sending a large file takes a while; allow for it.
        let r = self
            .call(Call::SnapshotSave(consistency), SNAPSHOT_WAIT)
            .await;
        expect!(r, Reply::Snapshot(m, f) => (m, f))
    }
    async fn snapshot_restore(&self, file: Vec<u8>) -> Result<(ResponseMeta, u64), ServiceError> {
        let r = self.call(Call::SnapshotRestore(file), SNAPSHOT_WAIT).await;
        expect!(r, Reply::Restored(m, i) => (m, i))
    }

    fn meta(&self, index: u64) -> ResponseMeta {
        let meta = self.cached(|s| s.meta.clone()).unwrap_or(ResponseMeta {
            index: 0,
            node_id: 0,
            term: 0,
            known_leader: false,
            last_contact_ms: 0,
        });
        ResponseMeta { index, ..meta }
    }
    fn cluster_status(&self) -> ClusterStatus {
        self.cached(|s| s.cluster.clone()).unwrap_or_default()
    }
    fn datacenter(&self) -> &str {
        &self.datacenter
    }
    fn metrics(&self) -> Metrics {
        self.cached(|s| s.metrics.clone()).unwrap_or_default()
    }
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }
    fn spawn(&self, task: super::api::Task) {
        self.tasks.spawn(task);
    }
}
