//! The attachment protocol (`AgentTransport.Attach`, `service::attach`) spoken by hand
//! to an in-process server over its server port, as a client agent speaks it: the
//! server pushes its status, answers requests in order, writes only what a node state
//! changes, drops the events whose node filter excludes the attached node, and refuses a
//! stream that does not start with Hello or speaks for another node.

mod common;

use std::time::Duration;

use rostra::pb_internal::agent_transport_client::AgentTransportClient;
use rostra::pb_internal::RaftPayload;
use rostra::raft::wire;
use rostra::service::attach::{Down, NodeState, Request, Up};
use rostra::service::event::FireArgs;
use rostra::service::membership::Heartbeat;
use rostra::service::{CatalogItem, Consistency, QueryOptions, ServiceError, WatchMessage};
use rostra::state::catalog::{CheckSpec, CheckStatus, HealthCheck, Node, ServiceInstance};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

struct Attached {
    up: mpsc::Sender<Up>,
    down: tonic::Streaming<RaftPayload>,
}

async fn attach(addr: std::net::SocketAddr) -> Attached {
    let mut client = AgentTransportClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (up, rx) = mpsc::channel(16);
    let outbound = ReceiverStream::new(rx).map(|m: Up| wire::encode(&m));
    let down = client.attach(outbound).await.unwrap().into_inner();
    Attached { up, down }
}

impl Attached {
    async fn send(&self, m: Up) {
        self.up.send(m).await.unwrap();
    }

    /// The next message that `pick` wants, skipping status pushes and the rest.
    async fn next<T>(
        &mut self,
        mut pick: impl FnMut(Result<Down, ServiceError>) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + common::DEADLINE;
        loop {
            let m = tokio::time::timeout_at(deadline, self.down.message())
                .await
                .expect("the server answers on the attachment")
                .unwrap()
                .expect("the attachment stays open");
            if let Some(t) = pick(wire::decode(&m).unwrap()) {
                return t;
            }
        }
    }

    async fn done(&mut self, want: u64) -> Result<(), ServiceError> {
        self.next(|m| match m {
            Ok(Down::Done { seq, result }) if seq == want => Some(result),
            _ => None,
        })
        .await
    }

    /// Event names from the node-events watch up to its next consistent point.
    async fn events_until_consistent(&mut self) -> Vec<String> {
        let mut names = Vec::new();
        loop {
            let m = self
                .next(|m| match m {
                    Ok(Down::Events(e)) => Some(e),
                    _ => None,
                })
                .await;
            let items = match m {
                WatchMessage::Snapshot { items, .. } => items,
                WatchMessage::Synced { .. } => return names,
                WatchMessage::Changes { delta, .. } => {
                    let done = !delta.upserted.is_empty();
                    names.extend(event_names(delta.upserted));
                    if done {
                        return names;
                    }
                    continue;
                }
                WatchMessage::Reset { reason, .. } => panic!("unexpected reset: {reason}"),
            };
            names.extend(event_names(items));
        }
    }
}

fn event_names(items: Vec<CatalogItem>) -> Vec<String> {
    items
        .into_iter()
        .map(|i| match i {
            CatalogItem::Event(e) => e.name,
            other => panic!("not an event: {other:?}"),
        })
        .collect()
}

fn hello(node: &str) -> Heartbeat {
    Heartbeat {
        node: node.into(),
        id: "2b8e0c3e-0000-4000-8000-000000000001".into(),
        address: "127.0.0.9".into(),
    }
}

