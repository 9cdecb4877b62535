//! Three servers as separate processes: bootstrap with -bootstrap-expect/-retry-join,
//! writes through a follower, the leader killed with SIGKILL, a new leader, every
//! acknowledged write on the survivors (and a session with the lock it holds), and the
//! killed server brought back by snapshot.

mod common;

use common::{wait_until, Agent};
use rostra::client::Client;
use rostra::pb;

async fn leader_of(agents: &[&Agent]) -> Option<u64> {
    for a in agents {
        if let Ok(c) = Client::connect(&a.grpc_addr).await {
            if let Ok(l) = c.leader().await {
                if l.leader_id != 0 {
                    return Some(l.leader_id);
                }
            }
        }
    }
    None
}

/// The raft configuration as `agent` sees it.
async fn raft_servers(agent: &Agent) -> Vec<pb::RaftServer> {
    let c = agent.client().await;
    c.status()
        .raft_configuration(pb::RaftConfigurationRequest {})
        .await
        .unwrap()
        .into_inner()
        .servers
}

/// The raft id of each agent, from the cluster configuration.
async fn ids(agent: &Agent) -> Vec<(u64, String)> {
    raft_servers(agent)
        .await
        .into_iter()
        .map(|s| (s.id, s.grpc_address))
        .collect()
}

