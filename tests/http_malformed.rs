//! Bad input never panics (issue 13, item 6): a corpus of malformed HTTP requests sent
//! over raw sockets to an in-process dev server. Each gets a 4xx that says why (in the
//! body for what our handlers refuse; in the status line for what hyper refuses before a
//! handler runs, since hyper's own error responses have no body), the server keeps
//! answering normal requests after each, slow clients are cut off within a bounded time
//! without stalling anyone else, and a burst of bad requests leaves memory bounded.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rostra::http::kv::{BODY_IDLE_TIMEOUT, BODY_TIMEOUT};
use rostra::http::HEADER_READ_TIMEOUT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer as it came off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// The status line's reason phrase (`Payload Too Large`).
    phrase: String,
    body: String,
}

/// Reads until the server closes the connection (every request here asks it to, or is
/// one the server must close), within the harness deadline.
async fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(common::DEADLINE, async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server neither answered nor closed in time"
    );
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next()?;
    let status = parts.next()?.parse().ok()?;
    Some(Reply {
        status,
        phrase: parts.next().unwrap_or("").to_string(),
        body: body.to_string(),
    })
}

/// Sends `request` as is (a write the server cuts short is fine: it may answer before
/// reading everything) and reads the answer.
async fn send(addr: SocketAddr, request: &[u8]) -> Option<Reply> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    read_reply(&mut stream).await
}

