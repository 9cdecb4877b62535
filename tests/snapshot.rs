//! Snapshots for backup: `rostractl snapshot save|restore|inspect` and Consul's
//! `GET|PUT /v1/snapshot` against in-process servers. A snapshot taken on one server,
//! restored on a fresh one, gives back every table (KV with flags, catalog, sessions
//! with the locks they hold, events); a corrupt or truncated file is refused with the
//! reason before anything is replaced; watchers are told to resync; indexes never run
//! ahead of the log or go back.

mod common;

use std::process::Output;

use rostra::client::Client;
use rostra::pb;
use serde_json::{json, Value};

use common::ctl;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

use common::http::Http;

/// Fills every table: KV with flags, an external node with a service and check, a
/// session holding a lock, a user event.
async fn populate(h: &Http) -> String {
    for i in 0..50 {
        let (s, _) = h
            .put(&format!("/v1/kv/app/k{i:02}?flags={i}"), format!("v{i}"))
            .await;
        assert_eq!(s, 200);
    }
    let reg = json!({
        "Node": "ext-1", "Address": "10.0.0.9",
        "Service": {"ID": "web-1", "Service": "web", "Port": 8080, "Tags": ["v2"]},
        "Check": {"CheckID": "web-ok", "Name": "web ok", "ServiceID": "web-1", "Status": "passing"}
    });
    assert_eq!(h.put("/v1/catalog/register", reg.to_string()).await.0, 200);
    let (s, body) = h
        .put("/v1/session/create", r#"{"Name":"backup-test"}"#)
        .await;
    assert_eq!(s, 200, "{body}");
    let session = serde_json::from_str::<Value>(&body).unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, body) = h
        .put(&format!("/v1/kv/locks/leader?acquire={session}"), "me")
        .await;
    assert_eq!((s, body.trim()), (200, "true"));
    assert_eq!(h.put("/v1/event/fire/deploy", "v2").await.0, 200);
    session
}