async fn has_everything(agent: &Agent, expected: &[(String, Vec<u8>)]) -> bool {
    let Ok(c) = Client::connect(&agent.grpc_addr).await else {
        return false;
    };
    for (k, v) in expected {
        match c.get(k, pb::Consistency::Stale).await {
            Ok(r) if r.kv.as_ref().map(|kv| &kv.value) == Some(v) => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_survive_losing_the_leader() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Small snapshot settings so a server that was down must be caught up by snapshot.
    let base = |name: &str| -> Vec<String> {
        [
            "-server",
            "-bootstrap-expect",
            "3",
            "-node",
            name,
            "-raft-snapshot-threshold",
            "50",
            "-raft-logs-to-keep",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a = Agent::spawn(dirs[0].path(), &base("a"));
    let join = |mut v: Vec<String>| {
        v.extend(["-retry-join".to_string(), a.raft_addr.clone()]);
        v
    };
    let b = Agent::spawn(dirs[1].path(), &join(base("b")));
    let c = Agent::spawn(dirs[2].path(), &join(base("c")));
    let mut agents = vec![a, b, c];

    wait_until("a leader is elected", || {
        let refs: Vec<&Agent> = agents.iter().collect();
        async move { leader_of(&refs).await.is_some() }
    })
    .await;
    // A leader elected by two may not have brought the third in yet.
    wait_until("all three servers are members", || async {
        ids(&agents[0]).await.len() == 3
    })
    .await;
    let members = ids(&agents[0]).await;
    let leader_id = leader_of(&agents.iter().collect::<Vec<_>>()).await.unwrap();
    let leader_grpc = members
        .iter()
        .find(|(id, _)| *id == leader_id)
        .unwrap()
        .1
        .clone();
    let leader_pos = agents
        .iter()
        .position(|a| a.grpc_addr == leader_grpc)
        .unwrap();
    let follower_pos = (leader_pos + 1) % 3;

    // Writes through a follower are forwarded to the leader transparently.
    let follower = agents[follower_pos].client().await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let (k, v) = (format!("cluster/{i}"), format!("v{i}").into_bytes());
        let r = follower
            .put(&k, v.clone(), 0, None)
            .await
            .expect("write via follower");
        assert!(r.succeeded);
        acked.push((k, v));
    }
    // A default-consistency read on the follower sees its own write.
    assert!(follower
        .get("cluster/19", pb::Consistency::Default)
        .await
        .unwrap()
        .kv
        .is_some());

    // A session (with a TTL) holding a lock, created through the follower.
    let sessions = pb::session_client::SessionClient::new(follower.channel());
    let created = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    wait_until(
        "a session can be created (the follower's node is registered)",
        || {
            let (mut sessions, created) = (sessions.clone(), created.clone());
            async move {
                let req = pb::SessionCreateRequest {
                    name: "survives".into(),
                    ttl: "30s".into(),
                    ..Default::default()
                };
                match sessions.create(req).await {
                    Ok(r) => {
                        *created.lock().unwrap() = r.into_inner().id;
                        true
                    }
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    let session = created.lock().unwrap().clone();
    let locked = follower
        .kv()
        .put(pb::PutRequest {
            key: "locks/cluster".into(),
            value: b"held".to_vec(),
            lock: Some(pb::put_request::Lock::Acquire(session.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(locked.succeeded);

    // Crash the leader.
    agents[leader_pos].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader_pos).collect();
    wait_until("a new leader among the survivors", || {
        let refs: Vec<&Agent> = survivors.iter().map(|i| &agents[*i]).collect();
        async move { matches!(leader_of(&refs).await, Some(id) if id != leader_id) }
    })
    .await;

    // Every acknowledged write is on both survivors, and the cluster keeps accepting
    // writes; enough of them that the old leader's log is purged behind a snapshot.
    for &i in &survivors {
        let agent = &agents[i];
        wait_until("a survivor has every acknowledged write", || {
            has_everything(agent, &acked)
        })
        .await;
    }
    // The session and its lock survive the failover; the new leader renews it.
    let survivor = agents[survivors[0]].client().await;
    let held = survivor
        .get("locks/cluster", pb::Consistency::Default)
        .await
        .unwrap()
        .kv
        .expect("the lock key");
    assert_eq!(
        held.session, session,
        "the lock is still held by its session"
    );
    let mut sessions = pb::session_client::SessionClient::new(survivor.channel());
    let renewed = sessions
        .renew(pb::SessionRenewRequest {
            id: session.clone(),
        })
        .await
        .expect("the session exists after the failover")
        .into_inner();
    assert_eq!(renewed.session.unwrap().name, "survives");
    let writer = agents[survivors[1]].client().await;
    for i in 20..150 {
        let (k, v) = (format!("cluster/{i}"), format!("v{i}").into_bytes());
        assert!(
            writer
                .put(&k, v.clone(), 0, None)
                .await
                .expect("write after failover")
                .succeeded
        );
        acked.push((k, v));
    }

    // The old leader comes back on the same address and catches up.
    agents[leader_pos].restart();
    let back = &agents[leader_pos];
    wait_until("the restarted server has caught up", || {
        has_everything(back, &acked)
    })
    .await;
    let list = back
        .client()
        .await
        .list(pb::ListRequest {
            prefix: "cluster/".into(),
            consistency: pb::Consistency::Stale as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.kvs.len(), acked.len());
}

/// A fourth server joins a running cluster under write load (as a learner, then a voter
/// once caught up) and ends up with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_joins_a_running_cluster_under_write_load() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let args = |name: &str, ip: &str| -> Vec<String> {
        ["-server", "-node", name, "-bind", ip, "-client", ip]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let expect = |mut v: Vec<String>| {
        v.extend(["-bootstrap-expect".to_string(), "3".to_string()]);
        v
    };
    let mut a = Agent::spawn(dirs[0].path(), &expect(args("a", "127.0.0.2")));
    let join = |mut v: Vec<String>| {
        v.extend(["-retry-join".to_string(), a.raft_addr.clone()]);
        v
    };
    let mut b = Agent::spawn(dirs[1].path(), &join(expect(args("b", "127.0.0.3"))));
    let mut c = Agent::spawn(dirs[2].path(), &join(expect(args("c", "127.0.0.4"))));
    let three = [&a, &b, &c];
    wait_until("a leader is elected", || async {
        leader_of(&three).await.is_some()
    })
    .await;

    // Load: one writer, each acknowledged key recorded.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (client, stop) = (b.client().await, stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !stop.is_cancelled() {
                let k = format!("load/{i}");
                if client
                    .put(&k, i.to_string().into_bytes(), 0, None)
                    .await
                    .is_ok()
                {
                    acked.push((k, i.to_string().into_bytes()));
                }
                i += 1;
            }
            acked
        })
    };
    let d = Agent::spawn(dirs[3].path(), &join(args("d", "127.0.0.5")));
    wait_until("d is a voter", || async {
        let servers = raft_servers(&a).await;
        servers.len() == 4 && servers.iter().all(|s| s.voter)
    })
    .await;
    // Some writes after the promotion too.
    wait_until("writes go on", || async {
        let c = a.client().await;
        c.get("load/200", pb::Consistency::Stale)
            .await
            .is_ok_and(|r| r.kv.is_some())
    })
    .await;
    stop.cancel();
    let acked = writer.await.unwrap();
    assert!(acked.len() > 200, "{} writes acknowledged", acked.len());
    wait_until("d has every acknowledged write", || {
        has_everything(&d, &acked)
    })
    .await;
    println!("{} acknowledged writes, all on the new server", acked.len());

    // The operator's view, and taking the new server out again.
    let ctl = |args: &[&str]| {
        std::process::Command::new(common::rostractl_bin())
            .args(args)
            .env("ROSTRA_ADDR", &a.grpc_addr)
            .output()
            .unwrap()
    };
    let o = ctl(&["operator", "raft", "list-peers"]);
    let peers = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(peers.starts_with("Node"), "{peers}");
    assert_eq!(peers.lines().count(), 5, "{peers}");
    assert!(
        peers
            .lines()
            .any(|l| l.starts_with("d ") && l.contains(&d.raft_addr)),
        "{peers}"
    );
    assert_eq!(peers.matches(" leader ").count(), 1, "{peers}");
    let o = ctl(&["operator", "raft", "remove-peer", "-address", &d.raft_addr]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(raft_servers(&a).await.len(), 3);
    let o = ctl(&["operator", "raft", "remove-peer", "-address", "127.0.0.9:1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("was not found in the Raft configuration"));
    let o = ctl(&["operator", "raft", "remove-peer"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Must specify either -id or -address"));
    let o = ctl(&["members", "-status", "("]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Failed to compile status regexp"));
    // d left raft but its agent still runs: all four alive, none failed.
    let o = ctl(&["members", "-status", "^alive$"]);
    let lines = String::from_utf8_lossy(&o.stdout).lines().count();
    assert_eq!(lines, 5, "a header and four nodes");
    let o = ctl(&["members", "-status", "^failed$"]);
    let lines = String::from_utf8_lossy(&o.stdout).lines().count();
    assert_eq!(lines, 1, "only the header");

    // The leader leaves gracefully: it leaves the raft configuration too (in one
    // membership change, which is what a leader removing itself needs), and stops.
    let leader = leader_of(&[&a, &b, &c]).await.expect("a leader");
    let name = raft_servers(&a)
        .await
        .into_iter()
        .find(|s| s.id == leader)
        .map(|s| s.node)
        .unwrap();
    let (leaving, survivor) = match name.as_str() {
        "a" => (&mut a, &b),
        "b" => (&mut b, &c),
        _ => (&mut c, &a),
    };
    let o = std::process::Command::new(common::rostractl_bin())
        .arg("leave")
        .env("ROSTRA_ADDR", &leaving.grpc_addr)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let exited = leaving.wait_exit();
    assert!(exited.success(), "{exited:?}");
    wait_until(
        "the other two elect a leader and list only themselves",
        || async {
            let servers = raft_servers(survivor).await;
            leader_of(&[survivor]).await.is_some_and(|l| l != leader)
                && servers.len() == 2
                && servers.iter().all(|s| s.node != name)
        },
    )
    .await;
    let o = std::process::Command::new(common::rostractl_bin())
        .args(["members", "-status", "^left$"])
        .env("ROSTRA_ADDR", &survivor.grpc_addr)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.lines().any(|l| l.starts_with(&format!("{name} "))),
        "{out}"
    );
    // The two left still take writes.
    survivor
        .client()
        .await
        .put("after-leave", b"1".to_vec(), 0, None)
        .await
        .expect("a write after the leader left");
}
