//! The agent's `watches` config and `rostractl watch` flags, with the real binaries: all
//! seven watch types with script and HTTP handlers, each run once at start and once per
//! change; a restarted agent runs its handlers for new changes only (its cursors are in
//! its data dir); and events reach exactly the agents their filters aim at, including
//! one that was down when they were fired.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use common::handlers::{appender, names, runs, wait_runs};
use common::{wait_until, Agent};
use serde_json::{json, Value};

/// What an HTTP handler received.
#[derive(Debug, Clone)]
struct Hook {
    method: Method,
    index: String,
    test_header: String,
    body: Value,
}

/// A local HTTP endpoint recording every request it gets.
async fn hook_server() -> (String, Arc<Mutex<Vec<Hook>>>) {
    let got: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::any(move |method: Method, headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                assert_eq!(header("content-type"), "application/json");
                g.lock().unwrap().push(Hook {
                    method,
                    index: header("x-consul-index"),
                    test_header: header("x-test"),
                    body: serde_json::from_slice(&body).unwrap(),
                });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn write_config(dir: &Path, config: &Value) -> PathBuf {
    let file = dir.join("agent.json");
    std::fs::write(&file, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    file
}

async fn http(base: &str, method: reqwest::Method, path: &str, body: &str) -> String {
    let r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_watches_fire_on_changes_and_keep_their_cursors_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = out.path();
    let (hook_url, hooks) = hook_server().await;
    let config = json!({
        "services": [{"name": "web", "tags": ["v1"], "port": 80}],
        "watches": [
            {"type": "key", "key": "app/config", "args": appender(o, "key")},
            // Consul's deprecated one-line handler, run by a shell.
            {"type": "keyprefix", "prefix": "app/",
             "handler": format!("cat >> {}", o.join("keyprefix").display())},
            {"type": "services", "args": appender(o, "services")},
            {"type": "nodes", "args": appender(o, "nodes")},
            {"type": "service", "service": "web", "passingonly": true,
             "args": appender(o, "service")},
            {"type": "checks", "state": "critical", "args": appender(o, "checks")},
            {"type": "event", "name": "deploy", "args": appender(o, "event")},
            {"type": "key", "key": "app/config", "handler_type": "http",
             "http_handler_config": {"path": hook_url, "method": "PUT",
                                     "header": {"X-Test": ["yes"]}, "timeout": "5s"}},
        ]
    });
    let file = write_config(o, &config);
    let args: Vec<String> = ["-dev", "-node", "watcher", "-config-file"]
        .iter()
        .map(|s| s.to_string())
        .chain([file.display().to_string()])
        .collect();
    let mut agent = Agent::spawn(data.path(), &args);
    let base = format!("http://{}", agent.http_addr);

    // Every watch runs once with the state at start. The catalog watches then also
    // see the agent's first anti-entropy sync register the node and its services.
    assert_eq!(wait_runs(o, "key", 1).await, [Value::Null]);
    assert_eq!(wait_runs(o, "keyprefix", 1).await, [Value::Null]);
    let last = |name: &'static str| runs(o, name).last().cloned().unwrap_or_default();
    wait_until("the services watch sees web", || async {
        last("services")["web"] == json!(["v1"])
    })
    .await;
    wait_until("the nodes watch sees this node", || async {
        last("nodes")[0]["Node"] == "watcher"
    })
    .await;
    wait_until("the service watch sees web", || async {
        last("service")[0]["Service"]["Service"] == "web"
    })
    .await;
    assert_eq!(wait_runs(o, "checks", 1).await, [json!([])]);
    assert_eq!(wait_runs(o, "event", 1).await, [json!([])]);
    wait_until("the HTTP handler is called", || async {
        hooks.lock().unwrap().len() == 1
    })
    .await;

    // Changes.
    let put = reqwest::Method::PUT;
    http(&base, put.clone(), "/v1/kv/app/config", "v1").await;
    let key = wait_runs(o, "key", 2).await;
    assert_eq!(
        (key[1]["Key"].clone(), key[1]["Value"].clone()),
        (json!("app/config"), json!("djE="))
    );
    http(&base, put.clone(), "/v1/kv/app/other", "x").await;
    let prefix = wait_runs(o, "keyprefix", 3).await;
    assert_eq!(
        prefix[2].as_array().unwrap().len(),
        2,
        "the whole prefix, not a diff"
    );
    http(&base, put.clone(), "/v1/event/fire/other", "").await;
    http(
        &base,
        put.clone(),
        "/v1/event/fire/deploy?node=^elsewhere$",
        "",
    )
    .await;
    http(&base, put.clone(), "/v1/event/fire/deploy", "p1").await;
    let events = wait_runs(o, "event", 2).await;
    assert_eq!(events[1].as_array().unwrap().len(), 1, "{events:?}");
    assert_eq!(events[1][0]["Payload"], "cDE=");
    wait_until("the HTTP handler gets the change", || async {
        hooks.lock().unwrap().len() == 2
    })
    .await;
    {
        let hooks = hooks.lock().unwrap();
        assert_eq!(hooks[0].body, Value::Null);
        assert_eq!(hooks[1].body["Value"], "djE=");
        assert_eq!(hooks[1].method, Method::PUT);
        assert_eq!(hooks[1].test_header, "yes");
        assert_eq!(hooks[1].index, key[1]["ModifyIndex"].to_string());
    }

    // A restart: no handler runs again for what it already saw; each runs for what is
    // new, and the next change each sees is exactly that one.
    let settled = |name| runs(o, name).len();
    let (services, nodes, web) = (settled("services"), settled("nodes"), settled("service"));
    assert!(agent.terminate(), "SIGTERM exits cleanly");
    agent.restart();
    let base = format!("http://{}", agent.http_addr);
    http(&base, put.clone(), "/v1/kv/app/config", "v2").await;
    let key = wait_runs(o, "key", 3).await;
    assert_eq!(key[2]["Value"], "djI=");
    assert_eq!(wait_runs(o, "keyprefix", 4).await[3][0]["Value"], "djI=");
    http(&base, put.clone(), "/v1/event/fire/deploy", "p2").await;
    let events = wait_runs(o, "event", 3).await;
    assert_eq!(names(&events), ["deploy", "deploy"]);
    assert_eq!(events[2][0]["Payload"], "cDI=");
    http(
        &base,
        put.clone(),
        "/v1/agent/service/register",
        r#"{"Name": "api", "Port": 81}"#,
    )
    .await;
    assert_eq!(
        wait_runs(o, "services", services + 1).await[services]["api"],
        json!([])
    );
    http(
        &base,
        put.clone(),
        "/v1/catalog/register",
        r#"{"Node": "ext", "Address": "10.0.0.9"}"#,
    )
    .await;
    let all = wait_runs(o, "nodes", nodes + 1).await;
    assert_eq!(all[nodes].as_array().unwrap().len(), 2, "{all:?}");
    http(
        &base,
        put.clone(),
        "/v1/agent/check/register",
        r#"{"Name": "web-down", "ServiceID": "web", "TTL": "60s", "Status": "critical"}"#,
    )
    .await;
    assert_eq!(
        wait_runs(o, "service", web + 1).await[web],
        json!([]),
        "web is no longer passing"
    );
    assert_eq!(wait_runs(o, "checks", 2).await[1][0]["Name"], "web-down");
    wait_until(
        "the HTTP handler gets the change after the restart",
        || async { hooks.lock().unwrap().len() == 3 },
    )
    .await;
    assert_eq!(hooks.lock().unwrap()[2].body["Value"], "djI=");
    assert!(agent.terminate());
}

/// Three servers on 127.0.0.2-4, each with its own services and an event watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_exactly_the_agents_they_aim_at_even_one_that_was_down() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path();
    let services = [
        json!([{"name": "web", "tags": ["v1"], "port": 80}]),
        json!([{"name": "db", "port": 5432}]),
        json!([]),
    ];
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = ["a", "b", "c"];
    let configs: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let config = json!({
                "services": services[i],
                "watches": [{"type": "event", "args": appender(o, name)}],
            });
            let file = o.join(format!("{name}.json"));
            std::fs::write(&file, config.to_string()).unwrap();
            file.display().to_string()
        })
        .collect();
    let mut agents = common::spawn_servers(&dirs, &nodes, |i| {
        vec!["-config-file".to_string(), configs[i].clone()]
    });
    let base = format!("http://{}", agents[0].http_addr);
    // Each agent's watch runs once at start, once the cluster is up.
    for name in ["a", "b", "c"] {
        wait_until(&format!("{name}'s first run"), || async {
            !runs(o, name).is_empty()
        })
        .await;
    }
    let fire = |path: &'static str| {
        let base = base.clone();
        async move { http(&base, reqwest::Method::PUT, path, "").await }
    };
    fire("/v1/event/fire/e1").await;
    fire("/v1/event/fire/e2?node=^a$").await;
    fire("/v1/event/fire/e3?service=db").await;
    fire("/v1/event/fire/e4?service=web&tag=v1").await;
    fire("/v1/event/fire/e5?service=web&tag=v2").await;
    fire("/v1/event/fire/e6?node=^c$").await;
    wait_until("c has e6", || async {
        names(&runs(o, "c")).contains(&"e6".into())
    })
    .await;

    // c is down while two more are fired; back up, it gets them once.
    assert!(agents[2].terminate());
    fire("/v1/event/fire/while-down").await;
    fire("/v1/event/fire/for-c?node=^c$").await;
    fire("/v1/event/fire/last").await;
    agents[2].restart();
    let expect = [
        ("a", vec!["e1", "e2", "e4", "while-down", "last"]),
        ("b", vec!["e1", "e3", "while-down", "last"]),
        ("c", vec!["e1", "e6", "while-down", "for-c", "last"]),
    ];
    for (name, want) in expect {
        wait_until(&format!("{name} has the last event"), || async {
            names(&runs(o, name)).last().map(String::as_str) == Some("last")
        })
        .await;
        assert_eq!(names(&runs(o, name)), want, "events delivered to {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_flags_datacenter_and_token() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    let run = |args: &[&str]| {
        Command::new(common::rostractl_bin())
            .arg("watch")
            .args(args)
            .env("ROSTRA_ADDR", &addr)
            .output()
            .unwrap()
    };
    let o = run(&["-type", "key", "-key", "k", "-datacenter", "dc2"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No path to datacenter"),
        "{o:?}"
    );
    let o = run(&[
        "-type",
        "key",
        "-key",
        "k",
        "-datacenter",
        "dc1",
        "-token",
        "t",
        "-stale",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "null");
    let o = run(&["-type", "checks", "-service", "web", "-state", "passing"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Cannot specify service and state"));
    server.shutdown().await.expect("clean shutdown");
}

#[test]
fn bad_watch_definitions_stop_the_agent_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (watch, message) in [
        (
            json!({"type": "key", "args": ["true"]}),
            "watches[0]: Must specify a single key to watch",
        ),
        (
            json!({"type": "event", "name": "x"}),
            "watches[0]: Must define a watch handler",
        ),
        (
            json!({"type": "nodes", "handler_type": "http", "http_handler_config": {"path": "::"}}),
            "watches[0].http_handler_config.path: invalid URL",
        ),
        (
            json!({"type": "nodes", "datacenter": "dc9", "args": ["true"]}),
            "datacenter \"dc9\" is not this agent's",
        ),
    ] {
        let file = write_config(dir.path(), &json!({"watches": [watch]}));
        let o = Command::new(common::rostra_bin())
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{watch}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(message), "{watch}: {err}");
    }
}
