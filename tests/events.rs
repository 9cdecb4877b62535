//! User events: Consul's HTTP fire/list (JSON, the ID-derived index, blocking), the
//! payload limit and bad input, `rostractl event` and `watch -type event` as the
//! walkthrough's §5/§6 run them, and a burst of 1,000 events reaching a watcher complete
//! and in order.

mod common;

use std::process::Command;

use reqwest::{Method, StatusCode};
use rostra::client::{Client, EventsWatch};
use serde_json::Value;

async fn call(
    base: &str,
    method: Method,
    path: &str,
    body: &'static str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.headers().clone(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_http() {
    let (server, _dir) = common::dev_server().await;
    let base = format!("http://{}", server.http_addr);
    let (s, _, body) = call(&base, Method::PUT, "/v1/event/fire/deploy?node=.*", "v1.2").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let fired: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(fired["Name"], "deploy");
    assert_eq!(fired["Payload"], "djEuMg==");
    assert_eq!(fired["NodeFilter"], ".*");
    assert_eq!(fired["Version"], 1);
    let id = fired["ID"].as_str().unwrap().to_string();
    call(&base, Method::PUT, "/v1/event/fire/other", "").await;

    let (s, headers, body) = call(&base, Method::GET, "/v1/event/list?name=deploy", "").await;
    assert_eq!(s, StatusCode::OK);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["ID"], id.as_str());
    let index = headers["X-Consul-Index"].to_str().unwrap().to_string();
    assert_eq!(index, rostra::service::event::uuid_to_u64(&id).to_string());
    let (_, _, all) = call(&base, Method::GET, "/v1/event/list", "").await;
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert!(
        all[0]["LTime"].as_u64() < all[1]["LTime"].as_u64(),
        "LTime increases"
    );

    // An event whose node filter excludes this agent is not in its list.
    call(
        &base,
        Method::PUT,
        "/v1/event/fire/deploy?node=^elsewhere$",
        "x",
    )
    .await;
    let (_, _, body) = call(&base, Method::GET, "/v1/event/list?name=deploy", "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Blocking: with the current index the list waits for a new event.
    let url = format!("/v1/event/list?name=deploy&index={index}&wait=30s");
    let b = base.clone();
    // The agent's own watches (exec events) are always there.
    let idle = server.service.watcher_count();
    let blocked = tokio::spawn(async move { call(&b, Method::GET, &url, "").await });
    common::wait_until("the list query is blocked", || {
        let s = server.service.clone();
        async move { s.watcher_count() > idle }
    })
    .await;
    call(&base, Method::PUT, "/v1/event/fire/unrelated", "").await;
    assert!(!blocked.is_finished(), "waits while nothing new matches");
    call(&base, Method::PUT, "/v1/event/fire/deploy", "v2").await;
    let (_, _, body) = tokio::time::timeout(common::DEADLINE, blocked)
        .await
        .unwrap()
        .unwrap();
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["Payload"], "djI=");

    // Bad input, nothing fired.
    let big: &'static str = Box::leak("x".repeat(513).into_boxed_str());
    for (path, body, status, text) in [
        (
            "/v1/event/fire/big",
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds configured limit of 512 bytes",
        ),
        (
            "/v1/event/fire/",
            "",
            StatusCode::BAD_REQUEST,
            "Missing name",
        ),
        (
            "/v1/event/fire/t?tag=a",
            "",
            StatusCode::BAD_REQUEST,
            "Cannot provide tag filter without service filter",
        ),
        (
            "/v1/event/fire/a/b",
            "",
            StatusCode::BAD_REQUEST,
            "must not contain '/'",
        ),
        (
            "/v1/event/fire/t?node=(",
            "",
            StatusCode::BAD_REQUEST,
            "Invalid node filter",
        ),
    ] {
        let (s, _, got) = call(&base, Method::PUT, path, body).await;
        assert_eq!(s, status, "{path}: {got}");
        assert!(got.contains(text), "{path}: {got}");
    }
    let (_, _, all) = call(&base, Method::GET, "/v1/event/list", "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&all)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        4,
        "deploy, other, unrelated and deploy again; the one for elsewhere is not listed"
    );
    server.shutdown().await.expect("clean shutdown");
}

/// Retention is the leader's: past `limits.event_retention` the oldest events go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_trims_events_to_the_retention_limit() {
    let (server, _dir) = common::dev_server_with(|c| c.limits.event_retention = 3).await;
    let base = format!("http://{}", server.http_addr);
    for _ in 0..5 {
        call(&base, Method::PUT, "/v1/event/fire/e", "").await;
    }
    common::wait_until("only the newest 3 remain", || async {
        let (_, _, body) = call(&base, Method::GET, "/v1/event/list", "").await;
        let list: Value = serde_json::from_str(&body).unwrap();
        let ltimes: Vec<u64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["LTime"].as_u64().unwrap())
            .collect();
        ltimes == [3, 4, 5]
    })
    .await;
    server.shutdown().await.expect("clean shutdown");
}

