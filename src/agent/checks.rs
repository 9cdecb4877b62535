//! Running checks the way Consul's agent does (spec §7.3): scripts without a shell (exit 0
//! passing, 1 warning, anything else critical; output capped, killed at the timeout),
//! HTTP (2xx passing, 429 warning, else critical), TCP connects, and TTL checks that go
//! critical unless updated in time.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::definition::{CheckKind, CheckStatus, DEFAULT_OUTPUT_MAX_SIZE};

/// One check run's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub status: CheckStatus,
    pub output: String,
}

/// Keeps the last `max` bytes of `data`, with Consul's note when it had to cut.
pub fn cap_output(data: &[u8], max: usize) -> String {
    if data.len() <= max {
        return String::from_utf8_lossy(data).into_owned();
    }
    let kept = &data[data.len() - max..];
    format!(
        "Captured {} of {} bytes\n...\n{}",
        max,
        data.len(),
        String::from_utf8_lossy(kept)
    )
}

/// Runs `kind` once. TTL checks are not run; see `agent::Agent`.
pub async fn run_once(
    kind: &CheckKind,
    timeout: Duration,
    max_output: Option<usize>,
) -> CheckResult {
    let max = max_output.unwrap_or(DEFAULT_OUTPUT_MAX_SIZE);
    match kind {
        CheckKind::Script { args } => run_script(args, timeout, max).await,
        CheckKind::Http {
            url,
            method,
            header,
            body,
            tls_skip_verify: _,
        } => run_http(url, method, header, body, timeout, max).await,
        CheckKind::Tcp { addr } => run_tcp(addr, timeout).await,
        CheckKind::Ttl { .. } => CheckResult {
            status: CheckStatus::Critical,
            output: "TTL checks are updated through the agent API".into(),
        },
        CheckKind::Maintenance => CheckResult {
            status: CheckStatus::Critical,
            output: String::new(),
        },
    }
}

async fn run_script(args: &[String], timeout: Duration, max: usize) -> CheckResult {
    let critical = |output: String| CheckResult {
        status: CheckStatus::Critical,
        output,
    };
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return critical(format!("Failed to start check {:?}: {e}", args[0])),
    };
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (_, _, status) = tokio::join!(
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            child.wait()
        );
        out.extend_from_slice(&err);
        (status, out)
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => critical(format!("Timed out ({timeout:?}) running check")),
        Ok((Err(e), _)) => critical(format!("Failed to run check {:?}: {e}", args[0])),
        Ok((Ok(status), out)) => CheckResult {
            status: match status.code() {
                Some(0) => CheckStatus::Passing,
                Some(1) => CheckStatus::Warning,
                _ => CheckStatus::Critical,
            },
            output: cap_output(&out, max),
        },
    }
}

async fn run_http(
    url: &str,
    method: &str,
    header: &std::collections::BTreeMap<String, Vec<String>>,
    body: &str,
    timeout: Duration,
    max: usize,
) -> CheckResult {
    let critical = |output: String| CheckResult {
        status: CheckStatus::Critical,
        output,
    };
    let method_value = match reqwest::Method::from_bytes(method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return critical(format!("invalid HTTP method {method:?}")),
    };
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => return critical(e.to_string()),
    };
    let mut req = client
        .request(method_value, url)
        .header("User-Agent", "Consul Health Check")
        .header("Accept", "text/plain, text/*, */*")
        .body(body.to_string());
    for (name, values) in header {
        for v in values {
            req = req.header(name.as_str(), v.as_str());
        }
    }
    match req.send().await {
        Err(e) => critical(format!("HTTP {method} {url}: {e}")),
        Ok(resp) => {
            let code = resp.status();
            let text = resp.bytes().await.unwrap_or_default();
            let status = if code.is_success() {
                CheckStatus::Passing
            } else if code.as_u16() == 429 {
                CheckStatus::Warning
            } else {
                CheckStatus::Critical
            };
            CheckResult {
                status,
                output: format!(
                    "HTTP {method} {url}: {code} Output: {}",
                    cap_output(&text, max)
                ),
            }
        }
    }
}

