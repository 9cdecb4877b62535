//! Client agents (no -server) as separate processes on their own loopback addresses:
//! their HTTP API, gRPC API and DNS answer through the servers (the API seam over the
//! server port), their services reach the catalog, blocking queries and watches work
//! through them, they move to another server when theirs is killed, and what was
//! registered through them survives their restart.

mod common;

use std::time::Duration;

use common::{wait_until, Agent};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use rostra::client::{Client, KvWatch};
use serde_json::Value;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn get(base: &str, path: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (r.status(), r.headers().clone(), r.text().await.unwrap())
}

async fn put(base: &str, path: &str, body: &str) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .put(format!("{base}{path}"))
        .body(body.to_string())
        .send()
        .await
}

/// The A records DNS at `server` gives for `name`.
async fn dns_a(server: &str, name: &str) -> Vec<String> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(&m.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await
    else {
        return Vec::new();
    };
    let reply = Message::from_vec(&buf[..n]).unwrap();
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_agents_serve_through_the_servers_and_survive_losing_theirs() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = common::spawn_servers(&dirs, &["s1", "s2", "s3"], |_| Vec::new());
    // The client knows every server; it starts on the first.
    let config = dirs[3].path().join("client.json");
    std::fs::write(
        &config,
        r#"{"services": [{"name": "web", "port": 8080, "tags": ["v1"]}]}"#,
    )
    .unwrap();
    let mut args = strings(&[
        "-node",
        "client001",
        "-bind",
        "127.0.0.5",
        "-client",
        "127.0.0.5",
    ]);
    for s in &servers {
        args.extend(["-join".to_string(), s.raft_addr.clone()]);
    }
    args.extend(["-config-file".to_string(), config.display().to_string()]);
    let client_dir = tempfile::tempdir().unwrap();
    let mut client = Agent::spawn(client_dir.path(), &args);
    assert!(
        client.raft_addr.is_empty(),
        "a client agent has no server port"
    );
    let base = format!("http://{}", client.http_addr);
    let s2 = format!("http://{}", servers[1].http_addr);

    // Its service reaches the catalog, on its own node and address.
    wait_until("web on client001 is in the catalog", || async {
        let (_, _, body) = get(&s2, "/v1/catalog/service/web").await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v[0]["Node"] == "client001" && v[0]["Address"] == "127.0.0.5"
    })
    .await;
    // Its DNS answers from the catalog.
    wait_until("the client's DNS finds web", || async {
        dns_a(&client.dns_addr, "web.service.consul").await == ["127.0.0.5"]
    })
    .await;
    // KV through its HTTP API, read on a server; a blocking query through it wakes on a
    // write made on a server.
    assert!(put(&base, "/v1/kv/app/config", "v1")
        .await
        .unwrap()
        .status()
        .is_success());
    let (status, headers, body) = get(&s2, "/v1/kv/app/config?raw").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "v1"));
    let index = headers["X-Consul-Index"].to_str().unwrap().to_string();
    let b = base.clone();
    let blocked = tokio::spawn(async move {
        get(&b, &format!("/v1/kv/app/config?raw&index={index}&wait=20s")).await
    });
    put(&s2, "/v1/kv/app/config", "v2").await.unwrap();
    let (_, _, body) = tokio::time::timeout(common::DEADLINE, blocked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, "v2");

    // A watch through its gRPC API.
    let grpc = Client::connect(&client.grpc_addr).await.unwrap();
    let mut watch = grpc
        .follow(KvWatch {
            key: "app/".into(),
            prefix: true,
        })
        .await
        .unwrap();
    watch.next().await.unwrap();
    assert_eq!(watch.state()["app/config"].value, b"v2");

    // Kill the server it talks to: it moves to another, keeps answering, and the watch
    // goes on with nothing missed.
    servers[0].kill();
    wait_until("a write through the client succeeds again", || async {
        put(&base, "/v1/kv/app/after", "1")
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    put(&s2, "/v1/kv/app/config", "v3").await.unwrap();
    while watch.state().get("app/config").map(|kv| kv.value.clone()) != Some(b"v3".to_vec()) {
        tokio::time::timeout(common::DEADLINE, watch.next())
            .await
            .expect("the watch goes on after the failover")
            .unwrap();
    }
    assert_eq!(watch.state()["app/after"].value, b"1");

    // Registered through its API, kept across its restart.
    let r = put(
        &base,
        "/v1/agent/service/register",
        r#"{"Name": "api", "Port": 9090}"#,
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    assert!(client.terminate(), "SIGTERM stops a client agent cleanly");
    client.restart();
    let base = format!("http://{}", client.http_addr);
    let (_, _, body) = get(&base, "/v1/agent/services").await;
    let services: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(services["api"]["Port"], 9090, "{services}");
    wait_until("api on client001 is in the catalog", || async {
        let (_, _, body) = get(&s2, "/v1/catalog/service/api").await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v[0]["Node"] == "client001"
    })
    .await;
}

#[test]
fn a_client_agent_needs_servers_to_join() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(common::rostra_bin())
        .args(["agent", "-node", "c", "-data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("a client agent needs servers to join"),
        "{o:?}"
    );
}

fn ctl_members(addr: &str) -> String {
    let o = std::process::Command::new(common::rostractl_bin())
        .arg("members")
        .env("ROSTRA_ADDR", addr)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The status `rostractl members` shows for `node`.
fn status_of(table: &str, node: &str) -> Option<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&node))
        .map(|cols| cols[2].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_is_failed_its_lock_released_and_it_rejoins() {
    const FAILED_AFTER: Duration = Duration::from_secs(3);
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let server_config = dirs[0].path().join("server.json");
    std::fs::write(
        &server_config,
        r#"{"limits": {"member_failed_after": "3s"}}"#,
    )
    .unwrap();
    let servers = common::spawn_servers(&dirs, &["s1", "s2", "s3"], |_| {
        vec![
            "-config-file".to_string(),
            server_config.display().to_string(),
        ]
    });
    let web = dirs[3].path().join("web.json");
    std::fs::write(&web, r#"{"service": {"name": "web", "port": 80}}"#).unwrap();
    let mut clients: Vec<Agent> = Vec::new();
    for (i, name) in ["client001", "client002"].iter().enumerate() {
        let ip = format!("127.0.0.{}", i + 5);
        let mut args = strings(&["-node", name, "-bind", &ip, "-client", &ip, "-join"]);
        args.push(servers[i + 1].raft_addr.clone());
        args.extend(["-config-file".to_string(), web.display().to_string()]);
        clients.push(Agent::spawn(dirs[i + 3].path(), &args));
    }
    let s1 = servers[0].grpc_addr.clone();
    let s1_http = format!("http://{}", servers[0].http_addr);
    wait_until("all five members are alive", || async {
        let table = ctl_members(&s1);
        ["s1", "s2", "s3", "client001", "client002"]
            .iter()
            .all(|n| status_of(&table, n).as_deref() == Some("alive"))
    })
    .await;
    let table = ctl_members(&s1);
    assert!(table.starts_with("Node"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("client002") && l.contains(" client ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("s1") && l.contains(" server ")),
        "{table}"
    );
    // The HTTP API of a client agent lists them too, with Consul's fields.
    let c2 = format!("http://{}", clients[1].http_addr);
    let (_, _, body) = get(&c2, "/v1/agent/members").await;
    let members: Value = serde_json::from_str(&body).unwrap();
    let c2m = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Name"] == "client002")
        .unwrap()
        .clone();
    assert_eq!(
        (c2m["Status"].clone(), c2m["Tags"]["role"].clone()),
        (1.into(), "node".into())
    );
    assert_eq!(c2m["Addr"], "127.0.0.6");

    // client002 holds a lock through a session of its own node.
    let r = put(&c2, "/v1/session/create", r#"{"Name": "job"}"#)
        .await
        .unwrap();
    let session: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let id = session["ID"].as_str().unwrap().to_string();
    let r = put(&c2, &format!("/v1/kv/locks/job?acquire={id}"), "mine")
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "true");
    let (_, _, body) = get(&s1_http, &format!("/v1/session/info/{id}")).await;
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        info[0]["Node"], "client002",
        "a client's session is its own node's"
    );

    // Killed: failed after (never before) the configured silence; its session ends and
    // the lock is free; its web drops out of ?passing.
    clients[1].kill();
    let killed = std::time::Instant::now();
    wait_until("client002 is failed", || async {
        status_of(&ctl_members(&s1), "client002").as_deref() == Some("failed")
    })
    .await;
    let took = killed.elapsed();
    println!(
        "client002 marked failed {took:?} after SIGKILL (member_failed_after {FAILED_AFTER:?})"
    );
    assert!(
        took >= FAILED_AFTER - Duration::from_millis(1100),
        "failed too early: {took:?}"
    );
    wait_until("the lock is released", || async {
        let (_, _, body) = get(&s1_http, "/v1/kv/locks/job").await;
        let kv: Value = serde_json::from_str(&body).unwrap_or_default();
        kv[0]["Session"].is_null() && kv[0]["Value"] == "bWluZQ=="
    })
    .await;
    let (_, _, body) = get(&s1_http, "/v1/health/service/web?passing").await;
    let passing: Value = serde_json::from_str(&body).unwrap();
    let nodes: Vec<&str> = passing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Node"]["Node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["client001"], "only the live client's web passes");

    // Restarted: alive again, with its service.
    clients[1].restart();
    wait_until("client002 is alive again", || async {
        status_of(&ctl_members(&s1), "client002").as_deref() == Some("alive")
    })
    .await;
    wait_until("both webs pass again", || async {
        let (_, _, body) = get(&s1_http, "/v1/health/service/web?passing").await;
        serde_json::from_str::<Value>(&body)
            .map(|v| v.as_array().map_or(0, |a| a.len()) == 2)
            .unwrap_or(false)
    })
    .await;

    // SIGTERM: a client agent leaves.
    assert!(clients[0].terminate());
    assert_eq!(
        status_of(&ctl_members(&s1), "client001").as_deref(),
        Some("left")
    );

    // force-leave: unknown nodes are Consul's 404; ?prune removes a member at once.
    let r = put(&s1_http, "/v1/agent/force-leave/nosuch", "")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = put(&s1_http, "/v1/agent/force-leave/client001?prune", "")
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(status_of(&ctl_members(&s1), "client001"), None);
    // The same from the CLI (Consul's `force-leave [-prune] <node>`).
    let ctl = |args: &[&str]| {
        std::process::Command::new(common::rostractl_bin())
            .args(args)
            .env("ROSTRA_ADDR", &s1)
            .output()
            .unwrap()
    };
    let o = ctl(&["force-leave"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("A node name must be specified"));
    let o = ctl(&["force-leave", "nosuch"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Error force leaving"),
        "{o:?}"
    );

    // `rostractl leave` against an agent: it leaves and its process exits cleanly.
    let o = std::process::Command::new(common::rostractl_bin())
        .arg("leave")
        .env("ROSTRA_ADDR", &clients[1].grpc_addr)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Graceful leave complete\n"
    );
    let exited = clients[1].wait_exit();
    assert!(exited.success(), "{exited:?}");
    assert_eq!(
        status_of(&ctl_members(&s1), "client002").as_deref(),
        Some("left")
    );
}

/// Client agents get their events on their attachment, aimed by the server: each one's
/// event watch sees exactly the events for its node and services; when the server both
/// are attached to is killed they attach to another (learned from its status pushes,
/// since they were told of one server only) and the events go on, none missed, none
/// repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_agents_get_exactly_their_events_across_a_failover() {
    use common::handlers::{appender, names, runs};
    let out = tempfile::tempdir().unwrap();
    let o = out.path();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = common::spawn_servers(&dirs, &["s1", "s2", "s3"], |_| Vec::new());
    let services = [
        serde_json::json!([{"name": "web", "tags": ["v1"], "port": 80}]),
        serde_json::json!([{"name": "db", "port": 5432}]),
    ];
    let client_dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut clients = Vec::new();
    for (i, name) in ["client001", "client002"].iter().enumerate() {
        let config = o.join(format!("{name}.json"));
        let body = serde_json::json!({
            "services": services[i],
            "watches": [{"type": "event", "args": appender(o, name)}],
        });
        std::fs::write(&config, body.to_string()).unwrap();
        let ip = format!("127.0.0.{}", i + 5);
        let mut args = strings(&["-node", name, "-bind", &ip, "-client", &ip]);
        args.extend(["-join".to_string(), servers[0].raft_addr.clone()]);
        args.extend(["-config-file".to_string(), config.display().to_string()]);
        clients.push(Agent::spawn(client_dirs[i].path(), &args));
    }
    for name in ["client001", "client002"] {
        wait_until(&format!("{name}'s event watch ran at start"), || async {
            !runs(o, name).is_empty()
        })
        .await;
    }
    // Service filters are matched against the catalog: wait for both registrations.
    let s2 = format!("http://{}", servers[1].http_addr);
    wait_until("web and db are registered", || async {
        let (_, _, body) = get(&s2, "/v1/catalog/services").await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v.get("web").is_some() && v.get("db").is_some()
    })
    .await;
    let fire = |base: String, path: &'static str| async move {
        let r = put(&base, path, "").await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    };
    fire(s2.clone(), "/v1/event/fire/e1").await;
    fire(s2.clone(), "/v1/event/fire/e2?node=^client001$").await;
    fire(s2.clone(), "/v1/event/fire/e3?service=db").await;
    fire(s2.clone(), "/v1/event/fire/e4?service=web&tag=v1").await;
    fire(s2.clone(), "/v1/event/fire/e5?node=^s").await;
    fire(s2.clone(), "/v1/event/fire/e6?service=db&tag=v9").await;
    for (name, last) in [("client001", "e4"), ("client002", "e3")] {
        wait_until(&format!("{name} has {last}"), || async {
            names(&runs(o, name)).contains(&last.to_string())
        })
        .await;
    }

    // The server both are attached to goes away, once they have learned the others
    // from its status pushes (their /v1/status/peers is that view).
    for c in &clients {
        let base = format!("http://{}", c.http_addr);
        wait_until("the client knows all three servers", || async {
            let (_, _, body) = get(&base, "/v1/status/peers").await;
            serde_json::from_str::<Vec<String>>(&body).is_ok_and(|p| p.len() == 3)
        })
        .await;
    }
    servers[0].kill();
    wait_until("the cluster takes writes again", || async {
        put(&s2, "/v1/kv/after-failover", "1")
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    fire(s2.clone(), "/v1/event/fire/after").await;
    fire(s2.clone(), "/v1/event/fire/after-db?service=db").await;
    let expect = [
        ("client001", vec!["e1", "e2", "e4", "after"]),
        ("client002", vec!["e1", "e3", "after", "after-db"]),
    ];
    for (name, want) in expect {
        let last = want.last().unwrap().to_string();
        wait_until(&format!("{name} has {last}"), || async {
            names(&runs(o, name)).last() == Some(&last)
        })
        .await;
        assert_eq!(names(&runs(o, name)), want, "events delivered to {name}");
    }
    for c in &mut clients {
        assert!(c.terminate(), "SIGTERM stops a client agent cleanly");
    }
}