/// Checks that `h` serves everything `populate` wrote.
async fn has_everything(h: &Http, session: &str) {
    let (s, kvs, _) = h.get("/v1/kv/app/?recurse").await;
    assert_eq!(s, 200);
    let kvs = kvs.as_array().unwrap();
    assert_eq!(kvs.len(), 50);
    for (i, kv) in kvs.iter().enumerate() {
        assert_eq!(kv["Key"], format!("app/k{i:02}"));
        assert_eq!(kv["Flags"], i as u64);
    }
    let (_, svc, _) = h.get("/v1/catalog/service/web").await;
    assert_eq!(svc[0]["Node"], "ext-1");
    assert_eq!(svc[0]["ServicePort"], 8080);
    let (_, checks, _) = h.get("/v1/health/checks/web").await;
    assert_eq!(checks[0]["CheckID"], "web-ok");
    let (s, info, _) = h.get(&format!("/v1/session/info/{session}")).await;
    assert_eq!(s, 200);
    assert_eq!(info[0]["Name"], "backup-test");
    let (_, lock, _) = h.get("/v1/kv/locks/leader").await;
    assert_eq!(lock[0]["Session"], session);
    let (_, events, _) = h.get("/v1/event/list?name=deploy").await;
    assert_eq!(events.as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restored_on_a_fresh_server_gives_back_every_table() {
    let (a, _da) = common::dev_server().await;
    let ha = Http::new(a.http_addr);
    let session = populate(&ha).await;
    let addr_a = a.grpc_addr.to_string();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.snap");
    let file_s = file.to_str().unwrap();
    let saved = ctl(&addr_a, &["snapshot", "save", file_s]);
    assert!(saved.status.success(), "{}", text(&saved));
    assert!(
        text(&saved).starts_with("Saved and verified snapshot to index "),
        "{}",
        text(&saved)
    );
    let inspect = ctl(&addr_a, &["snapshot", "inspect", file_s]);
    assert!(inspect.status.success(), "{}", text(&inspect));
    let report = text(&inspect);
    for field in [
        "ID", "Size", "Index", "Term", "SHA256", "kv ", "sessions", "events",
    ] {
        assert!(report.contains(field), "inspect lacks {field}:\n{report}");
    }
    let bytes = std::fs::read(&file).unwrap();
    let header = rostra::state::backup::inspect(&bytes).unwrap();
    assert!(header.index > 50, "the snapshot's index is the state's");
    assert_eq!(header.tables["kv"].count, 51);

    // Consul's endpoint serves the same kind of file, stamped with its index.
    let r = reqwest::get(format!("http://{}/v1/snapshot", a.http_addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let index: u64 = r.headers()["X-Consul-Index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let http_file = r.bytes().await.unwrap();
    let http_header = rostra::state::backup::inspect(&http_file).unwrap();
    assert_eq!(http_header.index, index);
    assert!(index >= header.index);

    // A fresh server, far behind the snapshot's index.
    let (b, _db) = common::dev_server().await;
    let hb = Http::new(b.http_addr);
    let addr_b = b.grpc_addr.to_string();
    let client_b = Client::connect(&addr_b).await.unwrap();
    let mut watch = client_b
        .kv()
        .watch(pb::WatchRequest {
            key: "app/".into(),
            prefix: true,
            start_index: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let synced = common::next_message(&mut watch).await;
    assert_eq!(synced.kind, pb::WatchKind::Synced as i32);

    // Truncated and corrupt files are refused with the reason; nothing changes.
    let truncated = dir.path().join("truncated.snap");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let o = ctl(
        &addr_b,
        &["snapshot", "restore", truncated.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("truncated"), "{}", text(&o));
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let (s, body) = hb.put("/v1/snapshot", corrupt).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("corrupt"), "{body}");
    let (s, body) = hb.put("/v1/snapshot", &b"not a snapshot"[..]).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("not a Rostra snapshot"), "{body}");
    // The gRPC service refuses the same way.
    let mut snap = pb::snapshot_client::SnapshotClient::new(client_b.channel());
    let e = snap
        .restore(futures::stream::iter(vec![pb::SnapshotRestoreRequest {
            data: bytes[..100].to_vec(),
        }]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    assert_eq!(hb.get("/v1/kv/app/k00").await.0, 404);

    let before = client_b.get("x", pb::Consistency::Default).await.unwrap();
    let before_index = before.header.unwrap().index;
    assert!(before_index < header.index, "the fresh server is behind");
    let o = ctl(&addr_b, &["snapshot", "restore", file_s]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).trim(), "Restored snapshot");
    has_everything(&hb, &session).await;

    // Watchers resync; the table index is the restore's, and no object's index is above
    // it (the snapshot came from further along than this server's log).
    let reset = common::next_message(&mut watch).await;
    assert_eq!(reset.kind, pb::WatchKind::Reset as i32);
    assert_eq!(reset.reason, "snapshot_restored");
    let restore_index = reset.index;
    assert!(restore_index > before_index);
    let (_, kvs, kv_index) = hb.get("/v1/kv/app/?recurse").await;
    assert_eq!(kv_index, restore_index);
    for kv in kvs.as_array().unwrap() {
        assert!(kv["ModifyIndex"].as_u64().unwrap() <= restore_index);
    }
    // Writes carry on above it, and CAS works on the restored indexes.
    let m = kvs[0]["ModifyIndex"].as_u64().unwrap();
    let (s, body) = hb.put(&format!("/v1/kv/app/k00?cas={m}"), "after").await;
    assert_eq!((s, body.trim()), (200, "true"));
    let (_, _, after) = hb.get("/v1/kv/app/k00").await;
    assert!(after > restore_index);

    // Restoring an older snapshot on the server it came from rolls the state back.
    assert_eq!(ha.put("/v1/kv/app/later", "x").await.0, 200);
    let (s, body) = ha.put("/v1/snapshot", bytes.clone()).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ha.get("/v1/kv/app/later").await.0, 404);
    has_everything(&ha, &session).await;

    a.shutdown().await.expect("a shuts down");
    b.shutdown().await.expect("b shuts down");
}

#[test]
fn inspect_refuses_a_damaged_file_and_save_needs_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.snap");
    std::fs::write(&bad, b"ROSTRA-SNAPSHOT 1\n{\"ID\":").unwrap();
    let o = ctl(
        "127.0.0.1:1",
        &["snapshot", "inspect", bad.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("header"), "{}", text(&o));
    let missing = dir.path().join("missing.snap");
    let o = ctl(
        "127.0.0.1:1",
        &["snapshot", "inspect", missing.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    // Nothing is written when the server cannot be reached.
    let out = dir.path().join("out.snap");
    let o = ctl("127.0.0.1:1", &["snapshot", "save", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!out.exists());
}

/// A restore sent to any server of a fresh 3-server cluster (here a follower, so the
/// write is forwarded to the leader) is applied by every server at the same index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_reaches_every_server_of_a_fresh_cluster() {
    let (a, _da) = common::dev_server().await;
    let ha = Http::new(a.http_addr);
    let session = populate(&ha).await;
    let file = reqwest::get(format!("http://{}/v1/snapshot", a.http_addr))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    a.shutdown().await.expect("a shuts down");

    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = common::spawn_servers(&dirs, &["s1", "s2", "s3"], |_| Vec::new());
    let leader = common::elected(&servers[0])
        .await
        .leader()
        .await
        .unwrap()
        .address;
    let follower = servers
        .iter()
        .find(|s| s.raft_addr != leader)
        .expect("a follower");
    let r = reqwest::Client::new()
        .put(format!("http://{}/v1/snapshot", follower.http_addr))
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for s in &servers {
        let c = s.client().await;
        common::wait_until("the server applied the restore", || {
            let c = c.clone();
            async move {
                c.list(pb::ListRequest {
                    prefix: "app/".into(),
                    consistency: pb::Consistency::Stale as i32,
                    ..Default::default()
                })
                .await
                .is_ok_and(|l| {
                    l.kvs.len() == 50
                        && l.kvs.iter().enumerate().all(|(i, kv)| kv.flags == i as u64)
                })
            }
        })
        .await;
    }
    // The restored session holds its lock on the cluster too.
    let hs = Http::new(&servers[2].http_addr);
    has_everything(&hs, &session).await;
    for s in &mut servers {
        assert!(s.terminate(), "a clean shutdown");
    }
}
