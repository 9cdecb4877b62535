//! The Consul HTTP shim over a real socket: the walkthrough's curl lines, KV semantics,
//! blocking queries, transactions, status endpoints and Consul's error texts.

mod common;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rostra::pb;

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(server: &rostra::server::Server) -> Http {
        Http {
            base: format!("http://{}", server.http_addr),
            client: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .expect("request")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.call(Method::GET, path, "").await
    }

    async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.call(Method::PUT, path, body).await
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("missing header {name}"))
}

fn index(r: &reqwest::Response) -> u64 {
    header(r, "X-Consul-Index").parse().unwrap()
}

async fn json(r: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_curl_lines_and_kv_semantics() {
    let (server, _dir) = common::dev_server().await;
    let h = Http::new(&server);

    // curl -X PUT -d @- localhost:8500/v1/kv/example <<< FooValue   (curl strips the newline)
    let r = h.put("/v1/kv/example", "FooValue").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap().trim(), "true");
    // curl -s localhost:8500/v1/kv/example?raw
    let r = h.get("/v1/kv/example?raw").await;
    assert_eq!(header(&r, "Content-Type"), "text/plain");
    assert_eq!(header(&r, "X-Content-Type-Options"), "nosniff");
    assert_eq!(r.text().await.unwrap(), "FooValue");

    // A single key is an array of one KVPair, Consul's field order, Session omitted.
    let r = h
        .put("/v1/kv/app/flags?flags=16210313421097356768", "v")
        .await;
    assert_eq!(r.text().await.unwrap().trim(), "true");
    let r = h.get("/v1/kv/app/flags").await;
    assert_eq!(r.status(), StatusCode::OK);
    let idx = index(&r);
    assert_eq!(header(&r, "X-Consul-KnownLeader"), "true");
    assert_eq!(header(&r, "X-Consul-LastContact"), "0");
    assert_eq!(header(&r, "X-Consul-Effective-Consistency"), "leader");
    let body = r.text().await.unwrap();
    let text: String = body.split_whitespace().collect();
    assert_eq!(
        text,
        format!(
            r#"[{{"LockIndex":0,"Key":"app/flags","Flags":16210313421097356768,"Value":"dg==","CreateIndex":{idx},"ModifyIndex":{idx}}}]"#
        )
    );
    // The dev agent pretty-prints like Consul's: 4 spaces and a trailing newline.
    assert!(
        body.starts_with("[\n    {\n        \"LockIndex\": 0,"),
        "{body}"
    );
    assert!(body.ends_with("]\n"));
    // An identical write keeps the index.
    h.put("/v1/kv/app/flags?flags=16210313421097356768", "v")
        .await;
    assert_eq!(index(&h.get("/v1/kv/app/flags").await), idx);
    // Empty value is null.
    h.put("/v1/kv/app/empty", "").await;
    assert_eq!(
        json(h.get("/v1/kv/app/empty").await).await[0]["Value"],
        serde_json::Value::Null
    );

    // Header names go out in Go's canonical case, as scripts grep for them.
    let raw = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(server.http_addr)
            .await
            .unwrap();
        stream
            .write_all(b"GET /v1/kv/example HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = String::new();
        stream.read_to_string(&mut buf).await.unwrap();
        buf
    };
    for name in [
        "X-Consul-Index: ",
        "X-Consul-Knownleader: true",
        "X-Consul-Lastcontact: 0",
        "X-Consul-Effective-Consistency: leader",
        "Content-Type: application/json",
    ] {
        assert!(raw.contains(name), "{name} in {raw}");
    }

    // A miss is 404 with an empty body and an index.
    let r = h.get("/v1/kv/nope").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(index(&r) >= 1);
    assert!(r.bytes().await.unwrap().is_empty());

    // Prefixes: recurse (string prefix), keys with separator, 404 when nothing matches.
    for k in [
        "web/bar",
        "web/foo",
        "web/subdir/a",
        "web/subdir/b",
        "webby",
    ] {
        h.put(&format!("/v1/kv/{k}"), k).await;
    }
    let all = json(h.get("/v1/kv/web?recurse").await).await;
    assert_eq!(all.as_array().unwrap().len(), 5);
    let keys = json(h.get("/v1/kv/web/?keys&separator=/").await).await;
    assert_eq!(
        keys,
        serde_json::json!(["web/bar", "web/foo", "web/subdir/"])
    );
    assert_eq!(
        h.get("/v1/kv/zzz/?keys").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/v1/kv/zzz/?recurse=1").await.status(),
        StatusCode::NOT_FOUND
    );

    // CAS: 0 creates only; N must match; answers are true/false.
    assert_eq!(
        h.put("/v1/kv/web/bar?cas=0", "x")
            .await
            .text()
            .await
            .unwrap()
            .trim(),
        "false"
    );
    let bar = index(&h.get("/v1/kv/web/bar").await);
    assert_eq!(
        h.put(&format!("/v1/kv/web/bar?cas={}", bar + 1), "x")
            .await
            .text()
            .await
            .unwrap()
            .trim(),
        "false"
    );
    assert_eq!(
        h.put(&format!("/v1/kv/web/bar?cas={bar}"), "x")
            .await
            .text()
            .await
            .unwrap()
            .trim(),
        "true"
    );

    // Deletes: cas, recurse; the prefix index never goes backwards (tombstones).
    let prefix_index = index(&h.get("/v1/kv/web/?recurse").await);
    let r = h
        .call(Method::DELETE, "/v1/kv/web/subdir/b?cas=1", "")
        .await;
    assert_eq!(r.text().await.unwrap().trim(), "false");
    let r = h
        .call(Method::DELETE, "/v1/kv/web/subdir/?recurse", "")
        .await;
    assert_eq!(r.text().await.unwrap().trim(), "true");
    let after = index(&h.get("/v1/kv/web/?recurse").await);
    assert!(after > prefix_index, "{after} > {prefix_index}");
    assert_eq!(
        json(h.get("/v1/kv/web/?keys").await).await,
        serde_json::json!(["web/bar", "web/foo"])
    );
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_query_wakes_only_for_its_key() {
    let (server, _dir) = common::dev_server().await;
    let h = Http::new(&server);
    h.put("/v1/kv/example", "one").await;
    let n = index(&h.get("/v1/kv/example").await);
    let wakeups_before = server.service.metrics().query_wakeups;

    let url = format!("{}/v1/kv/example?index={n}&wait=30s", h.base);
    let client = h.client.clone();
    // The agent's own watches (exec events) are always there.
    let idle = server.service.watcher_count();
    let blocked = tokio::spawn(async move {
        let r = client.get(url).send().await.unwrap();
        (Instant::now(), index(&r), json(r).await)
    });
    // Let the query register before writing elsewhere: its subscription shows up in
    // the feed's subscriber count.
    common::wait_until("the blocking query is waiting", || {
        let s = server.service.clone();
        async move { s.watcher_count() > idle }
    })
    .await;
    for i in 0..5 {
        h.put(&format!("/v1/kv/other{i}"), "x").await;
    }
    assert!(
        !blocked.is_finished(),
        "an unrelated write answered the blocked query"
    );
    let written = Instant::now();
    h.put("/v1/kv/example", "two").await;
    let (answered, new_index, body) = tokio::time::timeout(common::DEADLINE, blocked)
        .await
        .unwrap()
        .unwrap();
    assert!(answered.duration_since(written) < Duration::from_secs(1));
    assert!(new_index > n);
    assert_eq!(body[0]["Value"], "dHdv");
    // Five unrelated writes, one relevant one: exactly one wakeup.
    assert_eq!(server.service.metrics().query_wakeups - wakeups_before, 1);

    // A wait that expires answers with the same index.
    let started = Instant::now();
    let r = h
        .get(&format!("/v1/kv/example?index={new_index}&wait=1s"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(index(&r), new_index);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );

    // Blocking on a missing key returns when it is created.
    let missing = h.get("/v1/kv/later").await;
    let m = index(&missing);
    let url = format!("{}/v1/kv/later?index={m}&wait=30s", h.base);
    let client = h.client.clone();
    // The agent's own watches (exec events) are always there.
    let idle = server.service.watcher_count();
    let blocked = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    common::wait_until("the second blocking query is waiting", || {
        let s = server.service.clone();
        async move { s.watcher_count() > idle }
    })
    .await;
    h.put("/v1/kv/later", "now").await;
    assert_eq!(
        tokio::time::timeout(common::DEADLINE, blocked)
            .await
            .unwrap()
            .unwrap(),
        StatusCode::OK
    );
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_error_texts_and_codes() {
    let (server, _dir) = common::dev_server().await;
    let h = Http::new(&server);
    let check = |status: StatusCode, text: &'static str| {
        move |r: (StatusCode, String)| {
            assert_eq!(r.0, status, "{}", r.1);
            assert_eq!(r.1, text);
        }
    };
    async fn go(h: &Http, m: Method, p: &str, body: Vec<u8>) -> (StatusCode, String) {
        let r = h.call(m, p, body).await;
        (r.status(), r.text().await.unwrap())
    }
    check(StatusCode::BAD_REQUEST, "Invalid index")(
        go(&h, Method::GET, "/v1/kv/x?index=abc", vec![]).await,
    );
    check(StatusCode::BAD_REQUEST, "Invalid wait time")(
        go(&h, Method::GET, "/v1/kv/x?index=1&wait=10", vec![]).await,
    );
    check(
        StatusCode::BAD_REQUEST,
        "Cannot specify ?stale with ?consistent, conflicting semantics.",
    )(go(&h, Method::GET, "/v1/kv/x?stale&consistent", vec![]).await);
    check(StatusCode::BAD_REQUEST, "Missing key name")(
        go(&h, Method::GET, "/v1/kv/", vec![]).await,
    );
    check(StatusCode::BAD_REQUEST, "Missing key name")(
        go(&h, Method::DELETE, "/v1/kv/", vec![]).await,
    );
    check(
        StatusCode::BAD_REQUEST,
        "Conflicting flags: cas=0&recurse\n",
    )(go(&h, Method::DELETE, "/v1/kv/x?cas=0&recurse", vec![]).await);
    check(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter")(
        go(&h, Method::GET, "/v1/kv/x?dc=mars", vec![]).await,
    );
    check(StatusCode::INTERNAL_SERVER_ERROR, "invalid session \"abc\"")(
        go(&h, Method::PUT, "/v1/kv/x?acquire=abc", b"v".to_vec()).await,
    );
    check(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request body(524289 bytes) too large, max size: 524288 bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
    )(go(&h, Method::PUT, "/v1/kv/big", vec![b'x'; 524_289]).await);
    assert_eq!(
        h.get("/v1/kv/big").await.status(),
        StatusCode::NOT_FOUND,
        "nothing was written"
    );
    let (status, _) = go(&h, Method::PUT, "/v1/kv/max", vec![b'x'; 524_288]).await;
    assert_eq!(status, StatusCode::OK);

    let r = h.call(Method::POST, "/v1/kv/x", "").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = header(&r, "Allow");
    for m in ["GET", "PUT", "DELETE", "OPTIONS"] {
        assert!(allow.contains(m), "{allow}");
    }
    assert_eq!(r.text().await.unwrap(), "method POST not allowed");
    let r = h.call(Method::OPTIONS, "/v1/kv/x", "").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "Allow").contains("OPTIONS"));
    check(
        StatusCode::NOT_FOUND,
        "Invalid URL path: not a recognized HTTP API endpoint\n",
    )(go(&h, Method::GET, "/v1/nonsense", vec![]).await);
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_or_roll_back_atomically() {
    let (server, _dir) = common::dev_server().await;
    let h = Http::new(&server);
    h.put("/v1/kv/t/a", "old").await;
    let a = index(&h.get("/v1/kv/t/a").await);
    let body = serde_json::json!([
        {"KV": {"Verb": "cas", "Key": "t/a", "Value": "bmV3", "Index": a}},
        {"KV": {"Verb": "set", "Key": "t/b", "Value": "Yg==", "Flags": 5}},
        {"KV": {"Verb": "get", "Key": "t/a"}},
        {"kv": {"verb": "check-not-exists", "key": "t/c"}},
        {"KV": {"Verb": "get-tree", "Key": "t/"}}
    ]);
    let r = h.put("/v1/txn", body.to_string()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = json(r).await;
    assert_eq!(v["Errors"], serde_json::Value::Null);
    let results = v["Results"].as_array().unwrap();
    // cas and set: no value; get: value; get-tree: both keys with values.
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["KV"]["Value"], serde_json::Value::Null);
    assert_eq!(results[2]["KV"]["Value"], "bmV3");
    assert_eq!(results[3]["KV"]["Key"], "t/a");
    assert_eq!(results[4]["KV"]["Value"], "Yg==");
    // Both writes share the entry's index.
    assert_eq!(
        results[0]["KV"]["ModifyIndex"],
        results[1]["KV"]["ModifyIndex"]
    );

    // A failing check rolls everything back: 409 with per-op errors.
    let stale = serde_json::json!([
        {"KV": {"Verb": "set", "Key": "t/new", "Value": "eA=="}},
        {"KV": {"Verb": "check-index", "Key": "t/a", "Index": a}},
        {"KV": {"Verb": "delete-tree", "Key": "t/"}}
    ]);
    let r = h.put("/v1/txn", stale.to_string()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v = json(r).await;
    assert_eq!(v["Results"], serde_json::Value::Null);
    assert_eq!(v["Errors"][0]["OpIndex"], 1);
    assert!(v["Errors"][0]["What"]
        .as_str()
        .unwrap()
        .starts_with("failed index check for key \"t/a\""));
    assert_eq!(h.get("/v1/kv/t/new").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json(h.get("/v1/kv/t/?keys").await)
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Read-only transactions bypass raft: leader headers but no index.
    let r = h
        .put("/v1/txn", r#"[{"KV":{"Verb":"get","Key":"t/b"}}]"#)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("X-Consul-Index").is_none());
    assert_eq!(header(&r, "X-Consul-KnownLeader"), "true");

    // Limits: 65 operations, an oversized value, a malformed body.
    let many: Vec<_> = (0..65)
        .map(|i| serde_json::json!({"KV": {"Verb": "get", "Key": format!("k{i}")}}))
        .collect();
    let r = h
        .put("/v1/txn", serde_json::Value::Array(many).to_string())
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.text().await.unwrap(),
        "Transaction contains too many operations (65 > 64)"
    );
    use base64::Engine;
    let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 300 * 1024]);
    let r = h
        .put(
            "/v1/txn",
            format!(r#"[{{"KV":{{"Verb":"set","Key":"big","Value":"{big}"}}}}]"#),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let huge = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 600 * 1024]);
    let r = h
        .put(
            "/v1/txn",
            format!(r#"[{{"KV":{{"Verb":"set","Key":"big","Value":"{huge}"}}}}]"#),
        )
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("txn_max_req_len"));
    let r = h.put("/v1/txn", "[{").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().starts_with("Failed to parse body:"));

    // The same transaction over gRPC.
    let c = rostra::client::Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let resp = c
        .kv()
        .txn(pb::TxnRequest {
            ops: vec![
                pb::TxnOp {
                    verb: pb::txn_op::Verb::CheckNotExists as i32,
                    key: "g/x".into(),
                    ..Default::default()
                },
                pb::TxnOp {
                    verb: pb::txn_op::Verb::Set as i32,
                    key: "g/x".into(),
                    value: b"1".to_vec(),
                    ..Default::default()
                },
            ],
            consistency: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.succeeded);
    let resp = c
        .kv()
        .txn(pb::TxnRequest {
            ops: vec![pb::TxnOp {
                verb: pb::txn_op::Verb::CheckNotExists as i32,
                key: "g/x".into(),
                ..Default::default()
            }],
            consistency: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!resp.succeeded);
    assert_eq!(resp.errors[0].what, "key \"g/x\" exists");
    // An operation whose verb was left out is refused, not taken for a SET.
    let e = c
        .kv()
        .txn(pb::TxnRequest {
            ops: vec![pb::TxnOp {
                key: "g/unset".into(),
                value: b"oops".to_vec(),
                ..Default::default()
            }],
            consistency: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("has no verb"), "{}", e.message());
    assert!(c
        .get("g/unset", pb::Consistency::Default)
        .await
        .unwrap()
        .kv
        .is_none());
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_agent_endpoints() {
    let (server, _dir) = common::dev_server().await;
    let h = Http::new(&server);
    let raft = server.raft_addr.to_string();
    assert_eq!(
        json(h.get("/v1/status/leader").await).await,
        serde_json::json!(raft)
    );
    assert_eq!(
        json(h.get("/v1/status/peers").await).await,
        serde_json::json!([raft])
    );
    let conf = json(h.get("/v1/operator/raft/configuration").await).await;
    assert_eq!(conf["Servers"][0]["Leader"], true);
    assert_eq!(conf["Servers"][0]["Node"], "test-node");
    assert_eq!(conf["Servers"][0]["Address"], raft);
    let me = json(h.get("/v1/agent/self").await).await;
    assert_eq!(me["Config"]["Datacenter"], "dc1");
    assert_eq!(me["Config"]["NodeName"], "test-node");
    assert_eq!(me["Member"]["Name"], "test-node");
    assert_eq!(
        json(h.get("/v1/catalog/datacenters").await).await,
        serde_json::json!(["dc1"])
    );
    // ?stale reads report their consistency.
    h.put("/v1/kv/s", "1").await;
    let r = h.get("/v1/kv/s?stale").await;
    assert_eq!(header(&r, "X-Consul-Effective-Consistency"), "stale");
    let r = h.get("/v1/kv/s?consistent=").await;
    assert_eq!(header(&r, "X-Consul-Effective-Consistency"), "consistent");
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}
