//! The walkthrough's §1-§3 as a user runs them: `rostra agent -dev -config-file
//! consul.json` (the real binary, scripts named relative to its working directory), then
//! the curl lines and the dig lines, answered over real sockets.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use common::{wait_until, Agent};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::{json, Value};

const CONFIG: &str = r#"{
  "node_name": "node1",
  "enable_local_script_checks": true,
  "service": {"name": "example", "tags": ["special"], "address": "127.0.0.1", "port": 3456},
  "services": [
    {"name": "example_green", "port": 3457, "checks": [{"args": ["./check_green.sh"], "interval": "15s"}]},
    {"name": "example_failed", "port": 3458, "checks": [{"args": ["./check_failed.sh"], "interval": "15s"}]}
  ]
}"#;

/// `dig @127.0.0.1 -p <port> <name> <type>` over UDP.
async fn dig(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(common::DEADLINE, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

async fn get(http: &reqwest::Client, base: &str, path: &str) -> Value {
    http.get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn statuses(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["Checks"].as_array().cloned().unwrap_or_default())
        .map(|c| c["Status"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_sections_one_to_three() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("check_green.sh", "echo green; exit 0"),
        ("check_failed.sh", "echo failed; exit 2"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(dir.path().join("consul.json"), CONFIG).unwrap();
    let args: Vec<String> = ["-dev", "-config-file", "consul.json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let agent = Agent::spawn_in(&dir.path().join("data"), &args, "0", "0", Some(dir.path()));
    let base = format!("http://{}", agent.http_addr);
    let dns: SocketAddr = agent.dns_addr.parse().unwrap();
    let http = reqwest::Client::new();

    // §3: curl localhost:8500/v1/health/service/example_green   (Status "passing")
    //     curl localhost:8500/v1/health/service/example_failed  (Status "critical")
    wait_until("the script checks have run", || async {
        let green = get(&http, &base, "/v1/health/service/example_green").await;
        let failed = get(&http, &base, "/v1/health/service/example_failed").await;
        statuses(&green) == ["passing", "passing"] && statuses(&failed) == ["passing", "critical"]
    })
    .await;

    // §2: the catalog, agent registration, agent services.
    let example = get(&http, &base, "/v1/catalog/service/example").await;
    assert_eq!(example[0]["ServiceTags"], json!(["special"]));
    assert_eq!(example[0]["ServicePort"], 3456);
    let r = http
        .put(format!("{base}/v1/agent/service/register"))
        .body(r#"{"ID":"example2","Name":"example2","Tags":["specific","v1"],"Address":"127.0.0.1","Port":8000}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let services = get(&http, &base, "/v1/agent/services").await;
    for id in ["example", "example2", "example_green", "example_failed"] {
        assert!(services.get(id).is_some(), "{id} in {services}");
    }
    let r = http
        .put(format!("{base}/v1/kv/example"))
        .body("FooValue")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap().trim(), "true");
    let raw = http
        .get(format!("{base}/v1/kv/example?raw"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(raw, "FooValue");

    // §1: dig @127.0.0.1 -p 8600 node1.node.consul / consul.service.consul [SRV]
    let node = dig(dns, "node1.node.consul.", RecordType::A).await;
    assert_eq!(node.metadata.response_code, ResponseCode::NoError);
    assert!(matches!(&node.answers[0].data, RData::A(a) if a.0.to_string() == "127.0.0.1"));
    let servers = dig(dns, "consul.service.consul.", RecordType::A).await;
    assert_eq!(servers.answers.len(), 1);
    let srv = dig(dns, "consul.service.consul.", RecordType::SRV).await;
    match &srv.answers[0].data {
        RData::SRV(s) => {
            assert_eq!(s.target.to_ascii(), "node1.node.dc1.consul.");
            assert_eq!(
                s.port.to_string(),
                agent.raft_addr.rsplit(':').next().unwrap()
            );
        }
        other => panic!("expected SRV, got {other:?}"),
    }
    let green = dig(dns, "example_green.service.consul.", RecordType::SRV).await;
    assert!(matches!(&green.answers[0].data, RData::SRV(s) if s.port == 3457));
    let tagged = dig(dns, "special.example.service.consul.", RecordType::A).await;
    assert_eq!(tagged.answers.len(), 1);
    // Only critical instances: never answered.
    let failed = dig(dns, "example_failed.service.consul.", RecordType::A).await;
    assert!(failed.answers.is_empty());
    assert_eq!(failed.metadata.response_code, ResponseCode::NXDomain);
}
