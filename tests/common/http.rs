//! A small HTTP client for the Consul API of a test server: status, body and the
//! `X-Consul-Index` of each answer.

use serde_json::Value;

pub struct Http {
    pub base: String,
    client: reqwest::Client,
}

impl Http {
    /// For the agent whose HTTP API listens on `addr` (host:port).
    pub fn new(addr: impl std::fmt::Display) -> Http {
        Http {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
        }
    }

    /// Any method; the status, the body as text and the `X-Consul-Index` (0 if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String, u64) {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .expect("the request is answered");
        let index = r
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let status = r.status().as_u16();
        (status, r.text().await.expect("a body"), index)
    }

    pub async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let (status, body, _) = self.call(reqwest::Method::PUT, path, body).await;
        (status, body)
    }

    /// The status, the body as JSON (`Null` when it is not JSON) and the index.
    pub async fn get(&self, path: &str) -> (u16, Value, u64) {
        let (status, body, index) = self.call(reqwest::Method::GET, path, "").await;
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::Null),
            index,
        )
    }
}
