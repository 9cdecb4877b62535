//! Backpressure for the request/response front ends: at most `limit` requests in flight
//! per server; one more is answered at once with "too many requests" (HTTP 429, gRPC
//! `RESOURCE_EXHAUSTED`) instead of being queued without bound. Clients retry, as
//! Consul's and etcd's do on those codes.
//!
//! One tower layer serves both front ends; each supplies its own rejection (HTTP or gRPC
//! shape) and says which requests are long-lived and governed by the stream limit instead
//! (`Limits::max_streams`): a Consul blocking query waits for minutes by design. A gRPC
//! watch needs no exemption: its permit is held only until the stream starts, because
//! the handler's future completes when it returns the stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;

/// Builds the answer to a request refused for lack of a permit (given the limit).
pub type Reject<B> = fn(usize) -> http::Response<B>;
/// Whether a request bypasses the limit (it is long-lived and counted elsewhere).
pub type Exempt<B> = fn(&http::Request<B>) -> bool;

/// The layer: wraps a service so each call first takes a permit.
pub struct InFlightLimit<ReqB, ResB> {
    permits: Arc<Semaphore>,
    limit: usize,
    reject: Reject<ResB>,
    exempt: Exempt<ReqB>,
}

impl<ReqB, ResB> Clone for InFlightLimit<ReqB, ResB> {
    fn clone(&self) -> Self {
        InFlightLimit {
            permits: self.permits.clone(),
            limit: self.limit,
            reject: self.reject,
            exempt: self.exempt,
        }
    }
}

impl<ReqB, ResB> InFlightLimit<ReqB, ResB> {
    pub fn new(limit: usize, reject: Reject<ResB>, exempt: Exempt<ReqB>) -> Self {
        InFlightLimit {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            reject,
            exempt,
        }
    }
}

impl<S, ReqB, ResB> tower::Layer<S> for InFlightLimit<ReqB, ResB> {
    type Service = InFlightService<S, ReqB, ResB>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightService {
            inner,
            gate: self.clone(),
        }
    }
}

/// The wrapped service.
pub struct InFlightService<S, ReqB, ResB> {
    inner: S,
    gate: InFlightLimit<ReqB, ResB>,
}

impl<S: Clone, ReqB, ResB> Clone for InFlightService<S, ReqB, ResB> {
    fn clone(&self) -> Self {
        InFlightService {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqB, ResB> tower::Service<http::Request<ReqB>> for InFlightService<S, ReqB, ResB>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Send + 'static,
{
    type Response = http::Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        if (self.gate.exempt)(&req) {
            return Box::pin(self.inner.call(req));
        }
        match self.gate.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let answer = self.inner.call(req);
                Box::pin(async move {
                    let out = answer.await;
                    drop(permit);
                    out
                })
            }
            Err(_) => {
                tracing::debug!(
                    limit = self.gate.limit,
                    "request refused: too many in flight"
                );
                let refused = (self.gate.reject)(self.gate.limit);
                Box::pin(async move { Ok(refused) })
            }
        }
    }
}

/// The message both front ends send with a refusal.
pub fn too_many_message(limit: usize) -> String {
    format!("too many requests in flight (limit {limit}); retry later")
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, Service, ServiceExt};

    use super::*;

    fn reject(limit: usize) -> http::Response<String> {
        http::Response::builder()
            .status(429)
            .body(too_many_message(limit))
            .unwrap()
    }

    fn exempt(req: &http::Request<()>) -> bool {
        req.uri().path() == "/long"
    }

    #[tokio::test]
    async fn refuses_past_the_limit_and_frees_permits_when_answers_complete() {
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let inner = tower::service_fn(move |_req: http::Request<()>| {
            let mut release = release_rx.clone();
            async move {
                release.wait_for(|r| *r).await.unwrap();
                Ok::<_, Infallible>(http::Response::new("done".to_string()))
            }
        });
        let mut svc = InFlightLimit::new(1, reject, exempt).layer(inner);
        let req = |path: &str| http::Request::builder().uri(path).body(()).unwrap();

        let first = svc.ready().await.unwrap().call(req("/a"));
        let second = svc.ready().await.unwrap().call(req("/b")).await.unwrap();
        assert_eq!(second.status(), 429);
        assert!(second.body().contains("limit 1"), "{}", second.body());
        // A long-lived request is not counted here.
        let long = svc.ready().await.unwrap().call(req("/long"));

        release_tx.send(true).unwrap();
        assert_eq!(first.await.unwrap().status(), 200);
        assert_eq!(long.await.unwrap().status(), 200);
        let third = svc.ready().await.unwrap().call(req("/c")).await.unwrap();
        assert_eq!(third.status(), 200);
    }
}
