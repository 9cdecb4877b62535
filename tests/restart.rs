//! A server restarted on the same data directory keeps everything it acknowledged,
//! whether it was stopped cleanly (SIGTERM) or crashed (SIGKILL); and a watch resumed
//! from before the restart is told its index is no longer retained and gets the state.

mod common;

use common::{wait_until, Agent};
use rostra::pb;
use rostra::pb::WatchKind as Kind;

async fn elected(agent: &Agent) {
    let c = agent.client().await;
    wait_until("the server elects itself", || {
        let c = c.clone();
        async move { c.leader().await.map(|l| l.leader_id != 0).unwrap_or(false) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_clean_and_crash_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::spawn(dir.path(), &["-dev".to_string()]);
    elected(&agent).await;
    let c = agent.client().await;
    c.put("workshop/kv_watch", b"foo".to_vec(), 0, None)
        .await
        .unwrap();
    let last = c
        .put("workshop/kv_watch", b"bar".to_vec(), 0, None)
        .await
        .unwrap();
    let last_index = last.header.unwrap().index;
    c.put("other", b"1".to_vec(), 7, None).await.unwrap();

    assert!(agent.terminate(), "SIGTERM exits cleanly");
    agent.restart();
    elected(&agent).await;
    let c = agent.client().await;
    let kv = c
        .get("workshop/kv_watch", pb::Consistency::Default)
        .await
        .unwrap()
        .kv
        .unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.modify_index),
        (&b"bar"[..], last_index)
    );
    assert_eq!(
        c.get("other", pb::Consistency::Default)
            .await
            .unwrap()
            .kv
            .unwrap()
            .flags,
        7
    );

    // Acknowledged writes survive a crash too.
    let mut acked = Vec::new();
    for i in 0..50 {
        let k = format!("crash/{i}");
        c.put(&k, vec![i as u8; 100], 0, None).await.unwrap();
        acked.push(k);
    }
    agent.kill();
    agent.restart();
    elected(&agent).await;
    let c = agent.client().await;
    let list = c
        .list(pb::ListRequest {
            prefix: "crash/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.kvs.len(), acked.len());

    // The restarted server retains no change history before its start: resuming from
    // an old index yields RESET and then the full state.
    let mut s = c
        .kv()
        .watch(pb::WatchRequest {
            key: "workshop/".into(),
            prefix: true,
            start_index: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let first = s.message().await.unwrap().unwrap();
    assert_eq!(first.kind, Kind::Reset as i32);
    assert_eq!(first.reason, "compacted");
    let snap = s.message().await.unwrap().unwrap();
    assert_eq!(snap.kind, Kind::Snapshot as i32);
    assert_eq!(snap.events[0].kv.as_ref().unwrap().value, b"bar");
    assert_eq!(
        s.message().await.unwrap().unwrap().kind,
        Kind::Synced as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_registered_over_http_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::spawn(
        dir.path(),
        &[
            "-dev".to_string(),
            "-node".to_string(),
            "keeper".to_string(),
        ],
    );
    elected(&agent).await;
    let http = reqwest::Client::new();
    let body = r#"{"ID":"example2","Name":"example2","Tags":["specific","v1"],"Address":"127.0.0.1","Port":8000,
                   "Check":{"TTL":"300s"}}"#;
    let r = http
        .put(format!(
            "http://{}/v1/agent/service/register",
            agent.http_addr
        ))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .put(format!(
            "http://{}/v1/agent/check/pass/service:example2?note=ok",
            agent.http_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(agent.terminate());
    agent.restart();
    elected(&agent).await;
    let base = format!("http://{}", agent.http_addr);
    let services: serde_json::Value = http
        .get(format!("{base}/v1/agent/services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(services["example2"]["Port"], 8000);
    let checks: serde_json::Value = http
        .get(format!("{base}/v1/agent/checks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(checks["service:example2"]["Type"], "ttl");
    // A TTL check's last result survives the restart (its TTL has not run out).
    assert_eq!(checks["service:example2"]["Status"], "passing");
    assert_eq!(checks["service:example2"]["Output"], "ok");
    // And the catalog still lists it on this node.
    let url = format!("{base}/v1/catalog/service/example2");
    wait_until("example2 is in the catalog after the restart", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let v: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
            v[0]["Node"] == "keeper"
        }
    })
    .await;
}
