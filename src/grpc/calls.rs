//! Counts gRPC calls by method and status code for `/v1/agent/metrics`.
//!
//! The code is read from the response headers: a call that fails before answering gets a
//! trailers-only response whose headers carry `grpc-status`; one that answers (a unary
//! success, a stream that started) has none there and counts as `0`.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use crate::telemetry::Telemetry;

#[derive(Clone)]
pub struct CountCalls(pub Arc<Telemetry>);

impl<S> tower::Layer<S> for CountCalls {
    type Service = Counting<S>;

    fn layer(&self, inner: S) -> Counting<S> {
        Counting {
            inner,
            telemetry: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Counting<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
}

/// gRPC's `UNIMPLEMENTED`: a method that does not exist.
const UNIMPLEMENTED: &str = "12";

impl<S, B, RB> tower::Service<http::Request<B>> for Counting<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_string();
        let telemetry = self.telemetry.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let resp = answer.await?;
            let code = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_string();
            // Paths of methods that do not exist are the client's to choose: one label
            // for all of them keeps the label set bounded.
            let method = if code == UNIMPLEMENTED {
                "other"
            } else {
                method.as_str()
            };
            telemetry.grpc_request(method, &code);
            Ok(resp)
        })
    }
}
