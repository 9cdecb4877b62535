//! Watch handlers, as Consul runs them: a script gets the payload (plus a newline) on
//! stdin and `CONSUL_INDEX` in its environment; an HTTP handler gets it as the body of
//! a request with `Content-Type: application/json` and `X-Consul-Index`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Consul's default HTTP handler timeout.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a script's stdout and stderr the agent keeps for its log, each; the rest
/// is read and dropped so the script never blocks on a full pipe.
const OUTPUT_KEPT: u64 = 4096;

/// Where a script's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// To our own stdout and stderr (`rostractl watch`).
    Inherit,
    /// Captured (bounded) and returned, for the agent's log.
    Capture,
}

/// What runs for each delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// `args` run directly; with `shell`, joined into one line run by `sh -c` (Consul's
    /// deprecated `handler` string, and `rostractl watch -shell`).
    Script {
        args: Vec<String>,
        shell: bool,
    },
    Http(HttpHandler),
}

/// Consul's `http_handler_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHandler {
    pub url: reqwest::Url,
    pub method: http::Method,
    /// Header name and values, sent in this order.
    pub headers: Vec<(http::HeaderName, Vec<http::HeaderValue>)>,
    pub timeout: Duration,
}

impl Handler {
    /// Hands `payload` to the handler. Ok carries a script's captured output (empty
    /// otherwise); Err says why the handler failed.
    pub async fn run(&self, payload: &Value, index: u64, output: Output) -> Result<String, String> {
        let mut body = serde_json::to_vec(payload).expect("JSON encoding of plain data");
        match self {
            Handler::Script { args, shell } => {
                body.push(b'\n');
                run_script(args, *shell, &body, index, output).await
            }
            Handler::Http(h) => h.post(body, index).await.map(|()| String::new()),
        }
    }
}

async fn run_script(
    args: &[String],
    shell: bool,
    stdin: &[u8],
    index: u64,
    output: Output,
) -> Result<String, String> {
    let mut cmd = if shell {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(args.join(" "));
        c
    } else {
        let mut c = tokio::process::Command::new(&args[0]);
        c.args(&args[1..]);
        c
    };
    cmd.env("CONSUL_INDEX", index.to_string())
        .env("ROSTRA_INDEX", index.to_string())
        .stdin(Stdio::piped())
        // Cancelling a delivery (agent shutdown) must not leave the script running.
        .kill_on_drop(true);
    if output == Output::Capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("Error executing handler: {e}"))?;
    let feed = {
        let mut pipe = child.stdin.take();
        async move {
            if let Some(pipe) = pipe.as_mut() {
                // A handler that ignores stdin may close it early; that is not an error.
                let _ = pipe.write_all(stdin).await;
            }
        }
    };
    let (_, out, err) = tokio::join!(feed, kept(child.stdout.take()), kept(child.stderr.take()));
    let status = child
        .wait()
        .await
        .map_err(|e| format!("Error executing handler: {e}"))?;
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push_str(&String::from_utf8_lossy(&err));
    if status.success() {
        Ok(text)
    } else {
        Err(format!(
            "Error executing handler: {status}{}",
            suffix(&text)
        ))
    }
}

fn suffix(output: &str) -> String {
    match output.trim() {
        "" => String::new(),
        out => format!(": {out}"),
    }
}

/// The first `OUTPUT_KEPT` bytes of a pipe, draining the rest.
async fn kept(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut head = Vec::new();
    let _ = (&mut pipe).take(OUTPUT_KEPT).read_to_end(&mut head).await;
    let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
    head
}

impl HttpHandler {
    async fn post(&self, body: Vec<u8>, index: u64) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| format!("building the HTTP handler's client: {e}"))?;
        let mut req = client
            .request(self.method.clone(), self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("X-Consul-Index", index.to_string())
            .body(body);
        for (name, values) in &self.headers {
            for v in values {
                req = req.header(name, v);
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("Failed to invoke http handler {}: {e}", self.url))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "Failed to invoke http handler {}: {status}",
                self.url
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripts_get_the_payload_and_the_index() {
        let h = Handler::Script {
            args: vec!["read line; echo \"$CONSUL_INDEX $line\"".into()],
            shell: true,
        };
        let out = h
            .run(&serde_json::json!({"a": 1}), 42, Output::Capture)
            .await
            .unwrap();
        assert_eq!(out, "42 {\"a\":1}\n");
        let failing = Handler::Script {
            args: vec!["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()],
            shell: false,
        };
        let err = failing
            .run(&Value::Null, 1, Output::Capture)
            .await
            .unwrap_err();
        assert!(
            err.contains("exit status: 3") && err.ends_with(": nope"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn script_output_is_bounded() {
        let h = Handler::Script {
            args: vec!["head -c 1000000 /dev/zero | tr '\\0' x".into()],
            shell: true,
        };
        let out = h.run(&Value::Null, 1, Output::Capture).await.unwrap();
        assert_eq!(out.len(), OUTPUT_KEPT as usize);
    }
}