fn state(node: &str, check: CheckStatus) -> NodeState {
    NodeState {
        node: Node {
            name: node.into(),
            id: hello(node).id,
            address: "127.0.0.9".into(),
            datacenter: "dc1".into(),
            ..Node::default()
        },
        services: vec![ServiceInstance {
            node: node.into(),
            id: "web1".into(),
            name: "web".into(),
            port: 8080,
            ..ServiceInstance::default()
        }],
        checks: vec![HealthCheck {
            node: node.into(),
            check_id: "web-alive".into(),
            name: "web alive".into(),
            status: check,
            notes: String::new(),
            output: String::new(),
            service_id: "web1".into(),
            spec: CheckSpec::default(),
            create_index: 0,
            modify_index: 0,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attachment_carries_heartbeats_anti_entropy_status_and_aimed_events() {
    let (server, _dir) = common::dev_server().await;
    let s = server.service.clone();
    let mut a = attach(server.raft_addr).await;
    a.send(Up::Hello(hello("n1"))).await;
    // The server pushes its status unasked.
    let status = a
        .next(|m| match m {
            Ok(Down::Status(s)) => Some(s),
            _ => None,
        })
        .await;
    assert_eq!(status.datacenter, "dc1");
    assert!(status.cluster.leader.is_some(), "{:?}", status.cluster);
    // Hello counts as a heartbeat: the node is alive.
    common::wait_until("n1 is an alive member", || async {
        s.members().await.unwrap().iter().any(|m| {
            m.node.name == "n1" && m.status == rostra::service::membership::MemberStatus::Alive
        })
    })
    .await;

    // Anti-entropy: the state is written once; the same state again writes nothing.
    let node_index = || async {
        let opts = QueryOptions::with_consistency(Consistency::Stale);
        s.catalog_node("n1", &opts).await.unwrap().0.index
    };
    let send_request = |seq, request| Up::Request { seq, request };
    a.send(send_request(
        1,
        Request::Sync(Box::new(state("n1", CheckStatus::Passing))),
    ))
    .await;
    a.done(1).await.unwrap();
    let (_, passing) = s
        .health_service("web", &[], true, &QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(passing.len(), 1, "{passing:?}");
    let written = node_index().await;
    a.send(send_request(
        2,
        Request::Sync(Box::new(state("n1", CheckStatus::Passing))),
    ))
    .await;
    a.done(2).await.unwrap();
    assert_eq!(
        node_index().await,
        written,
        "an unchanged state writes nothing"
    );
    // A changed check status is written, and only then.
    a.send(send_request(
        3,
        Request::Sync(Box::new(state("n1", CheckStatus::Critical))),
    ))
    .await;
    a.done(3).await.unwrap();
    assert!(node_index().await > written);
    let (_, passing) = s
        .health_service("web", &[], true, &QueryOptions::default())
        .await
        .unwrap();
    assert!(passing.is_empty(), "{passing:?}");

    // Requests speak for the attached node only.
    a.send(send_request(4, Request::Heartbeat(hello("someone-else"))))
        .await;
    let e = a.done(4).await.unwrap_err();
    assert!(matches!(e, ServiceError::InvalidArgument(_)), "{e}");
    a.send(send_request(5, Request::Heartbeat(hello("n1"))))
        .await;
    a.done(5).await.unwrap();

    // Events: those whose node filter excludes n1 never come down; service filters
    // are the agent's to match (against its own services), so they all do.
    let fire = |name: &str, node: &str, service: &str| FireArgs {
        name: name.into(),
        node_filter: node.into(),
        service_filter: service.into(),
        ..FireArgs::default()
    };
    s.event_fire(fire("before", "", "")).await.unwrap();
    a.send(Up::FollowEvents { from: 0 }).await;
    assert_eq!(a.events_until_consistent().await, ["before"]);
    s.event_fire(fire("elsewhere", "^n2$", "")).await.unwrap();
    s.event_fire(fire("for-n1", "^n1$", "")).await.unwrap();
    assert_eq!(a.events_until_consistent().await, ["for-n1"]);
    s.event_fire(fire("for-db", "", "^db$")).await.unwrap();
    assert_eq!(a.events_until_consistent().await, ["for-db"]);

    drop((a, s));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_must_start_with_hello() {
    let (server, _dir) = common::dev_server().await;
    let mut a = attach(server.raft_addr).await;
    a.send(Up::FollowEvents { from: 0 }).await;
    let e = a
        .next(|m| match m {
            Err(e) => Some(e),
            Ok(_) => None,
        })
        .await;
    assert!(e.to_string().contains("starts with Hello"), "{e}");
    let end = tokio::time::timeout(Duration::from_secs(10), a.down.message()).await;
    assert!(matches!(end, Ok(Ok(None))), "the stream ends: {end:?}");
    server.shutdown().await.expect("clean shutdown");
}
