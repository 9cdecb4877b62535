//! Catalog and health watches on the shared protocol: a watcher that reconnects with the
//! last index it holds gets exactly the changes it missed (each write that touched its
//! answer once, nothing it already had, nothing unrelated), and one whose index is older
//! than the retained history gets `RESET` and a fresh snapshot. In both cases the view it
//! rebuilds equals a fresh query.

mod common;

use std::collections::BTreeMap;

use rostra::client::Client;
use rostra::pb;
use rostra::pb::catalog_client::CatalogClient;
use rostra::pb::health_client::HealthClient;
use rostra::pb::WatchKind as Kind;
use tonic::transport::Channel;

async fn register(c: &mut CatalogClient<Channel>, r: pb::RegisterRequest) -> u64 {
    c.register(r)
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .index
}

async fn deregister(c: &mut CatalogClient<Channel>, node: &str) -> u64 {
    let d = pb::DeregisterRequest {
        node: node.into(),
        ..Default::default()
    };
    c.deregister(d)
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .index
}

type Key = (String, String);

/// What a client of the health watch holds: entries by (node, service id).
#[derive(Default)]
struct HealthView {
    entries: BTreeMap<Key, pb::ServiceEntry>,
    /// CHANGES indexes received, in order.
    changes: Vec<u64>,
}

fn entry_key(e: &pb::ServiceEntry) -> Key {
    (
        e.node.as_ref().unwrap().name.clone(),
        e.service.as_ref().unwrap().id.clone(),
    )
}

impl HealthView {
    /// Applies messages up to and including SYNCED; returns the kinds seen before it.
    async fn sync(
        &mut self,
        s: &mut tonic::Streaming<pb::HealthWatchServiceResponse>,
    ) -> (Vec<Kind>, u64) {
        let mut kinds = Vec::new();
        loop {
            let m = common::next_message(s).await;
            let kind = Kind::try_from(m.kind).unwrap();
            match kind {
                Kind::Synced => return (kinds, m.index),
                Kind::Reset => {
                    assert_eq!(m.reason, "compacted");
                    self.entries.clear();
                }
                Kind::Changes => {
                    self.changes.push(m.index);
                    self.apply(m);
                }
                Kind::Snapshot => self.apply(m),
                Kind::Unspecified => panic!("unspecified kind sent"),
            }
            kinds.push(kind);
        }
    }

    fn apply(&mut self, m: pb::HealthWatchServiceResponse) {
        for r in m.removed {
            self.entries.remove(&(r.node, r.service_id));
        }
        for e in m.upserted {
            self.entries.insert(entry_key(&e), e);
        }
    }
}

async fn fresh_health(h: &mut HealthClient<Channel>) -> BTreeMap<Key, pb::ServiceEntry> {
    let req = pb::HealthServiceRequest {
        service: "web".into(),
        ..Default::default()
    };
    let r = h.service(req).await.unwrap().into_inner();
    r.entries.into_iter().map(|e| (entry_key(&e), e)).collect()
}

async fn fresh_checks(h: &mut HealthClient<Channel>) -> BTreeMap<Key, pb::HealthCheck> {
    let req = pb::HealthChecksRequest {
        service: "web".into(),
        ..Default::default()
    };
    let r = h.checks(req).await.unwrap().into_inner();
    r.checks
        .into_iter()
        .map(|c| ((c.node.clone(), c.check_id.clone()), c))
        .collect()
}

