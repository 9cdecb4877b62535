//! KV over gRPC against an in-process dev server: reads, writes, CAS, limits and watches.

mod common;

use rostra::client::Client;
use rostra::pb;
use rostra::pb::WatchKind as Kind;
use tonic::Code;

async fn setup() -> (rostra::server::Server, tempfile::TempDir, Client) {
    let (server, dir) = common::dev_server().await;
    let client = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    (server, dir, client)
}

/// Puts unconditionally and returns the write's raft index.
async fn put_index(c: &Client, key: &str, value: Vec<u8>) -> u64 {
    c.put(key, value, 0, None)
        .await
        .unwrap()
        .header
        .unwrap()
        .index
}

fn code(e: rostra::client::ClientError) -> Code {
    match e {
        rostra::client::ClientError::Rpc(s) => s.code(),
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_delete_and_cas() {
    let (server, _dir, c) = setup().await;
    let put = c.put("app/a", b"1".to_vec(), u64::MAX, None).await.unwrap();
    assert!(put.succeeded);
    let idx = put.header.unwrap().index;
    assert!(idx > 0);
    let got = c.get("app/a", pb::Consistency::Default).await.unwrap();
    let kv = got.kv.unwrap();
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.flags,
            kv.create_index,
            kv.modify_index
        ),
        (&b"1"[..], u64::MAX, idx, idx)
    );
    assert!(got.header.unwrap().index >= idx);

    // Missing key: no pair, but a header with an index.
    let missing = c.get("app/nope", pb::Consistency::Stale).await.unwrap();
    assert!(missing.kv.is_none());
    assert!(missing.header.unwrap().index >= idx);

    // CAS: 0 = create only; N = modify index must match.
    assert!(
        !c.put("app/a", b"2".to_vec(), 0, Some(0))
            .await
            .unwrap()
            .succeeded
    );
    assert!(
        !c.put("app/a", b"2".to_vec(), 0, Some(idx + 100))
            .await
            .unwrap()
            .succeeded
    );
    let ok = c.put("app/a", b"2".to_vec(), 0, Some(idx)).await.unwrap();
    assert!(ok.succeeded);
    assert!(
        c.put("app/b", b"x".to_vec(), 0, Some(0))
            .await
            .unwrap()
            .succeeded
    );
    c.put("app/sub/c", b"y".to_vec(), 0, None).await.unwrap();
    c.put("apple", b"z".to_vec(), 0, None).await.unwrap();

    // Identical write keeps the modify index.
    let before = c
        .get("app/b", pb::Consistency::Consistent)
        .await
        .unwrap()
        .kv
        .unwrap()
        .modify_index;
    c.put("app/b", b"x".to_vec(), 0, None).await.unwrap();
    assert_eq!(
        c.get("app/b", pb::Consistency::Default)
            .await
            .unwrap()
            .kv
            .unwrap()
            .modify_index,
        before
    );

    let list = c
        .list(pb::ListRequest {
            prefix: "app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<_> = list.kvs.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, vec!["app/a", "app/b", "app/sub/c", "apple"]);
    let keys = c
        .list(pb::ListRequest {
            prefix: "app/".into(),
            separator: "/".into(),
            keys_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .keys;
    assert_eq!(keys, vec!["app/a", "app/b", "app/sub/"]);

    // Delete with a stale CAS fails; with the right one succeeds; recurse removes a tree.
    let b_index = c
        .get("app/b", pb::Consistency::Default)
        .await
        .unwrap()
        .kv
        .unwrap()
        .modify_index;
    assert!(
        !c.delete("app/b", false, Some(b_index + 1))
            .await
            .unwrap()
            .succeeded
    );
    assert!(
        c.delete("app/b", false, Some(b_index))
            .await
            .unwrap()
            .succeeded
    );
    assert!(
        c.delete("app/missing", false, None)
            .await
            .unwrap()
            .succeeded
    );
    assert!(c.delete("app/", true, None).await.unwrap().succeeded);
    let left = c.list(pb::ListRequest::default()).await.unwrap();
    assert_eq!(
        left.kvs.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        vec!["apple"]
    );
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_invalid_argument() {
    let (server, _dir, c) = setup().await;
    assert_eq!(
        code(c.put("", b"v".to_vec(), 0, None).await.unwrap_err()),
        Code::InvalidArgument
    );
    let e = c.put("/lead", b"v".to_vec(), 0, None).await.unwrap_err();
    assert!(e.to_string().contains("must not begin with a '/'"), "{e}");
    let big = vec![0u8; 512 * 1024 + 1];
    let e = c.put("big", big, 0, None).await.unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
    // Exactly the limit is fine, and stored whole.
    let max = vec![7u8; 512 * 1024];
    assert!(c.put("max", max.clone(), 0, None).await.unwrap().succeeded);
    assert_eq!(
        c.get("max", pb::Consistency::Default)
            .await
            .unwrap()
            .kv
            .unwrap()
            .value,
        max
    );
    let long_key = "k".repeat(9000);
    assert_eq!(
        code(c.put(&long_key, vec![], 0, None).await.unwrap_err()),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.get("", pb::Consistency::Default).await.unwrap_err()),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.delete("x", true, Some(1)).await.unwrap_err()),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.delete("", false, None).await.unwrap_err()),
        Code::InvalidArgument
    );
    let e = c
        .list(pb::ListRequest {
            separator: "/".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), Code::InvalidArgument);
    let e = c
        .kv()
        .get(pb::GetRequest {
            key: "x".into(),
            consistency: 42,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Nothing invalid was written.
    let all = c.list(pb::ListRequest::default()).await.unwrap();
    assert_eq!(
        all.kvs.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        vec!["max"]
    );
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

async fn next(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    tokio::time::timeout(common::DEADLINE, stream.message())
        .await
        .expect("watch message in time")
        .expect("stream ok")
        .expect("stream open")
}

fn watch_req(key: &str, prefix: bool, start_index: u64) -> pb::WatchRequest {
    pb::WatchRequest {
        key: key.into(),
        prefix,
        start_index,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_watch_sends_state_then_only_its_changes() {
    let (server, _dir, c) = setup().await;
    let first = put_index(&c, "w/key", b"foo".to_vec()).await;
    let mut s = c
        .kv()
        .watch(watch_req("w/key", false, 0))
        .await
        .unwrap()
        .into_inner();
    let snap = next(&mut s).await;
    assert_eq!(snap.kind, Kind::Snapshot as i32);
    assert_eq!(snap.events[0].kv.as_ref().unwrap().value, b"foo");
    let synced = next(&mut s).await;
    // The state is as of the applied index, at or after our write (the agent writes too).
    assert_eq!(synced.kind, Kind::Synced as i32);
    assert!(synced.index >= first);

    // An unrelated write does not reach this watcher; the next message is our key's.
    c.put("w/other", b"x".to_vec(), 0, None).await.unwrap();
    let second = put_index(&c, "w/key", b"bar".to_vec()).await;
    let ch = next(&mut s).await;
    assert_eq!((ch.kind, ch.index), (Kind::Changes as i32, second));
    assert_eq!(ch.events.len(), 1);
    assert_eq!(ch.events[0].kv.as_ref().unwrap().value, b"bar");

    let del = c
        .delete("w/key", false, None)
        .await
        .unwrap()
        .header
        .unwrap()
        .index;
    let ch = next(&mut s).await;
    assert_eq!(ch.index, del);
    assert_eq!(ch.events[0].r#type, pb::kv_event::Type::Delete as i32);
    assert_eq!(ch.events[0].kv.as_ref().unwrap().modify_index, del);
    drop(s);
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_watch_sends_only_changed_keys_and_resumes_exactly() {
    let (server, _dir, c) = setup().await;
    for i in 0..5 {
        c.put(&format!("p/{i}"), b"v".to_vec(), 0, None)
            .await
            .unwrap();
    }
    let mut s = c
        .kv()
        .watch(watch_req("p/", true, 0))
        .await
        .unwrap()
        .into_inner();
    let snap = next(&mut s).await;
    assert_eq!(snap.events.len(), 5);
    let synced = next(&mut s).await;
    assert_eq!(synced.kind, Kind::Synced as i32);
    let idx = put_index(&c, "p/3", b"changed".to_vec()).await;
    let ch = next(&mut s).await;
    assert_eq!(ch.index, idx);
    assert_eq!(
        ch.events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().key.as_str())
            .collect::<Vec<_>>(),
        vec!["p/3"]
    );
    drop(s);

    // While nobody watches, three more writes; resuming after `idx` gets exactly those.
    let mut expected = Vec::new();
    for (n, k) in ["p/1", "q/ignored", "p/9", "p/1"].iter().enumerate() {
        let h = put_index(&c, k, format!("{k}-{n}").into_bytes()).await;
        if k.starts_with("p/") {
            expected.push(h);
        }
    }
    let mut s = c
        .kv()
        .watch(watch_req("p/", true, idx))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    loop {
        let m = next(&mut s).await;
        if m.kind == Kind::Synced as i32 {
            assert!(m.index >= *expected.last().unwrap());
            break;
        }
        assert_eq!(
            m.kind,
            Kind::Changes as i32,
            "a resumable watch sends no snapshot"
        );
        got.push(m.index);
    }
    assert_eq!(got, expected);
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_watchers_all_see_one_write() {
    let (server, _dir, c) = setup().await;
    const WATCHERS: usize = 2000;
    let mut clients = Vec::new();
    for _ in 0..WATCHERS.div_ceil(100) {
        clients.push(
            Client::connect(&server.grpc_addr.to_string())
                .await
                .unwrap(),
        );
    }
    let mut watchers = Vec::new();
    for i in 0..WATCHERS {
        watchers.push(clients[i / 100].watch("fan/", true).await.unwrap());
    }
    // Wait for every watcher to hold the initial state, so the write below is a change
    // for all of them rather than part of someone's snapshot.
    for w in watchers.iter_mut() {
        tokio::time::timeout(common::DEADLINE, w.next())
            .await
            .unwrap()
            .unwrap();
    }
    assert!(server.service.watcher_count() >= WATCHERS);
    let mut handles = Vec::new();
    for mut w in watchers {
        handles.push(tokio::spawn(async move {
            let index = w.next().await.unwrap();
            (index, w.state().get("fan/out").map(|kv| kv.value.clone()))
        }));
    }
    let idx = put_index(&c, "fan/out", b"hello".to_vec()).await;
    for h in handles {
        let (index, value) = tokio::time::timeout(common::DEADLINE, h)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(index, idx);
        assert_eq!(value.as_deref(), Some(&b"hello"[..]));
    }
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_are_capped_and_freed_when_clients_leave() {
    // Three: the agent's own exec-event watch holds one permit.
    let (server, _dir) = common::dev_server_with(|config| config.limits.max_streams = 3).await;
    let c = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let a = c
        .kv()
        .watch(watch_req("q/a", false, 0))
        .await
        .unwrap()
        .into_inner();
    let _b = c
        .kv()
        .watch(watch_req("q/b", false, 0))
        .await
        .unwrap()
        .into_inner();
    let third = c.kv().watch(watch_req("q/c", false, 0)).await;
    let e = third.expect_err("a third stream exceeds the limit");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.message().contains("too many concurrent watches"),
        "{}",
        e.message()
    );
    // A client leaving a quiet key frees its permit without any write to that key.
    drop(a);
    common::wait_until("the freed permit is reusable", || {
        let c = c.clone();
        async move { c.kv().watch(watch_req("q/c", false, 0)).await.is_ok() }
    })
    .await;
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

/// Concurrent writes of one key are batched into raft entries, but never two of them into
/// one: each write's index is the `ModifyIndex` of its own value, so a writer's CAS on the
/// index it was told cannot overwrite a value it never saw (the chaos test caught that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_of_one_key_get_distinct_indexes() {
    let (server, _dir, c) = setup().await;
    let writes = (0..64).map(|i| {
        let c = c.clone();
        async move {
            (
                i,
                put_index(&c, "race/k", format!("v{i}").into_bytes()).await,
            )
        }
    });
    let done = futures::future::join_all(writes).await;
    let indexes: std::collections::HashSet<u64> = done.iter().map(|(_, idx)| *idx).collect();
    assert_eq!(
        indexes.len(),
        done.len(),
        "two writes of one key shared an index"
    );
    // The value read back is the one written at the highest index, and a CAS with
    // the index of any other write fails.
    let (last, last_index) = done.iter().max_by_key(|(_, idx)| *idx).unwrap();
    let got = c.get("race/k", pb::Consistency::Default).await.unwrap();
    let kv = got.kv.unwrap();
    assert_eq!(kv.value, format!("v{last}").into_bytes());
    assert_eq!(kv.modify_index, *last_index);
    for (_, idx) in done.iter().filter(|(_, idx)| idx != last_index) {
        let r = c
            .put("race/k", b"late".to_vec(), 0, Some(*idx))
            .await
            .unwrap();
        assert!(
            !r.succeeded,
            "a CAS on a superseded write's index succeeded"
        );
    }
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}
