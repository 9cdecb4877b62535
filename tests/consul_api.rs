//! Consul HTTP API behaviour that client libraries rely on (issue 15): `/v1/agent/self`
//! and `/v1/agent/members`, maintenance mode, datacenters, filters, and the answers of
//! endpoints for features Rostra does not have (mesh, peering, ACLs).

mod common;

use std::collections::BTreeSet;

use common::http::Http;
use common::{wait_until, Agent};
use serde_json::{json, Value};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_self_and_members_are_consuls() {
    let (server, _dir) = common::dev_server().await;
    let http = Http::new(server.http_addr);

    let (status, me, _) = http.get("/v1/agent/self").await;
    assert_eq!(status, 200);
    let expected: BTreeSet<String> = [
        "Config",
        "DebugConfig",
        "Coord",
        "Member",
        "Meta",
        "Stats",
        "xDS",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys(&me), expected, "{me:#}");
    let config = &me["Config"];
    assert_eq!(config["Version"], rostra::version::CONSUL_API_VERSION);
    assert_eq!(config["RostraVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(config["NodeName"], "test-node");
    assert_eq!(config["Datacenter"], "dc1");
    assert_eq!(config["Server"], true);
    assert_eq!(me["DebugConfig"]["ServerMode"], true);
    assert_eq!(me["Coord"]["Vec"].as_array().map(Vec::len), Some(8));

    // Stats: the leader's address as /v1/status/leader gives it, and raft's positions.
    let (_, leader, _) = http.get("/v1/status/leader").await;
    assert!(leader.as_str().is_some_and(|l| !l.is_empty()));
    assert_eq!(me["Stats"]["consul"]["leader_addr"], leader);
    assert_eq!(me["Stats"]["consul"]["server"], "true");
    let raft = &me["Stats"]["raft"];
    assert_eq!(raft["state"], "Leader", "{raft:#}");
    let num = |k: &str| {
        raft[k]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{k}: {raft:#}"))
    };
    assert!(num("applied_index") > 0);
    assert!(num("commit_index") >= num("applied_index"));
    assert!(num("last_log_index") >= num("commit_index"));
    assert!(num("term") >= 1);
    assert_eq!(num("num_peers"), 0);

    // The Member of /v1/agent/self is, field for field, this node's entry in the list.
    let (status, members, _) = http.get("/v1/agent/members").await;
    assert_eq!(status, 200);
    let listed = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Name"] == "test-node")
        .cloned()
        .expect("this node is a member");
    assert_eq!(listed, me["Member"]);
    for field in [
        "Name",
        "Addr",
        "Port",
        "Tags",
        "Status",
        "ProtocolMin",
        "ProtocolMax",
        "ProtocolCur",
        "DelegateMin",
        "DelegateMax",
        "DelegateCur",
    ] {
        assert!(listed.get(field).is_some(), "{field} missing: {listed:#}");
    }
    assert_eq!(listed["Status"], 1);
    let tags = &listed["Tags"];
    assert_eq!(tags["role"], "consul");
    assert_eq!(tags["dc"], "dc1");
    assert_eq!(tags["id"], config["NodeID"]);
    assert_eq!(tags["build"], rostra::version::CONSUL_API_VERSION);
    assert_eq!(
        tags["port"].as_str(),
        leader
            .as_str()
            .and_then(|l| l.rsplit_once(':'))
            .map(|(_, p)| p)
    );
    for t in ["vsn", "vsn_min", "vsn_max"] {
        assert!(tags[t].is_string(), "{t}: {tags:#}");
    }

    // ?wan lists the servers under Consul's WAN names; ?segment only the default one.
    let (status, wan, _) = http.get("/v1/agent/members?wan=1").await;
    assert_eq!(status, 200);
    assert_eq!(wan[0]["Name"], "test-node.dc1");
    assert_eq!(wan[0]["Port"], 8302);
    let (status, all, _) = http.get("/v1/agent/members?segment=_all").await;
    assert_eq!((status, &all), (200, &members));
    let (status, body, _) = http
        .call(reqwest::Method::GET, "/v1/agent/members?segment=alpha", "")
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "Network segments are not supported in this version of Consul"
    );
    server.shutdown().await.expect("clean shutdown");
}

/// The critical check maintenance mode adds, as `/v1/agent/checks` shows it.
async fn check(http: &Http, id: &str) -> Option<Value> {
    let (_, checks, _) = http.get("/v1/agent/checks").await;
    checks.get(id).cloned()
}

/// The A records DNS gives for a service (only instances with no critical check).
async fn dns_instances(agent: &Agent, service: &str) -> usize {
    use common::dns::{a_records, query, udp_exchange};
    let q = query(
        &format!("{service}.service.consul."),
        hickory_proto::rr::RecordType::A,
        None,
    );
    a_records(&udp_exchange(agent.dns_addr.parse().unwrap(), &q).await).len()
}

async fn passing_instances(http: &Http, service: &str) -> usize {
    let (_, entries, _) = http
        .get(&format!("/v1/health/service/{service}?passing"))
        .await;
    entries.as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_mode_takes_nodes_and_instances_out_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::spawn(dir.path(), &["-dev".into(), "-node".into(), "maint".into()]);
    common::elected(&agent).await;
    let http = Http::new(&agent.http_addr);
    let body = json!({"Name": "web", "Port": 80, "Check": {"TTL": "10m", "Status": "passing"}});
    assert_eq!(
        http.put("/v1/agent/service/register", body.to_string())
            .await
            .0,
        200
    );
    wait_until("web passes", || async {
        passing_instances(&http, "web").await == 1
    })
    .await;
    assert_eq!(dns_instances(&agent, "web").await, 1);

    // Bad `enable` values are Consul's 400s; an unknown service its 404.
    let cases = [
        ("/v1/agent/maintenance", 400, "Missing value for enable"),
        (
            "/v1/agent/maintenance?enable=maybe",
            400,
            "Invalid value for enable: \"maybe\"",
        ),
        (
            "/v1/agent/service/maintenance/web",
            400,
            "Missing value for enable",
        ),
        (
            "/v1/agent/service/maintenance/nosuch?enable=true",
            404,
            "No service registered with ID \"nosuch\"",
        ),
    ];
    for (path, code, text) in cases {
        assert_eq!(http.put(path, "").await, (code, text.to_string()), "{path}");
    }

    // One instance in maintenance: its critical check, and it leaves ?passing.
    let (code, _) = http
        .put(
            "/v1/agent/service/maintenance/web?enable=true&reason=upgrading",
            "",
        )
        .await;
    assert_eq!(code, 200);
    let c = check(&http, "_service_maintenance:web")
        .await
        .expect("the check exists");
    assert_eq!(c["Status"], "critical");
    assert_eq!(c["Name"], "Service Maintenance Mode");
    assert_eq!(c["Notes"], "upgrading");
    assert_eq!(c["ServiceID"], "web");
    wait_until("web leaves ?passing", || async {
        passing_instances(&http, "web").await == 0
    })
    .await;
    assert_eq!(
        dns_instances(&agent, "web").await,
        0,
        "DNS drops the instance too"
    );
    assert_eq!(
        http.put("/v1/agent/service/maintenance/web?enable=false", "")
            .await
            .0,
        200
    );
    assert!(check(&http, "_service_maintenance:web").await.is_none());
    wait_until("web is back", || async {
        passing_instances(&http, "web").await == 1
    })
    .await;

    // The node in maintenance, with Consul's default reason.
    assert_eq!(
        http.put("/v1/agent/maintenance?enable=true", "").await.0,
        200
    );
    let c = check(&http, "_node_maintenance")
        .await
        .expect("the node check exists");
    assert_eq!(c["Status"], "critical");
    assert_eq!(c["Name"], "Node Maintenance Mode");
    assert_eq!(
        c["Notes"],
        "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
    );
    wait_until("the node's services leave ?passing", || async {
        passing_instances(&http, "web").await == 0
    })
    .await;
    assert_eq!(
        dns_instances(&agent, "web").await,
        0,
        "nor does DNS list the node's"
    );

    // It is kept across a restart, as Consul persists it.
    assert!(agent.terminate());
    agent.restart();
    let http = Http::new(&agent.http_addr);
    common::elected(&agent).await;
    assert!(check(&http, "_node_maintenance").await.is_some());
    wait_until("the catalog still has the node in maintenance", || async {
        let (_, checks, _) = http.get("/v1/health/node/maint").await;
        checks.as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["CheckID"] == "_node_maintenance" && c["Status"] == "critical")
        })
    })
    .await;
    assert_eq!(passing_instances(&http, "web").await, 0);
    assert_eq!(
        http.put("/v1/agent/maintenance?enable=false", "").await.0,
        200
    );
    assert!(check(&http, "_node_maintenance").await.is_none());
    wait_until("web passes again", || async {
        passing_instances(&http, "web").await == 1
    })
    .await;
    assert!(agent.terminate());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_datacenter_is_no_path_on_every_endpoint_that_takes_dc() {
    let (server, _dir) = common::dev_server().await;
    let http = Http::new(server.http_addr);
    let reg =
        json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "db"}}).to_string();
    let reads = [
        "/v1/catalog/nodes",
        "/v1/catalog/services",
        "/v1/catalog/service/db",
        "/v1/catalog/node/n1",
        "/v1/catalog/node-services/n1",
        "/v1/health/service/db",
        "/v1/health/node/n1",
        "/v1/health/checks/db",
        "/v1/health/state/any",
        "/v1/health/connect/db",
        "/v1/kv/k",
        "/v1/session/list",
        "/v1/event/list",
        "/v1/status/leader",
        "/v1/status/peers",
    ];
    for path in reads {
        let (code, body, _) = http
            .call(reqwest::Method::GET, &format!("{path}?dc=dc9"), "")
            .await;
        assert_eq!(
            (code, body.as_str()),
            (500, "No path to datacenter"),
            "{path}"
        );
        // The agent's own datacenter, named, is the same as none.
        let (code, _, _) = http.get(&format!("{path}?dc=dc1")).await;
        assert_ne!(code, 500, "{path}?dc=dc1");
    }
    for (path, body) in [
        ("/v1/catalog/register?dc=dc9", reg.clone()),
        (
            "/v1/catalog/deregister?dc=dc9",
            json!({"Node": "n1"}).to_string(),
        ),
        ("/v1/kv/k?dc=dc9", "v".to_string()),
        ("/v1/event/fire/deploy?dc=dc9", String::new()),
    ] {
        assert_eq!(
            http.put(path, body).await,
            (500, "No path to datacenter".to_string()),
            "{path}"
        );
    }
    // A registration body that names another datacenter is refused the same way.
    let other = json!({"Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc9"}).to_string();
    assert_eq!(http.put("/v1/catalog/register", other).await.0, 500);
    let (code, body) = http.put("/v1/catalog/register?dc=dc1", reg).await;
    assert_eq!((code, body.trim_end()), (200, "true"));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_use_consuls_grammar_and_catalog_services_filters_instances() {
    let (server, _dir) = common::dev_server().await;
    let http = Http::new(server.http_addr);
    for (node, addr, svc, id, tags, env) in [
        ("n1", "10.0.0.1", "web", "web1", vec!["prod", "v1"], "prod"),
        (
            "n2",
            "10.0.0.2",
            "web",
            "web2",
            vec!["canary", "v2"],
            "staging",
        ),
        ("n2", "10.0.0.2", "db", "db1", vec!["primary"], "prod"),
    ] {
        let reg = json!({"Node": node, "Address": addr,
            "Service": {"Service": svc, "ID": id, "Tags": tags, "Meta": {"env": env}, "Port": 80}});
        assert_eq!(
            http.put("/v1/catalog/register", reg.to_string()).await.0,
            200
        );
    }
    let get = |q: &str| {
        let path = format!("/v1/catalog/services?filter={}", urlencode(q));
        let q = q.to_string();
        let http = &http;
        async move {
            let (code, v, index) = http.get(&path).await;
            assert_eq!(code, 200, "{q}: {v}");
            assert!(index > 0);
            v
        }
    };
    // Per instance: only the matching services, each with its matching instances' tags.
    assert_eq!(
        get(r#""prod" in ServiceTags"#).await,
        json!({"web": ["prod", "v1"]})
    );
    assert_eq!(
        get(r#"ServiceMeta.env == "prod""#).await,
        json!({"db": ["primary"], "web": ["prod", "v1"]})
    );
    assert_eq!(
        get(r#"ServiceName matches "^w" and not ("v1" in ServiceTags)"#).await,
        json!({"web": ["canary", "v2"]})
    );
    assert_eq!(
        get(r#"ServiceMeta["env"] == staging or Node == n1"#).await,
        json!({"web": ["canary", "prod", "v1", "v2"]})
    );
    assert_eq!(
        get(r#"ServiceTags is empty and ServiceName == "web""#).await,
        json!({})
    );
    // A selector the result type does not have, and bad grammar, are 400s.
    for bad in [
        "NoSuchField == x",
        "(ServiceName == web",
        r#"ServiceName matches "(""#,
    ] {
        let path = format!("/v1/catalog/services?filter={}", urlencode(bad));
        let (code, body, _) = http.call(reqwest::Method::GET, &path, "").await;
        assert_eq!(code, 400, "{bad}");
        assert!(
            body.starts_with("Failed to create boolean expression evaluator"),
            "{body}"
        );
    }

    // /v1/catalog/node/<n>: evaluated on each entry of Services.
    let (_, node, _) = http
        .get(&format!(
            "/v1/catalog/node/n2?filter={}",
            urlencode(r#""v2" in Tags"#)
        ))
        .await;
    assert_eq!(keys(&node["Services"]), ["web2".to_string()].into());
    assert_eq!(node["Node"]["Node"], "n2");
    let (_, node, _) = http
        .get(&format!(
            "/v1/catalog/node-services/n2?filter={}",
            urlencode("Service == db")
        ))
        .await;
    assert_eq!(node["Services"].as_array().map(Vec::len), Some(1));
    assert_eq!(node["Services"][0]["ID"], "db1");

    // The list endpoints take the same grammar.
    let (_, list, _) = http
        .get(&format!(
            "/v1/catalog/service/web?filter={}",
            urlencode(r#"not (ServiceID == web1) and ServicePort == 80"#)
        ))
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["ServiceID"], "web2");
    let (_, list, _) = http
        .get(&format!(
            "/v1/health/service/web?filter={}",
            urlencode(r#"Service.ID matches "2$""#)
        ))
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    server.shutdown().await.expect("clean shutdown");
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_rostra_lacks_answer_as_consul_with_them_unused() {
    let (server, _dir) = common::dev_server().await;
    let http = Http::new(server.http_addr);
    let reg = json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"Service": "web"}});
    assert_eq!(
        http.put("/v1/catalog/register", reg.to_string()).await.0,
        200
    );

    // No mesh: no connect-capable or ingress instances, with the blocking headers.
    for path in ["/v1/health/connect/web", "/v1/health/ingress/web"] {
        let (code, v, index) = http.get(path).await;
        assert_eq!((code, v), (200, json!([])), "{path}");
        assert!(index > 0, "{path} has X-Consul-Index");
    }
    // No peerings: every peer is unknown and has nothing.
    for (path, empty) in [
        ("/v1/health/service/web?peer=other", json!([])),
        ("/v1/catalog/service/web?peer=other", json!([])),
        ("/v1/catalog/nodes?peer=other", json!([])),
        ("/v1/catalog/services?peer=other", json!({})),
        ("/v1/catalog/node/n1?peer=other", Value::Null),
    ] {
        let (code, v, index) = http.get(path).await;
        assert_eq!((code, v), (200, empty), "{path}");
        assert!(index > 0, "{path}");
    }
    // Without ?peer the same reads have the data; unknown parameters are ignored.
    let (_, v, _) = http
        .get("/v1/health/service/web?merge-central-config&no-such-param=1")
        .await;
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    let (_, v, _) = http
        .get("/v1/catalog/service/web?merge-central-config")
        .await;
    assert_eq!(v[0]["ServiceName"], "web");

    // ACLs off: Consul's 401, whatever the ACL endpoint and method.
    for (method, path) in [
        (reqwest::Method::PUT, "/v1/acl/bootstrap"),
        (reqwest::Method::GET, "/v1/acl/tokens"),
        (reqwest::Method::GET, "/v1/acl/token/self"),
        (reqwest::Method::PUT, "/v1/acl/policy"),
        (reqwest::Method::DELETE, "/v1/acl/token/abc"),
    ] {
        let (code, body, _) = http.call(method, path, "").await;
        assert_eq!(
            (code, body.as_str()),
            (401, "ACL support disabled"),
            "{path}"
        );
    }
    server.shutdown().await.expect("clean shutdown");
}

fn write_json(path: &std::path::Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_the_files_and_a_broken_file_keeps_the_running_config() {
    use common::handlers::{appender, runs};
    let data = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = out.path();
    let file = conf.path().join("agent.json");
    write_json(
        &file,
        &json!({
            "services": [
                {"name": "keep", "port": 1},
                {"name": "change", "port": 2, "check": {"id": "change-ttl", "ttl": "10m"}},
                {"name": "drop", "port": 3},
            ],
            "checks": [{"id": "node-ttl", "name": "node ttl", "ttl": "10m"}],
            "node_meta": {"rack": "r1"},
        }),
    );
    let args: Vec<String> = vec![
        "-dev".into(),
        "-node".into(),
        "reloader".into(),
        "-config-dir".into(),
        conf.path().display().to_string(),
    ];
    let agent = Agent::spawn(data.path(), &args);
    common::elected(&agent).await;
    let http = Http::new(&agent.http_addr);
    // node_meta: the agent's Meta, and the node's in the catalog.
    let (_, me, _) = http.get("/v1/agent/self").await;
    assert_eq!(me["Meta"], json!({"rack": "r1"}));
    wait_until("the catalog has the node's meta", || async {
        let (_, n, _) = http.get("/v1/catalog/node/reloader").await;
        n["Node"]["Meta"]["rack"] == "r1"
    })
    .await;
    // An API registration is not the files' to remove.
    let api = json!({"Name": "api-made", "Port": 9});
    assert_eq!(
        http.put("/v1/agent/service/register", api.to_string())
            .await
            .0,
        200
    );

    write_json(
        &file,
        &json!({
            "services": [
                {"name": "keep", "port": 1},
                {"name": "change", "port": 22, "tags": ["new"]},
                {"name": "added", "port": 4, "check": {"id": "added-ttl", "ttl": "10m"}},
            ],
            "watches": [{"type": "key", "key": "reload/k", "args": appender(o, "key")}],
            "node_meta": {"rack": "r2"},
        }),
    );
    assert_eq!(http.put("/v1/agent/reload", "").await, (200, String::new()));
    let (_, me, _) = http.get("/v1/agent/self").await;
    assert_eq!(me["Meta"], json!({"rack": "r2"}));
    wait_until("the catalog has the reloaded node meta", || async {
        let (_, n, _) = http.get("/v1/catalog/node/reloader").await;
        n["Node"]["Meta"]["rack"] == "r2"
    })
    .await;
    let (_, services, _) = http.get("/v1/agent/services").await;
    assert_eq!(
        keys(&services),
        ["added", "api-made", "change", "keep"]
            .map(String::from)
            .into()
    );
    assert_eq!(services["change"]["Port"], 22);
    assert_eq!(services["change"]["Tags"], json!(["new"]));
    let (_, checks, _) = http.get("/v1/agent/checks").await;
    assert_eq!(
        keys(&checks),
        ["added-ttl".to_string()].into(),
        "{checks:#}"
    );
    // The watch the file now has runs (once with the key's state, null).
    common::handlers::wait_runs(o, "key", 1).await;
    wait_until("the catalog has the reloaded services", || async {
        let (_, s, _) = http.get("/v1/catalog/services").await;
        s.get("added").is_some() && s.get("drop").is_none()
    })
    .await;

    // A broken file: refused with the file and the key, and nothing changes.
    write_json(&file, &json!({"services": [{"name": "x", "prot": 1}]}));
    let (code, body) = http.put("/v1/agent/reload", "").await;
    assert_eq!(code, 500);
    assert!(
        body.contains("agent.json") && body.contains("prot"),
        "{body}"
    );
    let (_, after, _) = http.get("/v1/agent/services").await;
    assert_eq!(after, services);
    assert_eq!(
        runs(o, "key").len(),
        1,
        "the watch was not restarted by a refused reload"
    );

    // The CLI's `reload` goes through the same endpoint.
    write_json(&file, &json!({"services": [{"name": "keep", "port": 1}]}));
    let o2 = std::process::Command::new(common::rostractl_bin())
        .args(["reload", "-http-addr", &agent.http_addr])
        .output()
        .unwrap();
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&o2.stdout),
        "Configuration reload triggered\n"
    );
    let (_, services, _) = http.get("/v1/agent/services").await;
    assert_eq!(
        keys(&services),
        ["api-made", "keep"].map(String::from).into()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_streams_the_log_and_metrics_count_requests() {
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::spawn(
        data.path(),
        &["-dev".into(), "-node".into(), "watched".into()],
    );
    common::elected(&agent).await;
    let http = Http::new(&agent.http_addr);
    let (code, body, _) = http
        .call(reqwest::Method::GET, "/v1/agent/monitor?loglevel=loud", "")
        .await;
    assert_eq!((code, body.as_str()), (400, "Unknown log level: loud"));

    let asked = std::time::Instant::now();
    // A monitor at debug, in hclog's JSON, hears what the agent logs from then on.
    let mut stream = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/agent/monitor?loglevel=debug&logjson",
            agent.http_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // A reload (of no files, here) logs "configuration reloaded".
    assert_eq!(http.put("/v1/agent/reload", "").await.0, 200);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    while !seen.contains("configuration reloaded") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the reload is logged in time")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let line = seen
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap();
    let v: Value = serde_json::from_str(line).expect("logjson lines are JSON");
    assert_eq!(v["@level"], "info");
    assert!(v["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    drop(stream);

    // `rostractl monitor` prints the same stream, as text.
    let mut ctl = std::process::Command::new(common::rostractl_bin())
        .args([
            "monitor",
            "-log-level",
            "info",
            "-http-addr",
            &agent.http_addr,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = ctl.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Reload until the monitor has printed one (it may connect after the first).
    let mut printed = None;
    while printed.is_none() {
        assert_eq!(http.put("/v1/agent/reload", "").await.0, 200);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while let Ok(line) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if line.contains("configuration reloaded") {
                printed = Some(line);
                break;
            }
        }
        assert!(
            asked.elapsed() < common::DEADLINE,
            "rostractl monitor printed the reload"
        );
    }
    let line = printed.unwrap();
    assert!(
        line.contains("[INFO] rostra::agent: configuration reloaded"),
        "{line}"
    );
    let _ = ctl.kill();
    let _ = ctl.wait();

    // Metrics: Consul's JSON shape, and Prometheus text with the requests just made.
    let (code, m, _) = http.get("/v1/agent/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(
        keys(&m),
        ["Counters", "Gauges", "Points", "Samples", "Timestamp"]
            .map(String::from)
            .into()
    );
    let counters = m["Counters"].as_array().unwrap();
    assert!(
        counters.iter().any(|c| c["Name"] == "consul.http.requests"
            && c["Labels"]["route"] == "/v1/agent/reload"
            && c["Labels"]["code"] == "200"),
        "{m:#}"
    );
    assert!(counters.iter().any(|c| c["Name"] == "consul.raft.writes"));
    assert!(
        m["Samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Name"] == "consul.raft.stage.commit" && s["Count"].as_u64() > Some(0)),
        "{m:#}"
    );
    assert!(m["Gauges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["Name"] == "consul.watch.streams"));
    let (code, text, _) = http
        .call(
            reqwest::Method::GET,
            "/v1/agent/metrics?format=prometheus",
            "",
        )
        .await;
    assert_eq!(code, 200);
    assert!(
        text.contains(
            r#"consul_http_requests_total{method="PUT",route="/v1/agent/reload",code="200"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains("consul_raft_stage_fsync_seconds_total"),
        "{text}"
    );
    assert!(text.contains("consul_grpc_requests_total"), "{text}");
    assert!(text.contains("consul_blocking_queries_waiting"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_services_keep_consuls_fields_and_block_on_their_hash() {
    let (server, _dir) = common::dev_server().await;
    let http = Http::new(server.http_addr);
    let body = json!({
        "Name": "web", "ID": "web1", "Port": 80, "Kind": "connect-proxy",
        "TaggedAddresses": {"lan": {"Address": "10.0.0.5", "Port": 8080}, "wan": {"address": "1.2.3.4", "port": 80}},
        "Proxy": {"DestinationServiceName": "web-app", "LocalServicePort": 9090},
        "Locality": {"Region": "eu", "Zone": "eu-1a"},
        "Weights": {"Passing": 3, "Warning": 1},
        "EnableTagOverride": true,
        "Meta": {"team": "a"},
    });
    assert_eq!(
        http.put("/v1/agent/service/register", body.to_string())
            .await
            .0,
        200
    );
    let bad = json!({"Name": "x", "Kind": "spaceship"});
    assert_eq!(
        http.put("/v1/agent/service/register", bad.to_string())
            .await
            .0,
        400
    );
    let (code, svc, _) = http.get("/v1/agent/service/web1").await;
    assert_eq!(code, 200);
    assert_eq!(svc["Kind"], "connect-proxy");
    assert_eq!(
        svc["TaggedAddresses"]["wan"],
        json!({"Address": "1.2.3.4", "Port": 80})
    );
    assert_eq!(svc["Proxy"]["DestinationServiceName"], "web-app");
    assert_eq!(svc["Locality"], json!({"Region": "eu", "Zone": "eu-1a"}));
    assert_eq!(svc["Weights"], json!({"Passing": 3, "Warning": 1}));
    assert_eq!(
        (
            &svc["EnableTagOverride"],
            &svc["Meta"]["team"],
            &svc["Datacenter"]
        ),
        (&json!(true), &json!("a"), &json!("dc1"))
    );
    let (_, all, _) = http.get("/v1/agent/services").await;
    assert_eq!(all["web1"]["TaggedAddresses"], svc["TaggedAddresses"]);

    // Anti-entropy carries them into the catalog, under Consul's names there.
    wait_until("web1 in the catalog", || async {
        let (_, list, _) = http.get("/v1/catalog/service/web").await;
        list.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    let (_, list, _) = http.get("/v1/catalog/service/web").await;
    let entry = &list[0];
    assert_eq!(entry["ServiceKind"], "connect-proxy");
    assert_eq!(entry["ServiceTaggedAddresses"], svc["TaggedAddresses"]);
    assert_eq!(entry["ServiceProxy"]["LocalServicePort"], 9090);
    assert_eq!(entry["ServiceLocality"], svc["Locality"]);
    let (_, health, _) = http.get("/v1/health/service/web").await;
    let service = &health[0]["Service"];
    assert_eq!(
        (&service["Kind"], &service["TaggedAddresses"], &service["Locality"]),
        (&svc["Kind"], &svc["TaggedAddresses"], &svc["Locality"])
    );
    assert_eq!(service["Proxy"], svc["Proxy"]);
    let (_, kinds, _) = http
        .get("/v1/catalog/service/web?filter=ServiceKind%20%3D%3D%20%22connect-proxy%22")
        .await;
    assert_eq!(kinds.as_array().map(Vec::len), Some(1));
    // A catalog register carries them too, and refuses a kind Consul does not have.
    let reg = json!({
        "Node": "ext", "Address": "10.0.0.9",
        "Service": {"Service": "gw", "Kind": "mesh-gateway", "Port": 443,
                    "TaggedAddresses": {"wan": {"Address": "203.0.113.7", "Port": 8443}}},
    });
    assert_eq!(http.put("/v1/catalog/register", reg.to_string()).await.0, 200);
    let (_, gw, _) = http.get("/v1/catalog/service/gw").await;
    assert_eq!(
        (&gw[0]["ServiceKind"], &gw[0]["ServiceTaggedAddresses"]["wan"]["Port"]),
        (&json!("mesh-gateway"), &json!(8443))
    );
    assert!(gw[0].get("ServiceLocality").is_none(), "omitempty: {gw}");
    let bad = json!({"Node": "ext", "Address": "10.0.0.9", "Service": {"Service": "gw", "Kind": "spaceship"}});
    let (code, text) = http.put("/v1/catalog/register", bad.to_string()).await;
    assert_eq!((code, text.contains("Invalid service kind")), (400, true), "{text}");
    let hash = svc["ContentHash"].as_str().unwrap().to_string();
    let (code, body, _) = http
        .call(reqwest::Method::GET, "/v1/agent/service/nosuch", "")
        .await;
    assert_eq!((code, body.as_str()), (404, "unknown service ID: nosuch"));

    // The same hash blocks until the wait ends, with the same answer…
    let asked = std::time::Instant::now();
    let (_, same, _) = http
        .get(&format!("/v1/agent/service/web1?hash={hash}&wait=200ms"))
        .await;
    assert_eq!(same["ContentHash"], hash.as_str());
    assert!(
        asked.elapsed() >= std::time::Duration::from_millis(200),
        "it waited"
    );
    // A different hash answers at once.
    let (_, other, _) = http.get("/v1/agent/service/web1?hash=0&wait=60s").await;
    assert_eq!(other["ContentHash"], hash.as_str());
    // …and returns as soon as the definition changes.
    let blocked = {
        let http = Http::new(server.http_addr);
        let hash = hash.clone();
        tokio::spawn(async move {
            http.get(&format!("/v1/agent/service/web1?hash={hash}&wait=60s"))
                .await
        })
    };
    let changed = json!({"Name": "web", "ID": "web1", "Port": 81});
    // Register until the blocked query has answered (it may not have started waiting
    // when the first change lands; a later one wakes it).
    wait_until("the blocked query answers the change", || async {
        assert_eq!(
            http.put("/v1/agent/service/register", changed.to_string())
                .await
                .0,
            200
        );
        blocked.is_finished()
    })
    .await;
    let (code, new, _) = blocked.await.unwrap();
    assert_eq!((code, &new["Port"]), (200, &json!(81)));
    assert_ne!(new["ContentHash"], hash.as_str());
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_cli_commands_for_catalog_services_maint_info_and_version() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.http_addr.to_string();
    let ctl = |args: &[&str]| {
        let o = std::process::Command::new(common::rostractl_bin())
            .args(args)
            .env("CONSUL_HTTP_ADDR", &addr)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, out, _) = ctl(&[
        "services", "register", "-name", "web", "-port", "80", "-tag", "v1", "-tag", "prod",
        "-meta", "team=a",
    ]);
    assert_eq!((code, out.as_str()), (Some(0), "Registered service: web\n"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.json");
    write_json(
        &file,
        &json!({"service": {"name": "db", "id": "db1", "port": 5432, "tags": ["primary"]}}),
    );
    let (code, out, err) = ctl(&["services", "register", file.to_str().unwrap()]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Registered service: db\n"),
        "{err}"
    );
    let (code, _, err) = ctl(&["services", "register", "-port", "1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("-name"), "{err}");

    wait_until("the catalog has both services", || async {
        let (_, out, _) = ctl(&["catalog", "services"]);
        out == "consul\ndb\nweb\n"
    })
    .await;
    let (_, out, _) = ctl(&["catalog", "services", "-tags"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["web", "prod,v1"]),
        "{out}"
    );
    let (_, out, _) = ctl(&[
        "catalog",
        "services",
        "-filter",
        "\"primary\" in ServiceTags",
    ]);
    assert_eq!(out, "db\n");
    let (_, out, _) = ctl(&["catalog", "services", "-node", "test-node"]);
    assert_eq!(out, "consul\ndb\nweb\n");
    let (code, _, err) = ctl(&["catalog", "services", "-node", "nosuch"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nosuch"), "{err}");
    let (_, out, _) = ctl(&["catalog", "nodes"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["Node", "ID", "Address", "DC"]);
    assert_eq!(
        (rows[1][0], rows[1][2], rows[1][3]),
        ("test-node", "127.0.0.1", "dc1")
    );
    assert_eq!(rows[1][1].len(), 8);
    let (_, out, _) = ctl(&["catalog", "nodes", "-service", "db", "-detailed"]);
    assert!(
        out.starts_with("Node") && out.contains("TaggedAddresses") && out.contains("test-node"),
        "{out}"
    );
    let (_, out, _) = ctl(&["catalog", "datacenters"]);
    assert_eq!(out, "dc1\n");
    let (code, _, err) = ctl(&["catalog", "nodes", "-datacenter", "dc9"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("No path to datacenter"), "{err}");

    // Maintenance from the CLI, and its listing.
    let (code, out, _) = ctl(&["maint", "-enable", "-service", "web", "-reason", "deploy"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Service maintenance is now enabled for \"web\"\n")
    );
    let (code, out, _) = ctl(&["maint", "-enable"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Node maintenance is now enabled\n")
    );
    let (_, out, _) = ctl(&["maint"]);
    assert!(out.contains("Node:\n  Name:   test-node\n"), "{out}");
    assert!(
        out.contains("Service:\n  ID:     web\n  Reason: deploy\n"),
        "{out}"
    );
    let (code, _, err) = ctl(&["maint", "-enable", "-disable"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Only one of -enable or -disable"), "{err}");
    let (code, _, err) = ctl(&["maint", "-enable", "-service", "nosuch"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("404") && err.contains("nosuch"), "{err}");
    assert_eq!(ctl(&["maint", "-disable"]).0, Some(0));
    assert_eq!(ctl(&["maint", "-disable", "-service", "web"]).0, Some(0));
    assert_eq!(ctl(&["maint"]).1, "");

    let (code, out, _) = ctl(&["services", "deregister", file.to_str().unwrap()]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Deregistered service: db1\n")
    );
    let (code, out, _) = ctl(&["services", "deregister", "-id", "web"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Deregistered service: web\n")
    );

    let (code, out, _) = ctl(&["info"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("raft:\n") && out.contains("\tstate = Leader\n") && out.contains("consul:\n"),
        "{out}"
    );
    let (code, out, _) = ctl(&["version"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with(&format!(
            "Rostra v{}\nConsul API compatibility: v1.17.0\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    let (code, _, err) = ctl(&["info", "-http-addr", "127.0.0.1:1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Error connecting to Consul agent"), "{err}");
    server.shutdown().await.expect("clean shutdown");
}
