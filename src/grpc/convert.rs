//! Conversions between protobuf messages and service/domain types, kept out of handlers.

use std::sync::Arc;

use super::watch::Frame;
use crate::pb;
use crate::service::txn::TxnReply;
use crate::service::{Consistency, ResponseMeta};
use crate::state::txn::{KvTxnOp, KvTxnVerb};
use crate::state::{Change, KvChange, KvEntry};

/// The header of a read: the index is the query's (Consul's `X-Consul-Index`).
pub fn query_header(meta: &crate::service::QueryMeta) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        index: meta.index,
        ..header(&meta.meta)
    })
}

/// A read's options from a request's `consistency`.
pub fn query_opts(consistency_value: i32) -> Result<crate::service::QueryOptions, tonic::Status> {
    Ok(crate::service::QueryOptions::with_consistency(consistency(
        consistency_value,
    )?))
}

pub fn header(meta: &ResponseMeta) -> pb::ResponseHeader {
    pb::ResponseHeader {
        index: meta.index,
        node_id: meta.node_id,
        term: meta.term,
        known_leader: meta.known_leader,
        last_contact_ms: meta.last_contact_ms,
    }
}

pub fn consistency(value: i32) -> Result<Consistency, tonic::Status> {
    match pb::Consistency::try_from(value) {
        Ok(pb::Consistency::Unspecified | pb::Consistency::Default) => Ok(Consistency::Default),
        Ok(pb::Consistency::Stale) => Ok(Consistency::Stale),
        Ok(pb::Consistency::Consistent) => Ok(Consistency::Consistent),
        Err(_) => Err(tonic::Status::invalid_argument(format!(
            "unknown consistency mode {value}"
        ))),
    }
}

pub fn kv_pair(e: KvEntry) -> pb::KvPair {
    pb::KvPair {
        key: e.key,
        value: e.value,
        flags: e.flags,
        create_index: e.create_index,
        modify_index: e.modify_index,
        lock_index: e.lock_index,
        session: e.session,
    }
}

/// A pair as a client received it, in the service layer's type.
pub fn kv_entry_in(kv: pb::KvPair) -> KvEntry {
    KvEntry {
        key: kv.key,
        value: kv.value,
        flags: kv.flags,
        create_index: kv.create_index,
        modify_index: kv.modify_index,
        lock_index: kv.lock_index,
        session: kv.session,
    }
}

fn kv_event(change: &KvChange, index: u64) -> pb::KvEvent {
    match &change.entry {
        Some(entry) => pb::KvEvent {
            r#type: pb::kv_event::Type::Put as i32,
            kv: Some(kv_pair(entry.clone())),
        },
        None => pb::KvEvent {
            r#type: pb::kv_event::Type::Delete as i32,
            kv: Some(pb::KvPair {
                key: change.key.clone(),
                modify_index: index,
                ..Default::default()
            }),
        },
    }
}

/// A KV watch message: snapshot pairs as PUT events, changes as PUT or DELETE events.
pub fn watch_response(
    frame: Frame,
    entries: Vec<KvEntry>,
    changes: Option<Vec<Arc<Change>>>,
) -> pb::WatchResponse {
    let mut events: Vec<pb::KvEvent> = entries
        .into_iter()
        .map(|e| pb::KvEvent {
            r#type: pb::kv_event::Type::Put as i32,
            kv: Some(kv_pair(e)),
        })
        .collect();
    events.extend(
        changes
            .iter()
            .flatten()
            .filter_map(|c| c.as_kv())
            .map(|c| kv_event(c, frame.index)),
    );
    pb::WatchResponse {
        kind: frame.kind as i32,
        index: frame.index,
        events,
        reason: frame.reason,
        header: frame.header,
    }
}

pub fn txn_op(op: pb::TxnOp) -> Result<KvTxnOp, tonic::Status> {
    use pb::txn_op::Verb;
    let verb = match Verb::try_from(op.verb) {
        Ok(Verb::Set) => KvTxnVerb::Set,
        Ok(Verb::Cas) => KvTxnVerb::Cas,
        Ok(Verb::Get) => KvTxnVerb::Get,
        Ok(Verb::GetTree) => KvTxnVerb::GetTree,
        Ok(Verb::CheckIndex) => KvTxnVerb::CheckIndex,
        Ok(Verb::CheckNotExists) => KvTxnVerb::CheckNotExists,
        Ok(Verb::Delete) => KvTxnVerb::Delete,
        Ok(Verb::DeleteTree) => KvTxnVerb::DeleteTree,
        Ok(Verb::DeleteCas) => KvTxnVerb::DeleteCas,
        Ok(Verb::Lock) => KvTxnVerb::Lock,
        Ok(Verb::Unlock) => KvTxnVerb::Unlock,
        Ok(Verb::GetOrEmpty) => KvTxnVerb::GetOrEmpty,
        Ok(Verb::CheckSession) => KvTxnVerb::CheckSession,
        Ok(Verb::Unspecified) => {
            return Err(tonic::Status::invalid_argument(format!(
                "transaction operation on {:?} has no verb",
                op.key
            )))
        }
        Err(_) => {
            return Err(tonic::Status::invalid_argument(format!(
                "unknown transaction verb {}",
                op.verb
            )))
        }
    };
    Ok(KvTxnOp {
        verb,
        key: op.key,
        value: op.value,
        flags: op.flags,
        index: op.index,
        session: op.session,
    })
}