/// A request with `Connection: close` and a correct `Content-Length`.
fn request(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A refusal by our handlers: `status`, and a body that says why (containing `needle`).
fn assert_reason(what: &str, reply: Option<Reply>, status: u16, needle: &str) {
    let r = reply.unwrap_or_else(|| panic!("{what}: no HTTP answer"));
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert!(
        !r.body.trim().is_empty() && r.body.contains(needle),
        "{what}: body {:?} should contain {needle:?}",
        r.body
    );
}

/// A refusal by hyper before any handler runs: a 4xx whose status line says why.
fn assert_protocol_refusal(what: &str, reply: Option<Reply>, status: u16) {
    let r = reply.unwrap_or_else(|| panic!("{what}: no HTTP answer"));
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert!(!r.phrase.trim().is_empty(), "{what}: {r:?}");
}

/// The server still answers a normal request.
async fn still_serving(addr: SocketAddr, after: &str) {
    let r = send(addr, &request("GET", "/v1/status/leader", &[], b"")).await;
    let r = r.unwrap_or_else(|| panic!("no answer to a normal request after {after}"));
    assert_eq!(r.status, 200, "after {after}: {r:?}");
    assert!(r.body.contains(':'), "after {after}: {r:?}");
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Handler-level refusals, each with its reason in the body.
async fn handler_corpus(addr: SocketAddr) {
    let kv_max = rostra::service::Limits::default().max_value_size;
    let deep = "[".repeat(100_000);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a KV value one byte over the limit",
            request("PUT", "/v1/kv/big", &[], &vec![b'x'; kv_max + 1]),
            413,
            "too large",
        ),
        (
            // Declared far beyond the drain limit: refused without reading the body.
            "a 1 GiB declared KV value",
            b"PUT /v1/kv/huge HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1073741824\r\n\r\n".to_vec(),
            413,
            "too large",
        ),
        (
            "a chunked KV value over the limit",
            {
                let mut r = b"PUT /v1/kv/chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                let chunk = vec![b'y'; 64 * 1024];
                for _ in 0..(kv_max / chunk.len() + 2) {
                    r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    r.extend_from_slice(&chunk);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
                r
            },
            413,
            "too large",
        ),
        (
            "a catalog registration over the body limit",
            request("PUT", "/v1/catalog/register", &[], &vec![b' '; 1024 * 1024 + 1]),
            413,
            "too large",
        ),
        (
            "a transaction over the body limit",
            request("PUT", "/v1/txn", &[], &vec![b' '; 512 * 1024 + 1]),
            413,
            "too large",
        ),
        ("a key that is not UTF-8", request("GET", "/v1/kv/%FF%FE", &[], b""), 400, "Invalid URL"),
        ("a PUT to a key that is not UTF-8", request("PUT", "/v1/kv/a%C3", &[], b"v"), 400, "Invalid URL"),
        ("an index past u64", request("GET", "/v1/kv/a?index=18446744073709551616", &[], b""), 400, "Invalid index"),
        ("a negative index", request("GET", "/v1/kv/a?index=-1", &[], b""), 400, "Invalid index"),
        ("a non-numeric index", request("GET", "/v1/kv/a?index=1e3", &[], b""), 400, "Invalid index"),
        ("a percent-garbled index", request("GET", "/v1/kv/a?index=%zz%", &[], b""), 400, "Invalid index"),
        ("an index in bad UTF-8", request("GET", "/v1/catalog/nodes?index=%FF", &[], b""), 400, "Invalid index"),
        ("a wait without a unit", request("GET", "/v1/kv/a?index=1&wait=10", &[], b""), 400, "Invalid wait time"),
        ("a wait past i64 nanoseconds", request("GET", "/v1/kv/a?index=1&wait=9999999999h", &[], b""), 400, "Invalid wait time"),
        ("a garbled wait", request("GET", "/v1/kv/a?index=1&wait=%FFs", &[], b""), 400, "Invalid wait time"),
        ("a flag value past u64", request("PUT", "/v1/kv/a?flags=99999999999999999999", &[], b"v"), 400, "Invalid flags"),
        ("stale and consistent", request("GET", "/v1/kv/a?stale&consistent", &[], b""), 400, "conflicting"),
        ("100k nested arrays as a transaction", request("PUT", "/v1/txn", &[], deep.as_bytes()), 400, "Failed to parse body"),
        ("100k nested arrays as a registration", request("PUT", "/v1/catalog/register", &[], deep.as_bytes()), 400, "Request decode failed"),
        ("100k nested arrays as an agent service", request("PUT", "/v1/agent/service/register", &[], deep.as_bytes()), 400, "Request decode failed"),
        ("a truncated transaction", request("PUT", "/v1/txn", &[], br#"[{"KV":{"Verb":"set","#), 400, "Failed to parse body"),
        ("a transaction that is an object", request("PUT", "/v1/txn", &[], b"{}"), 400, "Failed to parse body"),
        ("a transaction value that is not base64", request("PUT", "/v1/txn", &[], br#"[{"KV":{"Verb":"set","Key":"k","Value":"***"}}]"#), 400, "base64"),
        ("a transaction in bad UTF-8", request("PUT", "/v1/txn", &[], b"[\"\xff\xfe\"]"), 400, "Failed to parse body"),
        ("a registration with a string port", request("PUT", "/v1/catalog/register", &[], br#"{"Node":"n","Address":"a","Service":{"Service":"s","Port":"80"}}"#), 400, "Request decode failed"),
        ("a registration with a port past u16", request("PUT", "/v1/catalog/register", &[], br#"{"Node":"n","Address":"a","Service":{"Service":"s","Port":65536}}"#), 400, "port"),
        ("a registration with a port past u64", request("PUT", "/v1/catalog/register", &[], br#"{"Node":"n","Address":"a","Service":{"Service":"s","Port":1e30}}"#), 400, "Request decode failed"),
        ("a registration as a form", request("PUT", "/v1/catalog/register", &["Content-Type: application/x-www-form-urlencoded"], b"Node=n&Address=a"), 400, "Request decode failed"),
        ("an agent service with a list for a name", request("PUT", "/v1/agent/service/register", &["Content-Type: application/json"], br#"{"Name":["web"]}"#), 400, "Request decode failed"),
        ("an agent service without a name", request("PUT", "/v1/agent/service/register", &[], b"{}"), 400, "Missing service name"),
        ("an agent check with a garbled interval", request("PUT", "/v1/agent/check/register", &[], br#"{"Name":"c","TCP":"localhost:1","Interval":"1.5.5s"}"#), 400, "duration"),
        ("an agent check with a negative TTL", request("PUT", "/v1/agent/check/register", &[], br#"{"Name":"c","TTL":"-1s"}"#), 400, "duration"),
        ("a session with a garbled lock delay", request("PUT", "/v1/session/create", &[], br#"{"LockDelay":"15"}"#), 400, "Request decode failed"),
        ("a deregistration that is a string", request("PUT", "/v1/catalog/deregister", &[], br#""n""#), 400, "Request decode failed"),
        ("a filter with an open quote", request("GET", "/v1/catalog/nodes?filter=%22", &[], b""), 400, "boolean expression"),
        ("a filter that is junk", request("GET", "/v1/health/service/web?filter=%FF%20%3D%3D", &[], b""), 400, "boolean expression"),
        ("an unknown method", request("FROB", "/v1/kv/a", &[], b""), 405, "method FROB not allowed"),
        ("a DELETE of the catalog register endpoint", request("DELETE", "/v1/catalog/register", &[], b""), 405, "not allowed"),
        ("an unknown endpoint", request("GET", "/v1/nope", &[], b""), 404, "Invalid URL path"),
        ("an event name with a slash", request("PUT", "/v1/event/fire/a/b", &[], b""), 400, ""),
    ];
    for (what, bytes, status, needle) in cases {
        eprintln!("case: {what}");
        assert_reason(what, send(addr, &bytes).await, status, needle);
        still_serving(addr, what).await;
    }

    // Blocking waits the text allows must end when they say: tiny ones, and a fraction
    // longer than i64 (which the old duration parser looped on forever, and whose
    // multi-byte unit it panicked on). A negative wait is Consul's default wait, so it
    // is only checked without an index.
    let r = send(addr, &request("PUT", "/v1/kv/waited", &[], b"v"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    for wait in [
        "1ns",
        "1%C2%B5s",
        "1.1111111111111111111111ms",
        "0.1111111111111111111111111s",
    ] {
        let target = format!("/v1/kv/waited?index=1099511627776&wait={wait}");
        let r = send(addr, &request("GET", &target, &[], b""))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "wait={wait}: {r:?}");
        still_serving(addr, &format!("wait={wait}")).await;
    }
    let r = send(addr, &request("GET", "/v1/kv/waited?wait=-5s", &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "wait=-5s: {r:?}");
}

/// What hyper refuses before routing: a 4xx with the reason in the status line.
async fn protocol_corpus(addr: SocketAddr) {
    let big_header = format!("X-Big: {}", "a".repeat(512 * 1024));
    let many: Vec<String> = (0..200).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a 512 KiB header",
            request("GET", "/v1/status/leader", &[&big_header], b""),
            431,
        ),
        (
            "200 headers",
            request("GET", "/v1/status/leader", &many, b""),
            431,
        ),
        (
            "raw bytes that are not UTF-8 in the target",
            b"GET /v1/kv/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a space in the target",
            b"GET /v1/kv/a b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a method with a bad character",
            b"G@T /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a request line that is not HTTP",
            b"hello\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a Content-Length that is not a number",
            b"PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two different Content-Lengths",
            b"PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
            400,
        ),
        (
            "a header without a colon",
            b"GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (what, bytes, status) in cases {
        eprintln!("case: {what}");
        assert_protocol_refusal(what, send(addr, &bytes).await, status);
        still_serving(addr, what).await;
    }

    // A body the client stops sending (it closes its side): refused with the reason or
    // the connection closed, and the server carries on.
    for (what, bytes) in [
        (
            "a body shorter than its Content-Length",
            b"PUT /v1/kv/short HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789".to_vec(),
        ),
        (
            "a chunked body with a garbled chunk size",
            b"PUT /v1/kv/chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n".to_vec(),
        ),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        stream.shutdown().await.unwrap();
        if let Some(r) = read_reply(&mut stream).await {
            assert!((400..500).contains(&r.status), "{what}: {r:?}");
            assert!(!r.body.trim().is_empty() || !r.phrase.is_empty(), "{what}: {r:?}");
        }
        still_serving(addr, what).await;
        // Nothing was stored from the partial body.
        let key = if what.contains("chunk") { "chunk" } else { "short" };
        let r = send(addr, &request("GET", &format!("/v1/kv/{key}"), &[], b"")).await.unwrap();
        assert_eq!(r.status, 404, "{what}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_reasons_and_memory_stays_bounded() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.http_addr;
    handler_corpus(addr).await;
    protocol_corpus(addr).await;

    // A burst of the expensive refusals, 8 at a time: memory must not grow with it.
    let before = rss_kib();
    let kv_max = rostra::service::Limits::default().max_value_size;
    let oversized = request("PUT", "/v1/kv/big", &[], &vec![b'x'; kv_max + 1]);
    let big_header = request(
        "GET",
        "/v1/status/leader",
        &[&format!("X-Big: {}", "a".repeat(512 * 1024))],
        b"",
    );
    let deep = request("PUT", "/v1/txn", &[], "[".repeat(100_000).as_bytes());
    for round in 0..25 {
        let mut tasks = tokio::task::JoinSet::new();
        for bytes in [&oversized, &big_header, &deep].into_iter().cycle().take(8) {
            let bytes = bytes.clone();
            tasks.spawn(async move { send(addr, &bytes).await.map(|r| r.status) });
        }
        while let Some(status) = tasks.join_next().await {
            let status = status.unwrap();
            assert!(
                matches!(status, Some(400 | 413 | 429 | 431)),
                "round {round}: {status:?}"
            );
        }
    }
    still_serving(addr, "the burst").await;
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 200,
        "RSS grew by {grown_mib} MiB over the burst"
    );

    server.shutdown().await.expect("clean shutdown");
}

/// Holds a connection that never completes its request; returns how long the server
/// took to close it.
async fn held_open(
    addr: SocketAddr,
    first: &'static [u8],
    trickle: Option<&'static [u8]>,
) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(first).await.unwrap();
    let mut buf = [0u8; 1024];
    let mut pace = tokio::time::interval(Duration::from_millis(500));
    let mut rest = trickle.unwrap_or(b"").iter();
    let limit = common::DEADLINE;
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // Closed (a 408 or nothing at all first is fine); anything else is an
                // answer to a request that was never finished.
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    assert!(text.starts_with("HTTP/1.1 408"), "unexpected answer {text:?}");
                    assert!(text.contains("Request body not received"), "{text:?}");
                }
            },
            // The client's own pace: one byte every half second, never the whole head.
            _ = pace.tick(), if rest.len() > 0 => {
                let b = *rest.next().unwrap();
                if stream.write_all(&[b]).await.is_err() {
                    return start.elapsed();
                }
            }
            _ = tokio::time::sleep_until((start + limit).into()) => {
                panic!("the server kept a stalled connection open for {limit:?}")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_others_are_served() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.http_addr;
    // A whole head, one byte every half second: far longer than the header timeout.
    const TRICKLED: &[u8] =
        b"GET /v1/status/leader HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..20 {
        slow.spawn(held_open(addr, b"", None));
    }
    for _ in 0..5 {
        // Half an HTTP/2 preface: the protocol is never decided.
        slow.spawn(held_open(addr, b"PRI * HTTP/2.0\r\n", None));
        slow.spawn(held_open(addr, &TRICKLED[..1], Some(&TRICKLED[1..])));
        // Headers done, body promised and never sent in full.
        slow.spawn(held_open(
            addr,
            b"PUT /v1/kv/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
            None,
        ));
    }
    // Everyone else is served while they hang on.
    for i in 0..20 {
        still_serving(addr, &format!("slow clients connected ({i})")).await;
    }
    let bound =
        HEADER_READ_TIMEOUT.max(BODY_IDLE_TIMEOUT).min(BODY_TIMEOUT) + Duration::from_secs(15);
    while let Some(took) = slow.join_next().await {
        let took = took.unwrap();
        assert!(took < bound, "a stalled connection lasted {took:?}");
    }
    still_serving(addr, "the slow clients were cut off").await;
    let r = send(addr, &request("GET", "/v1/kv/stalled", &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "a stalled body stored nothing: {r:?}");
    server.shutdown().await.expect("clean shutdown");
}

/// `service::session` still parses TTLs with the `go-parse-duration` crate, which loops
/// forever on a fraction of more than 18 digits; the HTTP shim passes the TTL through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ttls_with_long_fractions_are_answered() {
    let (server, _dir) = common::dev_server().await;
    let addr = server.http_addr;
    let body = br#"{"TTL":"11.1111111111111111111111s"}"#;
    let r = send(addr, &request("PUT", "/v1/session/create", &[], body)).await;
    let r = r.expect("an answer");
    assert!(r.status == 200 || r.status == 400, "{r:?}");
    still_serving(addr, "a long TTL fraction").await;
    server.shutdown().await.expect("clean shutdown");
}
