//! Watch streams: the service layer's watch messages (`service::watch`), encoded as each
//! RPC's response type. The protocol is decided in the service layer; this only
//! translates, and every watch RPC (KV, catalog, health) goes through [`stream`].

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::Status;

use super::convert;
use crate::pb;
use crate::service::{Api, CatalogDelta, CatalogItem, ItemKey, WatchMessage, WatchReceiver};

pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The fields every watch response carries besides its payload.
pub struct Frame {
    pub kind: pb::WatchKind,
    pub index: u64,
    pub reason: String,
    pub header: Option<pb::ResponseHeader>,
}

/// Streams `rx` as responses built by `encode` from each message's frame, its snapshot
/// items and its delta.
pub fn stream<I, D, R, E>(api: Api, rx: WatchReceiver<I, D>, encode: E) -> WatchStream<R>
where
    I: Send + 'static,
    D: Send + 'static,
    R: Send + 'static,
    E: Fn(Frame, Vec<I>, Option<D>) -> R + Send + 'static,
{
    let stream = rx.map(move |msg| {
        let (kind, index, reason, items, delta) = match msg {
            WatchMessage::Snapshot { index, items } => {
                (pb::WatchKind::Snapshot, index, String::new(), items, None)
            }
            WatchMessage::Synced { index } => (
                pb::WatchKind::Synced,
                index,
                String::new(),
                Vec::new(),
                None,
            ),
            WatchMessage::Changes { index, delta } => (
                pb::WatchKind::Changes,
                index,
                String::new(),
                Vec::new(),
                Some(delta),
            ),
            WatchMessage::Reset { index, reason } => {
                (pb::WatchKind::Reset, index, reason, Vec::new(), None)
            }
        };
        let header = pb::ResponseHeader {
            index,
            ..convert::header(&api.meta(0))
        };
        let frame = Frame {
            kind,
            index,
            reason,
            header: Some(header),
        };
        Ok(encode(frame, items, delta))
    });
    Box::pin(stream)
}

/// A catalog watch's message as upserted items and removed keys of one RPC's types.
/// Items of another kind cannot occur (the view decides the kind) and are skipped.
pub fn catalog_payload<U, K>(
    items: Vec<CatalogItem>,
    delta: Option<CatalogDelta>,
    item: fn(CatalogItem) -> Option<U>,
    key: fn(ItemKey) -> Option<K>,
) -> (Vec<U>, Vec<K>) {
    let (mut upserted, removed) = match delta {
        Some(d) => (d.upserted, d.removed),
        None => (Vec::new(), Vec::new()),
    };
    upserted.extend(items);
    (
        upserted.into_iter().filter_map(item).collect(),
        removed.into_iter().filter_map(key).collect(),
    )
}

/// A closure building catalog watch response `$ty` (they all have the same six fields)
/// from a frame and its payload, mapping items with `$item` and keys with `$key`.
macro_rules! catalog_response {
    ($ty:path, $item:expr, $key:expr) => {
        |f: $crate::grpc::watch::Frame, items, delta| {
            let (upserted, removed) =
                $crate::grpc::watch::catalog_payload(items, delta, $item, $key);
            $ty {
                kind: f.kind as i32,
                index: f.index,
                reason: f.reason,
                header: f.header,
                upserted,
                removed,
            }
        }
    };
}
pub(crate) use catalog_response;