pub fn txn_response(reply: TxnReply) -> pb::TxnResponse {
    let outcome = reply.outcome;
    pb::TxnResponse {
        header: Some(header(&reply.meta)),
        succeeded: outcome.errors.is_empty(),
        results: outcome.results.into_iter().map(kv_pair).collect(),
        errors: outcome
            .errors
            .into_iter()
            .map(|e| pb::TxnError {
                op_index: e.op_index as u32,
                what: e.what,
            })
            .collect(),
    }
}

#[cfg(test)]
mod proptests {
    //! Requests as the wire delivers them: any bytes through prost's decoder, any field
    //! values (unknown enum numbers included) through the conversions. Each converts or
    //! is `INVALID_ARGUMENT` with a message; none panics.

    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::config::arbitrary;

    fn wire_op() -> impl Strategy<Value = pb::TxnOp> {
        (
            prop_oneof![0i32..14, any::<i32>()],
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..32),
            any::<u64>(),
            any::<u64>(),
            any::<String>(),
        )
            .prop_map(|(verb, key, value, flags, index, session)| pb::TxnOp {
                verb,
                key,
                value,
                flags,
                index,
                session,
            })
    }

    fn invalid_argument(s: &tonic::Status) -> bool {
        s.code() == tonic::Code::InvalidArgument && !s.message().is_empty()
    }

    proptest! {
        #![proptest_config(arbitrary::config())]

        #[test]
        fn any_bytes_decode_or_are_refused(bytes in arbitrary::hostile_bytes()) {
            if let Ok(req) = pb::TxnRequest::decode(bytes.as_slice()) {
                let _ = consistency(req.consistency);
                for op in req.ops {
                    if let Err(s) = txn_op(op) {
                        prop_assert!(invalid_argument(&s));
                    }
                }
            }
            for consistency_value in [
                pb::GetRequest::decode(bytes.as_slice()).map(|r| r.consistency),
                pb::ListRequest::decode(bytes.as_slice()).map(|r| r.consistency),
            ]
            .into_iter()
            .flatten()
            {
                if let Err(s) = query_opts(consistency_value) {
                    prop_assert!(invalid_argument(&s));
                }
            }
            let _ = pb::PutRequest::decode(bytes.as_slice());
            let _ = pb::DeleteRequest::decode(bytes.as_slice());
            let _ = pb::WatchRequest::decode(bytes.as_slice());
        }

        #[test]
        fn txn_ops_convert_or_name_the_verb(op in wire_op()) {
            let wire = op.encode_to_vec();
            let op = pb::TxnOp::decode(wire.as_slice()).unwrap();
            let verb = op.verb;
            let (key, value, flags, index, session) =
                (op.key.clone(), op.value.clone(), op.flags, op.index, op.session.clone());
            match txn_op(op) {
                Ok(kv) => {
                    prop_assert!((1..14).contains(&verb));
                    prop_assert_eq!((kv.key, kv.value, kv.flags, kv.index, kv.session),
                        (key, value, flags, index, session));
                }
                Err(s) => {
                    prop_assert!(!(1..14).contains(&verb));
                    prop_assert!(invalid_argument(&s));
                }
            }
        }

        #[test]
        fn consistency_is_known_or_refused(value in any::<i32>()) {
            match consistency(value) {
                Ok(_) => prop_assert!((0..4).contains(&value)),
                Err(s) => prop_assert!(invalid_argument(&s)),
            }
        }

        #[test]
        fn kv_pairs_round_trip(
            key in any::<String>(), value in prop::collection::vec(any::<u8>(), 0..32),
            flags in any::<u64>(), create in any::<u64>(), modify in any::<u64>(),
            lock in any::<u64>(), session in any::<String>(),
        ) {
            let pair = pb::KvPair { key, value, flags, create_index: create,
                modify_index: modify, lock_index: lock, session };
            let wire = pair.encode_to_vec();
            let decoded = pb::KvPair::decode(wire.as_slice()).unwrap();
            prop_assert_eq!(kv_pair(kv_entry_in(decoded)), pair);
        }
    }
}