/// `rostractl event ARGS` against `addr`, off the runtime's threads.
async fn ctl_event(addr: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(common::rostractl_bin());
    command.arg("event").args(args).env("ROSTRA_ADDR", addr);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_event_watch_and_fire() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.grpc_addr.to_string();
    // §6: `cat` prints the JSON array Consul's watch hands its handler.
    let (mut cat, lines) =
        common::watch_lines(&addr, &["-type", "event", "-name", "exampleEvent", "cat"]);
    assert_eq!(lines.recv_timeout(common::DEADLINE).unwrap(), "[]");
    let fired = ctl_event(&addr, &["-name", "exampleEvent", "Event Payload"]).await;
    assert!(fired.status.success());
    let line = lines.recv_timeout(common::DEADLINE).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = v[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "ID",
            "Name",
            "Payload",
            "NodeFilter",
            "ServiceFilter",
            "TagFilter",
            "Version",
            "LTime"
        ]
    );
    assert_eq!(v[0]["Payload"], "RXZlbnQgUGF5bG9hZA==");
    assert_eq!(v[0]["Name"], "exampleEvent");
    let _ = cat.kill();
    let _ = cat.wait();

    let (mut watch, rx) = common::watch_lines(
        &addr,
        &[
            "-type=event",
            "-name=broadcast",
            "jq -r '.[].Payload' | base64 -d && echo",
        ],
    );
    // The first run has no events: the handler prints an empty line.
    assert_eq!(rx.recv_timeout(common::DEADLINE).unwrap(), "");
    let fired = ctl_event(&addr, &["-name", "broadcast", "Sample Payload"]).await;
    assert!(fired.status.success());
    let text = String::from_utf8_lossy(&fired.stdout).to_string();
    assert!(
        text.starts_with("Event ID: ") && text.trim().len() == "Event ID: ".len() + 36,
        "{text}"
    );
    assert_eq!(rx.recv_timeout(common::DEADLINE).unwrap(), "Sample Payload");
    let _ = watch.kill();
    let _ = watch.wait();

    // Without a handler: the JSON array Consul's watch gives, then exit.
    let a = addr.clone();
    let o = tokio::task::spawn_blocking(move || {
        Command::new(common::rostractl_bin())
            .args(["watch", "-type", "event", "-name", "broadcast"])
            .env("ROSTRA_ADDR", &a)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["Name"], "broadcast");
    assert_eq!(v[0]["Payload"], "U2FtcGxlIFBheWxvYWQ=");
    for key in [
        "ID",
        "NodeFilter",
        "ServiceFilter",
        "TagFilter",
        "Version",
        "LTime",
    ] {
        assert!(v[0].get(key).is_some(), "{key}");
    }

    // CLI bad input, with Consul's messages.
    let a = addr.clone();
    let outs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            let o = Command::new(common::rostractl_bin())
                .arg("event")
                .args(args)
                .env("ROSTRA_ADDR", &a)
                .output()
                .unwrap();
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        };
        [
            run(&["x"]),
            run(&["-name", "n", "-tag", "t", "p"]),
            run(&["-name", "n", "a", "b"]),
            run(&["-name", "n", "-node", "("]),
            run(&["-name", "a/b", "p"]),
        ]
    })
    .await
    .unwrap();
    let want = [
        "Event name must be specified",
        "Cannot provide tag filter without service filter.",
        "Too many command line arguments.",
        "Failed to compile node filter regexp",
        "Error firing event: Invalid event name \"a/b\": it must not contain '/'",
    ];
    for ((code, err), want) in outs.iter().zip(want) {
        assert_eq!(*code, Some(1), "{err}");
        assert!(err.contains(want), "{err}");
    }
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_events_reaches_a_watcher_complete_and_in_order() {
    let (server, _dir) = common::dev_server_with(|c| c.limits.event_retention = 2000).await;
    let client = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    let mut watcher = client
        .follow(EventsWatch {
            name: "burst".into(),
        })
        .await
        .unwrap();
    watcher.next().await.unwrap();
    const N: usize = 1000;
    let mut fire = Vec::new();
    for i in 0..N {
        let c = client.clone();
        fire.push(tokio::spawn(
            async move { pb_fire(&c, format!("{i}")).await },
        ));
    }
    for f in fire {
        f.await.unwrap();
    }
    while watcher.state().len() < N {
        tokio::time::timeout(common::DEADLINE, watcher.next())
            .await
            .expect("in time")
            .unwrap();
    }
    let ltimes: Vec<u64> = watcher.state().keys().copied().collect();
    assert_eq!(ltimes.len(), N);
    assert!(
        ltimes.windows(2).all(|w| w[0] + 1 == w[1]),
        "consecutive Lamport times"
    );
    let mut payloads: Vec<usize> = watcher
        .state()
        .values()
        .map(|e| {
            String::from_utf8(e.payload.clone())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    payloads.sort();
    assert_eq!(payloads, (0..N).collect::<Vec<_>>(), "every event, once");
    drop(watcher);
    server.shutdown().await.expect("clean shutdown");
}

async fn pb_fire(c: &Client, payload: String) {
    rostra::pb::event_client::EventClient::new(c.channel())
        .fire(rostra::pb::EventFireRequest {
            name: "burst".into(),
            payload: payload.into_bytes(),
            ..Default::default()
        })
        .await
        .expect("fired");
}
