//! Streaming watches over any blocking query: send the current result, then block with
//! the last index and send again whenever the index moves. One task per stream; it ends
//! when the client goes away or the server shuts down.

use std::future::Future;
use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::service::query::MAX_WAIT;
use crate::service::{Api, Consistency, QueryMeta, QueryOptions, ServiceError};

pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Runs `query` (given the options for each round) in a loop and streams `encode` of
/// each new result. A wake-up whose result equals the last one sent (the index moved
/// for something this view does not show, such as a check on a catalog listing) sends
/// nothing, as Consul's watches skip deep-equal results.
pub fn stream<T, R, Q, Fut, E>(
    service: Api,
    consistency: Consistency,
    query: Q,
    encode: E,
) -> WatchStream<R>
where
    T: Clone + PartialEq + Send + 'static,
    R: Send + 'static,
    Q: Fn(Api, QueryOptions) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(QueryMeta, T), ServiceError>> + Send,
    E: Fn(QueryMeta, T) -> R + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    let owner = service.clone();
    owner.spawn(Box::pin(async move {
        let mut last = 0;
        let mut last_value: Option<T> = None;
        loop {
            let opts = QueryOptions {
                consistency,
                min_index: last,
                wait: MAX_WAIT,
            };
            // Stop waiting as soon as the client goes away (frees the permit at once).
            let answer = tokio::select! {
                a = query(service.clone(), opts) => a,
                _ = tx.closed() => return,
            };
            let sent = match answer {
                Ok((meta, value)) => {
                    if service.is_shutting_down() {
                        return;
                    }
                    if meta.index == last {
                        continue; // the wait ended with nothing new
                    }
                    last = meta.index;
                    if last_value.as_ref() == Some(&value) {
                        continue;
                    }
                    last_value = Some(value.clone());
                    tx.send(Ok(encode(meta, value))).await
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            if sent.is_err() {
                return; // client went away
            }
        }
    }));
    Box::pin(ReceiverStream::new(rx))
}
