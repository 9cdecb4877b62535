//! Sessions and KV locks over Consul's HTTP API: create with defaults, acquire and
//! release with `LockIndex`, lock-delay after invalidation, `Behavior` delete, invalidation
//! when a check goes critical or the node goes away, Txn lock verbs, bad input.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

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
    ) -> (StatusCode, String) {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .expect("request");
        (r.status(), r.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, "").await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> Value {
        let (status, text) = self.call(Method::PUT, path, body).await;
        assert_eq!(status, StatusCode::OK, "PUT {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn session(&self, body: Value) -> String {
        let v = self.put("/v1/session/create", body.to_string()).await;
        v["ID"].as_str().unwrap().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_locks_as_consul_has_them() {
    let (server, _dir) = common::dev_server().await;
    let http = Http::new(&server);
    // The agent registers its node with serfHealth; wait for it (a session needs both).
    common::wait_until("the agent's node is registered", || async {
        let (s, b) = http
            .call(Method::GET, "/v1/health/node/test-node", "")
            .await;
        s == StatusCode::OK && b.contains("serfHealth")
    })
    .await;

    // Defaults: the agent's node, serfHealth, 15s lock-delay, release.
    let (status, body) = http.call(Method::PUT, "/v1/session/create", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a: Value = serde_json::from_str(&body).unwrap();
    let a = a["ID"].as_str().unwrap().to_string();
    let info = http.get(&format!("/v1/session/info/{a}")).await;
    assert_eq!(info[0]["Node"], "test-node");
    assert_eq!(info[0]["LockDelay"], 15_000_000_000u64);
    assert_eq!(info[0]["Behavior"], "release");
    assert_eq!(info[0]["NodeChecks"], json!(["serfHealth"]));
    assert_eq!(
        http.get("/v1/session/list").await.as_array().unwrap().len(),
        1
    );
    assert_eq!(http.get("/v1/session/node/test-node").await[0]["ID"], a);

    // Acquire, re-acquire (LockIndex unchanged), contention, release.
    let b = http.session(json!({"Name": "b", "LockDelay": "0s"})).await;
    assert_eq!(
        http.put(&format!("/v1/kv/lock/x?acquire={a}"), "one").await,
        true
    );
    assert_eq!(
        http.put(&format!("/v1/kv/lock/x?acquire={a}"), "two").await,
        true
    );
    assert_eq!(
        http.put(&format!("/v1/kv/lock/x?acquire={b}"), "no").await,
        false
    );
    let kv = http.get("/v1/kv/lock/x").await;
    assert_eq!(
        (kv[0]["Session"].as_str(), kv[0]["LockIndex"].as_u64()),
        (Some(a.as_str()), Some(1))
    );
    assert_eq!(
        http.put(&format!("/v1/kv/lock/x?release={b}"), "").await,
        false
    );
    assert_eq!(
        http.put(&format!("/v1/kv/lock/x?release={a}"), "free")
            .await,
        true
    );
    assert_eq!(
        http.put(&format!("/v1/kv/lock/x?acquire={b}"), "b").await,
        true
    );
    assert_eq!(http.get("/v1/kv/lock/x").await[0]["LockIndex"], 2);

    // Destroying b releases its key; with no lock-delay a can take it at once.
    assert_eq!(
        http.put(&format!("/v1/session/destroy/{b}"), "").await,
        true
    );
    let kv = http.get("/v1/kv/lock/x").await;
    assert!(
        kv[0].get("Session").is_none(),
        "released, not deleted: {kv}"
    );
    assert_eq!(
        http.put(&format!("/v1/kv/lock/x?acquire={a}"), "a").await,
        true
    );

    // a has the default 15s lock-delay: after it is destroyed nobody acquires for 15s.
    assert_eq!(
        http.put(&format!("/v1/session/destroy/{a}"), "").await,
        true
    );
    let c = http.session(json!({"Name": "c"})).await;
    assert_eq!(
        http.put(&format!("/v1/kv/lock/x?acquire={c}"), "c").await,
        false
    );
    assert!(http.get("/v1/kv/lock/x").await[0].get("Session").is_none());
    let lock_op = json!([{"KV": {"Verb": "lock", "Key": "lock/x", "Value": "", "Session": c}}]);
    let (status, text) = http.call(Method::PUT, "/v1/txn", lock_op.to_string()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    let errors: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        errors["Errors"][0]["What"],
        "failed to lock key \"lock/x\" due to lock delay"
    );

    // An unknown session is an error, as in Consul; renew of one is a 404.
    let (status, text) = http
        .call(
            Method::PUT,
            "/v1/kv/lock/y?acquire=00000000-0000-0000-0000-000000000000",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("invalid session"), "{text}");
    let (status, text) = http.call(Method::PUT, "/v1/session/renew/nope", "").await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "Session id 'nope' not found")
    );
    let renewed = http.put(&format!("/v1/session/renew/{c}"), "").await;
    assert_eq!(renewed[0]["ID"], c);

    // Behavior delete: the key goes with the session.
    let d = http
        .session(json!({"Behavior": "delete", "LockDelay": 0}))
        .await;
    assert_eq!(
        http.put(&format!("/v1/kv/eph?acquire={d}"), "v").await,
        true
    );
    http.put(&format!("/v1/session/destroy/{d}"), "").await;
    assert_eq!(
        http.call(Method::GET, "/v1/kv/eph", "").await.0,
        StatusCode::NOT_FOUND
    );

    // A session on a registered node with a service check: the check going critical
    // invalidates it and releases its key; the node going away invalidates the other.
    let reg = |status: &str| {
        json!({"Node": "n1", "Address": "10.0.0.1",
               "Service": {"Service": "web", "Port": 80},
               "Checks": [{"CheckID": "web-up", "Name": "up", "ServiceID": "web", "Status": status}]})
        .to_string()
    };
    http.put("/v1/catalog/register", reg("passing")).await;
    let e = http
        .session(json!({"Node": "n1", "NodeChecks": [], "ServiceChecks": [{"ID": "web-up"}], "LockDelay": 0}))
        .await;
    let f = http
        .session(json!({"Node": "n1", "Checks": [], "LockDelay": 0}))
        .await;
    assert_eq!(
        http.put(&format!("/v1/kv/svc?acquire={e}"), "e").await,
        true
    );
    http.put("/v1/catalog/register", reg("warning")).await;
    assert_eq!(
        http.get(&format!("/v1/session/info/{e}")).await[0]["ID"],
        e,
        "warning does not invalidate"
    );
    http.put("/v1/catalog/register", reg("critical")).await;
    assert_eq!(http.get(&format!("/v1/session/info/{e}")).await, json!([]));
    assert!(http.get("/v1/kv/svc").await[0].get("Session").is_none());
    assert_eq!(http.get(&format!("/v1/session/info/{f}")).await[0]["ID"], f);
    http.put("/v1/catalog/deregister", json!({"Node": "n1"}).to_string())
        .await;
    assert_eq!(http.get(&format!("/v1/session/info/{f}")).await, json!([]));

    // A session on a critical check, or a missing node, is refused.
    http.put("/v1/catalog/register", reg("critical")).await;
    let (status, text) = http
        .call(
            Method::PUT,
            "/v1/session/create",
            json!({"Node": "n1", "NodeChecks": ["web-up"]}).to_string(),
        )
        .await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Check 'web-up' is in critical state"
        )
    );
    let (status, _) = http
        .call(
            Method::PUT,
            "/v1/session/create",
            json!({"Node": "ghost"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    // Bad input: TTL out of range, unknown behavior.
    for (body, want) in [
        (
            json!({"TTL": "5s"}),
            "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]",
        ),
        (json!({"TTL": "90000s"}), "Invalid Session TTL"),
        (json!({"TTL": "soon"}), "Session TTL 'soon' invalid"),
        (
            json!({"Behavior": "explode"}),
            "Invalid Behavior setting 'explode'",
        ),
        (json!({"Name": 5}), "Request decode failed"),
        (json!({"ServiceChecks": [{}]}), "Request decode failed"),
    ] {
        let (status, text) = http
            .call(Method::PUT, "/v1/session/create", body.to_string())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert!(text.starts_with(want), "{body}: {text}");
    }
    assert_eq!(
        http.get("/v1/session/list").await.as_array().unwrap().len(),
        1,
        "only c is left"
    );

    // Txn lock verbs.
    let g = http.session(json!({"LockDelay": 0})).await;
    let txn = |ops: Value| ops.to_string();
    let (status, text) = http
        .call(
            Method::PUT,
            "/v1/txn",
            txn(json!([
                {"KV": {"Verb": "lock", "Key": "t/k", "Value": "dg==", "Session": g}},
                {"KV": {"Verb": "check-session", "Key": "t/k", "Session": g}},
                {"KV": {"Verb": "get-or-empty", "Key": "t/none"}}
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = http
        .call(
            Method::PUT,
            "/v1/txn",
            txn(json!([
                {"KV": {"Verb": "check-session", "Key": "t/k", "Session": c}}
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    assert!(text.contains("failed session check"), "{text}");
    let (status, text) = http
        .call(
            Method::PUT,
            "/v1/txn",
            txn(json!([
                {"KV": {"Verb": "unlock", "Key": "t/k", "Value": "", "Session": g}}
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(http.get("/v1/kv/t/k").await[0].get("Session").is_none());

    server.shutdown().await.expect("clean shutdown");
}

/// TTLs are the leader's timers: an unrenewed session expires after about twice its
/// TTL (never before the TTL) and releases its key; a renewed one lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_sessions_expire_unless_renewed() {
    let (server, _dir) = common::dev_server_with(|c| {
        c.limits.session_ttl_min = std::time::Duration::from_secs(1);
    })
    .await;
    let http = Http::new(&server);
    common::wait_until("the agent's node is registered", || async {
        let (s, b) = http
            .call(Method::GET, "/v1/health/node/test-node", "")
            .await;
        s == StatusCode::OK && b.contains("serfHealth")
    })
    .await;
    let (status, text) = http
        .call(
            Method::PUT,
            "/v1/session/create",
            json!({"TTL": "500ms"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("must be between [1s=24h0m0s]"), "{text}");

    let started = std::time::Instant::now();
    let lapsing = http.session(json!({"TTL": "1s", "LockDelay": 0})).await;
    let renewed = http.session(json!({"TTL": "1s", "LockDelay": 0})).await;
    assert_eq!(
        http.get(&format!("/v1/session/info/{lapsing}")).await[0]["TTL"],
        "1s"
    );
    assert_eq!(
        http.put(&format!("/v1/kv/ttl/k?acquire={lapsing}"), "v")
            .await,
        true
    );
    common::wait_until("the unrenewed session expires", || async {
        // Renew the other one on every round (rounds are far shorter than its TTL).
        http.put(&format!("/v1/session/renew/{renewed}"), "").await;
        http.get(&format!("/v1/session/info/{lapsing}")).await == json!([])
    })
    .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "never before the TTL"
    );
    assert!(
        http.get("/v1/kv/ttl/k").await[0].get("Session").is_none(),
        "its key was released"
    );
    assert_eq!(
        http.get(&format!("/v1/session/info/{renewed}")).await[0]["ID"],
        renewed
    );
    server.shutdown().await.expect("clean shutdown");
}