fn health_watch(start_index: u64) -> pb::HealthWatchServiceRequest {
    pb::HealthWatchServiceRequest {
        service: "web".into(),
        start_index,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_health_watches_resume_without_missing_or_repeating() {
    let (server, _dir) = common::dev_server().await;
    let client = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let (mut catalog, mut health) = (client.catalog(), client.health());
    register(
        &mut catalog,
        common::web_registration("n1", "web", pb::HealthStatus::Passing, ""),
    )
    .await;

    // Health watch: snapshot, synced, one live change; then the client goes away.
    let mut view = HealthView::default();
    let mut stream = health
        .watch_service(health_watch(0))
        .await
        .unwrap()
        .into_inner();
    let (kinds, _) = view.sync(&mut stream).await;
    assert_eq!(kinds, vec![Kind::Snapshot]);
    let live = register(
        &mut catalog,
        common::web_registration("n2", "web", pb::HealthStatus::Passing, ""),
    )
    .await;
    let m = common::next_message(&mut stream).await;
    assert_eq!((m.kind, m.index), (Kind::Changes as i32, live));
    view.changes.push(m.index);
    view.apply(m);
    let held = live;

    // A checks watch, also interrupted after one change.
    let checks_req = |start_index| pb::HealthWatchChecksRequest {
        service: "web".into(),
        start_index,
    };
    let mut checks_stream = health
        .watch_checks(checks_req(0))
        .await
        .unwrap()
        .into_inner();
    let mut checks: BTreeMap<Key, pb::HealthCheck> = BTreeMap::new();
    let checks_index = loop {
        let m = common::next_message(&mut checks_stream).await;
        for c in m.upserted {
            checks.insert((c.node.clone(), c.check_id.clone()), c);
        }
        if m.kind == Kind::Synced as i32 {
            break m.index;
        }
    };
    drop(stream);
    drop(checks_stream);

    // While both are away: web changes four times, db once.
    let mut missed = vec![
        register(
            &mut catalog,
            common::web_registration("n3", "web", pb::HealthStatus::Passing, ""),
        )
        .await,
        register(
            &mut catalog,
            common::web_registration("n2", "web", pb::HealthStatus::Critical, "down"),
        )
        .await,
    ];
    let unrelated = register(
        &mut catalog,
        common::web_registration("n9", "db", pb::HealthStatus::Passing, ""),
    )
    .await;
    missed.push(deregister(&mut catalog, "n1").await);
    missed.push(
        register(
            &mut catalog,
            common::web_registration("n3", "web", pb::HealthStatus::Warning, "slow"),
        )
        .await,
    );

    // Resume from the last index held: no snapshot, nothing at or before `held`,
    // nothing for db, messages in index order; items carry their current values, so a
    // later write whose effect an earlier message already delivered sends nothing again
    // (n3's second write here). Then SYNCED, and the view equals a fresh query.
    let mut stream = health
        .watch_service(health_watch(held))
        .await
        .unwrap()
        .into_inner();
    let (kinds, synced) = view.sync(&mut stream).await;
    assert!(kinds.iter().all(|k| *k == Kind::Changes), "{kinds:?}");
    let resumed = &view.changes[1..];
    assert_eq!(
        resumed,
        &missed[..3],
        "n3, n2 critical and n1 gone, each once; db's {unrelated} not among them"
    );
    assert!(synced >= *missed.last().unwrap());
    assert_eq!(view.entries, fresh_health(&mut health).await);
    assert_eq!(view.entries.len(), 2, "n1 left, n2 and n3 remain");
    assert_eq!(
        view.entries[&("n3".to_string(), "web".to_string())].checks[0].output,
        "slow",
        "n3 as it is now"
    );

    // Live again after the resume: a change arrives as one message.
    let again = register(
        &mut catalog,
        common::web_registration("n2", "web", pb::HealthStatus::Passing, ""),
    )
    .await;
    let m = common::next_message(&mut stream).await;
    assert_eq!((m.kind, m.index), (Kind::Changes as i32, again));
    view.apply(m);
    assert_eq!(view.entries, fresh_health(&mut health).await);

    // The checks watch resumes too and converges on the fresh answer.
    let mut checks_stream = health
        .watch_checks(checks_req(checks_index))
        .await
        .unwrap()
        .into_inner();
    let mut indexes = Vec::new();
    loop {
        let m = common::next_message(&mut checks_stream).await;
        assert_ne!(m.kind, Kind::Snapshot as i32, "a resume sends no snapshot");
        assert_ne!(m.kind, Kind::Reset as i32);
        for r in m.removed {
            checks.remove(&(r.node, r.check_id));
        }
        for c in m.upserted {
            checks.insert((c.node.clone(), c.check_id.clone()), c);
        }
        if m.kind == Kind::Synced as i32 {
            break;
        }
        indexes.push(m.index);
    }
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    assert!(indexes.iter().all(|i| *i > checks_index && *i != unrelated));
    assert_eq!(checks, fresh_checks(&mut health).await);

    // The catalog's nodes list resumes the same way.
    let mut nodes = catalog
        .watch_nodes(pb::WatchNodesRequest { start_index: held })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    loop {
        let m = common::next_message(&mut nodes).await;
        if m.kind == Kind::Synced as i32 {
            break;
        }
        assert_eq!(m.kind, Kind::Changes as i32);
        seen.push((m.index, m.upserted.len(), m.removed));
    }
    // n3 and n9 were new nodes; n1 was deregistered; n2's re-registrations left its
    // node record unchanged, so they are not node-list changes.
    let n1_gone = missed[2];
    assert_eq!(
        seen,
        vec![
            (missed[0], 1, vec![]),
            (unrelated, 1, vec![]),
            (n1_gone, 0, vec!["n1".to_string()]),
        ]
    );
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_older_than_the_history_gets_reset_and_a_snapshot() {
    // Room for a few catalog changes only.
    let (server, _dir) = common::dev_server_with(|c| c.limits.watch_history_bytes = 4096).await;
    let client = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let (mut catalog, mut health) = (client.catalog(), client.health());
    register(
        &mut catalog,
        common::web_registration("n1", "web", pb::HealthStatus::Passing, ""),
    )
    .await;
    let mut view = HealthView::default();
    let mut stream = health
        .watch_service(health_watch(0))
        .await
        .unwrap()
        .into_inner();
    let (_, held) = view.sync(&mut stream).await;
    drop(stream);

    // Enough check output to push the history past `held`.
    let big = "x".repeat(1024);
    for i in 0..16 {
        let status = if i % 2 == 0 {
            pb::HealthStatus::Warning
        } else {
            pb::HealthStatus::Passing
        };
        register(
            &mut catalog,
            common::web_registration("n1", "web", status, &format!("{i}{big}")),
        )
        .await;
    }
    register(
        &mut catalog,
        common::web_registration("n2", "web", pb::HealthStatus::Critical, ""),
    )
    .await;

    let mut stream = health
        .watch_service(health_watch(held))
        .await
        .unwrap()
        .into_inner();
    let (kinds, _) = view.sync(&mut stream).await;
    assert_eq!(
        kinds,
        vec![Kind::Reset, Kind::Snapshot],
        "RESET, then the state"
    );
    assert_eq!(view.entries, fresh_health(&mut health).await);
    assert_eq!(view.entries.len(), 2);
    server.shutdown().await.expect("clean shutdown");
}

/// The client's `Watcher` over a passing-only health watch: an instance whose check turns
/// critical leaves the view (a removal), and comes back when it passes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_only_watch_drops_and_restores_an_instance() {
    let (server, _dir) = common::dev_server().await;
    let client = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let mut catalog = client.catalog();
    register(
        &mut catalog,
        common::web_registration("n1", "web", pb::HealthStatus::Passing, ""),
    )
    .await;
    register(
        &mut catalog,
        common::web_registration("n2", "web", pb::HealthStatus::Passing, ""),
    )
    .await;
    let spec = rostra::client::HealthServiceWatch {
        service: "web".into(),
        tags: vec![],
        passing_only: true,
    };
    let mut w = client.follow(spec).await.unwrap();
    let nodes = |w: &rostra::client::Watcher<rostra::client::HealthServiceWatch>| {
        w.state().keys().map(|(n, _)| n.clone()).collect::<Vec<_>>()
    };
    next_view(&mut w).await;
    assert_eq!(nodes(&w), vec!["n1", "n2"]);
    let down = register(
        &mut catalog,
        common::web_registration("n2", "web", pb::HealthStatus::Critical, ""),
    )
    .await;
    assert_eq!(next_view(&mut w).await, down);
    assert_eq!(nodes(&w), vec!["n1"]);
    let up = register(
        &mut catalog,
        common::web_registration("n2", "web", pb::HealthStatus::Passing, ""),
    )
    .await;
    assert_eq!(next_view(&mut w).await, up);
    assert_eq!(nodes(&w), vec!["n1", "n2"]);
    drop(w);
    server.shutdown().await.expect("clean shutdown");
}

async fn next_view(w: &mut rostra::client::Watcher<rostra::client::HealthServiceWatch>) -> u64 {
    tokio::time::timeout(common::DEADLINE, w.next())
        .await
        .expect("in time")
        .expect("a view")
}
