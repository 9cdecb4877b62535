//! Shutdown closes everything it opened: streams end, blocking queries answer, and
//! RocksDB is closed before `Server::shutdown` returns (a database still open when the
//! process exits aborts it in RocksDB's static destructors). The agent binary exits 0 on
//! SIGTERM and SIGINT with writes done and a watch stream and a blocking query open.
//!
//! `ROSTRA_EXIT_CYCLES=N` runs N start/stop cycles per signal instead of 3.

mod common;

use std::time::Duration;

use common::{wait_until, Agent, DEADLINE};
use rostra::client::Client;
use rostra::pb;

fn watch_req(key: &str) -> pb::WatchRequest {
    pb::WatchRequest {
        key: key.into(),
        prefix: true,
        start_index: 0,
    }
}

/// An HTTP blocking query on `key` that waits for a change after `index`.
fn blocking_query(http_addr: String, key: &str, index: u64) -> tokio::task::JoinHandle<u16> {
    let url = format!("http://{http_addr}/v1/kv/{key}?index={index}&wait=10m");
    tokio::spawn(async move {
        reqwest::get(url)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_streams_and_closes_the_database() {
    let (server, dir) = common::dev_server().await;
    let c = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let index = c
        .put("app/a", b"1".to_vec(), 0, None)
        .await
        .unwrap()
        .header
        .unwrap()
        .index;
    // The agent's own watches (exec events) are always there.
    let idle = server.service.watcher_count();
    let mut stream = c.kv().watch(watch_req("app/")).await.unwrap().into_inner();
    let query = blocking_query(server.http_addr.to_string(), "app/a", index);
    let service = server.service.clone();
    wait_until("the watch and the blocking query are subscribed", || {
        let n = service.watcher_count();
        async move { n >= idle + 2 }
    })
    .await;
    drop(service);

    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");

    // The blocking query was answered, not cut off: with the state if it was already
    // waiting (200), or with a reason if shutdown caught it before its first read.
    let status = tokio::time::timeout(DEADLINE, query)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(status, 200 | 500), "answered with {status}");
    // The watch stream ended.
    let end = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the watch stream ends");
    drop(end);
    // RocksDB holds a lock on an open database, even against this process: opening it
    // again succeeds only if shutdown really closed it. The write is there.
    let db = rostra::db::open(&dir.path().join("rocksdb")).expect("the database was closed");
    let store = rostra::state::StateStore::new(db);
    let got = store
        .kv_get("app/a")
        .unwrap()
        .value
        .expect("app/a is stored");
    assert_eq!(got.value, b"1");
}

fn cycles() -> usize {
    std::env::var("ROSTRA_EXIT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Starts `rostra agent -dev`, writes, opens a watch stream and a blocking query, sends
/// `signal`, and returns the exit status.
async fn one_cycle(signal: libc::c_int) -> std::process::ExitStatus {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::spawn(dir.path(), &["-dev".to_string()]);
    let c = agent.client().await;
    wait_until("the agent elects itself", || {
        let c = c.clone();
        async move { c.leader().await.map(|l| l.leader_id != 0).unwrap_or(false) }
    })
    .await;
    let mut index = 0;
    for i in 0..5 {
        index = c
            .put(&format!("cycle/{i}"), vec![b'x'; 100], 0, None)
            .await
            .unwrap()
            .header
            .unwrap()
            .index;
    }
    let mut stream = c
        .kv()
        .watch(watch_req("cycle/"))
        .await
        .unwrap()
        .into_inner();
    // The snapshot arrives, so the stream is really open on the server.
    stream.message().await.unwrap().expect("a snapshot message");
    let query = blocking_query(agent.http_addr.clone(), "cycle/0", index);
    let status = agent.stop_with(signal);
    let _ = tokio::time::timeout(Duration::from_secs(5), query).await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_exits_zero_on_sigterm_and_sigint() {
    for (name, signal) in [("SIGTERM", libc::SIGTERM), ("SIGINT", libc::SIGINT)] {
        for i in 0..cycles() {
            let status = one_cycle(signal).await;
            assert_eq!(
                status.code(),
                Some(0),
                "cycle {i} with {name}: the agent exited with {status}"
            );
        }
    }
}