async fn run_tcp(addr: &str, timeout: Duration) -> CheckResult {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => CheckResult {
            status: CheckStatus::Passing,
            output: format!("TCP connect {addr}: Success"),
        },
        Ok(Err(e)) => CheckResult {
            status: CheckStatus::Critical,
            output: format!("dial tcp {addr}: {e}"),
        },
        Err(_) => CheckResult {
            status: CheckStatus::Critical,
            output: format!("dial tcp {addr}: i/o timeout"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(body: &str) -> CheckKind {
        CheckKind::Script {
            args: vec!["/bin/sh".into(), "-c".into(), body.into()],
        }
    }

    #[tokio::test]
    async fn script_exit_codes_map_to_statuses() {
        let t = Duration::from_secs(10);
        let r = run_once(&script("echo green"), t, None).await;
        assert_eq!(
            (r.status, r.output.as_str()),
            (CheckStatus::Passing, "green\n")
        );
        assert_eq!(
            run_once(&script("exit 1"), t, None).await.status,
            CheckStatus::Warning
        );
        let r = run_once(&script("echo oops >&2; exit 2"), t, None).await;
        assert_eq!(
            (r.status, r.output.as_str()),
            (CheckStatus::Critical, "oops\n")
        );
        let r = run_once(
            &CheckKind::Script {
                args: vec!["/nonexistent/check".into()],
            },
            t,
            None,
        )
        .await;
        assert_eq!(r.status, CheckStatus::Critical);
    }

    #[tokio::test]
    async fn script_timeout_and_output_cap() {
        let r = run_once(&script("sleep 5"), Duration::from_millis(200), None).await;
        assert_eq!(r.status, CheckStatus::Critical);
        assert!(r.output.starts_with("Timed out"), "{}", r.output);
        let r = run_once(
            &script("head -c 10000 /dev/zero | tr '\\0' x"),
            Duration::from_secs(10),
            Some(100),
        )
        .await;
        assert!(
            r.output.starts_with("Captured 100 of 10000 bytes\n...\n"),
            "{}",
            &r.output[..40]
        );
    }

    #[tokio::test]
    async fn tcp_check_connects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let r = run_once(
            &CheckKind::Tcp { addr: addr.clone() },
            Duration::from_secs(5),
            None,
        )
        .await;
        assert_eq!(r.status, CheckStatus::Passing);
        drop(listener);
        let r = run_once(&CheckKind::Tcp { addr }, Duration::from_secs(5), None).await;
        assert_eq!(r.status, CheckStatus::Critical);
    }

    /// Answers every connection with a fixed HTTP status.
    async fn http_server(status: &'static str) -> String {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                let body = "hello";
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        format!("http://{addr}/health")
    }

    fn http(url: String) -> CheckKind {
        CheckKind::Http {
            url,
            method: "GET".into(),
            header: Default::default(),
            body: String::new(),
            tls_skip_verify: false,
        }
    }

    #[tokio::test]
    async fn http_statuses_map_like_consul() {
        let t = Duration::from_secs(5);
        let r = run_once(&http(http_server("200 OK").await), t, None).await;
        assert_eq!(r.status, CheckStatus::Passing);
        assert!(r.output.ends_with("200 OK Output: hello"), "{}", r.output);
        let r = run_once(&http(http_server("429 Too Many Requests").await), t, None).await;
        assert_eq!(r.status, CheckStatus::Warning);
        let r = run_once(&http(http_server("503 Service Unavailable").await), t, None).await;
        assert_eq!(r.status, CheckStatus::Critical);
        let r = run_once(&http("http://127.0.0.1:1/nothing".into()), t, None).await;
        assert_eq!(r.status, CheckStatus::Critical);
    }
}
