//! The walkthrough's §2-§3 over HTTP: services from the agent config with script checks
//! that pass and fail, catalog and health queries, agent registration, TTL checks,
//! anti-entropy writing only changes, filters and blocking health queries.

mod common;

use std::os::unix::fs::PermissionsExt;

use reqwest::StatusCode;
use rostra::agent::definition::ServiceDefinition;
use rostra::config::consul_json::Obj;
use rostra::config::AgentConfig;
use serde_json::{json, Value};

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn service(v: Value) -> ServiceDefinition {
    ServiceDefinition::decode(Obj::new(&v, "service").unwrap(), true).unwrap()
}

async fn start(dir: &std::path::Path) -> rostra::server::Server {
    let runs = dir.join("runs.log").display().to_string();
    let green = script(
        dir,
        "check_green.sh",
        &format!("echo run >> {runs}; echo green; exit 0"),
    );
    let failed = script(dir, "check_failed.sh", "echo broken; exit 2");
    let mut config = AgentConfig::dev();
    config.node_name = "walk".into();
    config.data_dir = Some(dir.join("data"));
    config.server_port = 0;
    config.grpc_port = 0;
    config.http_port = 0;
    config.dns_port = 0;
    config.enable_local_script_checks = true;
    config.services = vec![
        service(
            json!({"name": "example", "tags": ["special"], "address": "127.0.0.1", "port": 3456}),
        ),
        service(
            json!({"name": "example_green", "port": 1, "checks": [{"args": [green], "interval": "1s"}]}),
        ),
        service(
            json!({"name": "example_failed", "port": 2, "checks": [{"args": [failed], "interval": "15s"}]}),
        ),
    ];
    rostra::server::Server::start(&config)
        .await
        .expect("server starts")
}

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, String) {
        let r = self
            .client
            .put(format!("{}{path}", self.base))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }
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
async fn walkthrough_services_and_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let h = Http {
        base: format!("http://{}", server.http_addr),
        client: reqwest::Client::new(),
    };

    // curl localhost:8500/v1/health/service/example_green      -> "passing"
    // curl localhost:8500/v1/health/service/example_failed     -> "critical"
    common::wait_until(
        "example_green passes and example_failed is critical",
        || async {
            let green = h.get("/v1/health/service/example_green").await.1;
            let failed = h.get("/v1/health/service/example_failed").await.1;
            statuses(&green) == ["passing", "passing"]
                && statuses(&failed).contains(&"critical".to_string())
        },
    )
    .await;
    let (_, failed) = h.get("/v1/health/service/example_failed").await;
    let check = failed[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CheckID"] == "service:example_failed")
        .unwrap()
        .clone();
    assert_eq!(check["Output"], "broken\n");
    assert_eq!(check["Type"], "script");
    assert_eq!(check["ServiceName"], "example_failed");
    // serfHealth is every node's check.
    assert!(failed[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["CheckID"] == "serfHealth" && c["Status"] == "passing"));
    let (_, passing) = h.get("/v1/health/service/example_failed?passing").await;
    assert_eq!(passing, json!([]));
    assert_eq!(
        h.get("/v1/health/service/example_green?passing=1")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (code, _) = h
        .get("/v1/health/service/example_green?passing=maybe")
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // curl localhost:8500/v1/catalog/service/example | jq .
    let (code, example) = h.get("/v1/catalog/service/example").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(example[0]["ServiceName"], "example");
    assert_eq!(example[0]["ServiceTags"], json!(["special"]));
    assert_eq!(example[0]["ServiceAddress"], "127.0.0.1");
    assert_eq!(example[0]["ServicePort"], 3456);
    assert_eq!(example[0]["Node"], "walk");
    assert_eq!(
        h.get("/v1/catalog/service/example?tag=special")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.get("/v1/catalog/service/example?tag=other").await.1,
        json!([])
    );
    assert_eq!(
        h.get("/v1/catalog/service/example?filter=ServicePort%20%3D%3D%203456")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.get("/v1/catalog/service/example?filter=ServicePort%20%3D%3D%201")
            .await
            .1,
        json!([])
    );
    assert_eq!(h.get("/v1/catalog/service/nothing").await.1, json!([]));
    let (code, _) = h
        .get("/v1/catalog/service/example?filter=Foo%20%3D%3D%201")
        .await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "unknown selectors are rejected, as in Consul"
    );
    let (_, services) = h.get("/v1/catalog/services").await;
    assert_eq!(services["example"], json!(["special"]));
    assert_eq!(
        services["consul"],
        json!([]),
        "servers register service consul"
    );
    let (_, node) = h.get("/v1/catalog/node/walk").await;
    assert_eq!(node["Node"]["Node"], "walk");
    assert!(node["Services"]["example_green"].is_object());
    assert_eq!(
        h.get("/v1/catalog/node/nobody").await,
        (StatusCode::OK, Value::Null)
    );
    let (_, critical) = h.get("/v1/health/state/critical").await;
    assert!(critical
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["Status"] == "critical"));
    assert!(critical
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["ServiceID"] == "example_failed"));

    // curl -X PUT -d @service.json localhost:8500/v1/agent/service/register
    let (code, body) = h
        .put(
            "/v1/agent/service/register",
            json!({"ID": "example2", "Name": "example2", "Tags": ["specific", "v1"], "Address": "127.0.0.1", "Port": 8000}),
        )
        .await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, ""));
    let (_, local) = h.get("/v1/agent/services").await;
    assert_eq!(local["example2"]["Tags"], json!(["specific", "v1"]));
    assert_eq!(local["example"]["Port"], 3456);
    common::wait_until("example2 reaches the catalog", || async {
        h.get("/v1/catalog/service/example2")
            .await
            .1
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    let (code, text) = h
        .put("/v1/agent/service/register", json!({"Port": 1}))
        .await;
    assert_eq!(
        (code, text.as_str()),
        (StatusCode::BAD_REQUEST, "Missing service name")
    );

    // TTL checks: critical until updated; pass/fail move them; others refuse.
    let (code, _) = h
        .put(
            "/v1/agent/check/register",
            json!({"Name": "ttl", "TTL": "60s", "ServiceID": "example2"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = h
        .put("/v1/agent/check/pass/ttl?note=all%20good", json!({}))
        .await;
    assert_eq!(code, StatusCode::OK);
    common::wait_until("the TTL check passes in the catalog", || async {
        let (_, checks) = h.get("/v1/health/checks/example2").await;
        checks.as_array().is_some_and(|a| {
            a.iter().any(|c| {
                c["CheckID"] == "ttl" && c["Status"] == "passing" && c["Output"] == "all good"
            })
        })
    })
    .await;
    let (code, text) = h
        .put("/v1/agent/check/pass/service:example_green", json!({}))
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        text,
        "CheckID \"service:example_green\" does not have associated TTL"
    );
    let (_, checks) = h.get("/v1/agent/checks").await;
    assert_eq!(checks["ttl"]["Status"], "passing");

    // Anti-entropy writes only changes: the green check keeps running (every second)
    // with the same result, and no raft write follows.
    let runs = dir.path().join("runs.log");
    let count = || {
        std::fs::read_to_string(&runs)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let writes_before = server.service.metrics().writes;
    let runs_before = count();
    common::wait_until("three more runs of the green check", || async {
        count() >= runs_before + 3
    })
    .await;
    assert_eq!(
        server.service.metrics().writes,
        writes_before,
        "unchanged check results must not be written"
    );

    // Deregistration removes the service and its checks from the catalog.
    let (code, _) = h
        .put("/v1/agent/service/deregister/example2", json!({}))
        .await;
    assert_eq!(code, StatusCode::OK);
    common::wait_until("example2 leaves the catalog", || async {
        h.get("/v1/catalog/service/example2").await.1 == json!([])
    })
    .await;
    assert_eq!(h.get("/v1/health/checks/example2").await.1, json!([]));
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_api_and_blocking_health_queries() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let h = Http {
        base: format!("http://{}", server.http_addr),
        client: reqwest::Client::new(),
    };
    // Let the agent's own registrations and first check results settle, so the catalog
    // index only moves for the writes below.
    common::wait_until("the agent's checks have reported", || async {
        let green = h.get("/v1/health/service/example_green").await.1;
        let failed = h.get("/v1/health/service/example_failed").await.1;
        statuses(&green) == ["passing", "passing"]
            && statuses(&failed).contains(&"critical".to_string())
    })
    .await;
    let (code, body) = h
        .put(
            "/v1/catalog/register",
            json!({"Node": "ext", "Address": "10.0.0.9", "Service": {"Service": "db", "Port": 5432, "Tags": ["primary"]},
                   "Check": {"CheckID": "db-alive", "Name": "db alive", "Status": "passing", "ServiceID": "db"}}),
        )
        .await;
    assert_eq!((code, body.trim()), (StatusCode::OK, "true"));
    let resp = h
        .client
        .get(format!("{}/v1/health/service/db", h.base))
        .send()
        .await
        .unwrap();
    let index: u64 = resp.headers()["X-Consul-Index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let entries: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(entries[0]["Service"]["Service"], "db");
    assert_eq!(entries[0]["Node"]["Address"], "10.0.0.9");

    // A blocked health query on `db` ignores other services and wakes for its own.
    let url = format!("{}/v1/health/service/db?index={index}&wait=30s", h.base);
    let client = h.client.clone();
    // The agent's own watches (exec events) are always there.
    let idle = server.service.watcher_count();
    let blocked = tokio::spawn(async move {
        let r = client.get(url).send().await.unwrap();
        serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap()
    });
    let wakeups = server.service.metrics().query_wakeups;
    common::wait_until("the health query is blocked", || {
        let s = server.service.clone();
        async move { s.watcher_count() > idle }
    })
    .await;
    h.put(
        "/v1/catalog/register",
        json!({"Node": "ext2", "Address": "10.0.0.10", "Service": {"Service": "cache", "Port": 1}}),
    )
    .await;
    assert!(!blocked.is_finished());
    h.put(
        "/v1/catalog/register",
        json!({"Node": "ext", "Address": "10.0.0.9", "Check": {"CheckID": "db-alive", "Name": "db alive", "Status": "critical", "ServiceID": "db"}}),
    )
    .await;
    let woke = tokio::time::timeout(common::DEADLINE, blocked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(statuses(&woke), ["critical"]);
    assert_eq!(server.service.metrics().query_wakeups - wakeups, 1);

    // Deregistering a node removes its services and checks.
    let (code, _) = h
        .put("/v1/catalog/deregister", json!({"Node": "ext"}))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h.get("/v1/health/service/db").await.1, json!([]));
    assert_eq!(h.get("/v1/catalog/node/ext").await.1, Value::Null);
    let (code, text) = {
        let r = h
            .client
            .put(format!("{}/v1/catalog/register", h.base))
            .body("{")
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("Request decode failed"), "{text}");
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}
