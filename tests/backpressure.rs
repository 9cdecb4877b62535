//! Backpressure: with the in-flight limit at 1, one request held open makes the next one
//! answer 429 (HTTP) or `RESOURCE_EXHAUSTED` (gRPC) at once, instead of queueing; a
//! blocking query is not counted; once the held request completes, requests pass again.
//!
//! A request is held open by sending its headers and holding back its body: the server
//! takes the permit when the headers arrive and keeps it until it has answered.

mod common;

use std::time::Duration;

use futures::FutureExt;
use prost::Message;
use rostra::client::Client;
use rostra::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server_with_limits(
    http: usize,
    grpc: usize,
) -> (rostra::server::Server, tempfile::TempDir) {
    common::dev_server_with(|config| {
        config.limits.http_max_in_flight = http;
        config.limits.grpc_max_in_flight = grpc;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_answers_429_past_the_in_flight_limit() {
    let (server, _dir) = server_with_limits(1, 64).await;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();

    // A PUT whose body has not arrived yet holds the only permit. A probe that arrives
    // first can take the permit and get the PUT refused instead; then hold another.
    let hold = || async {
        let mut held = TcpStream::connect(server.http_addr).await.unwrap();
        held.write_all(b"PUT /v1/kv/held HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            .await
            .unwrap();
        held
    };
    let mut held = hold().await;
    let start = std::time::Instant::now();
    loop {
        let probe = http
            .get(format!("{base}/v1/kv/other"))
            .send()
            .await
            .unwrap();
        if probe.status() == 429 {
            break;
        }
        let mut peek = [0u8; 1];
        if held.try_read(&mut peek).is_ok() {
            held = hold().await; // it was answered (refused): it lost the race
        }
        assert!(
            start.elapsed() < common::DEADLINE,
            "no request was ever refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = http
        .get(format!("{base}/v1/kv/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("too many requests in flight (limit 1)"),
        "{body}"
    );

    // A blocking query is governed by the stream limit, not this one.
    let blocking = http
        .get(format!("{base}/v1/kv/other?index=1&wait=50ms"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        blocking.status(),
        404,
        "a blocking query runs while requests are refused"
    );

    // The held request completes; the permit is free again.
    held.write_all(b"hello").await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(common::DEADLINE, held.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let r = http
        .get(format!("{base}/v1/kv/held?raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "hello".into())
    );
    drop(held);
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}

/// A gRPC message frame: uncompressed flag, big-endian length, the message.
fn grpc_frame(msg: &impl Message) -> bytes::Bytes {
    let body = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_answers_resource_exhausted_past_the_in_flight_limit() {
    let (server, _dir) = server_with_limits(64, 1).await;
    let c = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();

    // A Put whose request message has not been sent holds the only permit. A probe that
    // arrives first can take the permit and get the Put refused instead; then hold
    // another.
    let tcp = TcpStream::connect(server.grpc_addr).await.unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();
    let mut hold = || {
        let request = http::Request::post(format!("http://{}/rostra.v1.KV/Put", server.grpc_addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        h2.send_request(request, false).unwrap()
    };
    let (mut response, mut body) = hold();
    let start = std::time::Instant::now();
    loop {
        let probe = c.get("other", pb::Consistency::Default).await;
        if matches!(&probe, Err(rostra::client::ClientError::Rpc(s)) if s.code() == tonic::Code::ResourceExhausted)
        {
            break;
        }
        if (&mut response).now_or_never().is_some() {
            (response, body) = hold(); // it was answered (refused): it lost the race
        }
        assert!(
            start.elapsed() < common::DEADLINE,
            "no call was ever refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match c.get("other", pb::Consistency::Default).await {
        Err(rostra::client::ClientError::Rpc(s)) => {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted);
            assert!(s.message().contains("limit 1"), "{}", s.message());
        }
        other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
    }

    // The held call completes and is applied; calls pass again.
    let put = pb::PutRequest {
        lock: None,
        key: "held".into(),
        value: b"hello".to_vec(),
        flags: 0,
        cas: None,
    };
    body.send_data(grpc_frame(&put), true).unwrap();
    let response = tokio::time::timeout(common::DEADLINE, response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut answer = response.into_body();
    while let Some(chunk) = answer.data().await {
        let chunk = chunk.unwrap();
        let _ = answer.flow_control().release_capacity(chunk.len());
    }
    let trailers = answer.trailers().await.unwrap().unwrap_or_default();
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        c.get("held", pb::Consistency::Default),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(got.kv.unwrap().value, b"hello");
    drop(h2);
    driver.abort();
    server
        .shutdown()
        .await
        .expect("the server shuts down and closes its database");
}
